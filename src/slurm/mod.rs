//! Slurm, seen from `sweep`: the job a `sweep run` runs in (read once from the environment
//! Slurm gives a batch script), the line that says so at start, and the two Slurm commands
//! sweep calls: `sbatch --parsable` to submit ([`submit`]) and `scontrol requeue` after
//! SIGUSR1 ([`requeue`]). The batch script itself is [`script`].
use std::io::Write;
use std::process::{Command, Stdio};

use crate::scheduler::signals::SIGUSR1;

pub mod script;

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("cannot start `{program}` ({source}): is Slurm installed here and `{program}` on PATH? Submit from a login node of the cluster")]
    Missing {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`sbatch --parsable` printed no job id (stdout: {0:?})")]
    NoJobId(String),
}

/// The Slurm job this process runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmJob {
    /// `SLURM_JOB_ID`: this job's own id (an array task has one of its own, but one task of
    /// each array carries the array's id, which `scontrol requeue` takes as the whole array).
    pub id: String,
    /// How the job is shown, named in run owners and requeued: `12_3` for task 3 of array
    /// job 12 (that task alone, whatever its own id), else the job id.
    pub label: String,
    /// `SLURM_JOB_GPUS`: the global indices of the GPUs Slurm gave the job.
    pub job_gpus: Option<String>,
    /// `CUDA_VISIBLE_DEVICES` as Slurm set it: the GPUs the CUDA driver shows this process.
    pub cuda_visible: Option<String>,
}

impl SlurmJob {
    /// The job from this process's environment; `None` outside Slurm (no `SLURM_JOB_ID`).
    pub fn from_env() -> Option<SlurmJob> {
        SlurmJob::from_vars(|name| std::env::var(name).ok())
    }

    /// The job from the variables `var` returns (the environment, or a test's).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<SlurmJob> {
        let set = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let id = set("SLURM_JOB_ID")?;
        let label = match (set("SLURM_ARRAY_JOB_ID"), set("SLURM_ARRAY_TASK_ID")) {
            (Some(array), Some(task)) => format!("{array}_{task}"),
            _ => id.clone(),
        };
        Some(SlurmJob {
            id,
            label,
            job_gpus: set("SLURM_JOB_GPUS"),
            cuda_visible: set("CUDA_VISIBLE_DEVICES"),
        })
    }

    /// The GPUs Slurm gave the job, as a list: `SLURM_JOB_GPUS` (global indices, the same on
    /// every task of a node), else `CUDA_VISIBLE_DEVICES`, else `none`.
    pub fn gpus(&self) -> &str {
        self.job_gpus
            .as_deref()
            .or(self.cuda_visible.as_deref())
            .unwrap_or("none")
    }

    /// The one line `sweep run` prints at start under Slurm (tests and users grep it; keep its
    /// shape): `slurm: job 12_3 on node1, GPUs 2 (SLURM_JOB_GPUS=2, CUDA_VISIBLE_DEVICES=2);
    /// trains on cuda:0`. `trains_on` says where, and why the CPU if so.
    pub fn start_line(&self, host: &str, trains_on: &str) -> String {
        let mut vars = Vec::new();
        if let Some(g) = &self.job_gpus {
            vars.push(format!("SLURM_JOB_GPUS={g}"));
        }
        if let Some(c) = &self.cuda_visible {
            vars.push(format!("CUDA_VISIBLE_DEVICES={c}"));
        }
        let vars = if vars.is_empty() {
            "no GPU given".to_string()
        } else {
            vars.join(", ")
        };
        format!(
            "slurm: job {} on {host}, GPUs {} ({vars}); {trains_on}",
            self.label,
            self.gpus()
        )
    }
}

/// Whether a `sweep run` stopped by a signal should requeue its Slurm job: after SIGUSR1
/// alone (the time limit is near, or preemption), while runs of the sweep are left (`None`:
/// unknown, the store could not be read: requeue, since the next start finds out).
pub fn should_requeue(first_signal: Option<i32>, other_signal: bool, left: Option<usize>) -> bool {
    first_signal == Some(SIGUSR1) && !other_signal && left != Some(0)
}

