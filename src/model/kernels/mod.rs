//! Fast CPU kernels for the model's ops, as candle custom ops with their own backward.
//!
//! candle 0.11's CPU backend computes a convolution's input gradient with a direct
//! `conv_transpose2d` loop (no GEMM), grouped convolutions as a loop over groups, and runs
//! every elementwise op on one thread. The ops here replace the hot paths of training on the
//! CPU:
//!
//! * [`conv`]: dense 2D convolution, forward pass and both gradients (input and weight),
//!   batch-parallel, by one of three algorithms chosen by shape: [`winograd`] F(2x2, 3x3) for
//!   3x3 stride-1 layers with many channels on large maps, the [`direct`] AVX-512 kernel
//!   (f32) for the other layers with at most 1152 taps, else im2col/col2im + the `gemm`
//!   crate;
//! * [`depthwise`]: direct depthwise convolution (`groups == channels`), all three passes;
//! * [`pool`]: max-pooling forward and backward (first maximum wins, like PyTorch);
//! * [`norm`]: batch norm forward/backward in one pass each, optionally fused with the ReLU
//!   that follows it, plus ReLU and add+ReLU (the residual join).
//!
//! Each op's backward is itself made of custom ops, so no slow candle path remains in a
//! training step. [`super::ops`] dispatches here only for CPU tensors of dtype f32 or f64
//! while the fast path is enabled ([`set_fast_path`]); everything else (CUDA, other dtypes,
//! the reference path) runs the generic implementations in `ops.rs`.
//!
//! Threads: the kernels run on candle's own CPU thread pool (the one its multi-threaded
//! elementwise ops use), so the two never compete for cores; its size follows
//! `CANDLE_NUM_THREADS` / `RAYON_NUM_THREADS` / the physical cores, and [`set_threads`] lets
//! the kernels use fewer. Results never depend on the thread count: every reduction splits
//! its work into chunks fixed by the shapes alone and sums them in order.
//!
//! Vectors: every work item runs compiled for the widest instruction set the CPU has,
//! AVX-512 or AVX2 + FMA, chosen at run time ([`simd`]); the same binary runs, with the
//! baseline's SSE2, on any x86-64 CPU, and every level computes the same bits.
//!
//! Memory: on Linux with glibc the first kernel call tells malloc to keep freed memory for
//! reuse instead of unmapping it (see `keep_freed_memory`), which removes the page faults
//! and cross-core TLB flushes of allocating every activation afresh.
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use candle_core::{CpuStorage, DType, Layout, Result, Tensor};

pub use simd::{set_simd, Simd};

/// Runs `$body` with `$t` bound to f32 or f64 according to the storage's dtype.
macro_rules! by_dtype {
    ($s:expr, $name:expr, $t:ident => $body:expr) => {
        match $crate::model::kernels::float_dtype($s, $name)? {
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            _ => {
                type $t = f64;
                $body
            }
        }
    };
}

/// Runs `$body` with the type `$a` set to the [`Act`] of the runtime [`Activation`] `$act`.
macro_rules! with_act {
    ($act:expr, $a:ident => $body:expr) => {
        match $act {
            $crate::model::kernels::Activation::Identity => {
                type $a = $crate::model::kernels::IdentityAct;
                $body
            }
            $crate::model::kernels::Activation::Relu => {
                type $a = $crate::model::kernels::ReluAct;
                $body
            }
            $crate::model::kernels::Activation::Relu6 => {
                type $a = $crate::model::kernels::Relu6Act;
                $body
            }
            $crate::model::kernels::Activation::Silu => {
                type $a = $crate::model::kernels::SiluAct;
                $body
            }
        }
    };
}

pub(crate) mod bias;
pub(crate) mod conv;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
pub(crate) mod dense;
pub(crate) mod depthwise;
pub(crate) mod direct;
pub(crate) mod dropout;
pub(crate) mod eltwise;
pub(crate) mod geom;
mod mat;
pub mod norm;
mod norm_sums;
pub(crate) mod pool;
pub mod simd;
#[cfg(test)]
mod tests;
mod winograd;

pub use geom::Pass as ConvPass;

/// One pass of the fast dense convolution on its own, without autograd: `(x, weight)` for
/// the forward pass, `(dy, weight)` for the input gradient, `(x, dy)` for the weight
/// gradient. For benchmarks that time the three passes apart (`benches/conv.rs`).
#[doc(hidden)]
pub fn conv2d_pass(
    pass: ConvPass,
    a: &Tensor,
    b: &Tensor,
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    a.apply_op2_no_bwd(b, &conv::Conv2d::pass(stride, pad, pass))
}

