//! Resume state: after every epoch the trainer writes the weights, the optimizer state and
//! the epoch history to `<run dir>/resume/` *before* it reports the epoch, so a run killed at
//! any moment continues from its last finished epoch with no gap and no repeat.
//!
//! `state.json` is replaced atomically (write, rename) and names the weight files of its
//! epoch. Making it durable (fsync of the files and the folder) runs in the background while
//! the next epoch starts; the epoch is reported only once that is done, and the files of
//! older epochs are removed only then.
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::event::EpochRecord;
use super::strategy::EpochSummary;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResumeState {
    /// The last finished epoch (1-based).
    pub epoch: usize,
    /// Every finished epoch, as reported; the coordinator stores any it has not stored yet.
    pub records: Vec<EpochRecord>,
    /// The learning rate for the next epoch.
    pub next_lr: f64,
    /// Set when training is over (all epochs, or early stopping) and only the final
    /// evaluation remains.
    pub stop_reason: Option<String>,
    /// The batch size the run trains with (it can differ from the config after an OOM retry).
    pub batch_size: usize,
    pub weights: String,
    pub optimizer: String,
    /// The database and the data it was trained with; `None` in states saved before this
    /// was recorded (accepted as they are).
    #[serde(default)]
    pub provenance: Option<Provenance>,
}

/// What a saved state belongs to: the database that stores its epochs and the data it was
/// trained on. A run resumes only from a state whose provenance matches (issue 8): a deleted
/// database or changed images start it over.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// `Storage::id` of the database.
    pub store: String,
    /// `DataSpec::fingerprint` of the data folders.
    pub data: String,
}

impl Provenance {
    /// Why a state with provenance `saved` cannot be resumed under `self`, if it cannot.
    pub fn mismatch(&self, saved: &Provenance) -> Option<&'static str> {
        if saved.store != self.store {
            Some("its saved state belongs to another (or a deleted) database")
        } else if saved.data != self.data {
            Some("its images changed since its state was saved")
        } else {
            None
        }
    }
}

impl ResumeState {
    pub fn history(&self) -> Vec<EpochSummary> {
        self.records.iter().map(|r| r.summary.clone()).collect()
    }

    pub fn dir(run_dir: &Path) -> PathBuf {
        run_dir.join("resume")
    }

    fn file(run_dir: &Path) -> PathBuf {
        Self::dir(run_dir).join("state.json")
    }

    /// File names for the weights and optimizer state of `epoch`.
    pub fn files_for(epoch: usize) -> (String, String) {
        (
            format!("weights-{epoch:05}.safetensors"),
            format!("optimizer-{epoch:05}.safetensors"),
        )
    }

    /// The saved state of a run, if any. A missing file is `Ok(None)`; a corrupt one is an
    /// error (the caller starts the run over).
    pub fn load(run_dir: &Path) -> std::io::Result<Option<ResumeState>> {
        match std::fs::read_to_string(Self::file(run_dir)) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Atomically make this the run's state (its weight files must already be written).
    /// The returned [`Durable`] finishes the job in the background: fsync, then removal of
    /// older epochs' files. Wait for it before reporting the epoch.
    pub fn commit(&self, run_dir: &Path) -> std::io::Result<Durable> {
        let dir = Self::dir(run_dir);
        let tmp = dir.join("state.json.tmp");
        std::fs::File::create(&tmp)?.write_all(
            serde_json::to_string(self)
                .map_err(std::io::Error::other)?
                .as_bytes(),
        )?;
        let file = Self::file(run_dir);
        std::fs::rename(&tmp, &file)?;
        let keep = [
            self.weights.clone(),
            self.optimizer.clone(),
            Self::swa_file(self.epoch),
        ];
        let mut files = vec![dir.join(&keep[0]), dir.join(&keep[1]), file];
        // The SWA average of this epoch, when the run averages (written before the commit).
        files.extend(Some(dir.join(&keep[2])).filter(|f| f.exists()));
        Ok(Durable(std::thread::spawn(move || {
            for f in files.iter().chain(std::iter::once(&dir)) {
                std::fs::File::open(f)?.sync_all()?;
            }
            for entry in std::fs::read_dir(&dir)?.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".safetensors") && !keep.contains(&name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            Ok(())
        })))
    }

    /// The SWA running average kept with epoch `epoch`'s state (stochastic weight averaging).
    pub fn swa_file(epoch: usize) -> String {
        format!("swa-{epoch}.safetensors")
    }

    /// Forget any saved state (a run that starts over).
    pub fn clear(run_dir: &Path) -> std::io::Result<()> {
        match std::fs::remove_dir_all(Self::dir(run_dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// A committed state on its way to disk.
pub struct Durable(std::thread::JoinHandle<std::io::Result<()>>);

impl Durable {
    pub fn wait(self) -> std::io::Result<()> {
        self.0
            .join()
            .map_err(|_| std::io::Error::other("the fsync thread panicked"))?
    }
}
