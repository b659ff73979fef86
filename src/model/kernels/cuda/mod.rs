//! cuDNN behind the kernels' custom ops on CUDA: dense and depthwise convolution (forward,
//! input gradient, weight gradient), max-pooling (forward and backward) and training-mode
//! batch norm (forward with the running-statistics update, backward), for f32 and bf16.
//!
//! candle 0.11's own CUDA convolution gradient is a naive `conv_transpose2d` kernel, its
//! pooling backward is wrong (see `ops.rs`), and its batch norm is a dozen elementwise and
//! reduction launches; these are the same calls PyTorch makes for the same layers.
//!
//! Conventions, as PyTorch's defaults: NCHW tensors; f32 convolutions may use TF32 tensor
//! cores (`CUDNN_DEFAULT_MATH`, PyTorch's `torch.backends.cudnn.allow_tf32 = True`); bf16
//! convolutions accumulate in f32 (`CUDNN_TENSOR_OP_MATH`); algorithms come from cuDNN's
//! heuristics (PyTorch's `benchmark = False`) and are cached per shape.
//!
//! The cuDNN handle is per thread and device (handles are not `Send`) and bound to candle's
//! stream for that device, so everything stays in stream order with candle's own kernels.
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;

use candle_core::cuda_backend::cudarc::cudnn::sys;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, DeviceRepr};
use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorage, DeviceId};
use candle_core::op::BackpropOp;
use candle_core::{DType, Layout, Result, Shape, Storage, Tensor};

pub(crate) mod conv;
pub(crate) mod eltwise;
pub(crate) mod norm;
pub(crate) mod pool;

/// Runs `$body` with `$t` bound to the element type of a CUDA kernel's `DType` (f32, bf16).
macro_rules! by_cuda_dtype {
    ($dtype:expr, $name:expr, $t:ident => $body:expr) => {
        match $dtype {
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            candle_core::DType::BF16 => {
                type $t = half::bf16;
                $body
            }
            other => candle_core::bail!("{}: no CUDA kernel for {other:?}", $name),
        }
    };
}
pub(crate) use by_cuda_dtype;

/// Whether `t` can take the cuDNN path: a CUDA tensor of dtype f32 or bf16.
pub(crate) fn supports(t: &Tensor) -> bool {
    super::fast_path_enabled()
        && t.device().is_cuda()
        && matches!(t.dtype(), DType::F32 | DType::BF16)
}

/// The element types the cuDNN ops take.
pub(crate) trait Elem: CudaDType + DeviceRepr + Copy + 'static {
    const CUDNN: sys::cudnnDataType_t;
}

impl Elem for f32 {
    const CUDNN: sys::cudnnDataType_t = sys::cudnnDataType_t::CUDNN_DATA_FLOAT;
}

impl Elem for half::bf16 {
    const CUDNN: sys::cudnnDataType_t = sys::cudnnDataType_t::CUDNN_DATA_BFLOAT16;
}

/// Turns a cuDNN status into an error naming the call.
pub(crate) fn check(status: sys::cudnnStatus_t, what: &str) -> Result<()> {
    if status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
        Ok(())
    } else {
        candle_core::bail!("cuDNN {what} failed: {status:?}")
    }
}

struct Handle(sys::cudnnHandle_t);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreate below and dropped once.
        unsafe { sys::cudnnDestroy(self.0) };
    }
}

thread_local! {
    static HANDLES: RefCell<HashMap<DeviceId, Handle>> = RefCell::new(HashMap::new());
}

/// This thread's cuDNN handle for `dev`, bound to candle's stream of that device.
pub(crate) fn handle(dev: &CudaDevice) -> Result<sys::cudnnHandle_t> {
    HANDLES.with(|cell| {
        let mut map = cell.borrow_mut();
        if let Some(h) = map.get(&dev.id()) {
            return Ok(h.0);
        }
        let mut raw = std::ptr::null_mut();
        // SAFETY: plain handle creation; the handle is owned by `Handle` from here on.
        check(unsafe { sys::cudnnCreate(&mut raw) }, "handle creation")?;
        let h = Handle(raw);
        let stream = dev.cuda_stream().cu_stream() as sys::cudaStream_t;
        check(unsafe { sys::cudnnSetStream(raw, stream) }, "set stream")?;
        map.insert(dev.id(), h);
        Ok(raw)
    })
}