/// `scontrol requeue JOB`: the job goes back to the queue and starts again later, on any
/// node, where its `sweep run` resumes the runs left.
pub fn requeue(job_id: &str) -> Result<(), SlurmError> {
    let out = Command::new("scontrol")
        .args(["requeue", job_id])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SlurmError::Missing {
            program: "scontrol",
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(failed(format!("scontrol requeue {job_id}"), &out))
}

/// Pipe `script` to `sbatch --parsable` and return the job id it printed.
pub fn submit(script: &str) -> Result<String, SlurmError> {
    let mut child = Command::new("sbatch")
        .arg("--parsable")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SlurmError::Missing {
            program: "sbatch",
            source,
        })?;
    // sbatch reads the whole script before it answers; a write error shows in its status.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| SlurmError::Missing {
            program: "sbatch",
            source,
        })?;
    if !out.status.success() {
        return Err(failed("sbatch --parsable".into(), &out));
    }
    job_id(&String::from_utf8_lossy(&out.stdout))
}

/// `--parsable` prints `ID` or `ID;CLUSTER`, perhaps after warnings on other lines.
fn job_id(stdout: &str) -> Result<String, SlurmError> {
    stdout
        .lines()
        .rev()
        .map(|l| l.split(';').next().unwrap_or("").trim())
        .find(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .ok_or_else(|| SlurmError::NoJobId(stdout.to_string()))
}

fn failed(command: String, out: &std::process::Output) -> SlurmError {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    SlurmError::Failed {
        command,
        status: out.status.to_string(),
        stderr: if stderr.is_empty() {
            "(no message)".into()
        } else {
            stderr
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn reads_array_tasks_plain_jobs_and_no_job() {
        let task = SlurmJob::from_vars(vars(&[
            ("SLURM_JOB_ID", "15"),
            ("SLURM_ARRAY_JOB_ID", "12"),
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("CUDA_VISIBLE_DEVICES", "2"),
            ("SLURM_JOB_GPUS", "2"),
        ]))
        .unwrap();
        assert_eq!((task.id.as_str(), task.label.as_str()), ("15", "12_3"));
        assert_eq!(
            task.start_line("node1", "trains on cuda:0"),
            "slurm: job 12_3 on node1, GPUs 2 (SLURM_JOB_GPUS=2, CUDA_VISIBLE_DEVICES=2); trains on cuda:0"
        );
        let plain = SlurmJob::from_vars(vars(&[
            ("SLURM_JOB_ID", "99"),
            ("CUDA_VISIBLE_DEVICES", "0,1"),
        ]))
        .unwrap();
        assert_eq!((plain.id.as_str(), plain.label.as_str()), ("99", "99"));
        assert_eq!(plain.gpus(), "0,1");
        let cpu = SlurmJob::from_vars(vars(&[("SLURM_JOB_ID", "7")])).unwrap();
        assert_eq!(
            cpu.start_line("n", "trains on the CPU: no CUDA driver"),
            "slurm: job 7 on n, GPUs none (no GPU given); trains on the CPU: no CUDA driver"
        );
        assert_eq!(SlurmJob::from_vars(vars(&[("SLURM_JOB_ID", " ")])), None);
        assert_eq!(SlurmJob::from_vars(vars(&[])), None);
    }

    #[test]
    fn requeues_after_sigusr1_alone_while_runs_are_left() {
        let usr1 = Some(SIGUSR1);
        assert!(should_requeue(usr1, false, Some(3)));
        assert!(should_requeue(usr1, false, None));
        assert!(!should_requeue(usr1, false, Some(0)));
        // scancel (SIGTERM) after the warning: the user wants the job gone.
        assert!(!should_requeue(usr1, true, Some(3)));
        assert!(!should_requeue(
            Some(crate::scheduler::signals::SIGTERM),
            false,
            Some(3)
        ));
        assert!(!should_requeue(None, false, Some(3)));
    }

    #[test]
    fn reads_the_job_id_sbatch_printed() {
        assert_eq!(job_id("4711\n").unwrap(), "4711");
        assert_eq!(job_id("4711;cluster2\n").unwrap(), "4711");
        assert_eq!(job_id("sbatch: warning: something\n88\n").unwrap(), "88");
        assert!(job_id("Submitted batch job\n").is_err());
    }
}
