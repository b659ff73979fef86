//! Each schedule against PyTorch 2.15's schedulers (torch.optim.lr_scheduler), stepped once
//! per batch on SGD(lr = 0.1) over 6 epochs of 5 batches (30 steps); the numbers below are
//! what `optimizer.param_groups[0]["lr"]` read before each step:
//!
//! ```python
//! StepLR(o, step_size=2, gamma=0.5)                        # stepped per epoch
//! SequentialLR(o, [LinearLR(o, start_factor=0.01, total_iters=10),
//!                  CosineAnnealingLR(o, T_max=20, eta_min=0.001)], milestones=[10])
//! CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=7, mode="triangular",
//!          cycle_momentum=False)
//! OneCycleLR(o, max_lr=0.1, total_steps=30, pct_start=0.3, div_factor=25.0,
//!            final_div_factor=1e4, cycle_momentum=False)
//! ```
use super::*;

const PER_EPOCH: usize = 5;
const TOTAL: usize = 30;

fn rates(s: &Schedule) -> Vec<f64> {
    (0..TOTAL)
        .map(|step| {
            let at = Step {
                step,
                per_epoch: PER_EPOCH,
                total: TOTAL,
            };
            s.lr(0.1, at)
        })
        .collect()
}

fn assert_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-12 + 1e-9 * w.abs(),
            "step {i}: {g} vs PyTorch {w}"
        );
    }
}

#[test]
fn constant_keeps_the_rate() {
    assert!(rates(&Schedule::Constant).iter().all(|&r| r == 0.1));
}

#[test]
fn step_matches_torch_step_lr() {
    let s = Schedule::Step {
        step_size: 2,
        gamma: 0.5,
    };
    let every_fourth: Vec<f64> = rates(&s).into_iter().step_by(4).collect();
    assert_close(
        &every_fourth,
        &[0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.025],
    );
}

#[test]
fn cosine_with_warmup_matches_torch() {
    let s = Schedule::Cosine {
        warmup_epochs: 2,
        warmup_start: 0.01,
        min_lr: 0.001,
    };
    #[rustfmt::skip]
    let torch = [
        0.001, 0.010899999999999998, 0.020799999999999996, 0.03069999999999999,
        0.04059999999999999, 0.05049999999999999, 0.06039999999999998, 0.07029999999999997,
        0.08019999999999997, 0.09009999999999996, 0.1, 0.09939057285945932,
        0.09757729755661011, 0.09460482294732421, 0.09054634122155991, 0.0855017856687341,
        0.07959536998847742, 0.07297252973710756, 0.0657963412215599, 0.05824350601949144,
        0.0505, 0.04275649398050859, 0.03520365877844011, 0.02802747026289244,
        0.02140463001152259, 0.015498214331265903, 0.010453658778440109, 0.006395177052675795,
        0.0034227024433899004, 0.001609427140540686,
    ];
    assert_close(&rates(&s), &torch);
}

#[test]
fn cyclic_matches_torch_triangular() {
    let s = Schedule::Cyclic {
        base_lr: Some(0.01),
        max_lr: Some(0.1),
        step_epochs: 1.4,
    };
    #[rustfmt::skip]
    let torch = [
        0.01, 0.022857142857142854, 0.035714285714285705, 0.048571428571428564,
        0.061428571428571416, 0.0742857142857143, 0.08714285714285715, 0.1, 0.08714285714285715,
        0.0742857142857143, 0.061428571428571416, 0.0485714285714286, 0.035714285714285705,
        0.022857142857142854, 0.01, 0.022857142857142812, 0.035714285714285705,
        0.0485714285714286, 0.061428571428571416, 0.0742857142857143, 0.08714285714285719, 0.1,
        0.08714285714285719, 0.0742857142857143, 0.061428571428571416, 0.0485714285714286,
        0.035714285714285705, 0.022857142857142812, 0.01, 0.022857142857142895,
    ];
    assert_close(&rates(&s), &torch);
    // Without base_lr and max_lr: from a tenth of the run's rate up to it.
    let s = Schedule::default_for("cyclic").unwrap();
    let r = rates(&s);
    assert!(
        (r[0] - 0.01).abs() < 1e-12 && (r[10] - 0.1).abs() < 1e-12,
        "{r:?}"
    );
}

