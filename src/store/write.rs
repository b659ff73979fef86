//! Writing: register a sweep's runs, then apply trainer events, one transaction each.
use rusqlite::{params, OptionalExtension, Transaction};

use super::{Result, Store};
use crate::sweep::{RunSpec, Sweep};
use crate::train::metrics::{Confusion, Metrics};
use crate::train::Event;

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// A run of the sweep file and what the store already holds of it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    pub spec: RunSpec,
    /// True when the run finished before: it is not trained again.
    pub done: bool,
}

impl Store {
    /// Record the sweep and its runs. Runs already done are kept as they are; any other
    /// stored run of this grid (failed, interrupted) is cleared and queued again.
    pub fn register(&mut self, sweep: &Sweep, runs: &[RunSpec]) -> Result<Vec<RunState>> {
        let tx = self.conn.transaction()?;
        let file = sweep.file.to_string_lossy();
        tx.execute(
            &format!(
                "INSERT INTO sweeps (name, file, created_at, updated_at) VALUES (?1, ?2, {NOW}, {NOW})
                 ON CONFLICT(name) DO UPDATE SET file = excluded.file, updated_at = excluded.updated_at"
            ),
            params![sweep.name, file],
        )?;
        let sweep_id: i64 = tx.query_row("SELECT id FROM sweeps WHERE name = ?1", [&sweep.name], |r| r.get(0))?;
        let mut states = Vec::with_capacity(runs.len());
        for run in runs {
            let status: Option<String> =
                tx.query_row("SELECT status FROM runs WHERE id = ?1", [&run.id], |r| r.get(0)).optional()?;
            let done = status.as_deref() == Some("done");
            match status {
                None => {
                    tx.execute(
                        "INSERT INTO runs (id, sweep_id, idx, label, config, status) VALUES (?1, ?2, ?3, ?4, ?5, 'queued')",
                        params![run.id, sweep_id, run.index as i64, run.label, serde_json::to_string(&run.config)?],
                    )?;
                }
                Some(_) if done => {
                    // Same config, maybe a new position in an edited grid.
                    tx.execute("UPDATE runs SET idx = ?2, label = ?3 WHERE id = ?1", params![run.id, run.index as i64, run.label])?;
                }
                Some(_) => {
                    clear_results(&tx, &run.id)?;
                    tx.execute(
                        "UPDATE runs SET idx = ?2, label = ?3, status = 'queued', error = NULL WHERE id = ?1",
                        params![run.id, run.index as i64, run.label],
                    )?;
                }
            }
            states.push(RunState { spec: run.clone(), done });
        }
        tx.commit()?;
        Ok(states)
    }

    /// Store one event. Each call is one transaction, committed before it returns.
    pub fn apply(&mut self, event: &Event) -> Result<()> {
        let tx = self.conn.transaction()?;
        match event {
            Event::Started { run, start } => {
                tx.execute(
                    &format!(
                        "UPDATE runs SET status = 'running', attempts = attempts + 1, device = ?2, classes = ?3,
                         parameters = ?4, train_images = ?5, val_images = ?6, test_images = ?7,
                         error = NULL, started_at = {NOW}, heartbeat_at = {NOW} WHERE id = ?1"
                    ),
                    params![
                        run,
                        start.device,
                        serde_json::to_string(&start.classes)?,
                        start.parameters as i64,
                        start.train_images as i64,
                        start.val_images as i64,
                        start.test_images.map(|n| n as i64),
                    ],
                )?;
                for s in &start.skipped {
                    tx.execute(
                        "INSERT OR REPLACE INTO skipped_files (run_id, path, reason) VALUES (?1, ?2, ?3)",
                        params![run, s.path.to_string_lossy(), s.reason],
                    )?;
                }
            }
            Event::Epoch { run, record } => {
                let e = &record.summary;
                tx.execute(
                    "INSERT INTO epochs (run_id, epoch, lr, train_loss, train_acc, val_loss, val_acc,
                     val_macro_f1, val_weighted_f1, seconds, images_per_sec, checkpoint_saved)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    params![
                        run,
                        e.epoch as i64,
                        e.lr,
                        e.train_loss,
                        e.train_acc,
                        e.val_loss,
                        e.val_acc,
                        e.val_macro_f1,
                        e.val_weighted_f1,
                        record.seconds,
                        record.images_per_sec,
                        record.checkpoint_saved,
                    ],
                )?;
                insert_split(&tx, run, "val", e.epoch, &record.val, &record.confusion)?;
                tx.execute(&format!("UPDATE runs SET heartbeat_at = {NOW} WHERE id = ?1"), [run])?;
            }
            Event::Evaluated { run, evaluation: ev } => {
                tx.execute(
                    "INSERT OR REPLACE INTO evaluations (run_id, split, epoch, loss, accuracy, macro_f1, weighted_f1)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![run, ev.split, ev.epoch as i64, ev.loss, ev.metrics.accuracy, ev.metrics.macro_f1, ev.metrics.weighted_f1],
                )?;
                insert_split(&tx, run, &ev.split, ev.epoch, &ev.metrics, &ev.confusion)?;
            }
            Event::Finished { run, end } => {
                tx.execute(
                    &format!(
                        "UPDATE runs SET status = 'done', stop_reason = ?2, checkpoint = ?3, checkpoint_epoch = ?4,
                         finished_at = {NOW}, heartbeat_at = {NOW} WHERE id = ?1"
                    ),
                    params![
                        run,
                        end.stop_reason,
                        end.checkpoint.as_ref().map(|p| p.to_string_lossy().into_owned()),
                        end.checkpoint_epoch.map(|e| e as i64),
                    ],
                )?;
            }
            Event::Failed { run, error } => {
                tx.execute(
                    &format!("UPDATE runs SET status = 'failed', error = ?2, finished_at = {NOW} WHERE id = ?1"),
                    params![run, error],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

fn clear_results(tx: &Transaction, run: &str) -> Result<()> {
    for table in ["epochs", "evaluations", "class_metrics", "confusion", "skipped_files"] {
        tx.execute(&format!("DELETE FROM {table} WHERE run_id = ?1"), [run])?;
    }
    Ok(())
}

fn insert_split(tx: &Transaction, run: &str, split: &str, epoch: usize, m: &Metrics, c: &Confusion) -> Result<()> {
    let classes: Option<String> = tx.query_row("SELECT classes FROM runs WHERE id = ?1", [run], |r| r.get(0))?;
    let names: Vec<String> = match classes {
        Some(json) => serde_json::from_str(&json)?,
        None => Vec::new(),
    };
    let mut insert = tx.prepare_cached(
        "INSERT OR REPLACE INTO class_metrics (run_id, split, epoch, class_index, class_name, precision, recall, f1, support)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (k, cm) in m.classes.iter().enumerate() {
        let name = names.get(k).cloned().unwrap_or_else(|| k.to_string());
        insert.execute(params![run, split, epoch as i64, k as i64, name, cm.precision, cm.recall, cm.f1, cm.support as i64])?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO confusion (run_id, split, epoch, matrix) VALUES (?1, ?2, ?3, ?4)",
        params![run, split, epoch as i64, serde_json::to_string(&c.matrix)?],
    )?;
    Ok(())
}
