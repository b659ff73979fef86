//! Max pooling on cuDNN (square window, stride and padding; padded positions never win):
//! the forward pass and its input gradient from `(x, y, dy)`.
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cudnn::sys;
use candle_core::cuda_backend::CudaStorage;
use candle_core::{CustomOp3, Layout, Result, Shape};

use super::{alloc, by_cuda_dtype, check, handle, one, ptr, to_i32, view, zero, Elem, TensorDesc};

struct PoolDesc(sys::cudnnPoolingDescriptor_t);

impl PoolDesc {
    fn new(kernel: usize, stride: usize, pad: usize) -> Result<PoolDesc> {
        let mut raw = std::ptr::null_mut();
        check(
            unsafe { sys::cudnnCreatePoolingDescriptor(&mut raw) },
            "pooling descriptor",
        )?;
        let desc = PoolDesc(raw);
        let [k, s, p] = to_i32([kernel, stride, pad])?;
        // The deterministic variant: the same gradient on every run, as resume expects.
        let mode = sys::cudnnPoolingMode_t::CUDNN_POOLING_MAX_DETERMINISTIC;
        // NaN propagates, so a diverged run still shows a NaN loss.
        let nan = sys::cudnnNanPropagation_t::CUDNN_PROPAGATE_NAN;
        check(
            unsafe { sys::cudnnSetPooling2dDescriptor(raw, mode, nan, k, k, p, p, s, s) },
            "pooling descriptor",
        )?;
        Ok(desc)
    }
}

impl Drop for PoolDesc {
    fn drop(&mut self) {
        unsafe { sys::cudnnDestroyPoolingDescriptor(self.0) };
    }
}

fn out_dims(l: &Layout, kernel: usize, stride: usize, pad: usize) -> Result<[usize; 4]> {
    let (b, c, h, w) = l.shape().dims4()?;
    if kernel == 0 || stride == 0 || h + 2 * pad < kernel || w + 2 * pad < kernel {
        candle_core::bail!("max_pool2d: window {kernel}/{stride} (padding {pad}) on {h}x{w}")
    }
    let o = |n: usize| (n + 2 * pad - kernel) / stride + 1;
    Ok([b, c, o(h), o(w)])
}

/// `x (b, c, h, w) -> y (b, c, oh, ow)`, floor mode.
pub(crate) fn max_pool2d(
    (kernel, stride, pad): (usize, usize, usize),
    s: &CudaStorage,
    l: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let (b, c, h, w) = l.shape().dims4()?;
    let y_dims = out_dims(l, kernel, stride, pad)?;
    let dev = &s.device;
    by_cuda_dtype!(s.dtype(), "cuDNN max-pool", T => {
        let hd = handle(dev)?;
        let pool = PoolDesc::new(kernel, stride, pad)?;
        let xd = TensorDesc::new(T::CUDNN, [b, c, h, w])?;
        let yd = TensorDesc::new(T::CUDNN, y_dims)?;
        let x = view::<T>(s, l)?;
        let y = alloc::<T>(dev, y_dims.iter().product())?;
        check(
            unsafe {
                sys::cudnnPoolingForward(hd, pool.0, one(), xd.0, ptr(&x, dev), zero(), yd.0, ptr(&y, dev))
            },
            "max-pool forward",
        )?;
        Ok((CudaStorage::wrap_cuda_slice(y, dev.clone()), Shape::from(y_dims.to_vec())))
    })
}

/// The input gradient of a max-pool: `(x, y, dy) -> dx`.
pub(crate) struct MaxPoolGrad {
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
}

impl CustomOp3 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "cudnn-max-pool2d-grad"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        candle_core::bail!("cudnn-max-pool2d-grad runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        sx: &CudaStorage,
        lx: &Layout,
        sy: &CudaStorage,
        ly: &Layout,
        sdy: &CudaStorage,
        ldy: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (b, c, h, w) = lx.shape().dims4()?;
        let y_dims = out_dims(lx, self.kernel, self.stride, self.pad)?;
        if ly.shape().dims() != y_dims || ldy.shape().dims() != y_dims {
            candle_core::bail!(
                "max-pool grad: y {:?}, dy {:?}, expected {y_dims:?}",
                ly.shape(),
                ldy.shape()
            )
        }
        let dev = &sx.device;
        by_cuda_dtype!(sx.dtype(), self.name(), T => {
            let hd = handle(dev)?;
            let pool = PoolDesc::new(self.kernel, self.stride, self.pad)?;
            let xd = TensorDesc::new(T::CUDNN, [b, c, h, w])?;
            let yd = TensorDesc::new(T::CUDNN, y_dims)?;
            let (x, y, dy) = (view::<T>(sx, lx)?, view::<T>(sy, ly)?, view::<T>(sdy, ldy)?);
            let dx = alloc::<T>(dev, b * c * h * w)?;
            check(
                unsafe {
                    sys::cudnnPoolingBackward(
                        hd, pool.0, one(), yd.0, ptr(&y, dev), yd.0, ptr(&dy, dev), xd.0,
                        ptr(&x, dev), zero(), xd.0, ptr(&dx, dev),
                    )
                },
                "max-pool backward",
            )?;
            Ok((CudaStorage::wrap_cuda_slice(dx, dev.clone()), lx.shape().clone()))
        })
    }
}
