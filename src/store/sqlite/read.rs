//! Reading from SQLite: the rows reports are made of. Nothing here writes.
use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Row};

use super::SqliteStore;
use crate::run::Skipped;
use crate::run::{ClassMetrics, Confusion, EpochSummary};
use crate::store::{EpochRow, Evaluated, Reader, Result, RunRow, SplitMetrics, SweepRow};

fn opt_usize(r: &Row, i: usize) -> rusqlite::Result<Option<usize>> {
    Ok(r.get::<_, Option<i64>>(i)?.map(|v| v as usize))
}

impl SqliteStore {
    /// The columns [`epoch_row`] reads, in its order. A database older than schema 7 (opened
    /// read-only, so not migrated) has no phases.
    fn epoch_columns(&self) -> String {
        let phase = if self.schema >= 7 { "phase" } else { "NULL" };
        format!(
            "epoch, lr, train_loss, train_acc, val_loss, val_acc, val_macro_f1, val_weighted_f1,
             seconds, images_per_sec, checkpoint_saved, {phase}"
        )
    }
}

/// One row of [`SqliteStore::epoch_columns`].
fn epoch_row(r: &rusqlite::Row) -> rusqlite::Result<EpochRow> {
    Ok(EpochRow {
        epoch: r.get::<_, i64>(0)? as usize,
        lr: r.get(1)?,
        train_loss: r.get(2)?,
        train_acc: r.get(3)?,
        val_loss: r.get(4)?,
        val_acc: r.get(5)?,
        val_macro_f1: r.get(6)?,
        val_weighted_f1: r.get(7)?,
        seconds: r.get(8)?,
        images_per_sec: r.get(9)?,
        checkpoint_saved: r.get(10)?,
        phase: r
            .get_ref(11)?
            .as_str_or_null()
            .map_err(rusqlite::Error::from)?
            .and_then(crate::run::Phase::parse)
            .unwrap_or_default(),
    })
}

