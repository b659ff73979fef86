//! One device slot's loop: claim the next run, train it in a `sweep worker` process pinned
//! to the slot's device, stream its events to the writer, and turn its end (reported, or a
//! death) into the run's outcome. What to do after a failure is [`super::retry::next_step`]'s
//! call (after out-of-memory on a shared GPU a retry alone on it, then one at half the batch
//! size; one resume after an outside kill); this loop only acts on it, and passes its
//! device's [`Gate`] before each attempt.
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{mpsc, Arc};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{oneshot, watch};

use super::gate::{Gate, Pass};
use super::retry::{next_step, Attempts, Decision};
use super::{Control, Queued, ToWriter};
use crate::devices::Slot;
use crate::run::{says_out_of_memory, Event, FailureKind, Verdict};
use crate::worker::{verdict_line, Job, STOP};

pub(super) struct SlotLoop {
    pub(super) index: usize,
    pub(super) slot: Slot,
    /// Shared with the other slots of the same device.
    pub(super) gate: Arc<Gate>,
    pub(super) to_writer: mpsc::Sender<ToWriter>,
    pub(super) control: watch::Receiver<Control>,
    pub(super) exe: PathBuf,
    pub(super) sweep_dir: PathBuf,
    pub(super) threads: Option<usize>,
    /// The slot's worker process, kept between runs that finish cleanly.
    pub(super) process: Option<Process>,
}

/// How one worker process ended.
enum WorkerEnd {
    /// It reported its own end (finished, failed or stopped).
    Reported(Box<Event>),
    /// It died without a word: crash, kill, abort.
    Died { kind: FailureKind, error: String },
}

impl SlotLoop {
    fn send(&self, event: Event) {
        let _ = self.to_writer.send(ToWriter::Event {
            slot: self.index,
            event,
        });
    }

    pub(super) async fn work(mut self) {
        self.work_queue().await;
        if let Some(p) = self.process.take() {
            p.close().await;
        }
    }

    async fn work_queue(&mut self) {
        loop {
            if *self.control.borrow() != Control::Run {
                break;
            }
            let (reply, answer) = oneshot::channel();
            if self.to_writer.send(ToWriter::Next { reply }).is_err() {
                break;
            }
            // Wait for a run, or for the end of the sweep; a Ctrl-C stops the wait.
            let next = tokio::select! {
                next = answer => next.ok().flatten(),
                _ = self.control.wait_for(|c| *c != Control::Run) => None,
            };
            let Some(Queued {
                run,
                data,
                pretrained,
                rungs,
                provenance,
            }) = next
            else {
                break;
            };
            let run_dir = self.sweep_dir.join(&run.id);
            let claimed_at = std::time::Instant::now();
            let (reply, answer) = oneshot::channel();
            let claim = ToWriter::Claim {
                run: run.id.clone(),
                run_dir: run_dir.clone(),
                reply,
            };
            if self.to_writer.send(claim).is_err() {
                break;
            }
            let Ok(Some((resume, stored_batch))) = answer.await else {
                let _ = self.to_writer.send(ToWriter::HeldElsewhere {
                    run: run.id.clone(),
                });
                continue;
            };
            let mut job = Job {
                batch_size: stored_batch.unwrap_or(run.config.batch_size),
                run,
                data,
                pretrained,
                run_dir,
                slot: self.slot.clone(),
                resume,
                rungs,
                provenance,
                alone: false,
            };
            let mut attempts = Attempts {
                halved: job.batch_size != job.run.config.batch_size,
                resumed: false,
                alone: !self.gate.shared(),
            };
            loop {
                job.alone = attempts.alone;
                let Some(pass) = self.enter(attempts.alone && self.gate.shared()).await else {
                    // Stopped while waiting for the device: it resumes in a later `sweep run`.
                    self.send(Event::Stopped {
                        run: job.run.id.clone(),
                        epoch: job.resume.unwrap_or(0),
                    });
                    break;
                };
                let end = self.run_worker(&job, claimed_at).await;
                drop(pass);
                let (kind, error) = match end {
                    WorkerEnd::Reported(event) => match *event {
                        Event::Failed { kind, error, .. } => (kind, error),
                        event => {
                            self.send(event);
                            break;
                        }
                    },
                    WorkerEnd::Died { kind, error } => (kind, error),
                };
                match next_step(kind, attempts, job.batch_size) {
                    Decision::Resume => {
                        attempts.resumed = true;
                        if self.resume(&mut job, &error).await {
                            continue;
                        }
                    }
                    Decision::RetryAlone => {
                        attempts.alone = true;
                        if self.retry_alone(&mut job, &error).await {
                            continue;
                        }
                    }
                    Decision::RetryHalfBatch => {
                        attempts.halved = true;
                        self.retry_half_batch(&mut job);
                        continue;
                    }
                    Decision::Fail => {}
                }
                let error =
                    match kind {
                        FailureKind::Oom => {
                            format!(
                        "{error}: it does not fit in {}'s memory at batch size {}{}; lower \
                         batch_size, image_size or width",
                        self.slot,
                        job.batch_size,
                        if self.gate.shared() { " even alone" } else { "" }
                    )
                        }
                        _ => error,
                    };
                self.send(Event::Failed {
                    run: job.run.id.clone(),
                    error,
                    kind,
                });
                break;
            }
        }
    }

