//! The coordinator's writer thread: the only owner of the store during a sweep, and of the
//! queue. Slot loops ask it for their next run, for claims, resumes and verdicts; it stores
//! every event, asks the search strategy what it thinks, lets the queue grow with the runs the
//! strategy proposes, and tells the observer. Runs another process holds are remembered; when
//! waiting for others, they are looked at again every heartbeat and queued once claimable.
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::oneshot;

use super::held::{held_now, Held};
use super::{owner_alive, Observer, Queued, SweepOutcome, ToWriter};
use crate::run::{EpochSummary, Event, Provenance, ResumeState, RunSpec, RunStatus, Verdict};
use crate::search::{History, Strategy};
use crate::store::Storage;

/// The stored epochs of one sweep, as the strategy sees them.
struct Stored<'a> {
    store: &'a mut dyn Storage,
    sweep: &'a str,
}

impl History for Stored<'_> {
    fn arrivals(&mut self, epoch: usize) -> anyhow::Result<Vec<(String, EpochSummary)>> {
        Ok(self.store.epoch_arrivals(self.sweep, epoch)?)
    }
}

/// How a claimed run starts: from its saved state (`Some(last stored epoch)`), or over
/// (`None`). An unreadable state counts as none; so does one saved for another database or
/// other images (with the reason).
fn resume_from(
    store: &mut dyn Storage,
    run: &str,
    run_dir: &Path,
    now: Option<&Provenance>,
) -> crate::store::Result<(Option<usize>, Option<&'static str>)> {
    let mut state = ResumeState::load(run_dir).ok().flatten();
    let stale = match (&state, now) {
        (
            Some(ResumeState {
                provenance: Some(saved),
                ..
            }),
            Some(now),
        ) => now.mismatch(saved),
        _ => None,
    };
    if stale.is_some() {
        state = None;
    }
    Ok((store.prepare_resume(run, state.as_ref())?, stale))
}

pub(super) struct Writer {
    pub(super) store: Box<dyn Storage>,
    pub(super) strategy: Box<dyn Strategy>,
    pub(super) display: Box<dyn Observer>,
    pub(super) outcome: SweepOutcome,
    pub(super) sweep: String,
    pub(super) file: PathBuf,
    pub(super) base_dir: PathBuf,
    pub(super) owner: String,
    pub(super) stale_secs: f64,
    /// Wait for the runs in `held` before ending (see [`super::Options::wait_for_others`]).
    pub(super) wait_for_others: bool,
    /// Runs another process held when this one tried to claim them.
    pub(super) held: HashSet<String>,
    /// Every run of the sweep by id, and how it is shown.
    pub(super) runs: HashMap<String, (RunSpec, String)>,
    /// `Storage::id` of the store.
    pub(super) store_id: String,
    /// `DataSpec::fingerprint` of each data spec queued (a walk of its folders, once).
    pub(super) fingerprints: HashMap<String, String>,
    /// What the saved states of each queued run must belong to.
    pub(super) provenance: HashMap<String, Provenance>,
    /// Runs waiting for a slot, longest first.
    pub(super) queue: VecDeque<Queued>,
    /// Runs handed to a slot whose end is not stored yet: they may still make the strategy
    /// propose more, so an idle slot waits for them rather than stopping.
    pub(super) in_flight: HashSet<String>,
    /// Slots waiting for a run.
    pub(super) waiting: Vec<oneshot::Sender<Option<Queued>>>,
}

impl Writer {
    /// The queue entry of a run: its data resolved and the epochs it is judged at.
    pub(super) fn queued(&mut self, run: &RunSpec) -> Queued {
        let data = run.config.data.resolve(&self.base_dir);
        let key = serde_json::to_string(&data).unwrap_or_default();
        let fingerprint = self
            .fingerprints
            .entry(key)
            .or_insert_with(|| data.fingerprint())
            .clone();
        let provenance = Provenance {
            store: self.store_id.clone(),
            data: fingerprint,
        };
        self.provenance.insert(run.id.clone(), provenance.clone());
        Queued {
            run: run.clone(),
            data,
            pretrained: run
                .config
                .transfer
                .as_ref()
                .map(|t| self.base_dir.join(&t.pretrained)),
            rungs: self.strategy.rungs(run),
            provenance,
        }
    }

    /// `resume_from` for `run`, saying why a saved state was not used.
    fn resume(&mut self, run: &str, run_dir: &Path) -> crate::store::Result<Option<usize>> {
        let now = self.provenance.get(run).cloned();
        let (resume, stale) = resume_from(self.store.as_mut(), run, run_dir, now.as_ref())?;
        if let Some(why) = stale {
            let line = format!("{}: {why}; starting it over", self.label(run));
            self.display.note(&line);
        }
        Ok(resume)
    }

