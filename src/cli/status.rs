//! `sweep status`: a sweep's runs, their states, devices, attempts and stored epochs; for a
//! running run also the host and Slurm job of the `sweep run` training it.
use std::process::ExitCode;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;
use serde_json::json;

use super::StoredSweep;
use crate::report::text::for_terminal;
use crate::report::to_json_string;
use crate::run::RunStatus;
use crate::scheduler;
use crate::store;
use crate::store::RunRow;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub stored: StoredSweep,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Whether a `running` run's owner is still at it: its process lives (on this host) and its
/// heartbeat is fresh. `None` for runs that are not running.
fn owner_alive(r: &RunRow) -> Option<bool> {
    if r.status != RunStatus::Running {
        return None;
    }
    let fresh = r
        .heartbeat_age
        .is_some_and(|age| age < scheduler::DEFAULT_STALE_SECS as f64);
    Some(fresh && r.owner.as_deref().is_some_and(scheduler::owner_alive))
}

/// Who trains a `running` run: its owner's host and Slurm job (`None` for other runs).
fn trained_by(r: &RunRow) -> Option<scheduler::Owner> {
    if r.status != RunStatus::Running {
        return None;
    }
    r.owner.as_deref().and_then(scheduler::Owner::parse)
}

/// The device column: the device, and for a running run where: `cuda:0 on node3 (job 12_3)`.
fn shown_device(r: &RunRow) -> String {
    let device = r.device.clone().unwrap_or_default();
    match trained_by(r) {
        Some(o) => {
            let job = o.job.map(|j| format!(" (job {j})")).unwrap_or_default();
            format!("{device} on {}{job}", o.host)
                .trim_start()
                .to_string()
        }
        None => device,
    }
}

/// The status as shown: a run whose owner died (a crash, a full disk, kill -9) is not
/// "running", and a run removed from the sweep file says so.
fn shown_status(r: &RunRow) -> String {
    let mut s = match owner_alive(r) {
        Some(false) => "abandoned (its sweep run is gone; resumes on the next)".to_string(),
        _ => r.status.to_string(),
    };
    if r.retired {
        s += " (not in the sweep file)";
    }
    s
}

/// Stored epoch numbers as ranges: 1-4,6.
fn ranges(epochs: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < epochs.len() {
        let mut j = i;
        while j + 1 < epochs.len() && epochs[j + 1] == epochs[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            epochs[i].to_string()
        } else {
            format!("{}-{}", epochs[i], epochs[j])
        });
        i = j + 1;
    }
    out.join(",")
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = store::open_read_only(&args.stored.db.db)?;
    let sweep = store.sweep(args.stored.sweep.as_deref())?;
    let runs = store.runs(sweep.id)?;
    let mut rows = Vec::new();
    for r in &runs {
        let epochs: Vec<usize> = store.epochs(&r.id)?.iter().map(|e| e.epoch).collect();
        rows.push((r, epochs));
    }
    match args.format {
        Format::Json => {
            let list: Vec<_> = rows
                .iter()
                .map(|(r, epochs)| {
                    let by = trained_by(r);
                    json!({
                        "run_id": r.id, "index": r.index, "label": r.label, "status": r.status,
                        "device": r.device, "attempts": r.attempts, "error": r.error,
                        "epochs": epochs, "batch_size": r.batch_size, "note": r.note, "owner": r.owner,
                        "failure_kind": r.failure, "stop_reason": r.stop_reason,
                        "owner_alive": owner_alive(r), "retired": r.retired,
                        "host": by.as_ref().map(|o| o.host.clone()),
                        "slurm_job": by.and_then(|o| o.job),
                    })
                })
                .collect();
            println!("{}", to_json_string(&serde_json::Value::from(list)));
        }
        Format::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(vec![
                "#",
                "run",
                "label",
                "status",
                "device",
                "attempts",
                "epochs",
                "note / error",
            ]);
            for (r, epochs) in &rows {
                let note = match r.status {
                    RunStatus::Pruned => r.stop_reason.clone(),
                    _ => r.error.clone().or_else(|| r.note.clone()),
                }
                .unwrap_or_default();
                t.add_row(vec![
                    r.index.to_string(),
                    r.id.clone(),
                    for_terminal(&r.label),
                    shown_status(r),
                    for_terminal(&shown_device(r)),
                    r.attempts.to_string(),
                    ranges(epochs),
                    for_terminal(note.lines().next().unwrap_or("")),
                ]);
            }
            let count = |s: RunStatus| rows.iter().filter(|(r, _)| r.status == s).count();
            let abandoned = rows
                .iter()
                .filter(|(r, _)| owner_alive(r) == Some(false))
                .count();
            let mut extra = String::new();
            for (n, what) in [
                (abandoned, "abandoned"),
                (count(RunStatus::Pruned), "pruned"),
            ] {
                if n > 0 {
                    extra += &format!(", {n} {what}");
                }
            }
            println!(
                "sweep {}: {} runs - {} done, {} running, {} queued, {} stopped, {} failed{extra}\n{t}",
                for_terminal(&sweep.name),
                rows.len(),
                count(RunStatus::Done),
                count(RunStatus::Running) - abandoned,
                count(RunStatus::Queued),
                count(RunStatus::Stopped),
                count(RunStatus::Failed),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn epoch_ranges() {
        assert_eq!(super::ranges(&[1, 2, 3, 5, 7, 8]), "1-3,5,7-8");
        assert_eq!(super::ranges(&[]), "");
    }
}
