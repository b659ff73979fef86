//! What `sweep run` shows while it works, from events: progress bars on a terminal (one per
//! busy device and one for the sweep), plain log lines otherwise.
use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::devices::Slot;
use crate::report::text::for_terminal;
use crate::run::{Event, RunSpec};
use crate::scheduler::{Observer, SweepOutcome};

/// Bars on a terminal, lines elsewhere (logs, CI, pipes).
pub fn for_stderr() -> Box<dyn Observer> {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        Box::new(Bars::default())
    } else {
        Box::new(Lines::default())
    }
}

fn human(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.0}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// Run labels and epoch counts, shared by both displays.
#[derive(Default)]
struct Runs {
    runs: HashMap<String, RunSpec>,
    total: usize,
}

impl Runs {
    fn set(&mut self, runs: &[RunSpec]) {
        self.runs = runs.iter().map(|r| (r.id.clone(), r.clone())).collect();
        self.total = runs.len();
    }

    fn add(&mut self, runs: &[RunSpec]) {
        self.runs
            .extend(runs.iter().map(|r| (r.id.clone(), r.clone())));
        self.total += runs.len();
    }

    fn label(&self, id: &str) -> String {
        match self.runs.get(id) {
            Some(r) => format!(
                "[{}/{}] {} ({})",
                r.index,
                self.total,
                for_terminal(&r.label),
                r.id
            ),
            None => id.to_string(),
        }
    }

    fn epochs(&self, id: &str) -> usize {
        self.runs.get(id).map(|r| r.config.epochs).unwrap_or(0)
    }

    fn header(&self, sweep: &str, outcome: &SweepOutcome, slots: &[Slot]) -> String {
        let todo = outcome.total - outcome.already_done;
        let mut s = format!("sweep {sweep}: {} runs, {todo} to train", outcome.total);
        if outcome.already_done > 0 {
            s += &format!(" ({} already done, kept)", outcome.already_done);
        }
        if todo > 0 {
            let names: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
            s += &format!(" on {}", names.join(", "));
        }
        s
    }

    /// The log line of a stored event (progress events have none).
    fn line(&self, event: &Event) -> Option<String> {
        let label = self.label(event.run());
        Some(match event {
            Event::Started { start, .. } => {
                let mut s = format!(
                    "{label} started on {}: {} parameters, {} train / {} val images",
                    start.device,
                    human(start.parameters),
                    start.train_images,
                    start.val_images
                );
                if let Some(t) = start.test_images {
                    s += &format!(" / {t} test");
                }
                if let Some(e) = start.resumed_from {
                    s += &format!(", resuming after epoch {e}");
                }
                if !start.skipped.is_empty() {
                    s += &format!("\n  skipped {} unreadable file(s):", start.skipped.len());
                    for f in &start.skipped {
                        let path = for_terminal(&f.path.to_string_lossy());
                        s += &format!("\n    {path}: {}", for_terminal(&f.reason));
                    }
                }
                s
            }
            Event::Epoch { run, record } => {
                let e = &record.summary;
                format!(
                    "  epoch {}/{}  train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} f1 {:.4} | lr {:.2e} | {:.1}s {:.0} img/s{}",
                    e.epoch,
                    self.epochs(run),
                    e.train_loss,
                    e.train_acc,
                    e.val_loss,
                    e.val_acc,
                    e.val_macro_f1,
                    e.lr,
                    record.seconds,
                    record.images_per_sec,
                    if record.checkpoint_saved { " *saved" } else { "" }
                )
            }
            Event::Evaluated { evaluation: ev, .. } => format!(
                "  {} (weights of epoch {}): loss {:.4} acc {:.4} macro f1 {:.4}",
                ev.split, ev.epoch, ev.loss, ev.metrics.accuracy, ev.metrics.macro_f1
            ),
            Event::Finished { end, .. } => {
                format!("{label} done: {}", for_terminal(&end.stop_reason))
            }
            Event::Failed { error, .. } => format!("{label} FAILED: {}", for_terminal(error)),
            Event::Stopped { epoch, .. } => {
                format!("{label} stopped after epoch {epoch}; `sweep run` resumes it")
            }
            Event::Pruned { end, .. } => {
                format!("{label} pruned: {}", for_terminal(&end.stop_reason))
            }
            Event::Progress { .. } | Event::Rung { .. } => return None,
        })
    }
}

fn summary(outcome: &SweepOutcome) -> String {
    let mut s = format!(
        "{} runs: {} trained now, {} failed, {} done before",
        outcome.total,
        outcome.done,
        outcome.failed.len(),
        outcome.already_done
    );
    if outcome.pruned > 0 {
        s += &format!(", {} pruned by the search", outcome.pruned);
    }
    if outcome.held_elsewhere > 0 {
        s += &format!(
            ", {} being trained by another `sweep run`",
            outcome.held_elsewhere
        );
    }
    if outcome.finished_elsewhere > 0 {
        s += &format!(
            ", {} finished by another `sweep run`",
            outcome.finished_elsewhere
        );
    }
    if outcome.interrupted {
        s += " (interrupted: run `sweep run` again to resume)";
    }
    s
}

