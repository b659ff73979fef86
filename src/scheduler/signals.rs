//! Stopping a sweep from outside. Ctrl-C (SIGINT), SIGTERM (`timeout`, systemd, docker, Slurm)
//! and SIGHUP (a closed terminal or SSH session) all drain: no new runs start, the epochs in
//! progress finish and save, and the runs are marked `stopped`. A second signal stops at once
//! (the epoch in progress is lost, the saved ones are not). After SIGTERM or SIGHUP the drain
//! is bounded: whoever sent it sends SIGKILL soon (Slurm after KillWait, 30 s by default;
//! docker after 10 s), so after `grace` the sweep stops at once by itself.
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Control, ToWriter};

/// Signal numbers, for exit codes (128 + n).
pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

fn name(signal: i32) -> &'static str {
    match signal {
        SIGHUP => "SIGHUP",
        SIGTERM => "SIGTERM",
        _ => "Ctrl-C",
    }
}

/// Waits for the next stopping signal. The handlers are installed when this is created, so
/// a signal that arrives early is not lost (nor does it kill the process).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                hup: signal(SignalKind::hangup())?,
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
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await.ok().map(|_| SIGINT)
    }
}

/// Install the handlers now, then turn signals into control changes for the slot loops and
/// notes for the writer, until the sweep ends (the caller aborts the task).
pub(super) fn watch(
    control: watch::Sender<Control>,
    to_writer: mpsc::Sender<ToWriter>,
    grace: Duration,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut signals = Signals::new()?;
    Ok(async move {
        let Some(first) = signals.next().await else {
            return;
        };
        let _ = to_writer.send(ToWriter::Interrupted(first));
        let again = if first == SIGINT {
            "Ctrl-C again".to_string()
        } else {
            format!("a second signal, or {} s,", grace.as_secs())
        };
        let _ = to_writer.send(ToWriter::Note(format!(
            "{}: no new runs; running epochs finish and save ({again} to stop now)",
            name(first)
        )));
        let _ = control.send(Control::Drain);
        let bounded = async {
            if first == SIGINT {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(grace).await
            }
        };
        let why = tokio::select! {
            s = signals.next() => match s {
                Some(s) => format!("{} again", name(s)),
                None => return,
            },
            _ = bounded => format!("the epochs did not finish within {} s", grace.as_secs()),
        };
        let _ = to_writer.send(ToWriter::Note(format!(
            "{why}: stopping now; runs resume from their last saved epoch"
        )));
        let _ = control.send(Control::Kill);
    })
}
