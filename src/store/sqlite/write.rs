//! Writing to SQLite: register a sweep's runs, then apply trainer events, one transaction each.
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::SqliteStore;
use crate::run::ResumeState;
use crate::run::RunSpec;
use crate::run::RunStatus;
use crate::run::{Confusion, Metrics};
use crate::run::{Event, RunEnd};
use crate::store::{Claim, Result, RunState, Storage, StoreError};

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

impl Storage for SqliteStore {
    fn id(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |r| {
                r.get(0)
            })?)
    }

    /// Record the sweep and its runs. New cells are queued; finished ones are kept as they
    /// are; failed runs are queued again; failed, stopped or abandoned runs keep their epochs
    /// and resume from their last saved one when claimed.
    fn register(
        &mut self,
        sweep: &str,
        file: &std::path::Path,
        runs: &[RunSpec],
        complete: bool,
    ) -> Result<Vec<RunState>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Sweeps are told apart by the file they come from: another file of the same name
        // that still exists is a clash; a file that moved (the old one is gone) is adopted.
        let file = std::fs::canonicalize(file)
            .unwrap_or_else(|_| file.to_path_buf())
            .to_string_lossy()
            .into_owned();
        let stored: Option<String> = tx
            .query_row("SELECT file FROM sweeps WHERE name = ?1", [sweep], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(other) = stored {
            let other_path = std::path::Path::new(&other);
            if other != file && other_path.is_absolute() && other_path.is_file() {
                return Err(StoreError::NameClash {
                    name: sweep.to_string(),
                    db: self.path.display().to_string(),
                    file,
                    other,
                });
            }
        }
        tx.execute(
            &format!(
                "INSERT INTO sweeps (name, file, created_at, updated_at) VALUES (?1, ?2, {NOW}, {NOW})
                 ON CONFLICT(name) DO UPDATE SET file = excluded.file, updated_at = excluded.updated_at"
            ),
            params![sweep, file],
        )?;
        let sweep_id: i64 =
            tx.query_row("SELECT id FROM sweeps WHERE name = ?1", [sweep], |r| {
                r.get(0)
            })?;
        let mut states = Vec::with_capacity(runs.len());
        for run in runs {
            let status: Option<RunStatus> = tx
                .query_row("SELECT status FROM runs WHERE id = ?1", [&run.id], |r| {
                    r.get(0)
                })
                .optional()?;
            match status {
                None => {
                    tx.execute(
                        "INSERT INTO runs (id, sweep_id, idx, label, config, status, batch_size) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![run.id, sweep_id, run.index as i64, run.label, serde_json::to_string(&run.config)?, RunStatus::Queued, run.config.batch_size as i64],
                    )?;
                }
                Some(RunStatus::Failed) => {
                    tx.execute(
                        "UPDATE runs SET idx = ?2, label = ?3, status = ?4 WHERE id = ?1",
                        params![run.id, run.index as i64, run.label, RunStatus::Queued],
                    )?;
                }
                Some(_) => {
                    // Same config, maybe a new position in an edited grid.
                    tx.execute(
                        "UPDATE runs SET idx = ?2, label = ?3 WHERE id = ?1",
                        params![run.id, run.index as i64, run.label],
                    )?;
                }
            }
            states.push(RunState {
                spec: run.clone(),
                done: matches!(status, Some(RunStatus::Done | RunStatus::Pruned)),
            });
        }
        // Runs the file no longer produces are retired; the ones it does, not (again).
        let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        if complete {
            tx.execute(
                "UPDATE runs SET retired = 1 WHERE sweep_id = ?1",
                [sweep_id],
            )?;
        }
        for id in ids {
            tx.execute("UPDATE runs SET retired = 0 WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(states)
    }

    /// Forget a sweep's runs and results (`sweep run --fresh`); its runs are registered anew.
    fn forget_sweep(&mut self, name: &str) -> Result<usize> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids: Vec<String> = {
            let mut stmt = tx.prepare(
                "SELECT r.id FROM runs r JOIN sweeps s ON s.id = r.sweep_id WHERE s.name = ?1",
            )?;
            let rows = stmt.query_map([name], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for id in &ids {
            clear_results(&tx, id)?;
            tx.execute("DELETE FROM runs WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(ids.len())
    }

    /// Atomically take a run for `owner` if nobody else holds it: queued or stopped runs, and
    /// runs left `running` by a dead owner (`owner_alive` says no, or no heartbeat for
    /// `stale_secs`). Two `sweep run` processes never both get the same run.
    fn claim(
        &mut self,
        run: &str,
        owner: &str,
        stale_secs: f64,
        owner_alive: &dyn Fn(&str) -> bool,
    ) -> Result<Option<Claim>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // (status, owner, seconds since its heartbeat, batch size)
        type Row = (RunStatus, Option<String>, Option<f64>, Option<i64>);
        let row: Option<Row> = tx
            .query_row(
                "SELECT status, owner, (julianday('now') - julianday(heartbeat_at)) * 86400.0, batch_size FROM runs WHERE id = ?1",
                [run],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((status, holder, age, batch_size)) = row else {
            return Ok(None);
        };
        let free = crate::store::claimable(
            status,
            holder.as_deref(),
            age,
            owner,
            stale_secs,
            owner_alive,
            false,
        );
        if !free {
            return Ok(None);
        }
        tx.execute(
            &format!("UPDATE runs SET status = ?3, owner = ?2, heartbeat_at = {NOW} WHERE id = ?1"),
            params![run, owner, RunStatus::Running],
        )?;
        let epochs: i64 = tx.query_row(
            "SELECT COALESCE(MAX(epoch), 0) FROM epochs WHERE run_id = ?1",
            [run],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(Some(Claim {
            stored_epochs: epochs as usize,
            batch_size: batch_size.map(|b| b as usize),
        }))
    }

    /// Decide how a claimed run starts. With a saved resume state at least as far as the
    /// stored epochs, it resumes and gets back the last stored epoch: the worker reports the
    /// saved epochs after it (a kill between saving and storing). Without a usable state the
    /// run's results are cleared and it starts over (`None`).
    fn prepare_resume(&mut self, run: &str, state: Option<&ResumeState>) -> Result<Option<usize>> {
        let stored: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(epoch), 0) FROM epochs WHERE run_id = ?1",
            [run],
            |r| r.get(0),
        )?;
        if crate::store::resumes(state, stored as usize) {
            return Ok(Some(stored as usize));
        }
        let tx = self.conn.transaction()?;
        clear_results(&tx, run)?;
        tx.commit()?;
        Ok(None)
    }

    /// After an out-of-memory failure: train again from scratch at `batch_size`.
    fn retry_with_batch(&mut self, run: &str, batch_size: usize, note: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        clear_results(&tx, run)?;
        tx.execute(
            "UPDATE runs SET batch_size = ?2, note = ?3, error = NULL, failure_kind = NULL WHERE id = ?1",
            params![run, batch_size as i64, note],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// How long the coordinator took from claiming a run to its worker's start report.
    fn record_dispatch(&mut self, run: &str, ms: f64) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET dispatch_ms = ?2 WHERE id = ?1",
            params![run, ms],
        )?;
        Ok(())
    }

    /// Tell other processes that `owner`'s running runs are alive.
    fn heartbeat(&mut self, owner: &str) -> Result<()> {
        self.conn.execute(
            &format!("UPDATE runs SET heartbeat_at = {NOW} WHERE owner = ?1 AND status = ?2"),
            params![owner, RunStatus::Running],
        )?;
        Ok(())
    }

    /// Store one event. Each call is one transaction, committed before it returns.
    fn apply(&mut self, event: &Event) -> Result<()> {
        if matches!(event, Event::Progress { .. } | Event::Rung { .. }) {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        match event {
            Event::Started { run, start } => {
                tx.execute(
                    &format!(
                        "UPDATE runs SET status = ?9, attempts = attempts + 1, device = ?2, classes = ?3,
                         parameters = ?4, train_images = ?5, val_images = ?6, test_images = ?7, batch_size = ?8,
                         error = NULL, failure_kind = NULL, started_at = COALESCE(started_at, {NOW}), heartbeat_at = {NOW} WHERE id = ?1"
                    ),
                    params![
                        run,
                        start.device,
                        serde_json::to_string(&start.classes)?,
                        start.parameters as i64,
                        start.train_images as i64,
                        start.val_images as i64,
                        start.test_images.map(|n| n as i64),
                        start.batch_size as i64,
                        RunStatus::Running,
                    ],
                )?;
                for s in &start.skipped {
                    tx.execute(
                        "INSERT OR REPLACE INTO skipped_files (run_id, path, path_raw, reason) VALUES (?1, ?2, ?3, ?4)",
                        params![run, s.path.to_string_lossy(), crate::run::path::raw(&s.path), s.reason],
                    )?;
                }
            }
            Event::Epoch { run, record } => {
                let e = &record.summary;
                tx.execute(
                    "INSERT INTO epochs (run_id, epoch, lr, train_loss, train_acc, val_loss, val_acc,
                     val_macro_f1, val_weighted_f1, seconds, images_per_sec, checkpoint_saved, phase)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
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
                        e.phase.name(),
                    ],
                )?;
                insert_split(&tx, run, "val", e.epoch, &record.val, &record.confusion)?;
                tx.execute(
                    &format!("UPDATE runs SET heartbeat_at = {NOW} WHERE id = ?1"),
                    [run],
                )?;
            }
            Event::Evaluated {
                run,
                evaluation: ev,
            } => {
                tx.execute(
                    "INSERT OR REPLACE INTO evaluations (run_id, split, epoch, loss, accuracy, macro_f1, weighted_f1)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![run, ev.split, ev.epoch as i64, ev.loss, ev.metrics.accuracy, ev.metrics.macro_f1, ev.metrics.weighted_f1],
                )?;
                insert_split(&tx, run, &ev.split, ev.epoch, &ev.metrics, &ev.confusion)?;
            }
            Event::Finished { run, end } => end_run(&tx, run, end, RunStatus::Done)?,
            Event::Failed { run, error, kind } => {
                tx.execute(
                    &format!("UPDATE runs SET status = ?4, owner = NULL, error = ?2, failure_kind = ?3, finished_at = {NOW} WHERE id = ?1"),
                    params![run, error, kind, RunStatus::Failed],
                )?;
            }
            Event::Stopped { run, epoch } => {
                tx.execute(
                    "UPDATE runs SET status = ?3, owner = NULL, note = ?2 WHERE id = ?1",
                    params![
                        run,
                        format!("stopped after epoch {epoch}; `sweep run` resumes it"),
                        RunStatus::Stopped,
                    ],
                )?;
            }
            Event::Pruned { run, end, .. } => end_run(&tx, run, end, RunStatus::Pruned)?,
            Event::Progress { .. } | Event::Rung { .. } => {}
        }
        tx.commit()?;
        Ok(())
    }
}

/// A run's end as `status` (done, or pruned by the search): why, and its kept checkpoint.
fn end_run(tx: &Transaction, run: &str, end: &RunEnd, status: RunStatus) -> Result<()> {
    tx.execute(
        &format!(
            "UPDATE runs SET status = ?5, owner = NULL, stop_reason = ?2, checkpoint = ?3, checkpoint_epoch = ?4,
             finished_at = {NOW}, heartbeat_at = {NOW} WHERE id = ?1"
        ),
        params![
            run,
            end.stop_reason,
            end.checkpoint.as_ref().map(|p| p.to_string_lossy().into_owned()),
            end.checkpoint_epoch.map(|e| e as i64),
            status,
        ],
    )?;
    Ok(())
}

fn clear_results(tx: &Transaction, run: &str) -> Result<()> {
    for table in [
        "epochs",
        "evaluations",
        "class_metrics",
        "confusion",
        "skipped_files",
    ] {
        tx.execute(&format!("DELETE FROM {table} WHERE run_id = ?1"), [run])?;
    }
    Ok(())
}

fn insert_split(
    tx: &Transaction,
    run: &str,
    split: &str,
    epoch: usize,
    m: &Metrics,
    c: &Confusion,
) -> Result<()> {
    let classes: Option<String> =
        tx.query_row("SELECT classes FROM runs WHERE id = ?1", [run], |r| {
            r.get(0)
        })?;
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
        insert.execute(params![
            run,
            split,
            epoch as i64,
            k as i64,
            name,
            cm.precision,
            cm.recall,
            cm.f1,
            cm.support as i64
        ])?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO confusion (run_id, split, epoch, matrix) VALUES (?1, ?2, ?3, ?4)",
        params![run, split, epoch as i64, serde_json::to_string(&c.matrix)?],
    )?;
    Ok(())
}