    /// Remember runs, each shown as `[index/total] label (id)`.
    pub(super) fn know(&mut self, specs: &[RunSpec]) {
        let total = self.runs.len() + specs.len();
        for r in specs {
            let shown = format!("[{}/{}] {} ({})", r.index, total, r.label, r.id);
            self.runs.insert(r.id.clone(), (r.clone(), shown));
        }
    }

    fn label(&self, run: &str) -> String {
        self.runs
            .get(run)
            .map(|(_, shown)| shown.clone())
            .unwrap_or_else(|| run.to_string())
    }

    /// Serve waiting slots: a run each while there are some; `None` to all once nothing is
    /// queued or in flight (the sweep is over).
    fn serve(&mut self) {
        while !self.waiting.is_empty() {
            if let Some(next) = self.queue.pop_front() {
                let slot = self.waiting.remove(0);
                let id = next.run.id.clone();
                match slot.send(Some(next)) {
                    Ok(()) => {
                        self.in_flight.insert(id);
                    }
                    Err(Some(back)) => self.queue.push_front(back),
                    Err(None) => {}
                }
            } else if self.in_flight.is_empty() && !self.waits_for_held() {
                for slot in self.waiting.drain(..) {
                    let _ = slot.send(None);
                }
            } else {
                break;
            }
        }
    }

    /// Whether runs other processes hold keep this one from ending.
    fn waits_for_held(&self) -> bool {
        self.wait_for_others && !self.held.is_empty()
    }

    /// Look at the runs other processes hold again: forget those they finished, queue those
    /// that became claimable (released, or their owner is gone), keep waiting for the rest.
    fn recheck_held(&mut self) -> anyhow::Result<()> {
        let db = self.store.location();
        let rows = self
            .store
            .sweep(Some(&self.sweep))
            .and_then(|s| self.store.runs(s.id))
            .with_context(|| format!("cannot read the runs other processes hold from {db}"))?;
        for row in &rows {
            if !self.held.contains(&row.id) {
                continue;
            }
            let Some(why) = held_now(row, &self.owner, self.stale_secs) else {
                continue;
            };
            self.held.remove(&row.id);
            match why {
                Held::Finished => self.outcome.finished_elsewhere += 1,
                Held::Claimable(why) => {
                    let line = format!("{}: {why}; taking it over", self.label(&row.id));
                    self.display.note(&line);
                    if let Some((spec, _)) = self.runs.get(&row.id).cloned() {
                        let q = self.queued(&spec);
                        self.queue.push_back(q);
                    }
                }
            }
        }
        self.outcome.held_elsewhere = self.held.len();
        Ok(())
    }

    /// Runs of the sweep not finished by anyone (retired runs aside): what a requeued Slurm
    /// task would find to do. `None` when the store cannot say.
    fn left(&mut self) -> Option<usize> {
        let sweep = self.store.sweep(Some(&self.sweep)).ok()?;
        let rows = self.store.runs(sweep.id).ok()?;
        let finished = [RunStatus::Done, RunStatus::Pruned, RunStatus::Failed];
        Some(
            rows.iter()
                .filter(|r| !r.retired && !finished.contains(&r.status))
                .count(),
        )
    }

    /// A run ended (stored, or taken by another process): let the strategy propose more.
    fn ended(&mut self, run: &str) -> anyhow::Result<()> {
        if !self.in_flight.remove(run) {
            return Ok(());
        }
        if let Some((spec, _)) = self.runs.get(run).cloned() {
            let mut history = Stored {
                store: self.store.as_mut(),
                sweep: &self.sweep,
            };
            let proposed = self
                .strategy
                .propose(&spec, &mut history)
                .with_context(|| format!("the search strategy failed after run {run}"))?;
            let new: Vec<RunSpec> = proposed
                .into_iter()
                .filter(|r| !self.runs.contains_key(&r.id))
                .collect();
            if !new.is_empty() {
                let states = self
                    .store
                    .register(&self.sweep, &self.file, &new, false)
                    .context("cannot record the runs the search proposed")?;
                self.know(&new);
                self.outcome.total += new.len();
                let todo: Vec<RunSpec> = states
                    .iter()
                    .filter(|s| {
                        if s.done {
                            self.outcome.already_done += 1;
                        }
                        !s.done
                    })
                    .map(|s| s.spec.clone())
                    .collect();
                for r in &todo {
                    let q = self.queued(r);
                    self.queue.push_back(q);
                }
                self.display.added(&new, &self.outcome);
            }
        }
        Ok(())
    }

