//! Reading from PostgreSQL: the rows reports are made of. Nothing here writes.
use std::collections::HashMap;

use postgres::Row;

use super::PgStore;
use crate::run::{ClassMetrics, Confusion, EpochSummary, Phase, Skipped};
use crate::store::{
    EpochRow, Evaluated, Reader, Result, RunRow, SplitMetrics, StoreError, SweepRow,
};

const EPOCH_COLUMNS: &str = "epoch, lr, train_loss, train_acc, val_loss, val_acc, val_macro_f1,
    val_weighted_f1, seconds, images_per_sec, checkpoint_saved, phase";

fn opt_usize(r: &Row, i: usize) -> Option<usize> {
    r.get::<_, Option<i64>>(i).map(|v| v as usize)
}

/// One row of [`EPOCH_COLUMNS`].
fn epoch_row(r: &Row) -> EpochRow {
    EpochRow {
        epoch: r.get::<_, i64>(0) as usize,
        lr: r.get(1),
        train_loss: r.get(2),
        train_acc: r.get(3),
        val_loss: r.get(4),
        val_acc: r.get(5),
        val_macro_f1: r.get(6),
        val_weighted_f1: r.get(7),
        seconds: r.get(8),
        images_per_sec: r.get(9),
        checkpoint_saved: r.get(10),
        phase: Phase::parse(r.get(11)).unwrap_or_default(),
    }
}

fn parsed<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T> {
    s.parse().map_err(StoreError::NotFound)
}

impl Reader for PgStore {
    fn location(&self) -> String {
        self.shown.clone()
    }

    fn sweeps(&self) -> Result<Vec<SweepRow>> {
        self.with(|c, _| {
            Ok(c.query(
                "SELECT id, name, file, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                 FROM sweeps ORDER BY updated_at DESC, id DESC",
                &[],
            )?
            .iter()
            .map(|r| SweepRow {
                id: r.get(0),
                name: r.get(1),
                file: r.get(2),
                updated_at: r.get(3),
            })
            .collect())
        })
    }

