//! `sweep submit` through the binary: the batch script it prints (`--dry-run`) or pipes to
//! sbatch (a script on PATH standing in for it), and the refusals: SQLite for an array, no
//! --runs-dir with PostgreSQL, a missing or failing sbatch.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{copy_classes, text};

const SWEEP: &str = r#"
name = "tiny"
[data]
train = "train"
image_size = [8, 8]
channels = 1
[train]
backbone = "cnn"
epochs = 2
[grid]
lr = [0.1, 0.01]
"#;

/// A folder with the sweep file `tiny sweep.toml` (a space in its name) and its images.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_classes("train", &dir.path().join("train"), 2, 5);
    std::fs::write(dir.path().join("tiny sweep.toml"), SWEEP).unwrap();
    dir
}

/// `sweep submit` in `dir` with PATH set to `path` (where sbatch is looked up) if given, and
/// no SWEEP_DB or SWEEP_RUNS_DIR from the environment.
fn submit(dir: &Path, args: &[&str], path: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sweep"));
    cmd.arg("submit")
        .args(args)
        .current_dir(dir)
        .env_remove("SWEEP_DB")
        .env_remove("SWEEP_RUNS_DIR");
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    cmd.output().unwrap()
}

/// A folder holding an executable `sbatch` shell script with `body`.
fn fake_sbatch(dir: &Path, body: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("sbatch");
    // PATH holds only this folder when sweep runs: the script finds `cat` by itself.
    std::fs::write(&script, format!("#!/bin/sh\nPATH=/usr/bin:/bin\n{body}\n")).unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    bin
}

#[test]
fn dry_run_prints_an_array_script_that_execs_sweep_run_on_the_shared_store() {
    let dir = fixture();
    let root = dir.path().canonicalize().unwrap();
    let url = "postgres://me:secret@dbhost/sweeps";
    let out = submit(
        &root,
        &[
            "tiny sweep.toml",
            "--db",
            url,
            "--runs-dir",
            "shared runs",
            "--array",
            "4",
            "--time",
            "0:30:00",
            "--dry-run",
            "--",
            "--mem",
            "2G",
            "--comment=it's #1",
        ],
        None,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let runs = root.join("shared runs");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "#!/bin/bash");
    for want in [
        "#SBATCH --job-name=sweep-tiny",
        "#SBATCH --array=0-3",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --time=0:30:00",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        "#SBATCH --signal=B:USR1@120",
        &format!(
            "#SBATCH --output={}/tiny/slurm-%A_%a.out",
            runs.display().to_string().replace(' ', "\\ ")
        ),
        "#SBATCH --mem 2G",
        r"#SBATCH --comment=it\'s\ \#1",
    ] {
        assert!(lines.contains(&want), "no {want:?} in\n{stdout}");
    }
    let exec = format!(
        "exec {} run '{}' --db {url} --runs-dir '{}'",
        env!("CARGO_BIN_EXE_sweep"),
        root.join("tiny sweep.toml").display(),
        runs.display()
    );
    assert_eq!(lines.last(), Some(&exec.as_str()), "{stdout}");
    assert!(
        stderr.contains("holds a password") && stderr.contains("~/.pgpass"),
        "{stderr}"
    );
    assert!(!runs.exists(), "a dry run created {}", runs.display());
}

#[test]
fn an_array_on_sqlite_and_postgres_without_a_runs_dir_are_refused() {
    let dir = fixture();
    let out = submit(
        dir.path(),
        &["tiny sweep.toml", "--array", "2", "--dry-run"],
        None,
    );
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--array 2 with the SQLite file runs/sweep.db")
            && stderr.contains("--db postgres://")
            && stderr.contains("--array 1"),
        "{stderr}"
    );
    let out = submit(
        dir.path(),
        &[
            "tiny sweep.toml",
            "--db",
            "postgres://me@dbhost/sweeps",
            "--dry-run",
        ],
        None,
    );
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("give --runs-dir DIR"), "{stderr}");
    // The sweep file is checked first, as `sweep run` would.
    std::fs::remove_dir_all(dir.path().join("train")).unwrap();
    let out = submit(dir.path(), &["tiny sweep.toml", "--dry-run"], None);
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("train"), "{stderr}");
}

#[test]
fn the_script_goes_to_sbatch_on_stdin_and_its_job_id_is_printed() {
    let dir = fixture();
    let got = dir.path().join("got.sh");
    let bin = fake_sbatch(
        dir.path(),
        &format!(
            "[ \"$1\" = --parsable ] || exit 9\ncat > '{}'\necho '4711;cluster'",
            got.display()
        ),
    );
    let out = submit(
        dir.path(),
        &["tiny sweep.toml", "--gpus-per-task", "0"],
        Some(&bin),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "4711\n");
    assert!(
        stderr.contains("submitted sweep tiny as Slurm job 4711 (1 task)"),
        "{stderr}"
    );
    let dry = submit(
        dir.path(),
        &["tiny sweep.toml", "--gpus-per-task", "0", "--dry-run"],
        None,
    );
    assert_eq!(std::fs::read_to_string(&got).unwrap(), text(&dry).0);
    // One task on SQLite: the output folder beside the database exists for Slurm.
    assert!(dir.path().join("runs/tiny").is_dir());
    assert!(!text(&dry).0.contains("--gres"), "{}", text(&dry).0);
}

#[test]
fn a_missing_or_failing_sbatch_is_said_with_its_message() {
    let dir = fixture();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = submit(dir.path(), &["tiny sweep.toml"], Some(&empty));
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot start `sbatch`") && stderr.contains("on PATH"),
        "{stderr}"
    );
    let bin = fake_sbatch(
        dir.path(),
        "cat >/dev/null\necho 'sbatch: error: invalid partition specified: gpux' >&2\nexit 1",
    );
    let out = submit(dir.path(), &["tiny sweep.toml"], Some(&bin));
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`sbatch --parsable` failed")
            && stderr.contains("invalid partition specified: gpux"),
        "{stderr}"
    );
}