    /// Handle messages until every slot loop has hung up, beating the heart meanwhile.
    pub(super) fn run(
        mut self,
        inbox: mpsc::Receiver<ToWriter>,
        heartbeat_every: Duration,
    ) -> anyhow::Result<SweepOutcome> {
        let mut last_beat = Instant::now();
        let mut last_check = Instant::now();
        loop {
            let msg = match inbox.recv_timeout(heartbeat_every) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if last_beat.elapsed() >= heartbeat_every {
                let db = self.store.location();
                self.store
                    .heartbeat(&self.owner)
                    .with_context(|| format!("cannot write heartbeats to {db}"))?;
                last_beat = Instant::now();
            }
            if let Some(msg) = msg {
                self.handle(msg)?;
            }
            if self.waits_for_held()
                && self.queue.is_empty()
                && last_check.elapsed() >= heartbeat_every
            {
                self.recheck_held()?;
                last_check = Instant::now();
            }
            self.serve();
        }
        self.outcome.left = self.left();
        self.display.finish(&self.outcome);
        Ok(self.outcome)
    }

    /// Handle one message. A store error (a full disk, say) stops the sweep with the database
    /// named; everything stored before it is kept.
    fn handle(&mut self, msg: ToWriter) -> anyhow::Result<()> {
        let db = self.store.location();
        let at = || format!("in the database {db}");
        match msg {
            ToWriter::Next { reply } => self.waiting.push(reply),
            ToWriter::Event { slot, event } => {
                self.store.apply(&event).with_context(|| {
                    format!("cannot store an event of run {} in {db}", event.run())
                })?;
                match &event {
                    Event::Finished { .. } => self.outcome.done += 1,
                    Event::Pruned { .. } => self.outcome.pruned += 1,
                    Event::Failed { run, error, .. } => {
                        let label = self.label(run);
                        self.outcome.failed.push((label, error.clone()))
                    }
                    _ => {}
                }
                self.display.event(slot, &event, &self.outcome);
                match &event {
                    Event::Finished { run, .. }
                    | Event::Pruned { run, .. }
                    | Event::Failed { run, .. } => self.ended(run)?,
                    // Stopped on request: it resumes in a later `sweep run`, proposes nothing.
                    Event::Stopped { run, .. } => {
                        self.in_flight.remove(run);
                    }
                    _ => {}
                }
            }
            ToWriter::Claim {
                run,
                run_dir,
                reply,
            } => {
                let claim = self
                    .store
                    .claim(&run, &self.owner, self.stale_secs, &owner_alive)
                    .with_context(at)?;
                let answer = match claim {
                    None => None,
                    Some(claim) => Some((
                        self.resume(&run, &run_dir).with_context(at)?,
                        claim.batch_size,
                    )),
                };
                let _ = reply.send(answer);
            }
            ToWriter::Retry {
                run,
                batch_size,
                note,
            } => {
                self.store
                    .retry_with_batch(&run, batch_size, &note)
                    .with_context(at)?;
                let line = format!("{}: {note}", self.label(&run));
                self.display.note(&line);
            }
            ToWriter::Verdict { run, epoch, reply } => {
                let verdict = match self.runs.get(&run) {
                    Some((spec, _)) => {
                        let mut history = Stored {
                            store: self.store.as_mut(),
                            sweep: &self.sweep,
                        };
                        self.strategy
                            .verdict(spec, epoch, &mut history)
                            .with_context(|| format!("cannot judge run {run} at epoch {epoch}"))?
                    }
                    None => Verdict::Continue,
                };
                let _ = reply.send(verdict);
            }
            ToWriter::Resume {
                run,
                run_dir,
                reply,
            } => {
                let _ = reply.send(self.resume(&run, &run_dir).with_context(at)?);
            }
            ToWriter::HeldElsewhere { run } => {
                self.in_flight.remove(&run);
                self.held.insert(run);
                self.outcome.held_elsewhere = self.held.len();
            }
            ToWriter::Dispatched { run, ms } => {
                self.store.record_dispatch(&run, ms).with_context(at)?
            }
            ToWriter::Interrupted(signal) => {
                self.outcome.interrupted = true;
                match self.outcome.signal {
                    None => self.outcome.signal = Some(signal),
                    Some(_) if signal != super::signals::SIGUSR1 => {
                        self.outcome.other_signal = true
                    }
                    Some(_) => {}
                }
            }
            ToWriter::Note(line) => self.display.note(&line),
        }
        Ok(())
    }
}