    /// A worker killed from outside (or by the kernel): continue from its last saved epoch.
    /// False when the writer is gone.
    async fn resume(&self, job: &mut Job, error: &str) -> bool {
        if !self.continue_from_saved(job).await {
            return false;
        }
        self.note(format!("{}: {error}; resuming it", job.run.label));
        true
    }

    /// Lines the stored epochs up with the run's saved state (the writer's answer) and sets
    /// `job` to continue from its last saved epoch. False when the writer is gone.
    async fn continue_from_saved(&self, job: &mut Job) -> bool {
        let (reply, answer) = oneshot::channel();
        let msg = ToWriter::Resume {
            run: job.run.id.clone(),
            run_dir: job.run_dir.clone(),
            reply,
        };
        if self.to_writer.send(msg).is_err() {
            return false;
        }
        job.resume = answer.await.unwrap_or(None);
        true
    }

    fn note(&self, line: String) {
        let _ = self.to_writer.send(ToWriter::Note(line));
    }

    /// Waits at the device's gate: beside the other slots' runs, or `alone`. An idle worker
    /// kept from the last run is closed first when a run waits to train alone, so that its
    /// GPU memory is free. `None` when the sweep is stopped meanwhile.
    async fn enter(&mut self, alone: bool) -> Option<Pass> {
        if !alone && self.gate.someone_waits_alone() {
            if let Some(p) = self.process.take() {
                p.close().await;
            }
        }
        let gate = self.gate.clone();
        tokio::select! {
            pass = gate.enter(alone) => Some(pass),
            _ = self.control.wait_for(|c| *c != Control::Run) => None,
        }
    }

    /// Out of memory beside other runs: train on from the last saved epoch, at the same batch
    /// size, with the device to itself. False when the writer is gone.
    async fn retry_alone(&self, job: &mut Job, error: &str) -> bool {
        if !self.continue_from_saved(job).await {
            return false;
        }
        let from = match job.resume {
            Some(e) if e > 0 => format!(" from epoch {e}"),
            _ => String::new(),
        };
        self.note(format!(
            "{}: {error} on {} beside other runs; retrying it alone on that device{from}",
            job.run.label, self.slot
        ));
        true
    }

    /// Out of memory: train again from scratch at half the batch size.
    fn retry_half_batch(&self, job: &mut Job) {
        job.batch_size /= 2;
        job.resume = None;
        let note = format!(
            "out of memory at batch size {}; retrying once at {}",
            job.batch_size * 2,
            job.batch_size
        );
        let _ = self.to_writer.send(ToWriter::Retry {
            run: job.run.id.clone(),
            batch_size: job.batch_size,
            note,
        });
    }

