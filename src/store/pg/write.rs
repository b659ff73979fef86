//! Writing to PostgreSQL: register a sweep's runs, claim them, apply trainer events. Each call
//! is one transaction, and each can run twice (after a dropped connection) with the result
//! of running once.
use postgres::Transaction;

use super::PgStore;
use crate::run::{Confusion, Event, Metrics, ResumeState, RunEnd, RunSpec, RunStatus};
use crate::store::{Claim, Result, RunState, Storage, StoreError};

/// The server's clock: heartbeats from hosts whose clocks disagree still compare.
const NOW: &str = "clock_timestamp()";

/// A value SQLite would store as NULL (it has no NaN): the same here, so both read back alike.
fn num(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

fn int(v: usize) -> i64 {
    v as i64
}

impl Storage for PgStore {
    fn id(&self) -> Result<String> {
        self.with(|c, _| {
            Ok(
                c.query_one("SELECT value FROM meta WHERE key = 'store_id'", &[])?
                    .get(0),
            )
        })
    }

    fn register(
        &mut self,
        sweep: &str,
        file: &std::path::Path,
        runs: &[RunSpec],
        complete: bool,
    ) -> Result<Vec<RunState>> {
        let file = std::fs::canonicalize(file)
            .unwrap_or_else(|_| file.to_path_buf())
            .to_string_lossy()
            .into_owned();
        let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        let configs = runs
            .iter()
            .map(|r| serde_json::to_string(&r.config))
            .collect::<serde_json::Result<Vec<String>>>()?;
        let idx: Vec<i64> = runs.iter().map(|r| int(r.index)).collect();
        let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
        let batch: Vec<i64> = runs.iter().map(|r| int(r.config.batch_size)).collect();
        let shown = self.shown.clone();
        let statuses = self.with(|c, _| {
            let mut tx = c.transaction()?;
            // Sweeps are told apart by the file they come from: another file of the same
            // name that still exists is a clash; a file that moved is adopted.
            let stored = tx.query_opt("SELECT file FROM sweeps WHERE name = $1", &[&sweep])?;
            if let Some(row) = stored {
                let other: String = row.get(0);
                let other_path = std::path::Path::new(&other);
                if other != file && other_path.is_absolute() && other_path.is_file() {
                    return Err(StoreError::NameClash {
                        name: sweep.to_string(),
                        db: shown.clone(),
                        file: file.clone(),
                        other,
                    });
                }
            }
            let sweep_id: i64 = tx
                .query_one(
                    &format!(
                        "INSERT INTO sweeps (name, file, created_at, updated_at) VALUES ($1, $2, {NOW}, {NOW})
                         ON CONFLICT (name) DO UPDATE SET file = excluded.file, updated_at = excluded.updated_at
                         RETURNING id"
                    ),
                    &[&sweep, &file],
                )?
                .get(0);
            let before: std::collections::HashMap<String, String> = tx
                .query("SELECT id, status FROM runs WHERE id = ANY($1)", &[&ids])?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            // New runs are queued (a run another process inserts meanwhile is kept as is).
            tx.execute(
                "INSERT INTO runs (id, sweep_id, idx, label, config, status, batch_size)
                 SELECT u.id, $1, u.idx, u.label, u.config, 'queued', u.batch
                 FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])
                      AS u(id, idx, label, config, batch)
                 ON CONFLICT (id) DO NOTHING",
                &[&sweep_id, &ids, &idx, &labels, &configs, &batch],
            )?;
            // Failed runs are queued again; every run takes its place in an edited grid. Rows
            // that would not change are not touched (nor locked against a claim).
            tx.execute(
                "UPDATE runs r SET idx = u.idx, label = u.label,
                        status = CASE WHEN r.status = 'failed' THEN 'queued' ELSE r.status END
                 FROM UNNEST($1::text[], $2::bigint[], $3::text[]) AS u(id, idx, label)
                 WHERE r.id = u.id AND (r.idx <> u.idx OR r.label <> u.label OR r.status = 'failed')",
                &[&ids, &idx, &labels],
            )?;
            // Runs the file no longer produces are retired; the ones it does, not (again).
            if complete {
                tx.execute(
                    "UPDATE runs SET retired = NOT (id = ANY($2))
                     WHERE sweep_id = $1 AND retired <> NOT (id = ANY($2))",
                    &[&sweep_id, &ids],
                )?;
            } else {
                tx.execute(
                    "UPDATE runs SET retired = FALSE WHERE id = ANY($1) AND retired",
                    &[&ids],
                )?;
            }
            tx.commit()?;
            Ok(before)
        })?;
        Ok(runs
            .iter()
            .map(|run| RunState {
                spec: run.clone(),
                done: statuses
                    .get(&run.id)
                    .is_some_and(|s| s == "done" || s == "pruned"),
            })
            .collect())
    }

    fn forget_sweep(&mut self, name: &str) -> Result<usize> {
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            let ids: Vec<String> = tx
                .query(
                    "SELECT r.id FROM runs r JOIN sweeps s ON s.id = r.sweep_id WHERE s.name = $1",
                    &[&name],
                )?
                .into_iter()
                .map(|r| r.get(0))
                .collect();
            // Results go with their runs (ON DELETE CASCADE).
            tx.execute("DELETE FROM runs WHERE id = ANY($1)", &[&ids])?;
            tx.commit()?;
            Ok(ids.len())
        })
    }

    /// The run's row is locked `FOR UPDATE SKIP LOCKED`: a run another process is claiming
    /// (or writing) this instant is skipped, not waited for.
    fn claim(
        &mut self,
        run: &str,
        owner: &str,
        stale_secs: f64,
        owner_alive: &dyn Fn(&str) -> bool,
    ) -> Result<Option<Claim>> {
        self.with(|c, attempt| {
            let mut tx = c.transaction()?;
            let row = tx.query_opt(
                &format!(
                    "SELECT status, owner, EXTRACT(EPOCH FROM {NOW} - heartbeat_at)::float8, batch_size
                     FROM runs WHERE id = $1 FOR UPDATE SKIP LOCKED"
                ),
                &[&run],
            )?;
            let Some(row) = row else {
                return Ok(None);
            };
            let status: RunStatus = row
                .get::<_, String>(0)
                .parse()
                .map_err(StoreError::NotFound)?;
            let holder: Option<String> = row.get(1);
            let age: Option<f64> = row.get(2);
            let batch_size: Option<i64> = row.get(3);
            // A claim of ours already is ours only when this is a retry of a claim whose
            // commit the dropped connection did not confirm.
            let free = crate::store::claimable(
                status,
                holder.as_deref(),
                age,
                owner,
                stale_secs,
                owner_alive,
                attempt > 0,
            );
            if !free {
                return Ok(None);
            }
            tx.execute(
                &format!(
                    "UPDATE runs SET status = 'running', owner = $2, heartbeat_at = {NOW} WHERE id = $1"
                ),
                &[&run, &owner],
            )?;
            let epochs: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(epoch), 0) FROM epochs WHERE run_id = $1",
                    &[&run],
                )?
                .get(0);
            tx.commit()?;
            Ok(Some(Claim {
                stored_epochs: epochs as usize,
                batch_size: batch_size.map(|b| b as usize),
            }))
        })
    }

    fn prepare_resume(&mut self, run: &str, state: Option<&ResumeState>) -> Result<Option<usize>> {
        self.with(|c, _| {
            let stored: i64 = c
                .query_one(
                    "SELECT COALESCE(MAX(epoch), 0) FROM epochs WHERE run_id = $1",
                    &[&run],
                )?
                .get(0);
            if crate::store::resumes(state, stored as usize) {
                return Ok(Some(stored as usize));
            }
            let mut tx = c.transaction()?;
            clear_results(&mut tx, run)?;
            tx.commit()?;
            Ok(None)
        })
    }

    fn retry_with_batch(&mut self, run: &str, batch_size: usize, note: &str) -> Result<()> {
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            clear_results(&mut tx, run)?;
            tx.execute(
                "UPDATE runs SET batch_size = $2, note = $3, error = NULL, failure_kind = NULL WHERE id = $1",
                &[&run, &int(batch_size), &note],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn record_dispatch(&mut self, run: &str, ms: f64) -> Result<()> {
        self.with(|c, _| {
            c.execute(
                "UPDATE runs SET dispatch_ms = $2 WHERE id = $1",
                &[&run, &ms],
            )?;
            Ok(())
        })
    }

    fn heartbeat(&mut self, owner: &str) -> Result<()> {
        self.with(|c, _| {
            c.execute(
                &format!(
                    "UPDATE runs SET heartbeat_at = {NOW} WHERE owner = $1 AND status = 'running'"
                ),
                &[&owner],
            )?;
            Ok(())
        })
    }

    fn apply(&mut self, event: &Event) -> Result<()> {
        if matches!(event, Event::Progress { .. } | Event::Rung { .. }) {
            return Ok(());
        }
        // One token per `Started`: stored again after a reconnect, it counts one attempt.
        let token = format!("{:032x}", rand::random::<u128>());
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            apply(&mut tx, event, &token)?;
            tx.commit()?;
            Ok(())
        })
    }
}

