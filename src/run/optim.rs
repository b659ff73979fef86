//! Which optimizer a run uses and its hyperparameters (the learning rate is separate);
//! the update rules are `train::optim`'s job.

/// Which optimizer to use and its hyperparameters (the learning rate is separate).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// `torch.optim.SGD(momentum, nesterov, weight_decay, dampening=0)`.
    Sgd {
        momentum: f64,
        nesterov: bool,
        weight_decay: f64,
    },
    /// `torch.optim.AdamW(betas=(beta1, beta2), eps, weight_decay)`: decoupled weight decay;
    /// with `weight_decay == 0` this is exactly `torch.optim.Adam`.
    Adam {
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
}

impl OptimizerConfig {
    /// Checks the hyperparameters (PyTorch's rules).
    pub fn validate(&self) -> Result<(), String> {
        let finite_nonneg = |name: &str, v: f64| -> Result<(), String> {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} must be a finite number >= 0, got {v}"));
            }
            Ok(())
        };
        match *self {
            OptimizerConfig::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => {
                finite_nonneg("momentum", momentum)?;
                finite_nonneg("weight_decay", weight_decay)?;
                if nesterov && momentum == 0.0 {
                    return Err("nesterov momentum requires a momentum > 0".into());
                }
            }
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                for (name, b) in [("beta1", beta1), ("beta2", beta2)] {
                    if !(0.0..1.0).contains(&b) {
                        return Err(format!("{name} must be in [0, 1), got {b}"));
                    }
                }
                finite_nonneg("eps", eps)?;
                finite_nonneg("weight_decay", weight_decay)?;
            }
        }
        Ok(())
    }
}