/// The activation a fused batch norm applies to its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)` (MobileNetV2's).
    Relu6,
    /// `x * sigmoid(x)` (EfficientNet's).
    Silu,
}

/// One activation as a type, so that a kernel's inner loop is compiled for it (branch-free
/// and vectorised) instead of matching on [`Activation`] per element; see [`with_act!`].
pub(crate) trait Act {
    fn of<T: Float>(o: T) -> T;
    /// For ReLU and ReLU6 zero where the activation is flat, both ends included (PyTorch's
    /// `threshold_backward` and `hardtanh_backward`); for SiLU `dy * s * (1 + o (1 - s))`,
    /// `s = sigmoid(o)` (PyTorch's `silu_backward`).
    fn grad<T: Float>(o: T, dy: T) -> T;
}

pub(crate) struct IdentityAct;
pub(crate) struct ReluAct;
pub(crate) struct Relu6Act;
pub(crate) struct SiluAct;

impl Act for IdentityAct {
    #[inline(always)]
    fn of<T: Float>(o: T) -> T {
        o
    }
    #[inline(always)]
    fn grad<T: Float>(_o: T, dy: T) -> T {
        dy
    }
}

impl Act for ReluAct {
    #[inline(always)]
    fn of<T: Float>(o: T) -> T {
        if o > T::zero() {
            o
        } else {
            T::zero()
        }
    }
    #[inline(always)]
    fn grad<T: Float>(o: T, dy: T) -> T {
        if o > T::zero() {
            dy
        } else {
            T::zero()
        }
    }
}

impl Act for Relu6Act {
    #[inline(always)]
    fn of<T: Float>(o: T) -> T {
        let six = T::from_f64(6.0);
        let r = if o > T::zero() { o } else { T::zero() };
        if r < six {
            r
        } else {
            six
        }
    }
    #[inline(always)]
    fn grad<T: Float>(o: T, dy: T) -> T {
        let inside = (o > T::zero()) & (o < T::from_f64(6.0));
        if inside {
            dy
        } else {
            T::zero()
        }
    }
}

impl Act for SiluAct {
    #[inline(always)]
    fn of<T: Float>(o: T) -> T {
        o / (T::one() + (-o).exp())
    }
    #[inline(always)]
    fn grad<T: Float>(o: T, dy: T) -> T {
        let s = T::one() / (T::one() + (-o).exp());
        dy * s * (T::one() + o * (T::one() - s))
    }
}

/// The float types the kernels compute in (f32 and f64).
pub(crate) trait Float:
    candle_core::WithDType + mat::GemmFloat + std::ops::Neg<Output = Self>
{
    /// `e^self` (f32: [`exp_f32`], vectorisable; f64: the exact one).
    fn exp(self) -> Self;

    /// Calls `f` with this thread's scratch buffer of at least `len` elements (reused
    /// between calls, so its contents are arbitrary).
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
}

thread_local! {
    static SCRATCH_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

macro_rules! scratch {
    ($t:ty, $key:ident, $exp:path) => {
        impl Float for $t {
            #[inline(always)]
            fn exp(self) -> Self {
                $exp(self)
            }

            fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
                $key.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut buf) => {
                        if buf.len() < len {
                            buf.resize(len, 0.0);
                        }
                        f(&mut buf[..len])
                    }
                    // Re-entered on this thread: use a buffer of its own.
                    Err(_) => f(&mut vec![0.0; len]),
                })
            }
        }
    };
}
/// `e^x` for f32 without a libm call, so that the loops using it vectorise: Cephes'
/// `expf` (range reduction by `ln 2` in two parts, a degree-5 polynomial, the power of two
/// built in the exponent bits), within 2 ulp of `f32::exp` on [-87, 88]; inputs outside are
/// clamped to it (SiLU and sigmoid only need the saturated ends).
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Round to nearest by adding and removing 1.5 * 2^23: no `round` call, which SSE2 lacks.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = x - k * 0.693_359_4 + k * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    // SAFETY: `x` is clamped to [-87, 88], so `k` is an integral value in [-126, 127]: the
    // unchecked conversion (a plain `cvttps2dq`, unlike `as` with its saturation) is exact.
    let k = unsafe { k.to_int_unchecked::<i32>() };
    y * f32::from_bits(((k + 127) as u32) << 23)
}

scratch!(f32, SCRATCH_F32, exp_f32);
scratch!(f64, SCRATCH_F64, f64::exp);

/// The contiguous data of a kernel input (the dispatchers make every input contiguous).
pub(crate) fn slice<'a, T: Float>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let all = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&all[start..end]),
        None => candle_core::bail!("fast kernel input must be contiguous, got {l:?}"),
    }
}