fn apply(tx: &mut Transaction, event: &Event, token: &str) -> Result<()> {
    match event {
        Event::Started { run, start } => {
            let classes = serde_json::to_string(&start.classes)?;
            tx.execute(
                &format!(
                    "UPDATE runs SET status = 'running',
                     attempts = attempts + CASE WHEN start_token IS DISTINCT FROM $9 THEN 1 ELSE 0 END,
                     start_token = $9, device = $2, classes = $3, parameters = $4, train_images = $5,
                     val_images = $6, test_images = $7, batch_size = $8, error = NULL, failure_kind = NULL,
                     started_at = COALESCE(started_at, {NOW}), heartbeat_at = {NOW} WHERE id = $1"
                ),
                &[
                    run,
                    &start.device,
                    &classes,
                    &int(start.parameters),
                    &int(start.train_images),
                    &int(start.val_images),
                    &start.test_images.map(int),
                    &int(start.batch_size),
                    &token,
                ],
            )?;
            for s in &start.skipped {
                tx.execute(
                    "INSERT INTO skipped_files (run_id, path, path_raw, reason) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (run_id, path_raw) DO UPDATE SET path = excluded.path, reason = excluded.reason",
                    &[
                        run,
                        &s.path.to_string_lossy().as_ref(),
                        &crate::run::path::raw(&s.path),
                        &s.reason,
                    ],
                )?;
            }
        }
        Event::Epoch { run, record } => {
            let e = &record.summary;
            tx.execute(
                "INSERT INTO epochs (run_id, epoch, lr, train_loss, train_acc, val_loss, val_acc,
                 val_macro_f1, val_weighted_f1, seconds, images_per_sec, checkpoint_saved, phase)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (run_id, epoch) DO UPDATE SET lr = excluded.lr,
                 train_loss = excluded.train_loss, train_acc = excluded.train_acc,
                 val_loss = excluded.val_loss, val_acc = excluded.val_acc,
                 val_macro_f1 = excluded.val_macro_f1, val_weighted_f1 = excluded.val_weighted_f1,
                 seconds = excluded.seconds, images_per_sec = excluded.images_per_sec,
                 checkpoint_saved = excluded.checkpoint_saved, phase = excluded.phase",
                &[
                    run,
                    &int(e.epoch),
                    &e.lr,
                    &num(e.train_loss),
                    &num(e.train_acc),
                    &num(e.val_loss),
                    &num(e.val_acc),
                    &num(e.val_macro_f1),
                    &num(e.val_weighted_f1),
                    &record.seconds,
                    &record.images_per_sec,
                    &record.checkpoint_saved,
                    &e.phase.name(),
                ],
            )?;
            insert_split(tx, run, "val", e.epoch, &record.val, &record.confusion)?;
            tx.execute(
                &format!("UPDATE runs SET heartbeat_at = {NOW} WHERE id = $1"),
                &[run],
            )?;
        }
        Event::Evaluated {
            run,
            evaluation: ev,
        } => {
            tx.execute(
                "INSERT INTO evaluations (run_id, split, epoch, loss, accuracy, macro_f1, weighted_f1)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (run_id, split, epoch) DO UPDATE SET loss = excluded.loss,
                 accuracy = excluded.accuracy, macro_f1 = excluded.macro_f1,
                 weighted_f1 = excluded.weighted_f1",
                &[
                    run,
                    &ev.split,
                    &int(ev.epoch),
                    &num(ev.loss),
                    &ev.metrics.accuracy,
                    &ev.metrics.macro_f1,
                    &ev.metrics.weighted_f1,
                ],
            )?;
            insert_split(tx, run, &ev.split, ev.epoch, &ev.metrics, &ev.confusion)?;
        }
        Event::Finished { run, end } => end_run(tx, run, end, RunStatus::Done)?,
        Event::Failed { run, error, kind } => {
            tx.execute(
                &format!(
                    "UPDATE runs SET status = 'failed', owner = NULL, error = $2, failure_kind = $3,
                     finished_at = {NOW} WHERE id = $1"
                ),
                &[run, error, &kind.as_str()],
            )?;
        }
        Event::Stopped { run, epoch } => {
            tx.execute(
                "UPDATE runs SET status = 'stopped', owner = NULL, note = $2 WHERE id = $1",
                &[
                    run,
                    &format!("stopped after epoch {epoch}; `sweep run` resumes it"),
                ],
            )?;
        }
        Event::Pruned { run, end, .. } => end_run(tx, run, end, RunStatus::Pruned)?,
        Event::Progress { .. } | Event::Rung { .. } => {}
    }
    Ok(())
}