#[test]
fn one_cycle_matches_torch() {
    let s = Schedule::default_for("one_cycle").unwrap();
    #[rustfmt::skip]
    let torch = [
        0.0040000000000000036, 0.0076537824394582454, 0.018058874503045733, 0.03363119524647569,
        0.052000000000000005, 0.0703688047535243, 0.08594112549695429, 0.09634621756054176, 0.1,
        0.09944154354509119, 0.0977786491747459, 0.09504846320134738, 0.09131197346804489,
        0.08665264698111695, 0.0811745653949763, 0.0750001, 0.06826717815011489,
        0.06112620219362893, 0.0537366897333025, 0.046263710266697504, 0.03887419780637107,
        0.03173322184988512, 0.025000300000000013, 0.0188258346050237, 0.01334775301888306,
        0.008688426531955128, 0.004951936798652629, 0.002221750825254118, 0.0005588564549088189,
        4e-07,
    ];
    assert_close(&rates(&s), &torch);
}

#[test]
fn bad_settings_are_named() {
    let s = Schedule::Cyclic {
        base_lr: Some(0.2),
        max_lr: Some(0.1),
        step_epochs: 0.0,
    };
    let keys: Vec<&str> = s.problems().iter().map(|p| p.0).collect();
    assert_eq!(keys, ["step_epochs", "base_lr"]);
    let s = Schedule::OneCycle {
        pct_start: 1.0,
        div_factor: 25.0,
        final_div_factor: -1.0,
    };
    let keys: Vec<&str> = s.problems().iter().map(|p| p.0).collect();
    assert_eq!(keys, ["final_div_factor", "pct_start"]);
    for name in SCHEDULES {
        let s = Schedule::default_for(name).unwrap();
        assert!(s.problems().is_empty(), "{name}'s defaults are valid");
        assert_eq!(s.name(), name);
    }
}

/// A run's rate per batch ([`crate::run::RunConfig::lr_at`]): the schedule restarts with each
/// phase of two_phase (over that phase's epochs, from its own rate), and reduce-on-plateau
/// multiplies it by the cuts the phase's epochs earned.
#[test]
fn a_run_schedules_each_phase_and_plateau_cuts_multiply() {
    use crate::run::{EpochSummary, Monitor, Phase, ReduceLrOnPlateau, Transfer, TransferMode};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("train/a")).unwrap();
    let text = "[data]\ntrain = \"train\"\nimage_size = [8, 8]\n\
                [train]\nepochs = 6\nlr = 0.1\nschedule = \"step\"\n\
                [schedule.step]\nstep_size = 1\ngamma = 0.5\n";
    let sweep = crate::sweep::Sweep::from_str(text, &dir.path().join("s.toml")).unwrap();
    let mut cfg = sweep.runs()[0].config.clone();
    cfg.transfer = Some(Transfer {
        mode: TransferMode::TwoPhase,
        pretrained: "w.safetensors".into(),
        unfreeze_from: None,
        frozen_epochs: 2,
        finetune_lr: Some(0.01),
    });
    assert_eq!(cfg.phase_span(1), (1, 2));
    assert_eq!(cfg.phase_span(2), (1, 2));
    assert_eq!(cfg.phase_span(5), (3, 4));
    let epoch = |e: usize, phase: Phase, val_loss: f64| EpochSummary {
        epoch: e,
        phase,
        lr: 0.0,
        train_loss: 1.0,
        train_acc: 0.5,
        val_loss,
        val_acc: 0.5,
        val_macro_f1: 0.5,
        val_weighted_f1: 0.5,
    };
    let none: Vec<EpochSummary> = vec![];
    // Frozen phase: epoch 1 at 0.1, epoch 2 at 0.05 (step every epoch).
    assert!((cfg.lr_at(1, 3, 4, &none) - 0.1).abs() < 1e-15);
    let h = vec![epoch(1, Phase::Frozen, 1.0)];
    assert!((cfg.lr_at(2, 0, 4, &h) - 0.05).abs() < 1e-15);
    // Fine-tuning starts over from its own rate: epoch 3 at 0.01, epoch 4 at 0.005.
    let mut h = vec![epoch(1, Phase::Frozen, 1.0), epoch(2, Phase::Frozen, 1.0)];
    assert!((cfg.lr_at(3, 0, 4, &h) - 0.01).abs() < 1e-15);
    h.push(epoch(3, Phase::Finetune, 0.9));
    assert!((cfg.lr_at(4, 2, 4, &h) - 0.005).abs() < 1e-15);
    // Plateau: two fine-tuning epochs without improvement halve whatever the schedule gives.
    cfg.train.reduce_lr_on_plateau = Some(ReduceLrOnPlateau {
        monitor: Monitor::ValLoss,
        patience: 1,
        factor: 0.5,
        min_lr: 0.0,
        min_delta: 0.0,
    });
    h.push(epoch(4, Phase::Finetune, 0.95));
    assert!((cfg.lr_at(5, 0, 4, &h) - 0.01 * 0.25 * 0.5).abs() < 1e-15);
    // The frozen phase's stagnation does not carry into fine-tuning.
    assert!((cfg.lr_at(3, 0, 4, &h[..2]) - 0.01).abs() < 1e-15);
}
