//! The store: sweeps, runs, every epoch, per-class metrics and confusion matrices.
//!
//! Callers see the [`Reader`] and [`Storage`] interfaces and the row types below, never a
//! backend's types or SQL; a backend is one module beside [`sqlite`] (SQLite today, one file
//! per project). One writer owns a [`Storage`] during a sweep; reports read through a
//! [`Reader`].
#[cfg(test)]
pub(crate) mod conformance;
mod location;
mod pg;
mod sqlite;

use std::path::{Path, PathBuf};

use crate::run::{
    Confusion, EpochSummary, Event, FailureKind, Metrics, ResumeState, RunSpec, RunStatus, Skipped,
};

pub use location::Location;
pub use pg::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("no database at {0}: run `sweep run FILE` first, or point --db at an existing one")]
    Missing(PathBuf),
    #[error("database {path} was written by a newer sweep (schema version {found}, this build knows {known}); upgrade sweep")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("database error: {0}")]
    Backend(String),
    /// A PostgreSQL error as the client gave it, so a dropped connection can be told apart
    /// and retried.
    #[error("database error: {}", pg::describe(.0))]
    Pg(postgres::Error),
    #[error("corrupt JSON in the database: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    NotFound(String),
    #[error("sweep \"{name}\" in {db} was made from {other}, not {file}; give one of them its own `name = \"...\"` at the top of the file (or use another --db)")]
    NameClash {
        name: String,
        db: String,
        file: String,
        other: String,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Open (creating if needed) the store at `at` for writing, its schema brought up to date.
pub fn open(at: &Location) -> Result<Box<dyn Storage>> {
    match at {
        Location::Sqlite(path) => Ok(Box::new(SqliteStore::open(path)?)),
        Location::Postgres(url) => Ok(Box::new(PgStore::open(url)?)),
    }
}

/// Open the existing store at `at` for reading only.
pub fn open_read_only(at: &Location) -> Result<Box<dyn Reader>> {
    match at {
        Location::Sqlite(path) => Ok(Box::new(SqliteStore::open_read_only(path)?)),
        Location::Postgres(url) => Ok(Box::new(PgStore::open_read_only(url)?)),
    }
}

/// What reports and the search strategy read. Nothing here writes.
pub trait Reader {
    /// Where the data lives, for messages (the database file).
    fn location(&self) -> String;
    /// Every sweep, most recently run first.
    fn sweeps(&self) -> Result<Vec<SweepRow>>;
    /// The sweep called `name`, or the one run most recently.
    fn sweep(&self, name: Option<&str>) -> Result<SweepRow> {
        let sweeps = self.sweeps()?;
        match name {
            Some(n) => sweeps.iter().find(|s| s.name == n).cloned().ok_or_else(|| {
                let known: Vec<_> = sweeps.iter().map(|s| s.name.as_str()).collect();
                StoreError::NotFound(format!(
                    "no sweep named \"{n}\" in the database; known sweeps: {}",
                    known.join(", ")
                ))
            }),
            None => sweeps.into_iter().next().ok_or_else(|| {
                StoreError::NotFound(
                    "the database holds no sweep yet: run `sweep run FILE` first".into(),
                )
            }),
        }
    }
    /// A sweep's runs in run order.
    fn runs(&self, sweep_id: i64) -> Result<Vec<RunRow>>;
    /// A run's stored epochs in order.
    fn epochs(&self, run_id: &str) -> Result<Vec<EpochRow>>;
    /// The stored epochs of every run of a sweep, by run id, each run's in order: what a
    /// report reads, in one query instead of one per run.
    fn sweep_epochs(
        &self,
        sweep_id: i64,
    ) -> Result<std::collections::HashMap<String, Vec<EpochRow>>>;
    /// The latest evaluation on `split` ("test") of every run of a sweep that has one, by
    /// run id, with its confusion matrix (the classwise metrics follow from it).
    fn sweep_evaluations(
        &self,
        sweep_id: i64,
        split: &str,
    ) -> Result<std::collections::HashMap<String, Evaluated>>;
    /// The summaries of `epoch` of every run of sweep `sweep` that stored it, in the order
    /// they were stored (what a search strategy judges a rung on).
    fn epoch_arrivals(&self, sweep: &str, epoch: usize) -> Result<Vec<(String, EpochSummary)>>;
    /// The files a run could not read.
    fn skipped_files(&self, run_id: &str) -> Result<Vec<Skipped>>;
    /// The epoch at which a held-out split was evaluated, with its loss.
    fn evaluation(&self, run_id: &str, split: &str) -> Result<Option<(usize, Option<f64>)>>;
    /// Per-class metrics and the confusion matrix of `split` ("val" or "test") at `epoch`.
    /// Averages are recomputed from the stored confusion matrix.
    fn split_metrics(
        &self,
        run_id: &str,
        split: &str,
        epoch: usize,
    ) -> Result<Option<SplitMetrics>>;
}

/// What the scheduler's one writer does: register runs, claim them, store their events.
/// Every call is one transaction, committed before it returns.
pub trait Storage: Reader + Send {
    /// This database's identity, fixed when it was made: resume states record it, so a run
    /// never resumes from a state whose epochs another (or a deleted) database stored.
    fn id(&self) -> Result<String>;
    /// Record the sweep and its runs. New runs are queued; finished (and pruned) ones are
    /// kept as they are; failed runs are queued again; failed, stopped or abandoned runs keep
    /// their epochs and resume from their last saved one when claimed. Stored runs the file
    /// no longer produces are marked retired when `complete` (the whole plan; a strategy that
    /// adds runs registers only those). A sweep of that name made from another file
    /// that still exists is an error ([`StoreError::NameClash`]): two sweeps never merge.
    fn register(
        &mut self,
        sweep: &str,
        file: &Path,
        runs: &[RunSpec],
        complete: bool,
    ) -> Result<Vec<RunState>>;
    /// Forget a sweep's runs and results (`sweep run --fresh`); returns how many runs.
    fn forget_sweep(&mut self, name: &str) -> Result<usize>;
    /// Atomically take a run for `owner` if nobody else holds it: queued or stopped runs, and
    /// runs left `running` by a dead owner (`owner_alive` says no, or no heartbeat for
    /// `stale_secs`). Two `sweep run` processes never both get the same run.
    fn claim(
        &mut self,
        run: &str,
        owner: &str,
        stale_secs: f64,
        owner_alive: &dyn Fn(&str) -> bool,
    ) -> Result<Option<Claim>>;
    /// Decide how a claimed run starts. With a saved resume state at least as far as the
    /// stored epochs, it resumes and gets back the last stored epoch; without a usable state
    /// the run's results are cleared and it starts over (`None`).
    fn prepare_resume(&mut self, run: &str, state: Option<&ResumeState>) -> Result<Option<usize>>;
    /// After an out-of-memory failure: train again from scratch at `batch_size`.
    fn retry_with_batch(&mut self, run: &str, batch_size: usize, note: &str) -> Result<()>;
    /// How long the coordinator took from claiming a run to its worker's start report.
    fn record_dispatch(&mut self, run: &str, ms: f64) -> Result<()>;
    /// Tell other processes that `owner`'s running runs are alive.
    fn heartbeat(&mut self, owner: &str) -> Result<()>;
    /// Store one event.
    fn apply(&mut self, event: &Event) -> Result<()>;
}

/// Whether a run in `status`, held by `holder` whose last heartbeat is `age` seconds old, may
/// be claimed by `owner`: the rule both backends apply inside their claim transaction. A run
/// `owner` holds already is not claimed again, unless `retry` (the same claim run again
/// after a dropped connection did not confirm its commit).
pub(crate) fn claimable(
    status: RunStatus,
    holder: Option<&str>,
    age: Option<f64>,
    owner: &str,
    stale_secs: f64,
    owner_alive: &dyn Fn(&str) -> bool,
    retry: bool,
) -> bool {
    match status {
        RunStatus::Queued | RunStatus::Stopped => true,
        RunStatus::Running => match holder {
            Some(h) if h == owner => retry,
            Some(h) => !owner_alive(h) || age.is_none_or(|a| a > stale_secs),
            None => true,
        },
        RunStatus::Done | RunStatus::Failed | RunStatus::Pruned => false,
    }
}

/// Whether a claimed run resumes from its saved `state`, given the last epoch the store holds
/// (`stored`): the state must reach at least that far and record its epochs. Otherwise the
/// run's results are cleared and it starts over.
pub(crate) fn resumes(state: Option<&ResumeState>, stored: usize) -> bool {
    state.is_some_and(|s| s.epoch >= stored && !s.records.is_empty())
}

#[derive(Clone, Debug, PartialEq)]
pub struct SweepRow {
    pub id: i64,
    pub name: String,
    pub file: String,
    pub updated_at: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub index: usize,
    pub label: String,
    pub config: serde_json::Value,
    pub status: RunStatus,
    pub error: Option<String>,
    /// Why it failed; `None` unless failed, and for failures stored before kinds were kept.
    pub failure: Option<FailureKind>,
    pub device: Option<String>,
    pub attempts: usize,
    pub classes: Vec<String>,
    pub parameters: Option<usize>,
    pub train_images: Option<usize>,
    pub val_images: Option<usize>,
    pub test_images: Option<usize>,
    pub stop_reason: Option<String>,
    pub checkpoint: Option<String>,
    pub checkpoint_epoch: Option<usize>,
    pub owner: Option<String>,
    pub batch_size: Option<usize>,
    pub note: Option<String>,
    /// Seconds since its owner's last heartbeat (for `running` runs).
    pub heartbeat_age: Option<f64>,
    /// No longer produced by the sweep file (removed from its grid): kept, and marked.
    pub retired: bool,
}

/// One stored epoch. Values a run produced as NaN read back as `None` (SQLite has no NaN).
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRow {
    pub epoch: usize,
    /// What trained: scratch, frozen or finetune (transfer learning); scratch in databases
    /// from before phases were stored.
    pub phase: crate::run::Phase,
    pub lr: f64,
    pub train_loss: Option<f64>,
    pub train_acc: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_acc: Option<f64>,
    pub val_macro_f1: Option<f64>,
    pub val_weighted_f1: Option<f64>,
    pub seconds: f64,
    pub images_per_sec: f64,
    pub checkpoint_saved: bool,
}

/// A held-out split's evaluation of a run, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluated {
    pub epoch: usize,
    pub loss: Option<f64>,
    pub confusion: Confusion,
}