    fn runs(&self, sweep_id: i64) -> Result<Vec<RunRow>> {
        let rows = self.with(|c, _| {
            Ok(c.query(
                "SELECT id, idx, label, config, status, error, device, attempts, classes, parameters,
                        train_images, val_images, test_images, stop_reason, checkpoint, checkpoint_epoch,
                        owner, batch_size, note, failure_kind,
                        EXTRACT(EPOCH FROM clock_timestamp() - heartbeat_at)::float8, retired
                 FROM runs WHERE sweep_id = $1 ORDER BY idx, id",
                &[&sweep_id],
            )?)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let classes: Option<String> = r.get(8);
            out.push(RunRow {
                id: r.get(0),
                index: r.get::<_, i64>(1) as usize,
                label: r.get(2),
                config: serde_json::from_str(r.get(3))?,
                status: parsed(r.get(4))?,
                error: r.get(5),
                device: r.get(6),
                attempts: r.get::<_, i64>(7) as usize,
                classes: match classes {
                    Some(c) => serde_json::from_str(&c)?,
                    None => Vec::new(),
                },
                parameters: opt_usize(r, 9),
                train_images: opt_usize(r, 10),
                val_images: opt_usize(r, 11),
                test_images: opt_usize(r, 12),
                stop_reason: r.get(13),
                checkpoint: r.get(14),
                checkpoint_epoch: opt_usize(r, 15),
                owner: r.get(16),
                batch_size: opt_usize(r, 17),
                note: r.get(18),
                failure: r.get::<_, Option<&str>>(19).map(parsed).transpose()?,
                heartbeat_age: r.get(20),
                retired: r.get(21),
            });
        }
        Ok(out)
    }

    fn epochs(&self, run_id: &str) -> Result<Vec<EpochRow>> {
        self.with(|c, _| {
            Ok(c.query(
                &format!("SELECT {EPOCH_COLUMNS} FROM epochs WHERE run_id = $1 ORDER BY epoch"),
                &[&run_id],
            )?
            .iter()
            .map(epoch_row)
            .collect())
        })
    }

    fn sweep_epochs(&self, sweep_id: i64) -> Result<HashMap<String, Vec<EpochRow>>> {
        self.with(|c, _| {
            let mut out: HashMap<String, Vec<EpochRow>> = HashMap::new();
            for r in c.query(
                &format!(
                    "SELECT {EPOCH_COLUMNS}, run_id FROM epochs
                     WHERE run_id IN (SELECT id FROM runs WHERE sweep_id = $1) ORDER BY run_id, epoch"
                ),
                &[&sweep_id],
            )? {
                out.entry(r.get(12)).or_default().push(epoch_row(&r));
            }
            Ok(out)
        })
    }

    fn sweep_evaluations(&self, sweep_id: i64, split: &str) -> Result<HashMap<String, Evaluated>> {
        let rows = self.with(|c, _| {
            Ok(c.query(
                "SELECT DISTINCT ON (e.run_id) e.run_id, e.epoch, e.loss, c.matrix FROM evaluations e
                 JOIN confusion c ON c.run_id = e.run_id AND c.split = e.split AND c.epoch = e.epoch
                 WHERE e.split = $2 AND e.run_id IN (SELECT id FROM runs WHERE sweep_id = $1)
                 ORDER BY e.run_id, e.epoch DESC",
                &[&sweep_id, &split],
            )?)
        })?;
        let mut out = HashMap::new();
        for r in &rows {
            out.insert(
                r.get(0),
                Evaluated {
                    epoch: r.get::<_, i64>(1) as usize,
                    loss: r.get(2),
                    confusion: Confusion {
                        matrix: serde_json::from_str(r.get(3))?,
                    },
                },
            );
        }
        Ok(out)
    }

    fn epoch_arrivals(&self, sweep: &str, epoch: usize) -> Result<Vec<(String, EpochSummary)>> {
        let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        self.with(|c, _| {
            Ok(c.query(
                "SELECT e.run_id, e.epoch, e.lr, e.train_loss, e.train_acc, e.val_loss, e.val_acc,
                        e.val_macro_f1, e.val_weighted_f1
                 FROM epochs e JOIN runs r ON r.id = e.run_id JOIN sweeps s ON s.id = r.sweep_id
                 WHERE s.name = $1 AND e.epoch = $2 ORDER BY e.seq",
                &[&sweep, &(epoch as i64)],
            )?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    EpochSummary {
                        epoch: r.get::<_, i64>(1) as usize,
                        phase: Default::default(),
                        lr: r.get(2),
                        train_loss: nan(r.get(3)),
                        train_acc: nan(r.get(4)),
                        val_loss: nan(r.get(5)),
                        val_acc: nan(r.get(6)),
                        val_macro_f1: nan(r.get(7)),
                        val_weighted_f1: nan(r.get(8)),
                    },
                )
            })
            .collect())
        })
    }

    fn skipped_files(&self, run_id: &str) -> Result<Vec<Skipped>> {
        self.with(|c, _| {
            Ok(c.query(
                "SELECT path_raw, reason FROM skipped_files WHERE run_id = $1 ORDER BY path_raw",
                &[&run_id],
            )?
            .iter()
            .map(|r| Skipped {
                path: crate::run::path::from_raw(r.get(0)),
                reason: r.get(1),
            })
            .collect())
        })
    }

    fn evaluation(&self, run_id: &str, split: &str) -> Result<Option<(usize, Option<f64>)>> {
        self.with(|c, _| {
            Ok(c.query_opt(
                "SELECT epoch, loss FROM evaluations WHERE run_id = $1 AND split = $2
                 ORDER BY epoch DESC LIMIT 1",
                &[&run_id, &split],
            )?
            .map(|r| (r.get::<_, i64>(0) as usize, r.get(1))))
        })
    }

    fn split_metrics(
        &self,
        run_id: &str,
        split: &str,
        epoch: usize,
    ) -> Result<Option<SplitMetrics>> {
        let epoch_i = epoch as i64;
        let (matrix, classes) = self.with(|c, _| {
            let matrix: Option<String> = c
                .query_opt(
                    "SELECT matrix FROM confusion WHERE run_id = $1 AND split = $2 AND epoch = $3",
                    &[&run_id, &split, &epoch_i],
                )?
                .map(|r| r.get(0));
            let classes = c.query(
                "SELECT class_name, precision, recall, f1, support FROM class_metrics
                 WHERE run_id = $1 AND split = $2 AND epoch = $3 ORDER BY class_index",
                &[&run_id, &split, &epoch_i],
            )?;
            Ok((matrix, classes))
        })?;
        let Some(matrix) = matrix else {
            return Ok(None);
        };
        let confusion = Confusion {
            matrix: serde_json::from_str(&matrix)?,
        };
        let classes = classes
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    ClassMetrics {
                        precision: r.get(1),
                        recall: r.get(2),
                        f1: r.get(3),
                        support: r.get::<_, i64>(4) as u64,
                    },
                )
            })
            .collect();
        let loss = match split {
            "val" => self.with(|c, _| {
                Ok(c.query_opt(
                    "SELECT val_loss FROM epochs WHERE run_id = $1 AND epoch = $2",
                    &[&run_id, &epoch_i],
                )?
                .and_then(|r| r.get(0)))
            })?,
            _ => self.evaluation(run_id, split)?.and_then(|(_, l)| l),
        };
        Ok(Some(SplitMetrics::from_stored(
            split, epoch, confusion, classes, loss,
        )))
    }
}
