//! `[search]`: random search is reproducible and covers its ranges; ASHA settings are checked.
use super::tests::{assert_problem, Fixture};

const RANDOM: &str = r#"
[search]
method = "random"
trials = 20
seed = 7
[grid]
lr = { log_uniform = [1e-4, 1e-1] }
batch_size = [16, 32, 64]
weight_decay = { uniform = [0.0, 0.01] }
"#;

#[test]
fn the_same_seed_gives_the_same_trials_and_run_ids() {
    let f = Fixture::new();
    let a = f.parse(RANDOM).unwrap().runs();
    let b = f.parse(RANDOM).unwrap().runs();
    assert_eq!(a.len(), 20);
    assert_eq!(a, b);
    let ids: std::collections::HashSet<_> = a.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 20, "run ids must be distinct");
    // Another seed draws other runs.
    let c = f
        .parse(&RANDOM.replace("seed = 7", "seed = 8"))
        .unwrap()
        .runs();
    assert_ne!(
        a.iter().map(|r| r.config.lr).collect::<Vec<_>>(),
        c.iter().map(|r| r.config.lr).collect::<Vec<_>>()
    );
    // More trials keep the first ones (and their ids): a grown search resumes.
    let more = f
        .parse(&RANDOM.replace("trials = 20", "trials = 30"))
        .unwrap()
        .runs();
    assert_eq!(more.len(), 30);
    assert_eq!(&more[..20], &a[..]);
    // Labels name the drawn values.
    assert!(
        a[0].label.contains("lr=") && a[0].label.contains("bs="),
        "{}",
        a[0].label
    );
}

#[test]
fn twenty_log_uniform_learning_rates_fall_inside_and_spread_over_the_range() {
    let f = Fixture::new();
    let runs = f.parse(RANDOM).unwrap().runs();
    let lrs: Vec<f64> = runs.iter().map(|r| r.config.lr).collect();
    assert!(lrs.iter().all(|&lr| (1e-4..=1e-1).contains(&lr)), "{lrs:?}");
    // Spread: every decade of the range holds at least one of the 20 draws.
    for (lo, hi) in [(1e-4, 1e-3), (1e-3, 1e-2), (1e-2, 1e-1 + 1e-12)] {
        assert!(
            lrs.iter().any(|&lr| lr >= lo && lr < hi),
            "no lr in [{lo}, {hi}): {lrs:?}"
        );
    }
    let wd: Vec<f64> = runs
        .iter()
        .map(|r| match r.config.optimizer_settings {
            crate::run::OptimizerConfig::Adam { weight_decay, .. }
            | crate::run::OptimizerConfig::Sgd { weight_decay, .. } => weight_decay,
        })
        .collect();
    assert!(wd.iter().all(|&w| (0.0..=0.01).contains(&w)), "{wd:?}");
    let sizes: std::collections::BTreeSet<_> = runs.iter().map(|r| r.config.batch_size).collect();
    assert_eq!(sizes.len(), 3, "all three batch sizes drawn: {sizes:?}");
}

#[test]
fn a_grid_has_no_distributions_and_random_search_needs_trials() {
    let f = Fixture::new();
    let p = f.problems("[grid]\nlr = { log_uniform = [1e-4, 1e-1] }\n");
    assert_problem(&p, "grid.lr", "method = \"random\"");
    let p = f.problems("[search]\nmethod = \"random\"\n[grid]\nlr = [0.1, 0.01]\n");
    assert_problem(&p, "search.trials", "trials = 20");
    let p = f.problems("[search]\nmethod = \"randm\"\ntrials = 3\n");
    assert_problem(&p, "search.method", "did you mean \"random\"");
    let p = f.problems("[search]\ntrials = 3\n");
    assert_problem(&p, "search.trials", "only random search");
}

#[test]
fn distributions_are_checked_against_their_key() {
    let f = Fixture::new();
    let random = "[search]\nmethod = \"random\"\ntrials = 4\n[grid]\n";
    let p = f.problems(&format!("{random}batch_size = {{ uniform = [16, 64] }}\n"));
    assert_problem(&p, "grid.batch_size", "int_uniform");
    let p = f.problems(&format!("{random}lr = {{ log_uniform = [1e-4, 20.0] }}\n"));
    assert_problem(&p, "grid.lr", "high end must be a learning rate in (0, 10]");
    let p = f.problems(&format!("{random}optimizer = {{ uniform = [0, 1] }}\n"));
    assert_problem(&p, "grid.optimizer", "takes a list of values");
    let p = f.problems(&format!("{random}lr = {{ loguniform = [1e-4, 1e-1] }}\n"));
    assert_problem(&p, "grid.lr", "did you mean `log_uniform`");
    // int_uniform over batch sizes draws whole numbers inside the range.
    let s = f
        .parse(&format!(
            "{random}batch_size = {{ int_uniform = [8, 12] }}\n"
        ))
        .unwrap();
    assert!(s
        .runs()
        .iter()
        .all(|r| (8..=12).contains(&r.config.batch_size)));
}

#[test]
fn asha_settings_are_read_and_checked() {
    let f = Fixture::new();
    let s = f
        .parse("[train]\nepochs = 9\n[search.asha]\nmetric = \"val_loss\"\nreduction_factor = 3\n")
        .unwrap();
    let asha = s.search.asha.clone().unwrap();
    assert_eq!(asha.metric, crate::run::Monitor::ValLoss);
    assert_eq!(asha.mode, crate::search::Mode::Min);
    assert_eq!((asha.min_epochs, asha.reduction_factor), (1, 3));
    assert_eq!(asha.rungs(9), vec![1, 3]);
    let p =
        f.problems("[train]\nepochs = 9\n[search.asha]\nmetric = \"val_loss\"\nmode = \"max\"\n");
    assert_problem(&p, "search.asha.mode", "must be \"min\"");
    let p = f.problems("[train]\nepochs = 3\n[search.asha]\nmin_epochs = 3\n");
    assert_problem(&p, "search.asha.min_epochs", "never judge");
    let p = f.problems("[train]\nepochs = 9\n[search.asha]\nreduction_factor = 1\neta = 3\n");
    assert_problem(&p, "search.asha.reduction_factor", ">= 2");
    assert_problem(&p, "search.asha.eta", "unknown key");
}

/// The fake trainer's script is part of each run's config: a fake run never has a real run's
/// id, so a later real `sweep run` never skips a run only the fake trainer "finished".
#[test]
fn fake_runs_never_share_an_id_with_real_runs() {
    let f = Fixture::new();
    let mut s = f.parse("[grid]\nlr = [0.1, 0.01]\n").unwrap();
    let real: Vec<String> = s.runs().iter().map(|r| r.id.clone()).collect();
    s.fake = Some(crate::run::FakeSpec {
        epoch_ms: 5,
        ..Default::default()
    });
    let fake: Vec<String> = s.runs().iter().map(|r| r.id.clone()).collect();
    assert!(
        real.iter().all(|id| !fake.contains(id)),
        "{real:?} {fake:?}"
    );
    assert!(s.runs().iter().all(|r| r.config.fake.is_some()));
}
