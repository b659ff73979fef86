//! Runs -> devices: a queue of runs, one worker per device, and one writer thread that owns
//! the database. Training runs on blocking threads; a failing or panicking run is recorded
//! as that run's failure and the sweep goes on.
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use candle_core::Device;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::data::{self, Dataset, DataSpec};
use crate::progress::Progress;
use crate::store::Store;
use crate::sweep::{RunSpec, Sweep};
use crate::train::{self, Event};

/// What a `sweep run` did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepOutcome {
    pub total: usize,
    pub already_done: usize,
    pub done: usize,
    /// (run label, error) of each failed run.
    pub failed: Vec<(String, String)>,
}

/// Decoded datasets shared by the runs that use the same data settings.
#[derive(Default)]
struct DataCache(Mutex<HashMap<String, Arc<Dataset>>>);

impl DataCache {
    fn get(&self, spec: &DataSpec) -> Result<Arc<Dataset>, data::DataError> {
        let key = serde_json::to_string(spec).unwrap_or_default();
        // Hold the lock while loading: two workers never decode the same folders twice.
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = cache.get(&key) {
            return Ok(d.clone());
        }
        let d = Arc::new(data::load(spec)?);
        cache.insert(key, d.clone());
        Ok(d)
    }
}

/// Train every run of `sweep` that is not done yet, storing each event as it happens.
/// Checkpoints go to `runs_dir/<sweep>/<run id>/`.
pub fn run_sweep(sweep: &Sweep, mut store: Store, runs_dir: &Path, devices: Vec<Device>, stop: Arc<AtomicBool>) -> anyhow::Result<SweepOutcome> {
    let states = store.register(sweep, &sweep.runs()).context("cannot record the sweep's runs")?;
    let mut outcome = SweepOutcome { total: states.len(), ..Default::default() };
    let mut queue = VecDeque::new();
    for s in &states {
        if s.done {
            outcome.already_done += 1;
        } else {
            queue.push_back((s.spec.clone(), sweep.resolve_data(&s.spec.config.data)));
        }
    }
    let progress = Progress::new(&states);
    eprintln!("{}", progress.header(&sweep.name, &outcome, devices.len()));
    if queue.is_empty() {
        return Ok(outcome);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the scheduler's runtime")?;
    let sweep_dir = runs_dir.join(&sweep.name);
    runtime.block_on(async move {
        let (tx, mut rx) = unbounded_channel::<Event>();
        let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<SweepOutcome> {
            while let Some(event) = rx.blocking_recv() {
                store.apply(&event).with_context(|| format!("cannot store an event of run {}", event.run()))?;
                match &event {
                    Event::Finished { .. } => outcome.done += 1,
                    Event::Failed { run, error } => outcome.failed.push((progress.label(run), error.clone())),
                    _ => {}
                }
                if let Some(line) = progress.line(&event) {
                    eprintln!("{line}");
                }
            }
            Ok(outcome)
        });
        let queue = Arc::new(Mutex::new(queue));
        let cache = Arc::new(DataCache::default());
        let mut workers = Vec::new();
        for device in devices {
            let ctx = Worker { queue: queue.clone(), cache: cache.clone(), tx: tx.clone(), sweep_dir: sweep_dir.clone(), stop: stop.clone() };
            workers.push(tokio::spawn(ctx.work(device)));
        }
        drop(tx);
        for w in workers {
            w.await.context("a device worker stopped unexpectedly")?;
        }
        writer.await.context("the database writer stopped unexpectedly")?
    })
}

struct Worker {
    queue: Arc<Mutex<VecDeque<(RunSpec, DataSpec)>>>,
    cache: Arc<DataCache>,
    tx: UnboundedSender<Event>,
    sweep_dir: PathBuf,
    stop: Arc<AtomicBool>,
}

impl Worker {
    async fn work(self, device: Device) {
        loop {
            if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let next = self.queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some((run, spec)) = next else { break };
            let id = run.id.clone();
            let (cache, tx, device, stop) = (self.cache.clone(), self.tx.clone(), device.clone(), self.stop.clone());
            let run_dir = self.sweep_dir.join(&run.id);
            let result = tokio::task::spawn_blocking(move || -> Result<train::RunEnd, String> {
                let data = cache.get(&spec).map_err(|e| e.to_string())?;
                let mut emit = |e: Event| {
                    let _ = tx.send(e);
                };
                train::train(&run, &data, &device, &run_dir, &stop, &mut emit).map_err(|e| e.to_string())
            })
            .await;
            let event = match result {
                Ok(Ok(end)) => Event::Finished { run: id, end },
                Ok(Err(error)) => Event::Failed { run: id, error },
                Err(join) => Event::Failed { run: id, error: panic_message(join) },
            };
            let _ = self.tx.send(event);
        }
    }
}

fn panic_message(join: tokio::task::JoinError) -> String {
    if !join.is_panic() {
        return "the run was cancelled".into();
    }
    let payload = join.into_panic();
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("panicked: {msg}")
}
