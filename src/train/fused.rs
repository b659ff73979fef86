//! The optimizer step of one f32 CPU variable in place (issue 16): each buffer is updated
//! in one pass over its memory, with no temporary tensors, instead of the dozen tensor ops
//! (each a fresh buffer) of [`super::optim`]'s general path. The same update rules, in f32.
use candle_core::{CpuStorage, Layout, Result, Tensor};
use candle_core::{DType, Device};

/// Whether the fused step can update `t`: an f32 tensor on the CPU, contiguous from 0.
pub fn supports(t: &Tensor) -> bool {
    matches!(t.device(), Device::Cpu)
        && t.dtype() == DType::F32
        && t.is_contiguous()
        && t.layout().start_offset() == 0
}

fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout, name: &str) -> Result<&'a mut [f32]> {
    match s {
        CpuStorage::F32(v) if l.is_contiguous() && l.start_offset() == 0 => {
            Ok(&mut v[..l.shape().elem_count()])
        }
        _ => candle_core::bail!("{name}: needs a contiguous f32 buffer"),
    }
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout, name: &str) -> Result<&'a [f32]> {
    match s {
        CpuStorage::F32(v) if l.is_contiguous() => {
            let start = l.start_offset();
            Ok(&v[start..start + l.shape().elem_count()])
        }
        _ => candle_core::bail!("{name}: needs a contiguous f32 buffer"),
    }
}

/// SGD's momentum buffer: `b <- g'` on the first step, else `b <- mu b + g'`, with
/// `g' = g + wd p` (p before this step). Sources: `[g, p]`.
struct SgdBuffer {
    momentum: f32,
    weight_decay: f32,
    first: bool,
}

impl candle_core::InplaceOp3 for SgdBuffer {
    fn name(&self) -> &'static str {
        "sgd-buffer"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let b = slice_mut(dst, dst_l, self.name())?;
        let g = slice(s1, l1, self.name())?;
        let p = slice(s2, l2, self.name())?;
        let (mu, wd) = (self.momentum, self.weight_decay);
        for ((b, &g), &p) in b.iter_mut().zip(g).zip(p) {
            let g = if wd != 0.0 { g + wd * p } else { g };
            *b = if self.first { g } else { *b * mu + g };
        }
        Ok(())
    }
}

/// SGD's parameter update: `p <- p - lr d`, `d = g' + mu b` (nesterov), `b` (momentum) or
/// `g'` (none), `g' = g + wd p`. Sources: `[g, b]`, or `[g]` without momentum ([`Plain`]).
struct SgdParam {
    lr: f32,
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
}

impl candle_core::InplaceOp3 for SgdParam {
    fn name(&self) -> &'static str {
        "sgd-param"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let p = slice_mut(dst, dst_l, self.name())?;
        self.apply(
            p,
            slice(s1, l1, self.name())?,
            Some(slice(s2, l2, self.name())?),
        );
        Ok(())
    }
}

impl SgdParam {
    /// The update of `p` from `g` and the momentum buffer `b` (`None` without momentum).
    fn apply(&self, p: &mut [f32], g: &[f32], b: Option<&[f32]>) {
        let (lr, mu, wd) = (self.lr, self.momentum, self.weight_decay);
        for (i, p) in p.iter_mut().enumerate() {
            let g = if wd != 0.0 { g[i] + wd * *p } else { g[i] };
            let d = match (b, self.nesterov) {
                (None, _) => g,
                (Some(b), false) => b[i],
                (Some(b), true) => g + b[i] * mu,
            };
            *p -= d * lr;
        }
    }
}

/// An exponential moving average `x <- beta x + (1 - beta) f(g)`, `f` the identity (Adam's
/// first moment) or the square (its second). Source: `[g]`.
struct Moment {
    beta: f32,
    square: bool,
}

impl candle_core::InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adam-moment"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        s1: &CpuStorage,
        l1: &Layout,
    ) -> Result<()> {
        let x = slice_mut(dst, dst_l, self.name())?;
        let g = slice(s1, l1, self.name())?;
        let (beta, rest) = (self.beta, 1.0 - self.beta);
        for (x, &g) in x.iter_mut().zip(g) {
            let f = if self.square { g * g } else { g };
            *x = *x * beta + f * rest;
        }
        Ok(())
    }
}

/// AdamW's parameter update: `p <- p (1 - lr wd)`, then
/// `p <- p - lr (m / c1) / (sqrt(v / c2) + eps)` with the bias corrections `c1`, `c2`.
/// Sources: `[m, v]`.
struct AdamParam {
    lr: f32,
    decay: f32,
    c1: f32,
    c2: f32,
    eps: f32,
}

