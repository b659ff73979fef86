//! `sweep worker`: one run in its own process, so that an out-of-memory error, a NaN, a panic
//! or a segfault is that run's failure and never the sweep's.
//!
//! Protocol: the coordinator writes a [`Job`] as a JSON line on stdin and may then write
//! `stop` (finish the epoch in progress, save, report `Stopped`). The worker writes one
//! [`Event`] per line on stdout and nothing else, ending each job with `Finished`, `Failed`,
//! `Stopped` or `Pruned`, then waits for the next job; it exits when stdin ends. After a
//! `Rung` event it waits for the verdict line: `continue`, or `prune REASON`. stderr carries
//! panics and crashes. If stdout breaks (the coordinator died) the worker exits at once: its
//! saved state lets a later run resume.
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::data::{self, DataSpec};
use crate::devices::Slot;
use crate::run::RunSpec;
use crate::run::{says_out_of_memory, FailureKind};
use crate::run::{Event, Provenance, RunEnd, RunStart, Verdict};
use crate::train::fake::FakeLearner;
use crate::train::{self, CandleLearner, Start, Steering, TrainError};

/// One run to train, as the coordinator hands it over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub run: RunSpec,
    /// The data spec with folders resolved.
    pub data: DataSpec,
    /// The run's pretrained weights file, resolved (transfer learning).
    #[serde(with = "crate::run::path::option", default)]
    pub pretrained: Option<PathBuf>,
    #[serde(with = "crate::run::path")]
    pub run_dir: PathBuf,
    pub slot: Slot,
    pub batch_size: usize,
    /// `Some(last stored epoch)`: continue from the saved state; `None`: start over.
    pub resume: Option<usize>,
    /// Epochs after which to wait for the search strategy's verdict.
    #[serde(default)]
    pub rungs: Vec<usize>,
    /// The database and data the run's saved states belong to.
    #[serde(default)]
    pub provenance: Provenance,
    /// No other run trains on its device meanwhile (a retry after out-of-memory on a shared
    /// GPU).
    #[serde(default)]
    pub alone: bool,
}

/// The line that asks a worker to stop after its current epoch.
pub const STOP: &str = "stop";
/// The verdict line that lets a run train on after a rung.
pub const CONTINUE: &str = "continue";
/// The verdict line that stops a run for good after a rung: `prune REASON`.
pub const PRUNE: &str = "prune";

/// The line that carries a verdict to a worker.
pub fn verdict_line(v: &Verdict) -> String {
    match v {
        Verdict::Continue => format!("{CONTINUE}\n"),
        Verdict::Prune(reason) => format!("{PRUNE} {}\n", reason.replace('\n', " ")),
    }
}

fn parse_verdict(line: &str) -> Option<Verdict> {
    if line == CONTINUE {
        return Some(Verdict::Continue);
    }
    let reason = line.strip_prefix(PRUNE)?;
    Some(Verdict::Prune(reason.trim().to_string()))
}

/// Set to stop the job in progress after its epoch: by a `stop` line, the end of stdin, or a
/// signal.
static STOPPING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOPPING.store(true, Ordering::Relaxed);
}

/// SIGTERM, SIGHUP, SIGINT and SIGUSR1 stop the job after its epoch, as the coordinator's
/// `stop` does: Slurm and `docker stop` signal every process of a job, workers included
/// (`scancel --signal=USR1` without `--batch` too, whose default action would kill), and a
/// worker must then save and report `Stopped`, not die as a crash (issue 8).
fn stop_on_signals() {
    #[cfg(unix)]
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGUSR1] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Die with the coordinator: a worker outliving it would race the run's next owner.
///
/// The parent is whoever started us, not "anyone but PID 1": when `sweep run` is itself PID 1
/// (`docker run image sweep run ...`) its workers' parent pid is 1 (issue 7). The parent is
/// read before the death signal is armed and checked after, so a coordinator that died in
/// between is noticed; one that died before the first read leaves stdin at EOF, which ends
/// the worker too.
fn follow_parent() {
    #[cfg(target_os = "linux")]
    // SAFETY: getppid only reads; prctl with PR_SET_PDEATHSIG only sets a signal for this
    // process.
    unsafe {
        let parent = libc::getppid();
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            std::process::exit(4);
        }
    }
}

/// Where the last panic happened and what it said, as "panicked at FILE:LINE:COL: MESSAGE"
/// (the words the coordinator reads from a dead worker's stderr).
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Keep the default report on stderr, and remember the panic for the `Failed` event.
fn record_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!("panicked at {}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_else(|| "panicked".into());
        *LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{at}: {message}"));
        default(info);
    }));
}

/// The event that ends a job.
fn end_event(id: String, result: std::thread::Result<Result<RunEnd, TrainError>>) -> Event {
    match result {
        Ok(Ok(end)) => Event::Finished { run: id, end },
        Ok(Err(TrainError::Interrupted(epoch))) => Event::Stopped { run: id, epoch },
        Ok(Err(TrainError::Pruned { epoch, end, .. })) => Event::Pruned {
            run: id,
            epoch,
            end,
        },
        Ok(Err(e)) => Event::Failed {
            run: id,
            kind: e.kind(),
            error: e.to_string(),
        },
        Err(_) => {
            let error = LAST_PANIC
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or_else(|| "panicked".into());
            let kind = if says_out_of_memory(&error) {
                FailureKind::Oom
            } else {
                FailureKind::Panic
            };
            Event::Failed {
                run: id,
                error,
                kind,
            }
        }
    }
}

