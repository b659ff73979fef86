//! Optimizers: SGD with momentum/nesterov/weight decay, and Adam(W).
//!
//! Both follow PyTorch's update rules exactly (`torch.optim.SGD` with dampening 0, and
//! `torch.optim.AdamW`, which is `torch.optim.Adam` when `weight_decay` is 0). candle-nn's
//! SGD has no momentum, hence this module. All optimizer state is computed from detached
//! tensors, so no autograd graph survives a step.
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

pub use crate::run::OptimizerConfig;

/// Per-variable state: the SGD momentum buffer, or Adam's moments.
#[derive(Debug)]
enum State {
    Sgd { buf: Option<Tensor> },
    Adam { m: Tensor, v: Tensor },
}

/// An optimizer over a fixed list of variables.
#[derive(Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    vars: Vec<Var>,
    state: Vec<State>,
    lr: f64,
    /// Number of steps taken (Adam's bias correction counts per step, as PyTorch's does per
    /// parameter; variables that get no gradient in a step keep their own count).
    steps: Vec<u64>,
}

fn check_lr(lr: f64) -> Result<()> {
    if !(lr.is_finite() && lr >= 0.0) {
        candle_core::bail!("learning rate must be a finite number >= 0, got {lr}")
    }
    Ok(())
}

impl Optimizer {
    /// An optimizer for `vars` with learning rate `lr`.
    pub fn new(config: &OptimizerConfig, vars: Vec<Var>, lr: f64) -> Result<Self> {
        config.validate().map_err(candle_core::Error::Msg)?;
        check_lr(lr)?;
        let state = vars
            .iter()
            .map(|var| {
                Ok(match config {
                    OptimizerConfig::Sgd { .. } => State::Sgd { buf: None },
                    OptimizerConfig::Adam { .. } => State::Adam {
                        m: var.as_detached_tensor().zeros_like()?,
                        v: var.as_detached_tensor().zeros_like()?,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let steps = vec![0; vars.len()];
        Ok(Optimizer {
            config: config.clone(),
            vars,
            state,
            lr,
            steps,
        })
    }

    /// One update of every variable that has a gradient in `grads` (others are skipped and
    /// keep their state).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let lr = self.lr;
        for ((var, state), steps) in self
            .vars
            .iter()
            .zip(self.state.iter_mut())
            .zip(self.steps.iter_mut())
        {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = grad.detach().to_dtype(var.dtype())?;
            *steps += 1;
            // f32 on the CPU: every buffer updated in place in one pass.
            if super::fused::supports(var.as_tensor()) && super::fused::supports(&g) {
                match (&self.config, &mut *state) {
                    (
                        OptimizerConfig::Sgd {
                            momentum,
                            nesterov,
                            weight_decay,
                        },
                        State::Sgd { buf },
                    ) if buf.as_ref().is_none_or(super::fused::supports) => {
                        let p = var.as_tensor();
                        super::fused::sgd(p, &g, buf, lr, *momentum, *nesterov, *weight_decay)?;
                        continue;
                    }
                    (
                        OptimizerConfig::Adam {
                            beta1,
                            beta2,
                            eps,
                            weight_decay,
                        },
                        State::Adam { m, v },
                    ) if super::fused::supports(m) && super::fused::supports(v) => {
                        let hyper = (*beta1, *beta2, *eps, *weight_decay);
                        let t = *steps as i32;
                        super::fused::adam(var.as_tensor(), &g, m, v, t, lr, hyper)?;
                        continue;
                    }
                    _ => {}
                }
            }
            let p = var.as_detached_tensor();
            let new_p = match (&self.config, state) {
                (
                    OptimizerConfig::Sgd {
                        momentum,
                        nesterov,
                        weight_decay,
                    },
                    State::Sgd { buf },
                ) => {
                    // g <- g + wd * p; b <- mu * b + g (b <- g at first); d = g + mu * b
                    // (nesterov) or b; p <- p - lr * d.
                    let g = if *weight_decay != 0.0 {
                        (&g + (&p * *weight_decay)?)?
                    } else {
                        g
                    };
                    let d = if *momentum != 0.0 {
                        let b = match buf.take() {
                            None => g.clone(),
                            Some(b) => ((b * *momentum)? + &g)?,
                        };
                        let d = if *nesterov {
                            (&g + (&b * *momentum)?)?
                        } else {
                            b.clone()
                        };
                        *buf = Some(b);
                        d
                    } else {
                        g
                    };
                    (&p - (d * lr)?)?
                }
                (
                    OptimizerConfig::Adam {
                        beta1,
                        beta2,
                        eps,
                        weight_decay,
                    },
                    State::Adam { m, v },
                ) => {
                    // p <- p (1 - lr wd); m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
                    // p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
                    let t = *steps as i32;
                    let p = if *weight_decay != 0.0 {
                        (&p * (1.0 - lr * *weight_decay))?
                    } else {
                        p
                    };
                    *m = ((&*m * *beta1)? + (&g * (1.0 - *beta1))?)?;
                    *v = ((&*v * *beta2)? + (g.sqr()? * (1.0 - *beta2))?)?;
                    let m_hat = (&*m / (1.0 - beta1.powi(t)))?;
                    let v_hat = (&*v / (1.0 - beta2.powi(t)))?;
                    let update = (m_hat / (v_hat.sqrt()? + *eps)?)?;
                    (&p - (update * lr)?)?
                }
                _ => candle_core::bail!("optimizer state does not match its configuration"),
            };
            var.set(&new_p)?;
        }
        Ok(())
    }

    /// `loss.backward()` followed by [`Optimizer::step`].
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Changes the learning rate used by the next steps (schedulers call this each epoch).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The configuration the optimizer was built with.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Writes the optimizer's state (momentum buffers or Adam moments, step counts) to a
    /// safetensors file, so that a resumed run continues exactly where it stopped.
    pub fn save_state(&self, path: &std::path::Path) -> Result<()> {
        let mut tensors = std::collections::HashMap::new();
        for (i, state) in self.state.iter().enumerate() {
            match state {
                State::Sgd { buf: Some(b) } => {
                    tensors.insert(format!("{i}.buf"), b.clone());
                }
                State::Sgd { buf: None } => {}
                State::Adam { m, v } => {
                    tensors.insert(format!("{i}.m"), m.clone());
                    tensors.insert(format!("{i}.v"), v.clone());
                }
            }
        }
        let steps: Vec<i64> = self.steps.iter().map(|&s| s as i64).collect();
        let device = match self.vars.first() {
            Some(v) => v.device().clone(),
            None => candle_core::Device::Cpu,
        };
        tensors.insert("steps".into(), Tensor::new(steps.as_slice(), &device)?);
        candle_core::safetensors::save(&tensors, path)
    }

    /// Restores the state written by [`Optimizer::save_state`] for the same variables.
    pub fn load_state(&mut self, path: &std::path::Path) -> Result<()> {
        let device = match self.vars.first() {
            Some(v) => v.device().clone(),
            None => candle_core::Device::Cpu,
        };
        let mut t = candle_core::safetensors::load(path, &device)?;
        let steps = t
            .remove("steps")
            .ok_or_else(|| candle_core::Error::Msg(format!("{path:?} has no step counts")))?;
        let steps: Vec<i64> = steps.to_vec1()?;
        if steps.len() != self.vars.len() {
            candle_core::bail!(
                "{path:?} holds state for {} variables, the model has {}",
                steps.len(),
                self.vars.len()
            )
        }
        let check = |name: &str, x: Tensor, var: &Var| -> Result<Tensor> {
            if x.shape() != var.shape() {
                candle_core::bail!(
                    "{path:?}: {name} is {:?}, its variable {:?}",
                    x.shape(),
                    var.shape()
                )
            }
            Ok(x)
        };
        let mut state = Vec::with_capacity(self.vars.len());
        for (i, var) in self.vars.iter().enumerate() {
            state.push(match self.config {
                OptimizerConfig::Sgd { .. } => State::Sgd {
                    buf: t
                        .remove(&format!("{i}.buf"))
                        .map(|b| check("buf", b, var))
                        .transpose()?,
                },
                OptimizerConfig::Adam { .. } => {
                    let (Some(m), Some(v)) =
                        (t.remove(&format!("{i}.m")), t.remove(&format!("{i}.v")))
                    else {
                        candle_core::bail!("{path:?} has no Adam moments for variable {i}")
                    };
                    State::Adam {
                        m: check("m", m, var)?,
                        v: check("v", v, var)?,
                    }
                }
            });
        }
        self.state = state;
        self.steps = steps.into_iter().map(|s| s as u64).collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Saving and restoring state mid-way gives the same trajectory as not stopping.
    #[test]
    fn state_round_trip_continues_exactly() {
        for config in [
            OptimizerConfig::Sgd {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 0.01,
            },
            OptimizerConfig::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            },
        ] {
            let run = |stop_after: Option<usize>| -> Vec<f64> {
                let dir = tempfile::tempdir().unwrap();
                let x = var(&[1.0, -2.0, 3.0]);
                let mut opt = Optimizer::new(&config, vec![x.clone()], 0.1).unwrap();
                for step in 0..4 {
                    if Some(step) == stop_after {
                        let path = dir.path().join("opt.safetensors");
                        opt.save_state(&path).unwrap();
                        opt = Optimizer::new(&config, vec![x.clone()], 0.1).unwrap();
                        opt.load_state(&path).unwrap();
                    }
                    let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
                    opt.backward_step(&loss).unwrap();
                }
                x.as_tensor().to_vec1::<f64>().unwrap()
            };
            assert_eq!(run(None), run(Some(2)), "{config:?}");
        }
    }

    /// The fused f32 step (in place, one pass per buffer) follows the general path (here in
    /// f64, where it is exact) to f32 rounding over several steps, for every rule; resuming
    /// it from saved state continues exactly; a variable without a gradient is skipped.
    #[test]
    fn fused_f32_steps_follow_the_general_path() {
        let configs = [
            sgd(0.0, false, 0.0),
            sgd(0.0, false, 0.05),
            sgd(0.9, false, 0.0),
            sgd(0.9, true, 0.01),
            adam(0.0),
            adam(0.1),
        ];
        let start = [0.5f64, -1.25, 2.0, -0.125, 3.0];
        for config in configs {
            let run = |dtype: candle_core::DType, stop_after: Option<usize>| -> Vec<f64> {
                let dir = tempfile::tempdir().unwrap();
                let t = Tensor::new(&start, &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let x = Var::from_tensor(&t).unwrap();
                let unused = Var::from_tensor(&t).unwrap();
                let vars = vec![x.clone(), unused.clone()];
                let mut opt = Optimizer::new(&config, vars.clone(), 0.05).unwrap();
                for step in 0..6 {
                    if Some(step) == stop_after {
                        let path = dir.path().join("opt.safetensors");
                        opt.save_state(&path).unwrap();
                        opt = Optimizer::new(&config, vars.clone(), 0.05).unwrap();
                        opt.load_state(&path).unwrap();
                    }
                    // A loss whose gradient changes with x: sum(x^3 / 3 + x).
                    let xt = x.as_tensor();
                    let loss = ((xt.powf(3.0).unwrap() / 3.0).unwrap() + xt)
                        .unwrap()
                        .sum_all()
                        .unwrap();
                    opt.backward_step(&loss).unwrap();
                }
                let same = unused
                    .as_tensor()
                    .to_dtype(candle_core::DType::F64)
                    .unwrap();
                assert_eq!(
                    same.to_vec1::<f64>().unwrap(),
                    start,
                    "no gradient, no step"
                );
                let out = x.as_tensor().to_dtype(candle_core::DType::F64).unwrap();
                out.to_vec1::<f64>().unwrap()
            };
            let exact = run(candle_core::DType::F64, None);
            let fused = run(candle_core::DType::F32, None);
            for (f, e) in fused.iter().zip(&exact) {
                assert!(
                    (f - e).abs() < 2e-5 * (1.0 + e.abs()),
                    "{config:?}: {fused:?} vs {exact:?}"
                );
            }
            assert_ne!(fused, start.to_vec(), "{config:?} moved nothing");
            assert_eq!(
                fused,
                run(candle_core::DType::F32, Some(3)),
                "{config:?} resumed"
            );
        }
    }

    fn var(values: &[f64]) -> Var {
        Var::from_tensor(&Tensor::new(values, &Device::Cpu).unwrap()).unwrap()
    }

    fn values(v: &Var) -> Vec<f64> {
        v.as_tensor().to_vec1().unwrap()
    }

    fn assert_close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().zip(expected) {
            assert!(
                (a - e).abs() < 1e-12 * (1.0 + e.abs()),
                "{actual:?} vs {expected:?}"
            );
        }
    }

    /// loss = sum(c * p), so the gradient is `c` whatever `p` is.
    fn linear_step(opt: &mut Optimizer, p: &Var, c: &[f64]) {
        let c = Tensor::new(c, &Device::Cpu).unwrap();
        let loss = (p.as_tensor() * c).unwrap().sum_all().unwrap();
        opt.backward_step(&loss).unwrap();
    }

    fn sgd(momentum: f64, nesterov: bool, weight_decay: f64) -> OptimizerConfig {
        OptimizerConfig::Sgd {
            momentum,
            nesterov,
            weight_decay,
        }
    }

    fn adam(weight_decay: f64) -> OptimizerConfig {
        OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        }
    }

    #[test]
    fn sgd_plain() {
        // p = [1, 2], g = [0.5, -1], lr 0.1: p <- p - lr g = [0.95, 2.1].
        let p = var(&[1.0, 2.0]);
        let mut opt = Optimizer::new(&sgd(0.0, false, 0.0), vec![p.clone()], 0.1).unwrap();
        linear_step(&mut opt, &p, &[0.5, -1.0]);
        assert_close(&values(&p), &[0.95, 2.1]);
    }

    #[test]
    fn sgd_momentum_matches_pytorch() {
        // PyTorch SGD, mu 0.9, lr 0.1, dampening 0: b1 = g1; b_t = mu b_{t-1} + g_t;
        // p <- p - lr b_t. p0 = [1, -2]; g1 = [1, 2], g2 = [0.5, -1], g3 = [0, 0].
        // b1 = [1, 2]            p1 = [0.9, -2.2]
        // b2 = [1.4, 0.8]        p2 = [0.76, -2.28]
        // b3 = [1.26, 0.72]      p3 = [0.634, -2.352]
        let p = var(&[1.0, -2.0]);
        let mut opt = Optimizer::new(&sgd(0.9, false, 0.0), vec![p.clone()], 0.1).unwrap();
        linear_step(&mut opt, &p, &[1.0, 2.0]);
        assert_close(&values(&p), &[0.9, -2.2]);
        linear_step(&mut opt, &p, &[0.5, -1.0]);
        assert_close(&values(&p), &[0.76, -2.28]);
        linear_step(&mut opt, &p, &[0.0, 0.0]);
        assert_close(&values(&p), &[0.634, -2.352]);
    }

    #[test]
    fn sgd_nesterov_matches_pytorch() {
        // Nesterov: d_t = g_t + mu b_t, p <- p - lr d_t (same b as above), mu 0.9, lr 0.1.
        // g1 = [1, 2]: b1 = [1, 2], d1 = [1.9, 3.8], p1 = [1 - 0.19, -2 - 0.38] = [0.81, -2.38]
        // g2 = [0.5, -1]: b2 = [1.4, 0.8], d2 = [0.5 + 1.26, -1 + 0.72] = [1.76, -0.28],
        //   p2 = [0.81 - 0.176, -2.38 + 0.028] = [0.634, -2.352]
        let p = var(&[1.0, -2.0]);
        let mut opt = Optimizer::new(&sgd(0.9, true, 0.0), vec![p.clone()], 0.1).unwrap();
        linear_step(&mut opt, &p, &[1.0, 2.0]);
        assert_close(&values(&p), &[0.81, -2.38]);
        linear_step(&mut opt, &p, &[0.5, -1.0]);
        assert_close(&values(&p), &[0.634, -2.352]);
    }

    #[test]
    fn sgd_weight_decay_matches_pytorch() {
        // g <- g + wd p before momentum; wd 0.1, mu 0.5, lr 0.1, p0 = [1, -2], g = [1, 1] twice.
        // step 1: g = [1.1, 0.8], b = g, p1 = [1 - 0.11, -2 - 0.08] = [0.89, -2.08]
        // step 2: g = [1 + 0.089, 1 - 0.208] = [1.089, 0.792],
        //   b = 0.5 [1.1, 0.8] + g = [1.639, 1.192], p2 = [0.89 - 0.1639, -2.08 - 0.1192]
        //   = [0.7261, -2.1992]
        let p = var(&[1.0, -2.0]);
        let mut opt = Optimizer::new(&sgd(0.5, false, 0.1), vec![p.clone()], 0.1).unwrap();
        linear_step(&mut opt, &p, &[1.0, 1.0]);
        assert_close(&values(&p), &[0.89, -2.08]);
        linear_step(&mut opt, &p, &[1.0, 1.0]);
        assert_close(&values(&p), &[0.7261, -2.1992]);
    }

    #[test]
    fn adam_first_steps_closed_form() {
        // Adam with a constant gradient g: m_t = (1 - b1^t) g and v_t = (1 - b2^t) g^2, so
        // m_hat = g and v_hat = g^2, and every step moves p by -lr g / (|g| + eps).
        // lr 0.01, g = [2, -0.5, 0]: each step adds [-0.01 * 2 / (2 + 1e-8), +0.01 * 0.5 /
        // (0.5 + 1e-8), 0].
        let p = var(&[1.0, 1.0, 1.0]);
        let mut opt = Optimizer::new(&adam(0.0), vec![p.clone()], 0.01).unwrap();
        let d0 = 0.01 * 2.0 / (2.0 + 1e-8);
        let d1 = 0.01 * 0.5 / (0.5 + 1e-8);
        for t in 1..=3 {
            linear_step(&mut opt, &p, &[2.0, -0.5, 0.0]);
            let t = t as f64;
            assert_close(&values(&p), &[1.0 - t * d0, 1.0 + t * d1, 1.0]);
        }
        // A changing gradient: step 1 g = 1, step 2 g = 3, b1 0.9, b2 0.999, lr 0.01.
        // m1 = 0.1, v1 = 0.001 -> update 1 = 1 / (1 + 1e-8)
        // m2 = 0.09 + 0.3 = 0.39, v2 = 0.000999 + 0.009 = 0.009999,
        // m_hat = 0.39 / 0.19, v_hat = 0.009999 / 0.001999
        let q = var(&[0.0]);
        let mut opt = Optimizer::new(&adam(0.0), vec![q.clone()], 0.01).unwrap();
        linear_step(&mut opt, &q, &[1.0]);
        let p1 = -0.01 / (1.0 + 1e-8);
        assert_close(&values(&q), &[p1]);
        linear_step(&mut opt, &q, &[3.0]);
        let m_hat: f64 = 0.39 / (1.0 - 0.81);
        let v_hat: f64 = 0.009999 / (1.0 - 0.998001);
        assert_close(&values(&q), &[p1 - 0.01 * m_hat / (v_hat.sqrt() + 1e-8)]);
    }

    #[test]
    fn adam_decoupled_weight_decay() {
        // AdamW: p <- p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps); first step with g = 1,
        // lr 0.1, wd 0.5, p0 = 2: p1 = 2 * 0.95 - 0.1 / (1 + 1e-8).
        let p = var(&[2.0]);
        let mut opt = Optimizer::new(&adam(0.5), vec![p.clone()], 0.1).unwrap();
        linear_step(&mut opt, &p, &[1.0]);
        assert_close(&values(&p), &[1.9 - 0.1 / (1.0 + 1e-8)]);
    }

    #[test]
    fn set_lr_takes_effect() {
        let p = var(&[1.0]);
        let mut opt = Optimizer::new(&sgd(0.0, false, 0.0), vec![p.clone()], 0.1).unwrap();
        assert_eq!(opt.lr(), 0.1);
        opt.set_lr(0.5);
        assert_eq!(opt.lr(), 0.5);
        linear_step(&mut opt, &p, &[1.0]);
        assert_close(&values(&p), &[0.5]);
    }

    #[test]
    fn state_is_detached() {
        // Parameters feed a non-trivial graph; the state must not keep it alive.
        let p = var(&[1.0, 2.0]);
        for config in [sgd(0.9, true, 0.01), adam(0.01)] {
            let mut opt = Optimizer::new(&config, vec![p.clone()], 0.1).unwrap();
            for _ in 0..2 {
                let loss = p
                    .as_tensor()
                    .sqr()
                    .unwrap()
                    .exp()
                    .unwrap()
                    .sum_all()
                    .unwrap();
                opt.backward_step(&loss).unwrap();
            }
            for state in &opt.state {
                let tensors: Vec<&Tensor> = match state {
                    State::Sgd { buf } => buf.iter().collect(),
                    State::Adam { m, v } => vec![m, v],
                };
                assert!(!tensors.is_empty());
                for t in tensors {
                    assert!(!t.track_op(), "optimizer state keeps an autograd graph");
                }
            }
            assert!(p.as_tensor().is_variable());
        }
    }

    #[test]
    fn vars_without_gradient_are_skipped() {
        let used = var(&[1.0]);
        let unused = var(&[5.0]);
        for config in [sgd(0.9, false, 0.1), adam(0.1)] {
            let mut opt = Optimizer::new(&config, vec![used.clone(), unused.clone()], 0.1).unwrap();
            linear_step(&mut opt, &used, &[1.0]);
            assert_eq!(values(&unused), vec![5.0]);
            assert_ne!(values(&used), vec![1.0]);
            assert_eq!(opt.steps, vec![1, 0]);
        }
    }

    #[test]
    fn invalid_configs_are_errors() {
        let p = || vec![var(&[1.0])];
        assert!(Optimizer::new(&sgd(0.0, true, 0.0), p(), 0.1).is_err());
        assert!(Optimizer::new(&sgd(-0.1, false, 0.0), p(), 0.1).is_err());
        assert!(Optimizer::new(&sgd(0.9, false, 0.0), p(), f64::NAN).is_err());
        let bad_beta = OptimizerConfig::Adam {
            beta1: 1.0,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        assert!(Optimizer::new(&bad_beta, p(), 0.1).is_err());
    }

    #[test]
    fn works_with_f32_vars_and_serde_shape() {
        let p = Var::from_tensor(&Tensor::ones(3, DType::F32, &Device::Cpu).unwrap()).unwrap();
        let mut opt = Optimizer::new(&adam(0.0), vec![p.clone()], 0.1).unwrap();
        let loss = p.as_tensor().sum_all().unwrap();
        opt.backward_step(&loss).unwrap();
        let v: Vec<f32> = p.as_tensor().to_vec1().unwrap();
        assert!(v.iter().all(|x| (x - 0.9).abs() < 1e-6));
        let json = serde_json::to_string(&sgd(0.9, true, 0.0)).unwrap();
        assert_eq!(
            json,
            r#"{"name":"sgd","momentum":0.9,"nesterov":true,"weight_decay":0.0}"#
        );
        let back: OptimizerConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sgd(0.9, true, 0.0));
    }
}
