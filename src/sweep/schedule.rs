//! `[schedule.NAME]` tables: the settings of each learning-rate schedule a run may use
//! (grid key `schedule`), over [`Schedule::default_for`]'s defaults.
use std::collections::BTreeMap;

use toml::{Table, Value};

use super::parse::Problems;
use super::values::got;
use crate::run::{Schedule, SCHEDULES};

/// The settings each schedule takes, by name.
fn settings(name: &str) -> &'static [&'static str] {
    match name {
        "step" => &["step_size", "gamma"],
        "cosine" => &["warmup_epochs", "warmup_start", "min_lr"],
        "cyclic" => &["base_lr", "max_lr", "step_epochs"],
        "one_cycle" => &["pct_start", "div_factor", "final_div_factor"],
        _ => &[],
    }
}

/// Every schedule with its settings: the defaults, overridden by the file's tables.
pub(super) fn schedules(root: &Table, p: &mut Problems) -> BTreeMap<String, Schedule> {
    let mut out: BTreeMap<String, Schedule> = SCHEDULES
        .iter()
        .filter_map(|n| Some((n.to_string(), Schedule::default_for(n)?)))
        .collect();
    // A value that is not a table was reported as a misplaced grid key.
    let Some(section) = root.get("schedule").and_then(Value::as_table) else {
        return out;
    };
    p.unknown_keys("schedule", section, &SCHEDULES);
    for (name, table) in section {
        let Some(default) = Schedule::default_for(name) else {
            continue;
        };
        let prefix = format!("schedule.{name}");
        let Some(table) = table.as_table() else {
            p.add(
                prefix,
                format!(
                    "expected a table of settings like [schedule.{name}] with {}; got {}",
                    settings(name).join(", "),
                    got(table)
                ),
            );
            continue;
        };
        if name == "constant" && !table.is_empty() {
            p.add(prefix, "the constant schedule has no settings");
            continue;
        }
        p.unknown_keys(&prefix, table, settings(name));
        let mut json = serde_json::to_value(&default).unwrap_or_default();
        let mut ok = true;
        for (key, v) in table
            .iter()
            .filter(|(k, _)| settings(name).contains(&k.as_str()))
        {
            let number = match v {
                Value::Integer(i) => serde_json::json!(i),
                Value::Float(f) => serde_json::json!(f),
                other => {
                    p.add(
                        format!("{prefix}.{key}"),
                        format!("expected a number, got {}", got(other)),
                    );
                    ok = false;
                    continue;
                }
            };
            json[key.as_str()] = number;
        }
        let schedule = match serde_json::from_value::<Schedule>(json) {
            Ok(s) if ok => s,
            Ok(_) => continue,
            Err(_) => {
                // Only a whole-number setting can fail here (the others take any number).
                p.add(
                    prefix,
                    "step_size and warmup_epochs take a whole number of epochs, e.g. 10",
                );
                continue;
            }
        };
        let problems = schedule.problems();
        for (key, problem) in &problems {
            p.add(format!("{prefix}.{key}"), problem.clone());
        }
        if problems.is_empty() {
            out.insert(name.clone(), schedule);
        }
    }
    out
}
