//! Progress lines for `sweep run`: one per run start, epoch, end and failure, from events.
use std::collections::HashMap;

use crate::scheduler::SweepOutcome;
use crate::store::RunState;
use crate::sweep::RunSpec;
use crate::train::Event;

pub struct Progress {
    runs: HashMap<String, RunSpec>,
    total: usize,
}

fn human(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.0}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

impl Progress {
    pub fn new(states: &[RunState]) -> Progress {
        Progress { runs: states.iter().map(|s| (s.spec.id.clone(), s.spec.clone())).collect(), total: states.len() }
    }

    pub fn label(&self, id: &str) -> String {
        match self.runs.get(id) {
            Some(r) => format!("[{}/{}] {} ({})", r.index, self.total, r.label, r.id),
            None => id.to_string(),
        }
    }

    pub fn header(&self, sweep: &str, outcome: &SweepOutcome, devices: usize) -> String {
        let todo = outcome.total - outcome.already_done;
        let mut s = format!("sweep {sweep}: {} runs, {todo} to train", outcome.total);
        if outcome.already_done > 0 {
            s += &format!(" ({} already done, kept)", outcome.already_done);
        }
        if todo > 0 {
            s += &format!(" on {devices} device{}", if devices == 1 { "" } else { "s" });
        }
        s
    }

    pub fn line(&self, event: &Event) -> Option<String> {
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
                if !start.skipped.is_empty() {
                    s += &format!("\n  skipped {} unreadable file(s):", start.skipped.len());
                    for f in &start.skipped {
                        s += &format!("\n    {}: {}", f.path.display(), f.reason);
                    }
                }
                s
            }
            Event::Epoch { run, record } => {
                let e = &record.summary;
                let epochs = self.runs.get(run).map(|r| r.config.epochs).unwrap_or(0);
                format!(
                    "  epoch {}/{epochs}  train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} f1 {:.4} | lr {:.2e} | {:.1}s {:.0} img/s{}",
                    e.epoch,
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
            Event::Finished { end, .. } => format!("{label} done: {}", end.stop_reason),
            Event::Failed { error, .. } => format!("{label} FAILED: {error}"),
        })
    }
}
