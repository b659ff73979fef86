//! A learner that fakes epochs (tests and benchmarks only): it sleeps instead of training,
//! reports deterministic metrics, and can panic, return NaN, "run out of memory" or abort
//! on chosen runs. It goes through the same worker, trainer, resume and store paths as real
//! training, so the scheduler is tested fast. Chosen by the hidden `sweep run --fake-trainer
//! JSON` flag, which puts the [`FakeSpec`] into every run's config (so a fake run's id is
//! never a real run's) and so into the job the worker gets.
use std::io::Write;
use std::path::Path;

use super::learner::{BatchProgress, Learner, Split};
use super::trainer::TrainError;
use crate::run::Confusion;
use crate::run::{FakeSpec, RunSpec};

pub struct FakeLearner {
    spec: FakeSpec,
    run: RunSpec,
    batch_size: usize,
    /// It trains alone on its device.
    alone: bool,
    lr: f64,
    /// Stands for the weights: the number of epochs trained.
    trained: usize,
}

impl FakeLearner {
    pub fn new(spec: FakeSpec, run: &RunSpec, batch_size: usize, alone: bool) -> FakeLearner {
        let lr = run.config.lr;
        FakeLearner {
            spec: FakeSpec {
                classes: spec.classes.max(2),
                ..spec
            },
            run: run.clone(),
            batch_size,
            alone,
            lr,
            trained: 0,
        }
    }

    pub fn classes(&self) -> usize {
        self.spec.classes
    }

    fn chosen(&self, list: &[String]) -> bool {
        list.iter().any(|s| self.run.label.contains(s.as_str()))
    }

    fn loss(&self, epoch: usize) -> f64 {
        let jitter = (self.run.config.seed % 7) as f64 * 0.01 + self.run.config.lr;
        1.0 / (epoch as f64 + 1.0) + jitter
    }
}

fn write_value(path: &Path, value: usize) -> Result<(), TrainError> {
    std::fs::write(path, value.to_string())
        .map_err(|e| TrainError::Candle(candle_core::Error::wrap(e)))
}

impl Learner for FakeLearner {
    fn parameter_count(&self) -> usize {
        1000
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn batches_per_epoch(&self) -> usize {
        4
    }

    fn train_epoch(
        &mut self,
        epoch: usize,
        lr: &dyn Fn(usize) -> f64,
        progress: &mut dyn FnMut(BatchProgress),
    ) -> Result<(f64, f64), TrainError> {
        self.lr = lr(0);
        if let Some(log) = &self.spec.log {
            let line = format!("{} {epoch}\n", self.run.id);
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| TrainError::Candle(candle_core::Error::wrap(e)))?;
            let _ = f.write_all(line.as_bytes());
        }
        let shared_oom = self.chosen(&self.spec.oom_shared) && !self.alone;
        if shared_oom
            || self.chosen(&self.spec.oom) && self.batch_size >= self.run.config.batch_size
        {
            return Err(TrainError::Candle(candle_core::Error::Msg(
                "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into(),
            )));
        }
        let batches = self.batches_per_epoch();
        for b in 1..=batches {
            std::thread::sleep(std::time::Duration::from_millis(
                self.spec.epoch_ms / batches as u64,
            ));
            progress(BatchProgress {
                batch: b,
                batches,
                images: b * self.batch_size,
            });
        }
        if epoch == 2 {
            if self.chosen(&self.spec.panic) {
                panic!("fake trainer panics as asked");
            }
            if self.chosen(&self.spec.abort) {
                std::process::abort();
            }
            if self.chosen(&self.spec.nan) {
                return Err(TrainError::NonFinite {
                    loss: f32::NAN,
                    epoch,
                    batch: 1,
                });
            }
        }
        self.trained = epoch;
        let loss = self.loss(epoch);
        Ok((loss, 1.0 - loss / 2.0))
    }

    fn evaluate(&mut self, _split: Split) -> Result<(f64, Confusion), TrainError> {
        let k = self.spec.classes;
        let mut c = Confusion::new(k);
        // Ten images a class; more right the longer it trained.
        let right = (5 + self.trained).min(10);
        for t in 0..k {
            for i in 0..10 {
                c.add(t, if i < right { t } else { (t + 1) % k });
            }
        }
        Ok((self.loss(self.trained.max(1)) + 0.05, c))
    }

    fn save_weights(&self, path: &Path) -> Result<(), TrainError> {
        write_value(path, self.trained)
    }

    fn load_weights(&mut self, path: &Path) -> Result<(), TrainError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TrainError::Candle(candle_core::Error::wrap(e)))?;
        self.trained = text
            .trim()
            .parse()
            .map_err(|e| TrainError::Candle(candle_core::Error::wrap(e)))?;
        Ok(())
    }

    fn save_optimizer(&self, path: &Path) -> Result<(), TrainError> {
        write_value(path, self.trained)
    }

    fn load_optimizer(&mut self, _path: &Path) -> Result<(), TrainError> {
        Ok(())
    }
}