    /// Start a `sweep worker` process for this slot.
    fn spawn(&self) -> Result<Process, String> {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group: a terminal's Ctrl-C reaches the coordinator only, which
        // then asks each worker to stop after its epoch.
        #[cfg(unix)]
        cmd.process_group(0);
        if let Slot::Gpu(i) = self.slot {
            let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
            cmd.env(
                "CUDA_VISIBLE_DEVICES",
                crate::devices::pin(i, visible.as_deref()),
            );
        }
        // candle sizes its CPU thread pool once, at start: set it before the worker starts.
        if let Some(n) = self.threads {
            cmd.env("CANDLE_NUM_THREADS", n.to_string())
                .env("RAYON_NUM_THREADS", n.to_string());
        }
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start the worker process {}: {e}",
                self.exe.display()
            )
        })?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the worker process has no pipes".into());
        };
        let errors = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Ok(Process {
            child,
            stdin: Some(stdin),
            lines: BufReader::new(stdout).lines(),
            errors,
        })
    }

    /// Train `job` in this slot's worker process (started if needed). A worker that
    /// finished its run cleanly is kept for the next one: no process start, and on a GPU no
    /// new CUDA context, per run.
    async fn run_worker(&mut self, job: &Job, claimed_at: std::time::Instant) -> WorkerEnd {
        let mut process = match self.process.take() {
            Some(p) => p,
            None => match self.spawn() {
                Ok(p) => p,
                Err(error) => {
                    return WorkerEnd::Died {
                        kind: FailureKind::Other,
                        error,
                    }
                }
            },
        };
        let line = match serde_json::to_string(job) {
            Ok(line) => line + "\n",
            Err(e) => {
                return WorkerEnd::Died {
                    kind: FailureKind::Other,
                    error: format!("cannot encode the job for the worker: {e}"),
                }
            }
        };
        let handed = match process.stdin.as_mut() {
            Some(stdin) => stdin.write_all(line.as_bytes()).await.is_ok(),
            None => false,
        };
        let mut reported = None;
        let mut last_epoch = 0;
        // A worker that could not take the job has died: its exit says why.
        while handed && reported.is_none() {
            tokio::select! {
                line = process.lines.next_line() => match line {
                    Ok(Some(l)) => match serde_json::from_str::<Event>(&l) {
                        Ok(e @ (Event::Finished { .. } | Event::Failed { .. } | Event::Stopped { .. } | Event::Pruned { .. })) => {
                            reported = Some(e);
                            break;
                        }
                        Ok(Event::Rung { run, epoch }) => {
                            // Its epoch went to the writer before this message: the verdict
                            // is taken on stored history.
                            let (reply, answer) = oneshot::channel();
                            let _ = self.to_writer.send(ToWriter::Verdict { run, epoch, reply });
                            let verdict = answer.await.unwrap_or(Verdict::Continue);
                            if let Some(stdin) = process.stdin.as_mut() {
                                let _ = stdin.write_all(verdict_line(&verdict).as_bytes()).await;
                            }
                        }
                        Ok(e) => {
                            if let Event::Epoch { record, .. } = &e {
                                last_epoch = record.summary.epoch;
                            }
                            if let Event::Started { run, .. } = &e {
                                let ms = claimed_at.elapsed().as_secs_f64() * 1000.0;
                                let _ = self.to_writer.send(ToWriter::Dispatched { run: run.clone(), ms });
                            }
                            self.send(e);
                        }
                        Err(_) => {}
                    },
                    _ => break,
                },
                changed = self.control.changed() => {
                    if changed.is_err() { continue; }
                    let now = *self.control.borrow();
                    match now {
                        Control::Drain => if let Some(s) = process.stdin.as_mut() { let _ = s.write_all(format!("{STOP}\n").as_bytes()).await; },
                        Control::Kill => { let _ = process.child.start_kill(); }
                        Control::Run => {}
                    }
                }
            }
        }
        if let Some(e @ (Event::Finished { .. } | Event::Pruned { .. })) = reported {
            if *self.control.borrow() == Control::Run {
                self.process = Some(process);
            } else {
                process.close().await;
            }
            return WorkerEnd::Reported(Box::new(e));
        }
        // After a failure the process may be damaged (GPU memory, a poisoned state): end it.
        let (status, stderr) = process.close().await;
        if let Some(e) = reported {
            return WorkerEnd::Reported(Box::new(e));
        }
        if *self.control.borrow() == Control::Kill {
            return WorkerEnd::Reported(Box::new(Event::Stopped {
                run: job.run.id.clone(),
                epoch: last_epoch,
            }));
        }
        let (kind, error) = describe_death(status, &stderr);
        WorkerEnd::Died { kind, error }
    }
}

/// A running `sweep worker`: its pipes, and the collector of its stderr.
pub(super) struct Process {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    errors: tokio::task::JoinHandle<String>,
}

impl Process {
    /// Close its stdin (it exits when idle, or after its epoch) and wait for it.
    async fn close(mut self) -> (Option<std::process::ExitStatus>, String) {
        drop(self.stdin.take());
        let status = self.child.wait().await.ok();
        (status, self.errors.await.unwrap_or_default())
    }
}

/// Why a worker died, from its exit status and the end of its stderr: the kind of failure and
/// the words for it.
fn describe_death(status: Option<std::process::ExitStatus>, stderr: &str) -> (FailureKind, String) {
    #[cfg(unix)]
    let signal = {
        use std::os::unix::process::ExitStatusExt;
        status.and_then(|s| s.signal())
    };
    #[cfg(not(unix))]
    let signal: Option<i32> = None;
    let error = death_message(status, signal, stderr);
    let kind = match signal {
        _ if says_out_of_memory(&error) => FailureKind::Oom,
        // SIGKILL comes from outside (a user, the OOM killer): the saved state is intact.
        Some(9) => FailureKind::WorkerLost,
        Some(_) => FailureKind::Signal,
        None if error.contains("panicked at") => FailureKind::Panic,
        None => FailureKind::Other,
    };
    (kind, error)
}

fn death_message(
    status: Option<std::process::ExitStatus>,
    signal: Option<i32>,
    stderr: &str,
) -> String {
    // "thread 'main' (7) panicked at src/x.rs:1:2:" then the message on the next line.
    let mut lines = stderr.lines().skip_while(|l| !l.contains("panicked at"));
    let panic = match (lines.next(), lines.next()) {
        (Some(at), message) => {
            let at = at
                .get(at.find("panicked at").unwrap_or(0)..)
                .unwrap_or(at)
                .trim_end_matches(':');
            format!("{at}: {}", message.unwrap_or("").trim())
        }
        _ => String::new(),
    };
    let how = match status {
        None => "the worker process vanished".to_string(),
        Some(s) => {
            if let Some(sig) = signal {
                let name = match sig {
                    6 => " (SIGABRT)",
                    9 => " (SIGKILL: killed, perhaps out of host memory)",
                    11 => " (SIGSEGV)",
                    _ => "",
                };
                return format!(
                    "the worker process was killed by signal {sig}{name}{}",
                    tail(stderr)
                );
            }
            format!("the worker process exited with {s}")
        }
    };
    if !panic.is_empty() {
        return panic;
    }
    format!("{how}{}", tail(stderr))
}

fn tail(stderr: &str) -> String {
    match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(l) => format!("; last output: {}", l.trim()),
        None => String::new(),
    }
}
