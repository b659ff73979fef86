//! Dense layers: `y = x wᵀ` for `x` (n, in) and `w` (out, in) as one GEMM, and its two
//! gradients as one GEMM each, every result written contiguous in its final layout.
//!
//! candle's `x.matmul(&w.t())` gives `w`'s gradient as the transpose of a contiguous
//! product, which the gradient store then copies element by element into `w`'s layout: for the
//! quickstart CNN's 3136 x 512 layer that strided copy was 6% of a training step. Each
//! product here is split into blocks of rows fixed by the shapes alone (never by the thread
//! count), each block one single-threaded GEMM on the kernel pool, so results are the same for
//! every thread count.
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};

use super::mat::{gemm, View};
use super::{par_chunks, slice, Float};

/// Rows of the result per work item.
const ROWS: usize = 16;

/// `m x n` = `lhs (m x k) * rhs (k x n)`, row-major, in blocks of [`ROWS`] rows.
fn product<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    lhs: View<'_, T>,
    rhs: View<'_, T>,
) -> Result<Vec<T>> {
    let mut out = vec![T::zero(); m * n];
    if n == 0 {
        return Ok(out);
    }
    par_chunks(&mut out, ROWS * n, 0, |item, block, _| {
        let (r0, rows) = (item * ROWS, block.len() / n);
        let lhs = View::new(&lhs.data[r0 * lhs.rs..], lhs.rs, lhs.cs);
        gemm(rows, n, k, block, n, false, lhs, rhs, 1)
    })?;
    Ok(out)
}

/// The three products of a dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dense {
    /// `(x (n, in), w (out, in)) -> x wᵀ (n, out)`.
    Forward,
    /// `(dy (n, out), w (out, in)) -> dy w (n, in)`: the input's gradient.
    GradInput,
    /// `(dy (n, out), x (n, in)) -> dyᵀ x (out, in)`: the weight's gradient.
    GradWeight,
}

impl Dense {
    fn run<T: Float>(
        &self,
        a: &[T],
        (ar, ac): (usize, usize),
        b: &[T],
        (br, bc): (usize, usize),
    ) -> Result<(Vec<T>, Shape)> {
        let mismatch = || {
            candle_core::bail!(
                "{}: operands {ar}x{ac} and {br}x{bc} do not fit",
                self.name()
            )
        };
        match self {
            Dense::Forward => {
                if ac != bc {
                    return mismatch();
                }
                // wᵀ: element (i, o) of the (in x out) view is w[o * in + i].
                let y = product(ar, br, ac, View::new(a, ac, 1), View::new(b, 1, bc))?;
                Ok((y, Shape::from((ar, br))))
            }
            Dense::GradInput => {
                if ac != br {
                    return mismatch();
                }
                let dx = product(ar, bc, ac, View::new(a, ac, 1), View::new(b, bc, 1))?;
                Ok((dx, Shape::from((ar, bc))))
            }
            Dense::GradWeight => {
                if ar != br {
                    return mismatch();
                }
                // dyᵀ: element (o, r) of the (out x n) view is dy[r * out + o].
                let dw = product(ac, bc, ar, View::new(a, 1, ac), View::new(b, bc, 1))?;
                Ok((dw, Shape::from((ac, bc))))
            }
        }
    }
}

impl CustomOp2 for Dense {
    fn name(&self) -> &'static str {
        match self {
            Dense::Forward => "fast-dense",
            Dense::GradInput => "fast-dense-grad-input",
            Dense::GradWeight => "fast-dense-grad-weight",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (d1, d2) = (l1.shape().dims2()?, l2.shape().dims2()?);
        Ok(by_dtype!(s1, self.name(), T => {
            let (v, shape) = self.run::<T>(slice(s1, l1)?, d1, slice(s2, l2)?, d2)?;
            (T::to_cpu_storage_owned(v), shape)
        }))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if *self != Dense::Forward {
            candle_core::bail!("{} has no gradient", self.name())
        }
        let dy = dy.contiguous()?;
        let dx = dy.apply_op2_no_bwd(w, &Dense::GradInput)?;
        let dw = dy.apply_op2_no_bwd(x, &Dense::GradWeight)?;
        Ok((Some(dx), Some(dw)))
    }
}
