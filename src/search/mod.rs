//! The search stage, between the sweep file and the scheduler: which runs to train and
//! which to stop early.
//!
//! A sweep's method proposes its runs: `grid` enumerates the `[grid]` lists, `random` draws
//! `trials` runs from lists and distributions ([`space`], [`random`]). A [`Strategy`] then
//! watches the stored epochs, may stop a run at an epoch boundary (ASHA, [`asha`]) and may
//! propose more runs as runs end. Every decision is a pure function of the stored history, so
//! a killed sweep run again decides the same. A new strategy is one file here plus one line
//! in `Sweep::strategy`.
pub mod asha;
pub mod random;
pub mod space;

pub use asha::{Asha, Mode};
pub use space::Domain;

pub use crate::run::Verdict;
use crate::run::{EpochSummary, RunSpec};

/// The stored epochs a strategy may look at.
pub trait History {
    /// The summaries of `epoch` of every run of the sweep that stored it, in the order they
    /// were stored.
    fn arrivals(&mut self, epoch: usize) -> anyhow::Result<Vec<(String, EpochSummary)>>;
}

/// Decides, from the stored history, whether a run trains on at its rungs.
pub trait Strategy: Send {
    /// Epochs after which `run` waits for a verdict before training on (none: never judged).
    fn rungs(&self, run: &RunSpec) -> Vec<usize>;
    /// The verdict on `run` after `epoch`, one of its rungs, whose summary is stored.
    fn verdict(
        &self,
        run: &RunSpec,
        epoch: usize,
        history: &mut dyn History,
    ) -> anyhow::Result<Verdict>;
    /// More runs to train, asked each time a run ends (finished, pruned or failed): the
    /// scheduler's queue grows while the sweep runs, and the sweep ends only when nothing is
    /// queued, nothing trains and nothing more is proposed. Runs already known are ignored.
    /// Grid, random search and ASHA propose their runs up front, so none here.
    fn propose(
        &mut self,
        _ended: &RunSpec,
        _history: &mut dyn History,
    ) -> anyhow::Result<Vec<RunSpec>> {
        Ok(Vec::new())
    }
}

/// Train every run to the end (grid and random search without early stopping).
pub struct Exhaustive;

impl Strategy for Exhaustive {
    fn rungs(&self, _run: &RunSpec) -> Vec<usize> {
        Vec::new()
    }

    fn verdict(&self, _: &RunSpec, _: usize, _: &mut dyn History) -> anyhow::Result<Verdict> {
        Ok(Verdict::Continue)
    }
}

impl Strategy for Asha {
    fn rungs(&self, run: &RunSpec) -> Vec<usize> {
        Asha::rungs(self, run.config.epochs)
    }

    fn verdict(
        &self,
        run: &RunSpec,
        epoch: usize,
        history: &mut dyn History,
    ) -> anyhow::Result<Verdict> {
        let arrivals = history.arrivals(epoch)?;
        // Only the runs stored before this one (and this one) count: a re-decision after a
        // crash sees what the first decision saw.
        let Some(me) = arrivals.iter().position(|(id, _)| *id == run.id) else {
            return Ok(Verdict::Continue);
        };
        let upto: Vec<EpochSummary> = arrivals[..=me].iter().map(|(_, s)| s.clone()).collect();
        Ok(Asha::verdict(self, epoch, &upto))
    }
}