/// The classwise result of one split at one epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitMetrics {
    pub split: String,
    pub epoch: usize,
    pub class_names: Vec<String>,
    pub metrics: Metrics,
    pub confusion: Confusion,
    pub loss: Option<f64>,
}

impl SplitMetrics {
    /// A split's result from its stored rows: the averages recomputed from the confusion
    /// matrix, and the stored per-class rows (with their names) kept when they cover every
    /// class of it.
    pub(crate) fn from_stored(
        split: &str,
        epoch: usize,
        confusion: Confusion,
        classes: Vec<(String, crate::run::ClassMetrics)>,
        loss: Option<f64>,
    ) -> SplitMetrics {
        let mut metrics = Metrics::from_confusion(&confusion);
        let (class_names, per_class): (Vec<String>, Vec<_>) = classes.into_iter().unzip();
        if per_class.len() == metrics.classes.len() {
            metrics.classes = per_class;
        }
        SplitMetrics {
            split: split.into(),
            epoch,
            class_names,
            metrics,
            confusion,
            loss,
        }
    }
}

/// What a successful claim found.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// The last epoch stored for the run (0 if none).
    pub stored_epochs: usize,
    /// The batch size to train with, if one was recorded (after an out-of-memory retry).
    pub batch_size: Option<usize>,
}

/// A run of the sweep file and what the store already holds of it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    pub spec: RunSpec,
    /// True when the run finished before: it is not trained again.
    pub done: bool,
}