/// Whether `t` can take the cuDNN ops (feature `cuda`): a CUDA tensor of dtype f32 or bf16.
#[cfg(feature = "cuda")]
pub(crate) fn gpu_supports(t: &Tensor) -> bool {
    cuda::supports(t)
}

/// Whether `t` can take the cuDNN ops: never in a build without CUDA.
#[cfg(not(feature = "cuda"))]
pub(crate) fn gpu_supports(_t: &Tensor) -> bool {
    false
}

/// CUDA device `ordinal` set up for training: every buffer lives on candle's one stream of
/// that device (cuDNN is bound to it too), so cudarc's cross-stream event tracking, two CUDA
/// events created with every allocation, is only overhead and is turned off.
#[cfg(feature = "cuda")]
pub fn cuda_device(ordinal: usize) -> Result<candle_core::Device> {
    let dev = candle_core::Device::new_cuda(ordinal)?;
    if let candle_core::Device::Cuda(d) = &dev {
        // SAFETY: no buffer is shared with another stream (see above).
        unsafe { d.disable_event_tracking() };
    }
    Ok(dev)
}

/// CUDA device `ordinal`: in a build without CUDA, the error saying so.
#[cfg(not(feature = "cuda"))]
pub fn cuda_device(ordinal: usize) -> Result<candle_core::Device> {
    candle_core::Device::new_cuda(ordinal)
}

/// Whether `t` can take the fast path: a CPU tensor of dtype f32 or f64.
pub(crate) fn supports(t: &Tensor) -> bool {
    fast_path_enabled() && t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

thread_local! {
    static FAST_PATH: Cell<bool> = const { Cell::new(true) };
}

/// Enables (the default) or disables the fast CPU kernels **for the calling thread**; when
/// disabled, the ops run candle's generic reference implementations. Meant for benchmarks
/// and tests that compare both paths; a backward pass follows the path its forward took.
pub fn set_fast_path(enabled: bool) {
    FAST_PATH.with(|f| f.set(enabled));
}

/// Whether the fast CPU kernels are enabled for the calling thread (see [`set_fast_path`]).
pub fn fast_path_enabled() -> bool {
    FAST_PATH.with(|f| f.get())
}

thread_local! {
    static WINOGRAD: Cell<bool> = const { Cell::new(true) };
}

/// Enables (the default) or disables, for the calling thread, the Winograd path of 3x3
/// stride-1 convolutions (then they run through im2col + GEMM like every other shape). For
/// benchmarks and tests that compare the two.
#[doc(hidden)]
pub fn set_winograd(enabled: bool) {
    WINOGRAD.with(|f| f.set(enabled));
}

/// Whether the Winograd path is enabled for the calling thread (see [`set_winograd`]).
fn winograd_enabled() -> bool {
    WINOGRAD.with(|f| f.get())
}

thread_local! {
    static DIRECT: Cell<bool> = const { Cell::new(true) };
}

/// Enables (the default) or disables, for the calling thread, the direct AVX-512 convolution
/// kernel (then those layers run through im2col + GEMM). For benchmarks and tests.
#[doc(hidden)]
pub fn set_direct(enabled: bool) {
    DIRECT.with(|f| f.set(enabled));
}

/// Whether the direct kernel is enabled for the calling thread (see [`set_direct`]).
fn direct_enabled() -> bool {
    DIRECT.with(|f| f.get())
}

/// `s` as f32 data when `T` is f32.
pub(crate) fn as_f32<T: Float>(s: &[T]) -> Option<&[f32]> {
    // SAFETY: `T` is f32 itself, so the slice is reinterpreted as its own type.
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) })
}

/// An f32 vector as a `Vec<T>`; panics unless `T` is f32 (see [`as_f32`]).
pub(crate) fn from_f32<T: Float>(v: Vec<f32>) -> Vec<T> {
    assert!(std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>());
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: `T` is f32 (asserted), so pointer, length and capacity describe a valid Vec<T>.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) }
}

/// Threads the kernels use; 0 means all of candle's pool.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Size of candle's CPU thread pool: its workers plus the calling thread.
fn pool_size() -> usize {
    keep_freed_memory();
    candle_core::utils::barrier_pool().n_workers() + 1
}

/// Makes glibc's malloc keep freed memory for reuse (once per process, on the first kernel
/// call): no `mmap` for large blocks and no trimming below 1 GiB. Training allocates and frees
/// activation-sized buffers (megabytes) in every op; by default each is a fresh `mmap`, and
/// unmapping it in a multi-threaded process interrupts every core to flush its TLB (on this
/// 2-core VM that made a depthwise layer 6x slower with 2 threads than with 1). The cost is
/// that the process keeps its peak heap, as a training run does anyway.
fn keep_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator parameters; glibc serialises it internally.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    });
}

