//! Stopping a sweep from outside. Ctrl-C (SIGINT), SIGTERM (`timeout`, systemd, docker, Slurm),
//! SIGHUP (a closed terminal or SSH session) and SIGUSR1 (Slurm: the time limit is near, or
//! preemption, with `--signal=B:USR1@120`) all drain: no new runs start, the epochs in
//! progress finish and save, and the runs are marked `stopped` with no owner, so that another
//! process (another Slurm task) claims them at once. After SIGUSR1 the caller requeues the
//! Slurm job while runs are left; after the others it does not.
//!
//! The drain is bounded except after Ctrl-C: whoever sent SIGTERM or SIGHUP sends SIGKILL
//! soon (Slurm after KillWait, 30 s by default; docker after 10 s), so after `stop` the sweep
//! stops at once by itself; after SIGUSR1 the time limit is some minutes away, so the bound is
//! the longer `usr1`. A second signal stops at once (the epoch in progress is lost, the saved
//! ones are not), except SIGUSR1 again (nothing more to do) and SIGTERM or SIGHUP after
//! SIGUSR1 (the drain under way then ends within the shorter `stop` bound).
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Control, ToWriter};

/// Signal numbers (Linux's), for exit codes (128 + n).
pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGUSR1: i32 = 10;
pub const SIGTERM: i32 = 15;

fn name(signal: i32) -> &'static str {
    match signal {
        SIGHUP => "SIGHUP",
        SIGTERM => "SIGTERM",
        SIGUSR1 => "SIGUSR1",
        _ => "Ctrl-C",
    }
}

/// How long running epochs may take to finish and save after a stopping signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Graces {
    /// After SIGTERM or SIGHUP.
    pub stop: Duration,
    /// After SIGUSR1.
    pub usr1: Duration,
}

impl Graces {
    /// The drain's bound after `signal` first; `None`: wait for the epochs (Ctrl-C, where a
    /// person can press it again).
    fn first(&self, signal: i32) -> Option<Duration> {
        match signal {
            SIGINT => None,
            SIGUSR1 => Some(self.usr1),
            _ => Some(self.stop),
        }
    }
}

/// What a signal during the drain does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// Stop now.
    Kill,
    /// Bound the drain by the SIGTERM grace from now (if sooner).
    Tighten,
    /// Nothing more: the drain already does what it asks.
    Ignore,
}

/// The decision for signal `then` arriving during the drain started by `first`; `tightened`:
/// a SIGTERM or SIGHUP already bounded a SIGUSR1 drain.
fn then(first: i32, then: i32, tightened: bool) -> Then {
    match then {
        SIGUSR1 => Then::Ignore,
        SIGTERM | SIGHUP if first == SIGUSR1 && !tightened => Then::Tighten,
        _ => Then::Kill,
    }
}

/// Waits for the next stopping signal. The handlers are installed when this is created, so
/// a signal that arrives early is not lost (nor does it kill the process).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
    #[cfg(unix)]
    usr1: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                hup: signal(SignalKind::hangup())?,
                usr1: signal(SignalKind::user_defined1())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) -> Option<i32> {
        #[cfg(unix)]
        {
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.ok().map(|_| SIGINT),
                s = self.term.recv() => s.map(|_| SIGTERM),
                s = self.hup.recv() => s.map(|_| SIGHUP),
                s = self.usr1.recv() => s.map(|_| SIGUSR1),
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await.ok().map(|_| SIGINT)
    }
}

/// Sleeps until `deadline`, forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending::<()>().await,
    }
}

/// Install the handlers now, then turn signals into control changes for the slot loops and
/// notes for the writer, until the sweep ends (the caller aborts the task).
pub(super) fn watch(
    control: watch::Sender<Control>,
    to_writer: mpsc::Sender<ToWriter>,
    graces: Graces,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut signals = Signals::new()?;
    let note = move |to_writer: &mpsc::Sender<ToWriter>, line: String| {
        let _ = to_writer.send(ToWriter::Note(line));
    };
    Ok(async move {
        let Some(first) = signals.next().await else {
            return;
        };
        let _ = to_writer.send(ToWriter::Interrupted(first));
        let bound = graces.first(first);
        let mut deadline = bound.map(|b| Instant::now() + b);
        // What the deadline allows, for the message when it passes.
        let mut allowed = bound.unwrap_or_default().as_secs();
        let how = match (first, bound) {
            (SIGUSR1, Some(b)) => format!(
                "within {} s, then their runs are released for another process (SIGTERM to stop sooner)",
                b.as_secs()
            ),
            (_, Some(b)) => format!("(a second signal, or {} s, to stop now)", b.as_secs()),
            (_, None) => "(Ctrl-C again to stop now)".into(),
        };
        note(
            &to_writer,
            format!(
                "{}: no new runs; running epochs finish and save {how}",
                name(first)
            ),
        );
        let _ = control.send(Control::Drain);
        let mut tightened = false;
        let why = loop {
            tokio::select! {
                s = signals.next() => {
                    let Some(s) = s else { return };
                    let _ = to_writer.send(ToWriter::Interrupted(s));
                    match then(first, s, tightened) {
                        Then::Kill => break format!("{} again", name(s)),
                        Then::Ignore => {}
                        Then::Tighten => {
                            tightened = true;
                            let sooner = Instant::now() + graces.stop;
                            if deadline.is_none_or(|d| sooner < d) {
                                deadline = Some(sooner);
                                allowed = graces.stop.as_secs();
                            }
                            note(&to_writer, format!(
                                "{}: the running epochs get at most {} s more",
                                name(s),
                                graces.stop.as_secs()
                            ));
                        }
                    }
                }
                _ = until(deadline) => break format!("the epochs did not finish within {allowed} s"),
            }
        };
        note(
            &to_writer,
            format!("{why}: stopping now; runs resume from their last saved epoch"),
        );
        let _ = control.send(Control::Kill);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_signal_stops_now_except_usr1_and_term_after_usr1() {
        // Ctrl-C twice, SIGTERM twice, or Ctrl-C after anything: stop now.
        assert_eq!(then(SIGINT, SIGINT, false), Then::Kill);
        assert_eq!(then(SIGTERM, SIGTERM, false), Then::Kill);
        assert_eq!(then(SIGUSR1, SIGINT, false), Then::Kill);
        // SIGUSR1 asks for what the drain already does.
        assert_eq!(then(SIGTERM, SIGUSR1, false), Then::Ignore);
        assert_eq!(then(SIGUSR1, SIGUSR1, false), Then::Ignore);
        // Slurm's SIGTERM after the warning (scancel, the limit reached): finish within
        // KillWait; a second one stops now.
        assert_eq!(then(SIGUSR1, SIGTERM, false), Then::Tighten);
        assert_eq!(then(SIGUSR1, SIGHUP, false), Then::Tighten);
        assert_eq!(then(SIGUSR1, SIGTERM, true), Then::Kill);
    }

    #[test]
    fn bounds_follow_the_first_signal() {
        let g = Graces {
            stop: Duration::from_secs(20),
            usr1: Duration::from_secs(90),
        };
        assert_eq!(g.first(SIGINT), None);
        assert_eq!(g.first(SIGTERM), Some(Duration::from_secs(20)));
        assert_eq!(g.first(SIGHUP), Some(Duration::from_secs(20)));
        assert_eq!(g.first(SIGUSR1), Some(Duration::from_secs(90)));
    }
}
