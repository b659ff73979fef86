//! Batch norm over dimension 1 of a `(b, c, ...)` tensor, optionally fused with the ReLU or
//! ReLU6 that follows it: one parallel pass for the batch statistics, one for the output, and in
//! backward one for the per-channel sums and one for the input gradient. Statistics and
//! sums are accumulated in f64.
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, Var, WithDType};
use candle_nn::BatchNorm;

use super::norm_sums::{per_plane, split, ChannelStats, GradInput, GradSums};
use super::{slice, Act, Activation, Float};

/// Batch norm `y = act((x - mean) * invstd * gamma + beta)`, with `mean`
/// and `invstd` fixed per channel: the batch statistics when `train` (the backward then
/// differentiates through them), else the running statistics.
struct BatchNormOp {
    mean: Vec<f64>,
    invstd: Vec<f64>,
    act: Activation,
    train: bool,
}

impl BatchNormOp {
    fn forward<T: Float>(&self, x: &[T], lx: &Layout, gamma: &[T], beta: &[T]) -> Result<Vec<T>> {
        let dims = split(lx.shape())?;
        if gamma.len() != dims.1 || beta.len() != dims.1 || self.mean.len() != dims.1 {
            candle_core::bail!("batch norm: {} channels, {} weights", dims.1, gamma.len())
        }
        let (scale, shift) = self.affine(gamma, beta);
        let y = with_act!(self.act, A => per_plane(dims, #[inline(always)] |plane, ch, yp| {
            let (scale, shift) = (T::from_f64(scale[ch]), T::from_f64(shift[ch]));
            for (d, v) in yp.iter_mut().zip(&x[plane * dims.2..]) {
                *d = A::of(*v * scale + shift);
            }
        }))?;
        Ok(y)
    }
}

impl BatchNormOp {
    /// Per channel the `scale` and `shift` of `y = act(x * scale + shift)`.
    fn affine<T: Float>(&self, gamma: &[T], beta: &[T]) -> (Vec<f64>, Vec<f64>) {
        let scale: Vec<f64> = gamma
            .iter()
            .zip(&self.invstd)
            .map(|(g, inv)| g.to_f64() * inv)
            .collect();
        let shift = beta
            .iter()
            .zip(&self.mean)
            .zip(&scale)
            .map(|((b, m), s)| b.to_f64() - m * s)
            .collect();
        (scale, shift)
    }
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "fast-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = by_dtype!(s1, self.name(), T => {
            T::to_cpu_storage_owned(self.forward::<T>(slice(s1, l1)?, l1, slice(s2, l2)?, slice(s3, l3)?)?)
        });
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let (b, c, inner) = split(x.shape())?;
        let n = (b * inner).max(1) as f64;
        let (scale, shift) = {
            let g = gamma.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            let be = beta.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            self.affine(&g, &be)
        };
        let sums = x.apply_op2_no_bwd(
            &dy,
            &GradSums {
                mean: self.mean.clone(),
                scale: scale.clone(),
                shift: shift.clone(),
                act: self.act,
            },
        )?;
        let sums = sums.to_vec2::<f64>()?;
        let g = gamma.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let (mut a, mut bx, mut c0) = (vec![0.0; c], vec![0.0; c], vec![0.0; c]);
        let (mut dgamma, mut dbeta) = (vec![0.0; c], vec![0.0; c]);
        for ch in 0..c {
            let (sum_g, sum_gx, inv) = (sums[ch][0], sums[ch][1], self.invstd[ch]);
            dgamma[ch] = sum_gx * inv;
            dbeta[ch] = sum_g;
            // dx = k (g - sum_g / n - xhat * dgamma / n), k = gamma * invstd, when the
            // statistics are the batch's; dx = k g with fixed (running) statistics.
            a[ch] = g[ch] * inv;
            if self.train {
                bx[ch] = -a[ch] * inv * inv * sum_gx / n;
                c0[ch] = -a[ch] * sum_g / n - bx[ch] * self.mean[ch];
            }
        }
        let dx = x.apply_op2_no_bwd(
            &dy,
            &GradInput {
                a,
                bx,
                c0,
                scale,
                shift,
                act: self.act,
            },
        )?;
        let as_param =
            |v: Vec<f64>| Tensor::from_vec(v, c, gamma.device())?.to_dtype(gamma.dtype());
        Ok((Some(dx), Some(as_param(dgamma)?), Some(as_param(dbeta)?)))
    }
}

thread_local! {
    /// A momentum every batch norm on this thread uses instead of its own, while set.
    static MOMENTUM: std::cell::Cell<Option<f64>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with every batch norm's running-statistics momentum set to `m` on this thread
/// (SWA's `update_bn`: 1/k at the k-th batch gives the cumulative average, torch's
/// `momentum=None`).
pub fn with_momentum<T>(m: f64, f: impl FnOnce() -> T) -> T {
    let before = MOMENTUM.with(|c| c.replace(Some(m)));
    let out = f();
    MOMENTUM.with(|c| c.set(before));
    out
}

/// `bn`'s momentum, or the one [`with_momentum`] sets.
pub(crate) fn momentum(bn: &BatchNorm) -> f64 {
    MOMENTUM.with(|c| c.get()).unwrap_or_else(|| bn.momentum())
}

/// Batch norm of `x` with `bn`'s affine parameters, followed by `act`. With
/// `train`, normalises with the batch statistics and updates `bn`'s running statistics as
/// candle-nn does (momentum, unbiased variance); otherwise uses the running statistics.
/// Errors if `bn` has no affine parameters.
pub(crate) fn batch_norm(
    x: &Tensor,
    bn: &BatchNorm,
    train: bool,
    act: Activation,
) -> Result<Tensor> {
    let Some((gamma, beta)) = bn.weight_and_bias() else {
        candle_core::bail!("fast batch norm needs affine parameters")
    };
    let (b, c, inner) = split(x.shape())?;
    let x = x.contiguous()?;
    let eps = bn.eps();
    let (mean, var) = if train {
        let stats = x.apply_op1_no_bwd(&ChannelStats)?.to_vec2::<f64>()?;
        let (mean, var): (Vec<f64>, Vec<f64>) = stats.iter().map(|p| (p[0], p[1])).unzip();
        let n = (b * inner) as f64;
        let m = momentum(bn);
        let update = |running: &Tensor, batch: &[f64], scale: f64| -> Result<()> {
            let old = running.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            let new: Vec<f64> = old
                .iter()
                .zip(batch)
                .map(|(o, v)| o * (1.0 - m) + v * m * scale)
                .collect();
            let new = Tensor::from_vec(new, c, running.device())?.to_dtype(running.dtype())?;
            Var::from_tensor(running)?.set(&new)
        };
        update(bn.running_mean(), &mean, 1.0)?;
        update(bn.running_var(), &var, n / (n - 1.0))?;
        (mean, var)
    } else {
        let get = |t: &Tensor| t.to_dtype(DType::F64)?.to_vec1::<f64>();
        (get(bn.running_mean())?, get(bn.running_var())?)
    };
    let invstd = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let (gamma, beta) = (
        gamma.to_dtype(x.dtype())?.contiguous()?,
        beta.to_dtype(x.dtype())?.contiguous()?,
    );
    x.apply_op3(
        &gamma,
        &beta,
        BatchNormOp {
            mean,
            invstd,
            act,
            train,
        },
    )
}