impl candle_core::InplaceOp3 for AdamParam {
    fn name(&self) -> &'static str {
        "adam-param"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let p = slice_mut(dst, dst_l, self.name())?;
        let m = slice(s1, l1, self.name())?;
        let v = slice(s2, l2, self.name())?;
        let (lr, c1, c2, eps) = (self.lr, self.c1, self.c2, self.eps);
        for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
            if self.decay != 1.0 {
                *p *= self.decay;
            }
            *p -= lr * ((m / c1) / ((v / c2).sqrt() + eps));
        }
        Ok(())
    }
}

/// One SGD step of `p` (a variable's tensor) with gradient `g`, the momentum buffer `buf`
/// made on the first step; everything in place.
#[allow(clippy::too_many_arguments)]
pub fn sgd(
    p: &Tensor,
    g: &Tensor,
    buf: &mut Option<Tensor>,
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
) -> Result<()> {
    let (mu, wd) = (momentum as f32, weight_decay as f32);
    if momentum != 0.0 {
        let first = buf.is_none();
        let b = match buf.take() {
            Some(b) => b,
            None => p.zeros_like()?,
        };
        b.inplace_op3(
            g,
            p,
            &SgdBuffer {
                momentum: mu,
                weight_decay: wd,
                first,
            },
        )?;
        *buf = Some(b);
    }
    let op = SgdParam {
        lr: lr as f32,
        momentum: mu,
        nesterov,
        weight_decay: wd,
    };
    match buf.as_ref() {
        Some(b) => p.inplace_op3(g, b, &op),
        None => p.inplace_op2(g, &Plain(op)),
    }
}

/// [`SgdParam`] without momentum (no buffer). Source: `[g]`.
struct Plain(SgdParam);

impl candle_core::InplaceOp2 for Plain {
    fn name(&self) -> &'static str {
        "sgd-param"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        s1: &CpuStorage,
        l1: &Layout,
    ) -> Result<()> {
        let p = slice_mut(dst, dst_l, self.name())?;
        self.0.apply(p, slice(s1, l1, self.name())?, None);
        Ok(())
    }
}

/// One AdamW step of `p` with gradient `g` and moments `m`, `v` at step `t` (from 1), in
/// place.
#[allow(clippy::too_many_arguments)]
pub fn adam(
    p: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    t: i32,
    lr: f64,
    (beta1, beta2, eps, weight_decay): (f64, f64, f64, f64),
) -> Result<()> {
    m.inplace_op2(
        g,
        &Moment {
            beta: beta1 as f32,
            square: false,
        },
    )?;
    v.inplace_op2(
        g,
        &Moment {
            beta: beta2 as f32,
            square: true,
        },
    )?;
    p.inplace_op3(
        m,
        v,
        &AdamParam {
            lr: lr as f32,
            decay: (1.0 - lr * weight_decay) as f32,
            c1: (1.0 - beta1.powi(t)) as f32,
            c2: (1.0 - beta2.powi(t)) as f32,
            eps: eps as f32,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.to_vec1().unwrap()
    }

    /// PyTorch's rules on known numbers, computed by hand, updated in place.
    #[test]
    fn steps_update_in_place_by_the_rules() {
        // SGD, momentum 0.9, nesterov, wd 0.1, lr 0.5: g' = g + 0.1 p = [1.1, -0.8];
        // b = g' (first); d = g' + 0.9 b = [2.09, -1.52]; p = p - 0.5 d.
        let p = t(&[1.0, 2.0]);
        let g = t(&[1.0, -1.0]);
        let mut buf = None;
        sgd(&p, &g, &mut buf, 0.5, 0.9, true, 0.1).unwrap();
        let want = [1.0 - 0.5 * 2.09, 2.0 + 0.5 * 1.52];
        for (a, b) in values(&p).iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{:?}", values(&p));
        }
        assert_eq!(values(buf.as_ref().unwrap()), [1.1, -0.8]);
        // Plain SGD: p - lr g.
        let p = t(&[1.0]);
        sgd(&p, &t(&[2.0]), &mut None, 0.25, 0.0, false, 0.0).unwrap();
        assert_eq!(values(&p), [0.5]);
        // AdamW step 1, lr 0.1, wd 0.5: m = 0.1 g, v = 0.001 g^2, the update is lr * sign(g)
        // (up to eps) after p shrinks by 1 - lr wd.
        let (p, g) = (t(&[1.0, -2.0]), t(&[0.3, -4.0]));
        let (m, v) = (t(&[0.0, 0.0]), t(&[0.0, 0.0]));
        adam(&p, &g, &m, &v, 1, 0.1, (0.9, 0.999, 1e-8, 0.5)).unwrap();
        let want = [1.0 * 0.95 - 0.1, -2.0 * 0.95 + 0.1];
        for (a, b) in values(&p).iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{:?}", values(&p));
        }
        assert!((values(&m)[1] + 0.4).abs() < 1e-6 && (values(&v)[1] - 0.016).abs() < 1e-6);
    }
}