/// Plain lines on stderr.
#[derive(Default)]
pub struct Lines {
    runs: Runs,
}

impl Observer for Lines {
    fn added(&mut self, runs: &[RunSpec], _outcome: &SweepOutcome) {
        self.runs.add(runs);
        for r in runs {
            crate::say!("the search added {}", self.runs.label(&r.id));
        }
    }

    fn begin(&mut self, sweep: &str, runs: &[RunSpec], outcome: &SweepOutcome, slots: &[Slot]) {
        self.runs.set(runs);
        crate::say!("{}", self.runs.header(sweep, outcome, slots));
    }

    fn event(&mut self, _slot: usize, event: &Event, _outcome: &SweepOutcome) {
        if let Some(line) = self.runs.line(event) {
            crate::say!("{line}");
        }
    }

    fn note(&mut self, line: &str) {
        crate::say!("{}", for_terminal(line));
    }

    fn finish(&mut self, outcome: &SweepOutcome) {
        crate::say!("{}", summary(outcome));
    }
}

/// indicatif bars: the sweep's, then one per busy device; finished runs print a line above.
#[derive(Default)]
pub struct Bars {
    runs: Runs,
    multi: Option<MultiProgress>,
    sweep: Option<ProgressBar>,
    slots: Vec<ProgressBar>,
    slot_names: Vec<String>,
}

impl Observer for Bars {
    fn added(&mut self, runs: &[RunSpec], outcome: &SweepOutcome) {
        self.runs.add(runs);
        if let Some(bar) = &self.sweep {
            bar.set_length(outcome.total as u64);
        }
    }

    fn begin(&mut self, sweep: &str, runs: &[RunSpec], outcome: &SweepOutcome, slots: &[Slot]) {
        self.runs.set(runs);
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let _ = multi.println(self.runs.header(sweep, outcome, slots));
        let bar = multi.add(ProgressBar::new(outcome.total as u64));
        bar.set_style(
            ProgressStyle::with_template(
                "sweep {bar:30} {pos}/{len} runs {msg} [{elapsed_precise}, ETA {eta}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(outcome.already_done as u64);
        self.slot_names = slots.iter().map(|s| s.to_string()).collect();
        self.slots = slots
            .iter()
            .map(|_| {
                let b = multi.add(ProgressBar::new(1));
                b.set_style(
                    ProgressStyle::with_template("{prefix:>8} {bar:20} {msg} ETA {eta}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.enable_steady_tick(Duration::from_millis(500));
                b
            })
            .collect();
        self.sweep = Some(bar);
        self.multi = Some(multi);
    }

    fn event(&mut self, slot: usize, event: &Event, outcome: &SweepOutcome) {
        if let (Some(multi), Some(line)) = (&self.multi, self.runs.line(event)) {
            if !matches!(event, Event::Epoch { .. }) {
                let _ = multi.println(line);
            }
        }
        let Some(bar) = self.slots.get(slot) else {
            return;
        };
        bar.set_prefix(self.slot_names.get(slot).cloned().unwrap_or_default());
        match event {
            Event::Started { run, .. } => {
                bar.reset();
                bar.set_message(self.runs.label(run));
            }
            Event::Progress {
                run,
                epoch,
                batch,
                batches,
                images_per_sec,
            } => {
                let epochs = self.runs.epochs(run).max(1);
                bar.set_length((epochs * batches) as u64);
                bar.set_position(((epoch - 1) * batches + batch) as u64);
                bar.set_message(format!(
                    "{} epoch {epoch}/{epochs} batch {batch}/{batches} {images_per_sec:.0} img/s",
                    self.runs.label(run)
                ));
            }
            Event::Finished { .. }
            | Event::Failed { .. }
            | Event::Stopped { .. }
            | Event::Pruned { .. } => {
                bar.set_message("idle");
                if let Some(s) = &self.sweep {
                    s.set_position(
                        (outcome.already_done
                            + outcome.done
                            + outcome.pruned
                            + outcome.failed.len()) as u64,
                    );
                    s.set_message(format!("({} failed)", outcome.failed.len()));
                }
            }
            _ => {}
        }
    }

    fn note(&mut self, line: &str) {
        let line = for_terminal(line);
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => crate::say!("{line}"),
        }
    }

    fn finish(&mut self, outcome: &SweepOutcome) {
        for b in &self.slots {
            b.finish_and_clear();
        }
        if let Some(s) = &self.sweep {
            s.finish();
        }
        self.note(&summary(outcome));
    }
}