/// Sets the number of threads the fast CPU kernels use; `0` (the default) uses all of
/// candle's CPU thread pool, whose size candle fixes when it first starts it, from
/// `CANDLE_NUM_THREADS`, else `RAYON_NUM_THREADS`, else the number of physical cores
/// (`candle_core::utils::get_num_threads()` when neither is set). Larger values are capped
/// at that size. The kernels share candle's pool rather than starting threads of their own,
/// so candle's own multi-threaded CPU ops and the kernels never compete for cores; those
/// candle ops keep using the whole pool. Takes effect for the next op.
pub fn set_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// The number of threads the fast CPU kernels use (see [`set_threads`]).
pub fn threads() -> usize {
    let all = pool_size();
    match THREADS.load(Ordering::Relaxed) {
        0 => all,
        n => n.min(all),
    }
}

/// A pointer that may cross threads: the kernels hand each work item a disjoint chunk.
struct SharedMut<T>(*mut T);
// SAFETY: only used by `par_chunks`, which gives every chunk to exactly one call.
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    fn ptr(&self) -> *mut T {
        self.0
    }
}

/// Calls `f(i)` for `i` in `0..items` in parallel on candle's CPU thread pool (at most
/// [`threads`] of its threads, items handed out one at a time). Returns the first error.
fn par_items(items: usize, f: impl Fn(usize) -> Result<()> + Sync) -> Result<()> {
    let n = threads().min(items);
    if n <= 1 {
        return (0..items).try_for_each(f);
    }
    let cursor = AtomicUsize::new(0);
    let error = Mutex::new(None);
    let pool = candle_core::utils::barrier_pool();
    let main = pool.n_workers();
    pool.execute(|tid| {
        // The calling thread (tid `main`) and the first `n - 1` workers share the items.
        if tid != main && tid + 1 >= n {
            return;
        }
        loop {
            let i = cursor.fetch_add(1, Ordering::Relaxed);
            if i >= items {
                break;
            }
            if let Err(e) = f(i) {
                if let Ok(mut slot) = error.lock() {
                    slot.get_or_insert(e);
                }
                cursor.store(items, Ordering::Relaxed);
                break;
            }
        }
    });
    match error.into_inner() {
        Ok(Some(e)) => Err(e),
        Ok(None) => Ok(()),
        Err(_) => candle_core::bail!("kernel error slot poisoned"),
    }
}

/// Chunk `i` (of `chunk` elements, the last one shorter) of the slice behind `base`.
///
/// # Safety
/// `base` must come from a live `&mut [T]` of length `len`, and no two live results may
/// have the same `i`.
unsafe fn chunk_of<'a, T>(base: &SharedMut<T>, len: usize, chunk: usize, i: usize) -> &'a mut [T] {
    let start = i * chunk;
    std::slice::from_raw_parts_mut(base.ptr().add(start), chunk.min(len - start))
}

/// Calls `f(i, chunk, scratch)` for the consecutive `chunk`-sized pieces of `data` in
/// parallel (see [`par_items`]), giving each call a `scratch`-long buffer that belongs to
/// its thread (reused, so not zeroed). Returns the first error any call returned.
pub(crate) fn par_chunks<T: Float>(
    data: &mut [T],
    chunk: usize,
    scratch: usize,
    f: impl Fn(usize, &mut [T], &mut [T]) -> Result<()> + Send + Sync,
) -> Result<()> {
    if chunk == 0 || data.is_empty() {
        return Ok(());
    }
    let (len, base) = (data.len(), SharedMut(data.as_mut_ptr()));
    let simd = Simd::current();
    par_items(len.div_ceil(chunk), |i| {
        // SAFETY: `data` is borrowed for the whole call and each item index is used once.
        let part = unsafe { chunk_of(&base, len, chunk, i) };
        T::with_scratch(scratch, |buf| {
            simd.run(
                #[inline(always)]
                || f(i, part, buf),
            )
        })
    })
}

