//! The `[search]` table: how the runs are chosen (`grid` or `random`) and whether ASHA stops
//! the unpromising ones early.
use toml::{Table, Value};

use super::grid::MAX_RUNS;
use super::parse::{closest_key, Problems};
use crate::run::Monitor;
use crate::search::{Asha, Mode};

/// How a sweep's runs are chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// Every combination of the `[grid]` lists.
    Grid,
    /// `trials` draws from the `[grid]` lists and distributions, reproducible from `seed`.
    Random { trials: usize, seed: u64 },
}

/// `[search]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Search {
    pub method: Method,
    pub asha: Option<Asha>,
}

impl Default for Search {
    fn default() -> Search {
        Search {
            method: Method::Grid,
            asha: None,
        }
    }
}

const SEARCH_KEYS: [&str; 4] = ["method", "trials", "seed", "asha"];
const ASHA_KEYS: [&str; 4] = ["metric", "mode", "min_epochs", "reduction_factor"];

fn whole(t: &Table, key: &str, prefix: &str, min: i64, p: &mut Problems) -> Option<i64> {
    match t.get(key)? {
        Value::Integer(i) if *i >= min => Some(*i),
        v => {
            p.add(
                format!("{prefix}.{key}"),
                format!("expected a whole number >= {min}, got {v}"),
            );
            None
        }
    }
}

pub(super) fn parse(root: &Table, p: &mut Problems) -> Search {
    let mut search = Search::default();
    let Some(table) = p.table(root, "search", "") else {
        return search;
    };
    p.unknown_keys("search", table, &SEARCH_KEYS);
    let trials = whole(table, "trials", "search", 1, p);
    let trials = match trials {
        Some(t) if t > MAX_RUNS as i64 => {
            p.add(
                "search.trials",
                format!("{t} is more than {MAX_RUNS} runs; draw fewer (raising trials later keeps the first draws)"),
            );
            None
        }
        t => t,
    };
    let seed = whole(table, "seed", "search", 0, p).unwrap_or(0) as u64;
    match table.get("method") {
        None | Some(Value::String(_)) => {}
        Some(v) => p.add(
            "search.method",
            format!("expected \"grid\" or \"random\", got {v}"),
        ),
    }
    match table
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("grid")
    {
        "grid" => {
            for key in ["trials", "seed"] {
                if table.contains_key(key) {
                    p.add(
                        format!("search.{key}"),
                        "only random search draws trials; set method = \"random\" or remove it",
                    );
                }
            }
        }
        "random" => match trials {
            Some(t) => {
                search.method = Method::Random {
                    trials: t as usize,
                    seed,
                }
            }
            None if !table.contains_key("trials") => p.add(
                "search.trials",
                "missing; random search needs the number of runs to draw, e.g. trials = 20",
            ),
            None => {}
        },
        other => {
            let hint = closest_key(other, &["grid", "random"])
                .map(|s| format!("did you mean \"{s}\"? "))
                .unwrap_or_default();
            p.add(
                "search.method",
                format!("unknown method \"{other}\"; {hint}choose \"grid\" or \"random\""),
            );
        }
    }
    if let Some(asha) = p.table(table, "asha", "search") {
        search.asha = Some(parse_asha(asha, p));
    }
    search
}

fn parse_asha(t: &Table, p: &mut Problems) -> Asha {
    p.unknown_keys("search.asha", t, &ASHA_KEYS);
    let metric = match t.get("metric") {
        None => Monitor::ValAcc,
        Some(v) => match v.as_str().and_then(Monitor::parse) {
            Some(m) => m,
            None => {
                let names: Vec<_> = Monitor::ALL.iter().map(|m| m.name()).collect();
                p.add(
                    "search.asha.metric",
                    format!("unknown metric {v}; choose one of {}", names.join(", ")),
                );
                Monitor::ValAcc
            }
        },
    };
    let natural = Mode::of(metric);
    let mode = match t.get("mode") {
        None => natural,
        Some(v) => match v.as_str() {
            Some("max") => Mode::Max,
            Some("min") => Mode::Min,
            _ => {
                p.add(
                    "search.asha.mode",
                    format!("expected \"max\" or \"min\", got {v}"),
                );
                natural
            }
        },
    };
    if mode != natural {
        p.add(
            "search.asha.mode",
            format!(
                "{} is better when {}, so mode must be \"{}\" (or leave mode out)",
                metric.name(),
                if natural == Mode::Max {
                    "higher"
                } else {
                    "lower"
                },
                natural.name()
            ),
        );
    }
    Asha {
        metric,
        mode,
        min_epochs: whole(t, "min_epochs", "search.asha", 1, p).unwrap_or(1) as usize,
        reduction_factor: whole(t, "reduction_factor", "search.asha", 2, p).unwrap_or(3) as usize,
    }
}
