//! Parallel elementwise ops: ReLU and the residual join `relu(a + b)`, whose backward is
//! one pass `dy * (y > 0)` (candle's ReLU backward takes five single-threaded passes), and
//! ReLU6 and SiLU (one parallel pass each way; candle's are several single-threaded ones).
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, WithDType};

use super::{par_new, slice, Act, Float, Relu6Act, ReluAct, SiluAct};

/// Elements per parallel work item.
const CHUNK: usize = 32 * 1024;

/// `out[i] = f(a[i], b[i])` in parallel (`b` may be empty for a unary op).
fn map<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Send + Sync) -> Result<Vec<T>> {
    par_new(
        a.len(),
        CHUNK,
        0,
        #[inline(always)]
        |i, o, _| {
            let (start, len) = (i * CHUNK, o.len());
            let a = &a[start..start + len];
            if b.is_empty() {
                for (d, x) in o.iter_mut().zip(a) {
                    *d = f(*x, T::zero());
                }
            } else {
                for ((d, x), y) in o.iter_mut().zip(a).zip(&b[start..start + len]) {
                    *d = f(*x, *y);
                }
            }
            Ok(())
        },
    )
}

/// The elementwise ops of this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Eltwise {
    /// `x -> max(x, 0)` (unary).
    Relu,
    /// `(a, b) -> max(a + b, 0)`.
    AddRelu,
    /// `(y, dy) -> dy * (y > 0)`: the gradient of both ops above given their output `y`.
    ReluGrad,
    /// `x -> min(max(x, 0), 6)` (unary; CPU only).
    Relu6,
    /// `(y, dy) -> dy * (0 < y < 6)`: ReLU6's gradient given its output, PyTorch's
    /// `hardtanh_backward` (0 at both ends).
    Relu6Grad,
    /// `x -> x * sigmoid(x)` (unary; CPU only).
    Silu,
    /// `(x, dy) -> dy * s * (1 + x (1 - s))`, `s = sigmoid(x)`: SiLU's gradient given its
    /// input.
    SiluGrad,
}

impl Eltwise {
    fn run<T: Float>(&self, a: &[T], b: &[T]) -> Result<Vec<T>> {
        match self {
            Eltwise::Relu => map(a, &[], |x, _| ReluAct::of(x)),
            Eltwise::AddRelu => map(a, b, |x, y| ReluAct::of(x + y)),
            // ReLU's and ReLU6's outputs are flat exactly where their inputs are.
            Eltwise::ReluGrad => map(a, b, ReluAct::grad),
            Eltwise::Relu6 => map(a, &[], |x, _| Relu6Act::of(x)),
            Eltwise::Relu6Grad => map(a, b, Relu6Act::grad),
            Eltwise::Silu => map(a, &[], |x, _| SiluAct::of(x)),
            Eltwise::SiluGrad => map(a, b, SiluAct::grad),
        }
    }

    fn storage(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        if let Some((_, l2)) = s2 {
            if l1.shape() != l2.shape() {
                candle_core::bail!(
                    "{}: shapes {:?} and {:?} differ",
                    CustomOp1::name(self),
                    l1.shape(),
                    l2.shape()
                )
            }
        }
        let out = by_dtype!(s1, CustomOp1::name(self), T => {
            let b = match s2 {
                Some((s, l)) => slice::<T>(s, l)?,
                None => &[],
            };
            T::to_cpu_storage_owned(self.run(slice(s1, l1)?, b)?)
        });
        Ok((out, l1.shape().clone()))
    }
}

impl CustomOp1 for Eltwise {
    fn name(&self) -> &'static str {
        match self {
            Eltwise::Relu => "fast-relu",
            Eltwise::AddRelu => "fast-add-relu",
            Eltwise::ReluGrad => "fast-relu-grad",
            Eltwise::Relu6 => "fast-relu6",
            Eltwise::Relu6Grad => "fast-relu6-grad",
            Eltwise::Silu => "fast-silu",
            Eltwise::SiluGrad => "fast-silu-grad",
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        if !matches!(self, Eltwise::Relu | Eltwise::Relu6 | Eltwise::Silu) {
            candle_core::bail!("{} takes two arguments", CustomOp1::name(self))
        }
        self.storage(s, l, None)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        match self {
            Eltwise::Relu => {
                super::cuda::eltwise::run(super::cuda::eltwise::Op::Relu, (s, l), None)
            }
            _ => candle_core::bail!("{} takes two arguments", CustomOp1::name(self)),
        }
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dy = dy.contiguous()?;
        Ok(Some(match self {
            Eltwise::Relu6 => y.apply_op2_no_bwd(&dy, &Eltwise::Relu6Grad)?,
            Eltwise::Silu => x.contiguous()?.apply_op2_no_bwd(&dy, &Eltwise::SiluGrad)?,
            _ => y.apply_op2_no_bwd(&dy, &Eltwise::ReluGrad)?,
        }))
    }
}

impl CustomOp2 for Eltwise {
    fn name(&self) -> &'static str {
        CustomOp1::name(self)
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if matches!(self, Eltwise::Relu | Eltwise::Relu6 | Eltwise::Silu) {
            candle_core::bail!("{} takes one argument", CustomOp1::name(self))
        }
        self.storage(s1, l1, Some((s2, l2)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::eltwise::{run, Op};
        let op = match self {
            Eltwise::Relu => candle_core::bail!("fast-relu takes one argument"),
            Eltwise::AddRelu => Op::AddRelu,
            Eltwise::ReluGrad => Op::ReluGrad,
            Eltwise::Relu6 | Eltwise::Relu6Grad | Eltwise::Silu | Eltwise::SiluGrad => {
                candle_core::bail!("{} runs on the CPU only", CustomOp1::name(self))
            }
        };
        run(op, (s1, l1), Some((s2, l2)))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = y.apply_op2_no_bwd(&dy.contiguous()?, &Eltwise::ReluGrad)?;
        Ok((Some(g.clone()), Some(g)))
    }
}