/// A new vector of `len` elements computed like [`par_chunks`] over it: each work item's
/// chunk is zero-filled by the thread that computes it, right before `f` writes it (while it
/// is in that core's cache), instead of the whole output being zero-filled up front on the
/// calling thread, which took a tenth of a training step.
pub(crate) fn par_new<T: Float>(
    len: usize,
    chunk: usize,
    scratch: usize,
    f: impl Fn(usize, &mut [T], &mut [T]) -> Result<()> + Send + Sync,
) -> Result<Vec<T>> {
    let mut out: Vec<T> = Vec::with_capacity(len);
    if chunk == 0 || len == 0 {
        out.resize(len, T::zero());
        return Ok(out);
    }
    let base = SharedMut(out.spare_capacity_mut().as_mut_ptr());
    let simd = Simd::current();
    par_items(len.div_ceil(chunk), |i| {
        // SAFETY: the spare capacity holds `len` elements, borrowed (through `out`) for the
        // whole call, and each item index is used once.
        let part = unsafe { chunk_of(&base, len, chunk, i) };
        for v in part.iter_mut() {
            v.write(T::zero());
        }
        // SAFETY: every element of `part` was just initialised.
        let part = unsafe { &mut *(part as *mut [std::mem::MaybeUninit<T>] as *mut [T]) };
        T::with_scratch(scratch, |buf| {
            simd.run(
                #[inline(always)]
                || f(i, part, buf),
            )
        })
    })?;
    // SAFETY: the items cover `0..len`, and each initialised its chunk before `f` ran. (On an
    // error the vector is dropped as empty.)
    unsafe { out.set_len(len) };
    Ok(out)
}

/// A new vector of `len` elements made of `plane`-element planes, plane `i` computed by
/// `f(i, plane, scratch)` (see [`par_new`]). A work item covers whole planes, at least
/// [`MIN_PLANE_ITEM`] elements of them: the deep layers' 7x7 planes handed out one at a time
/// (36,864 of them in a batch-norm pass of EfficientNet-B0) cost more than they computed.
/// `f` runs inside the work item's vector-level function: mark it `#[inline(always)]`.
#[inline(always)]
pub(crate) fn par_planes<T: Float>(
    len: usize,
    plane: usize,
    scratch: usize,
    f: impl Fn(usize, &mut [T], &mut [T]) + Send + Sync,
) -> Result<Vec<T>> {
    let group = (MIN_PLANE_ITEM / plane.max(1)).max(1);
    par_new(
        len,
        group * plane,
        scratch,
        #[inline(always)]
        |item, planes, buf| {
            for (j, p) in planes.chunks_exact_mut(plane).enumerate() {
                f(item * group + j, p, buf);
            }
            Ok(())
        },
    )
}

/// Elements a work item of [`par_planes`] covers at least.
const MIN_PLANE_ITEM: usize = 2048;

/// Lanes of the kernels' vectorised sums (batch norm's channel sums, the depthwise weight
/// gradient): one AVX-512 register of f32.
pub(crate) const LANES: usize = 16;

/// Adds the consecutive `len`-element partial results in `parts` into the first, in order
/// (so the sum is the same whatever thread computed each part), and returns it.
pub(crate) fn add_in_order<T: Float>(parts: &mut [T], len: usize) -> &[T] {
    let (first, rest) = parts.split_at_mut(len);
    for part in rest.chunks(len) {
        for (a, b) in first.iter_mut().zip(part) {
            *a += *b;
        }
    }
    first
}

/// Like [`par_chunks`] over two slices at once, cut into the same number of chunks
/// (`ca` and `cb` elements each), without scratch.
pub(crate) fn par_chunks2<A: Send, B: Send>(
    a: &mut [A],
    ca: usize,
    b: &mut [B],
    cb: usize,
    f: impl Fn(usize, &mut [A], &mut [B]) -> Result<()> + Send + Sync,
) -> Result<()> {
    if ca == 0 || cb == 0 || a.len().div_ceil(ca) != b.len().div_ceil(cb) {
        candle_core::bail!(
            "par_chunks2: slices of {} and {} elements do not pair up",
            a.len(),
            b.len()
        )
    }
    let (la, pa) = (a.len(), SharedMut(a.as_mut_ptr()));
    let (lb, pb) = (b.len(), SharedMut(b.as_mut_ptr()));
    let simd = Simd::current();
    par_items(la.div_ceil(ca), |i| {
        // SAFETY: both slices are borrowed for the whole call and each index is used once.
        let (x, y) = unsafe { (chunk_of(&pa, la, ca, i), chunk_of(&pb, lb, cb, i)) };
        simd.run(
            #[inline(always)]
            || f(i, x, y),
        )
    })
}

/// The dtype of a kernel input that has one of the supported float dtypes.
pub(crate) fn float_dtype(s: &CpuStorage, op: &str) -> Result<DType> {
    match s {
        CpuStorage::F32(_) => Ok(DType::F32),
        CpuStorage::F64(_) => Ok(DType::F64),
        _ => candle_core::bail!("{op}: the fast kernels support f32 and f64 only"),
    }
}
