//! `sweep worker`: one run in its own process, so that an out-of-memory error, a NaN, a panic
//! or a segfault is that run's failure and never the sweep's.
//!
//! Protocol: the coordinator writes a [`Job`] as a JSON line on stdin and may then write
//! `stop` (finish the epoch in progress, save, report `Stopped`). The worker writes one
//! [`Event`] per line on stdout and nothing else, ending each job with `Finished`, `Failed`
//! or `Stopped`, then waits for the next job; it exits when stdin ends. stderr carries
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
use crate::sweep::RunSpec;
use crate::train::fake::{FakeLearner, FakeSpec};
use crate::train::{self, CandleLearner, Event, RunEnd, RunStart, Start, TrainError};

/// One run to train, as the coordinator hands it over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub run: RunSpec,
    /// The data spec with folders resolved.
    pub data: DataSpec,
    pub run_dir: PathBuf,
    pub slot: Slot,
    pub batch_size: usize,
    /// `Some(last stored epoch)`: continue from the saved state; `None`: start over.
    pub resume: Option<usize>,
}

/// The line that asks a worker to stop after its current epoch.
pub const STOP: &str = "stop";

/// Die with the coordinator: a worker outliving it would race the run's next owner.
fn follow_parent() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a signal for this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() == 1 {
            std::process::exit(4);
        }
    }
}

/// Body of `sweep worker`: train the jobs read from stdin one after the other, until stdin
/// ends. A `stop` line stops the job in progress after its current epoch.
pub fn serve() -> ExitCode {
    follow_parent();
    let stop = Arc::new(AtomicBool::new(false));
    let (jobs_tx, jobs) = std::sync::mpsc::channel::<String>();
    let flag = stop.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) if l.trim() == STOP => flag.store(true, Ordering::Relaxed),
                Ok(l) if l.trim().is_empty() => {}
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
        let mut out = stdout.lock();
        let ok = serde_json::to_writer(&mut out, &event).is_ok()
            && out.write_all(b"\n").is_ok()
            && out.flush().is_ok();
        if !ok {
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
                eprintln!("sweep worker: bad job line: {e}");
                return ExitCode::from(3);
            }
        };
        let id = job.run.id.clone();
        let event = match run(&job, &mut data, &stop, &mut emit) {
            Ok(end) => Event::Finished { run: id, end },
            Err(TrainError::Interrupted(epoch)) => Event::Stopped { run: id, epoch },
            Err(e) => Event::Failed {
                run: id,
                error: e.to_string(),
            },
        };
        emit(event);
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
    stop: &AtomicBool,
    emit: &mut dyn FnMut(Event),
) -> Result<RunEnd, TrainError> {
    let begin = match job.resume {
        Some(stored_epochs) => Start::Resume { stored_epochs },
        None => Start::Fresh,
    };
    if let Some(spec) = FakeSpec::from_env() {
        let spec = spec.map_err(|e| TrainError::Candle(candle_core::Error::Msg(e)))?;
        let mut learner = FakeLearner::new(spec, &job.run, job.batch_size);
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
            stop,
            emit,
        );
    }
    let device = device(&job.slot)?;
    let data = match cache {
        Some((spec, d)) if *spec == job.data => d.clone(),
        _ => {
            *cache = None;
            let d = Arc::new(
                data::load(&job.data)
                    .map_err(|e| TrainError::Candle(candle_core::Error::Msg(e.to_string())))?,
            );
            *cache = Some((job.data.clone(), d.clone()));
            d
        }
    };
    let mut learner = CandleLearner::new(&job.run.config, job.batch_size, data.clone(), &device)?;
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
        stop,
        emit,
    )
}
