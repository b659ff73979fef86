//! `sweep submit FILE`: check the sweep, write a Slurm batch script whose tasks each run
//! `sweep run FILE` on the GPUs Slurm gives them against one shared store, and hand it to
//! `sbatch --parsable` (or print it, `--dry-run`).
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::DbArg;
use crate::slurm::script::BatchScript;
use crate::store::Location;
use crate::sweep::Sweep;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sweep file (TOML).
    pub file: PathBuf,
    #[command(flatten)]
    pub db: DbArg,
    /// Tasks of the array job: each claims runs from the shared store until none is left
    /// (more than 1 needs --db postgres://...).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub array: u32,
    /// GPUs per task (--gres=gpu:G); 0 for tasks that train on the CPU.
    #[arg(long, default_value_t = 1, value_name = "G")]
    pub gpus_per_task: u32,
    /// CPU cores per task (default: Slurm's); the data loader of each run needs one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus_per_task: Option<u32>,
    /// Time limit per task, as sbatch takes it (4:00:00, 1-00:00:00); default: the
    /// partition's. Tasks requeue themselves when it nears while runs are left.
    #[arg(long, value_name = "T")]
    pub time: Option<String>,
    /// Partition (default: the cluster's).
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,
    /// Job name (default: sweep-<sweep name>).
    #[arg(long, value_name = "NAME")]
    pub job_name: Option<String>,
    /// Print the batch script instead of submitting it.
    #[arg(long)]
    pub dry_run: bool,
    /// More sbatch options after `--`, each its own #SBATCH line: `-- --mem=16G --qos=high`.
    #[arg(last = true, value_name = "SBATCH_ARGS")]
    pub sbatch_args: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // The same problems `sweep run` would find, found now rather than in the queue.
    let sweep = Sweep::from_file_checked(&args.file)?;
    if let (Location::Sqlite(path), n) = (&args.db.db, args.array) {
        if n > 1 {
            anyhow::bail!(
                "--array {n} with the SQLite file {}: SQLite on a filesystem several nodes share is unsafe (its locks do not hold over NFS or Lustre); give --db postgres://user@host/dbname (or SWEEP_DB), or submit one task (--array 1)",
                path.display()
            );
        }
    }
    let runs_dir = absolute(&args.db.runs_dir()?, "--runs-dir")?;
    let file = absolute(&args.file, "the sweep file")?;
    let db = match &args.db.db {
        Location::Sqlite(path) => absolute(path, "--db")?.to_string_lossy().into_owned(),
        Location::Postgres(url) => {
            if args.db.db.to_string() != *url {
                crate::say!("warning: the --db URL holds a password, and Slurm keeps a copy of the batch script that others may read (scontrol write batch_script): put the password in ~/.pgpass, or export PGPASSWORD before submitting, and leave it out of the URL");
            }
            url.clone()
        }
    };
    let exe = std::env::current_exe().context("cannot find the sweep executable")?;
    let command: Vec<String> = [
        exe.to_string_lossy().as_ref(),
        "run",
        &file.to_string_lossy(),
        "--db",
        &db,
        "--runs-dir",
        &runs_dir.to_string_lossy(),
    ]
    .map(str::to_string)
    .into();
    let output_dir = runs_dir.join(&sweep.name);
    let job_name = args
        .job_name
        .clone()
        .unwrap_or_else(|| format!("sweep-{}", sweep.name));
    let script = BatchScript {
        job_name: &job_name,
        tasks: args.array as usize,
        gpus_per_task: args.gpus_per_task as usize,
        cpus_per_task: args.cpus_per_task.map(|n| n as usize),
        time: args.time.as_deref(),
        partition: args.partition.as_deref(),
        output_dir: &output_dir,
        extra: &args.sbatch_args,
        command: &command,
    }
    .render()?;
    let runs = sweep.runs().len();
    if args.array as usize > runs {
        crate::say!(
            "note: {} tasks for {runs} runs: {} of them will find nothing to claim",
            args.array,
            args.array as usize - runs
        );
    }
    if args.dry_run {
        print!("{script}");
        return Ok(ExitCode::SUCCESS);
    }
    // Slurm opens each task's output file there, and fails the task if it cannot.
    std::fs::create_dir_all(&output_dir)
        .with_context(|| format!("cannot create {} for the tasks' output and checkpoints (--runs-dir must be writable, on a filesystem every node sees)", output_dir.display()))?;
    let id = crate::slurm::submit(&script).context("cannot submit the sweep to Slurm")?;
    println!("{id}");
    let pattern = if args.array > 1 { "_*" } else { "" };
    crate::say!(
        "submitted sweep {} as Slurm job {id} ({} task{}); output in {}/slurm-{id}{pattern}.out; follow it with `sweep status --db {}`",
        sweep.name,
        args.array,
        if args.array == 1 { "" } else { "s" },
        output_dir.display(),
        args.db.db,
    );
    Ok(ExitCode::SUCCESS)
}

/// `path` from the folder sweep was started in: the tasks may start elsewhere.
fn absolute(path: &Path, what: &str) -> anyhow::Result<PathBuf> {
    std::path::absolute(path)
        .with_context(|| format!("cannot make {what} {} absolute", path.display()))
}