impl Reader for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn sweeps(&self) -> Result<Vec<SweepRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, name, file, updated_at FROM sweeps ORDER BY updated_at DESC, id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SweepRow {
                id: r.get(0)?,
                name: r.get(1)?,
                file: r.get(2)?,
                updated_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn runs(&self, sweep_id: i64) -> Result<Vec<RunRow>> {
        // A database of schema 1 (opened read-only, so not migrated) has no failure kinds.
        let failure_kind = if self.schema >= 2 {
            "failure_kind"
        } else {
            "NULL"
        };
        let retired = if self.schema >= 6 { "retired" } else { "0" };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT id, idx, label, config, status, error, device, attempts, classes, parameters,
                    train_images, val_images, test_images, stop_reason, checkpoint, checkpoint_epoch,
                    owner, batch_size, note, {failure_kind},
                    (julianday('now') - julianday(heartbeat_at)) * 86400.0, {retired}
             FROM runs WHERE sweep_id = ?1 ORDER BY idx, id"
        ))?;
        let rows = stmt.query_map([sweep_id], |r| {
            Ok((
                RunRow {
                    id: r.get(0)?,
                    index: r.get::<_, i64>(1)? as usize,
                    label: r.get(2)?,
                    config: serde_json::Value::Null,
                    status: r.get(4)?,
                    error: r.get(5)?,
                    device: r.get(6)?,
                    attempts: r.get::<_, i64>(7)? as usize,
                    classes: Vec::new(),
                    parameters: opt_usize(r, 9)?,
                    train_images: opt_usize(r, 10)?,
                    val_images: opt_usize(r, 11)?,
                    test_images: opt_usize(r, 12)?,
                    stop_reason: r.get(13)?,
                    checkpoint: r.get(14)?,
                    checkpoint_epoch: opt_usize(r, 15)?,
                    owner: r.get(16)?,
                    batch_size: opt_usize(r, 17)?,
                    note: r.get(18)?,
                    failure: r.get(19)?,
                    heartbeat_age: r.get(20)?,
                    retired: r.get::<_, i64>(21)? != 0,
                },
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (mut run, config, classes) = row?;
            run.config = serde_json::from_str(&config)?;
            run.classes = match classes {
                Some(c) => serde_json::from_str(&c)?,
                None => Vec::new(),
            };
            out.push(run);
        }
        Ok(out)
    }

    fn epochs(&self, run_id: &str) -> Result<Vec<EpochRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM epochs WHERE run_id = ?1 ORDER BY epoch",
            self.epoch_columns()
        ))?;
        let rows = stmt.query_map([run_id], epoch_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn sweep_epochs(&self, sweep_id: i64) -> Result<HashMap<String, Vec<EpochRow>>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            // One pass over the table in storage order (NOT INDEXED: going through the
            // primary key's index costs a second lookup per row); sorted per run below.
            "SELECT {}, run_id FROM epochs NOT INDEXED
             WHERE run_id IN (SELECT id FROM runs WHERE sweep_id = ?1)",
            self.epoch_columns()
        ))?;
        let mut out: HashMap<String, Vec<EpochRow>> = HashMap::new();
        let mut rows = stmt.query([sweep_id])?;
        while let Some(r) = rows.next()? {
            let row = epoch_row(r)?;
            let run = r.get_ref(12)?.as_str().map_err(rusqlite::Error::from)?;
            match out.get_mut(run) {
                Some(epochs) => epochs.push(row),
                None => {
                    out.insert(run.to_string(), vec![row]);
                }
            }
        }
        for epochs in out.values_mut() {
            epochs.sort_by_key(|e| e.epoch);
        }
        Ok(out)
    }

    fn sweep_evaluations(&self, sweep_id: i64, split: &str) -> Result<HashMap<String, Evaluated>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.run_id, e.epoch, e.loss, c.matrix FROM evaluations e
             JOIN confusion c ON c.run_id = e.run_id AND c.split = e.split AND c.epoch = e.epoch
             WHERE e.split = ?2 AND e.run_id IN (SELECT id FROM runs WHERE sweep_id = ?1)",
        )?;
        let mut out: HashMap<String, Evaluated> = HashMap::new();
        let mut rows = stmt.query(params![sweep_id, split])?;
        while let Some(r) = rows.next()? {
            let run: String = r.get(0)?;
            let epoch = r.get::<_, i64>(1)? as usize;
            if out.get(&run).is_some_and(|e| e.epoch >= epoch) {
                continue; // the latest evaluation counts
            }
            let matrix: String = r.get(3)?;
            let confusion = Confusion {
                matrix: serde_json::from_str(&matrix)?,
            };
            let loss = r.get(2)?;
            out.insert(
                run,
                Evaluated {
                    epoch,
                    loss,
                    confusion,
                },
            );
        }
        Ok(out)
    }

    /// The summaries of `epoch` of every run of sweep `sweep` that stored it, in the order
    /// they were stored (what a search strategy judges a rung on).
    fn epoch_arrivals(&self, sweep: &str, epoch: usize) -> Result<Vec<(String, EpochSummary)>> {
        let mut stmt = self.conn.prepare(
            "SELECT e.run_id, e.epoch, e.lr, e.train_loss, e.train_acc, e.val_loss, e.val_acc,
                    e.val_macro_f1, e.val_weighted_f1
             FROM epochs e JOIN runs r ON r.id = e.run_id JOIN sweeps s ON s.id = r.sweep_id
             WHERE s.name = ?1 AND e.epoch = ?2 ORDER BY e.rowid",
        )?;
        let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        let rows = stmt.query_map(params![sweep, epoch as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                EpochSummary {
                    epoch: r.get::<_, i64>(1)? as usize,
                    phase: Default::default(),
                    lr: r.get(2)?,
                    train_loss: nan(r.get(3)?),
                    train_acc: nan(r.get(4)?),
                    val_loss: nan(r.get(5)?),
                    val_acc: nan(r.get(6)?),
                    val_macro_f1: nan(r.get(7)?),
                    val_weighted_f1: nan(r.get(8)?),
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn skipped_files(&self, run_id: &str) -> Result<Vec<Skipped>> {
        let mut stmt = self.conn.prepare(
            "SELECT path_raw, reason FROM skipped_files WHERE run_id = ?1 ORDER BY path_raw",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            Ok(Skipped {
                path: crate::run::path::from_raw(r.get::<_, Vec<u8>>(0)?),
                reason: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The epoch at which a held-out split was evaluated, with its loss.
    fn evaluation(&self, run_id: &str, split: &str) -> Result<Option<(usize, Option<f64>)>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT epoch, loss FROM evaluations WHERE run_id = ?1 AND split = ?2 ORDER BY epoch DESC LIMIT 1",
            )?
            .query_row(params![run_id, split], |r| {
                Ok((r.get::<_, i64>(0)? as usize, r.get(1)?))
            })
            .optional()?)
    }

    /// Per-class metrics and the confusion matrix of `split` ("val" or "test") at `epoch`.
    /// Averages are recomputed from the stored confusion matrix.
    fn split_metrics(
        &self,
        run_id: &str,
        split: &str,
        epoch: usize,
    ) -> Result<Option<SplitMetrics>> {
        let matrix: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT matrix FROM confusion WHERE run_id = ?1 AND split = ?2 AND epoch = ?3",
            )?
            .query_row(params![run_id, split, epoch as i64], |r| r.get(0))
            .optional()?;
        let Some(matrix) = matrix else {
            return Ok(None);
        };
        let confusion = Confusion {
            matrix: serde_json::from_str(&matrix)?,
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT class_index, class_name, precision, recall, f1, support FROM class_metrics
             WHERE run_id = ?1 AND split = ?2 AND epoch = ?3 ORDER BY class_index",
        )?;
        let classes = stmt
            .query_map(params![run_id, split, epoch as i64], |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    ClassMetrics {
                        precision: r.get(2)?,
                        recall: r.get(3)?,
                        f1: r.get(4)?,
                        support: r.get::<_, i64>(5)? as u64,
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let loss = match split {
            "val" => self
                .conn
                .query_row(
                    "SELECT val_loss FROM epochs WHERE run_id = ?1 AND epoch = ?2",
                    params![run_id, epoch as i64],
                    |r| r.get(0),
                )
                .optional()?
                .flatten(),
            _ => self.evaluation(run_id, split)?.and_then(|(_, l)| l),
        };
        Ok(Some(SplitMetrics::from_stored(
            split, epoch, confusion, classes, loss,
        )))
    }
}
