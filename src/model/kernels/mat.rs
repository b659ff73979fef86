//! A bounds-checked wrapper over the `gemm` crate's matrix product for the kernels.
use candle_core::Result;

/// Float types the `gemm` crate multiplies (it dispatches on the type at run time).
pub(crate) trait GemmFloat: Copy + Send + Sync + 'static {}
impl GemmFloat for f32 {}
impl GemmFloat for f64 {}

/// A read-only strided matrix view: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> View<'a, T> {
    pub(crate) fn new(data: &'a [T], rs: usize, cs: usize) -> Self {
        View { data, rs, cs }
    }
}

/// The largest index a `rows x cols` matrix with strides `rs`, `cs` touches, plus one.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// `dst = lhs * rhs` (or `dst += lhs * rhs` with `accumulate`), where `dst` is `m x n` with
/// row stride `dst_rs` and column stride 1, `lhs` is `m x k` and `rhs` is `k x n`.
/// `threads > 1` lets gemm split the product itself (use 1 inside a parallel loop).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<T: super::Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    lhs: View<'_, T>,
    rhs: View<'_, T>,
    threads: usize,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    if extent(m, n, dst_rs, 1) > dst.len()
        || extent(m, k, lhs.rs, lhs.cs) > lhs.data.len()
        || extent(k, n, rhs.rs, rhs.cs) > rhs.data.len()
    {
        candle_core::bail!("gemm {m}x{k} * {k}x{n}: a matrix view exceeds its buffer")
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(T::zero());
            }
        }
        return Ok(());
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three views were checked above to stay inside their slices, `dst` is
    // borrowed mutably and so cannot alias `lhs` or `rhs`, and `T` is f32 or f64, which gemm
    // dispatches on.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            if accumulate { T::one() } else { T::zero() },
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}