/// An NCHW tensor descriptor.
pub(crate) struct TensorDesc(pub(crate) sys::cudnnTensorDescriptor_t);

impl TensorDesc {
    pub(crate) fn new(dtype: sys::cudnnDataType_t, dims: [usize; 4]) -> Result<Self> {
        let mut raw = std::ptr::null_mut();
        check(
            unsafe { sys::cudnnCreateTensorDescriptor(&mut raw) },
            "tensor descriptor",
        )?;
        let desc = TensorDesc(raw);
        let [n, c, h, w] = to_i32(dims)?;
        let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        check(
            unsafe { sys::cudnnSetTensor4dDescriptor(raw, nchw, dtype, n, c, h, w) },
            "tensor descriptor shape",
        )?;
        Ok(desc)
    }
}

impl Drop for TensorDesc {
    fn drop(&mut self) {
        unsafe { sys::cudnnDestroyTensorDescriptor(self.0) };
    }
}

/// Shapes as the C ints cuDNN takes; errors on dimensions past `i32::MAX`.
pub(crate) fn to_i32<const N: usize>(dims: [usize; N]) -> Result<[i32; N]> {
    let mut out = [0i32; N];
    for (o, d) in out.iter_mut().zip(dims) {
        *o = i32::try_from(d)
            .map_err(|_| candle_core::Error::Msg(format!("dimension {d} too large for cuDNN")))?;
    }
    Ok(out)
}

/// The contiguous data of a kernel input as a typed view.
pub(crate) fn view<'a, T: Elem>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, T>> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(s.as_cuda_slice::<T>()?.slice(start..end)),
        None => candle_core::bail!("cuDNN kernel input must be contiguous, got {l:?}"),
    }
}

/// A fresh, uninitialised device buffer of `len` elements (every op here overwrites all of
/// its output: cuDNN does not read the output when beta is 0).
pub(crate) fn alloc<T: Elem>(dev: &CudaDevice, len: usize) -> Result<CudaSlice<T>> {
    // SAFETY: the buffer is written in full before anything reads it.
    unsafe { dev.alloc::<T>(len.max(1)) }
}

/// The raw device address of a view, a slice or a workspace, valid for launches on `dev`'s
/// stream (the only stream these ops use).
pub(crate) fn ptr<T>(
    s: &impl candle_core::cuda_backend::cudarc::driver::DevicePtr<T>,
    dev: &CudaDevice,
) -> *mut c_void {
    let stream = dev.cuda_stream();
    let (p, _sync) = s.device_ptr(&stream);
    p as usize as *mut c_void
}

/// A storage-less tensor wrapper around a finished device buffer.
pub(crate) fn tensor<T: Elem>(
    slice: CudaSlice<T>,
    dev: &CudaDevice,
    shape: impl Into<Shape>,
) -> Tensor {
    let storage = CudaStorage::wrap_cuda_slice(slice, dev.clone());
    Tensor::from_storage(Storage::Cuda(storage), shape, BackpropOp::none(), false)
}

/// The scaling factors cuDNN takes as host pointers: f32 for f32 and bf16 data.
pub(crate) const ONE: f32 = 1.0;
pub(crate) const ZERO: f32 = 0.0;

pub(crate) fn one() -> *const c_void {
    &ONE as *const f32 as *const c_void
}

pub(crate) fn zero() -> *const c_void {
    &ZERO as *const f32 as *const c_void
}

/// A scratch buffer for a cuDNN call (`None` when it needs none).
pub(crate) fn workspace(dev: &CudaDevice, bytes: usize) -> Result<Option<CudaSlice<u8>>> {
    if bytes == 0 {
        return Ok(None);
    }
    // SAFETY: workspace contents are never read before cuDNN writes them.
    Ok(Some(unsafe { dev.alloc::<u8>(bytes) }?))
}

/// The device buffer of a tensor's storage, for ops that hold tensors (batch norm's running
/// statistics) rather than receive them as inputs.
pub(crate) fn with_cuda_storage<R>(
    t: &Tensor,
    f: impl FnOnce(&CudaStorage, &Layout) -> Result<R>,
) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cuda(s) => f(s, layout),
        _ => candle_core::bail!(
            "expected a CUDA tensor, got one on {:?}",
            t.device().location()
        ),
    }
}