/// Body of `sweep worker`: train the jobs read from stdin one after the other, until stdin
/// ends. A `stop` line stops the job in progress after its current epoch.
pub fn serve() -> ExitCode {
    follow_parent();
    record_panics();
    stop_on_signals();
    let stop = &STOPPING;
    let (jobs_tx, jobs) = std::sync::mpsc::channel::<String>();
    let (verdicts_tx, verdicts) = std::sync::mpsc::channel::<Verdict>();
    let flag = &STOPPING;
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) if l.trim() == STOP => flag.store(true, Ordering::Relaxed),
                Ok(l) if l.trim().is_empty() => {}
                Ok(l) if parse_verdict(l.trim()).is_some() => {
                    let _ = verdicts_tx.send(parse_verdict(l.trim()).unwrap_or(Verdict::Continue));
                }
                Ok(l) => {
                    if jobs_tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        // The coordinator is gone or done: stop after this epoch.
        flag.store(true, Ordering::Relaxed);
    });
    let stdout = std::io::stdout();
    let mut emit = |event: Event| {
        // An event that cannot be put into words is this worker's bug, not a lost
        // coordinator: say so on stderr and go on (issue 8).
        let line = match serde_json::to_string(&event) {
            Ok(line) => line + "\n",
            Err(e) => {
                crate::say!(
                    "sweep worker: cannot encode an event of run {}: {e}",
                    event.run()
                );
                return;
            }
        };
        let mut out = stdout.lock();
        if out.write_all(line.as_bytes()).is_err() || out.flush().is_err() {
            // The coordinator is gone; the last committed resume state is what counts.
            std::process::exit(4);
        }
    };
    // Runs of one sweep usually share their data: keep the last decoded dataset.
    let mut data: Option<(DataSpec, Arc<data::Dataset>)> = None;
    for line in jobs {
        let job: Job = match serde_json::from_str(&line) {
            Ok(j) => j,
            Err(e) => {
                crate::say!("sweep worker: bad job line: {e}");
                return ExitCode::from(3);
            }
        };
        let id = job.run.id.clone();
        // A panic is this run's failure, reported like any other; the coordinator ends a
        // worker after a failure, so no state it left half-changed is used again.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut verdict = |_epoch: usize| verdicts.recv().ok();
            let steer = Steering {
                stop,
                rungs: &job.rungs,
                verdict: &mut verdict,
            };
            run(&job, &mut data, steer, &mut emit)
        }));
        emit(end_event(id, result));
    }
    ExitCode::SUCCESS
}

fn device(slot: &Slot) -> Result<Device, TrainError> {
    match slot {
        Slot::Cpu => Ok(Device::Cpu),
        // The coordinator pins the process with CUDA_VISIBLE_DEVICES: our GPU is number 0.
        #[cfg(feature = "cuda")]
        Slot::Gpu(_) => Ok(crate::model::kernels::cuda_device(0)?),
        #[cfg(not(feature = "cuda"))]
        Slot::Gpu(i) => Err(TrainError::Candle(candle_core::Error::Msg(format!(
            "GPU {i} was assigned but this build has no CUDA support"
        )))),
    }
}

fn run(
    job: &Job,
    cache: &mut Option<(DataSpec, Arc<data::Dataset>)>,
    steer: Steering,
    emit: &mut dyn FnMut(Event),
) -> Result<RunEnd, TrainError> {
    let begin = match job.resume {
        Some(stored_epochs) => Start::Resume { stored_epochs },
        None => Start::Fresh,
    };
    if let Some(spec) = &job.run.config.fake {
        let mut learner = FakeLearner::new(spec.clone(), &job.run, job.batch_size, job.alone);
        let start = RunStart {
            device: job.slot.to_string(),
            classes: (0..learner.classes())
                .map(|k| format!("class{k}"))
                .collect(),
            parameters: 1000,
            train_images: 100,
            val_images: 10 * learner.classes(),
            test_images: None,
            skipped: Vec::new(),
            batch_size: job.batch_size,
            resumed_from: None,
        };
        return train::train(
            &job.run,
            &mut learner,
            start,
            false,
            &job.run_dir,
            begin,
            &job.provenance,
            steer,
            emit,
        );
    }
    let device = device(&job.slot)?;
    let data = match cache {
        Some((spec, d)) if *spec == job.data => d.clone(),
        _ => {
            *cache = None;
            let d = Arc::new(data::load(&job.data)?);
            if d.train.is_streamed() {
                eprintln!(
                    "{}: the decoded images would pass the cache budget (SWEEP_CACHE_BUDGET, default half the available memory): each batch is decoded from disk again",
                    job.data.train.display()
                );
            }
            *cache = Some((job.data.clone(), d.clone()));
            d
        }
    };
    let mut learner = CandleLearner::new(&job.run.config, job.batch_size, data.clone(), &device)?;
    if let Some(path) = &job.pretrained {
        learner.start_from(path);
    }
    let start = RunStart {
        device: job.slot.to_string(),
        classes: data.classes.clone(),
        parameters: train::Learner::parameter_count(&learner),
        train_images: data.train.len(),
        val_images: data.val.len(),
        test_images: data.test.as_ref().map(|t| t.len()),
        skipped: data.skipped.clone(),
        batch_size: job.batch_size,
        resumed_from: None,
    };
    train::train(
        &job.run,
        &mut learner,
        start,
        data.test.is_some(),
        &job.run_dir,
        begin,
        &job.provenance,
        steer,
        emit,
    )
}