/// A run's end as `status` (done, or pruned by the search): why, and its kept checkpoint.
fn end_run(tx: &mut Transaction, run: &str, end: &RunEnd, status: RunStatus) -> Result<()> {
    tx.execute(
        &format!(
            "UPDATE runs SET status = $5, owner = NULL, stop_reason = $2, checkpoint = $3,
             checkpoint_epoch = $4, finished_at = {NOW}, heartbeat_at = {NOW} WHERE id = $1"
        ),
        &[
            &run,
            &end.stop_reason,
            &end.checkpoint
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            &end.checkpoint_epoch.map(int),
            &status.as_str(),
        ],
    )?;
    Ok(())
}

fn clear_results(tx: &mut Transaction, run: &str) -> Result<()> {
    for table in [
        "epochs",
        "evaluations",
        "class_metrics",
        "confusion",
        "skipped_files",
    ] {
        tx.execute(&format!("DELETE FROM {table} WHERE run_id = $1"), &[&run])?;
    }
    Ok(())
}

/// A split's per-class metrics (one statement for every class) and its confusion matrix.
fn insert_split(
    tx: &mut Transaction,
    run: &str,
    split: &str,
    epoch: usize,
    m: &Metrics,
    c: &Confusion,
) -> Result<()> {
    let classes: Option<String> = tx
        .query_one("SELECT classes FROM runs WHERE id = $1", &[&run])?
        .get(0);
    let names: Vec<String> = match classes {
        Some(json) => serde_json::from_str(&json)?,
        None => Vec::new(),
    };
    let n = m.classes.len();
    let index: Vec<i64> = (0..n as i64).collect();
    let name: Vec<String> = (0..n)
        .map(|k| names.get(k).cloned().unwrap_or_else(|| k.to_string()))
        .collect();
    let precision: Vec<f64> = m.classes.iter().map(|c| c.precision).collect();
    let recall: Vec<f64> = m.classes.iter().map(|c| c.recall).collect();
    let f1: Vec<f64> = m.classes.iter().map(|c| c.f1).collect();
    let support: Vec<i64> = m.classes.iter().map(|c| c.support as i64).collect();
    tx.execute(
        "INSERT INTO class_metrics (run_id, split, epoch, class_index, class_name, precision, recall, f1, support)
         SELECT $1, $2, $3, u.* FROM UNNEST($4::bigint[], $5::text[], $6::float8[], $7::float8[], $8::float8[], $9::bigint[]) AS u
         ON CONFLICT (run_id, split, epoch, class_index) DO UPDATE SET class_name = excluded.class_name,
         precision = excluded.precision, recall = excluded.recall, f1 = excluded.f1, support = excluded.support",
        &[&run, &split, &int(epoch), &index, &name, &precision, &recall, &f1, &support],
    )?;
    tx.execute(
        "INSERT INTO confusion (run_id, split, epoch, matrix) VALUES ($1, $2, $3, $4)
         ON CONFLICT (run_id, split, epoch) DO UPDATE SET matrix = excluded.matrix",
        &[
            &run,
            &split,
            &int(epoch),
            &serde_json::to_string(&c.matrix)?,
        ],
    )?;
    Ok(())
}
