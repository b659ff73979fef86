//! Batch norm on CUDA. Training mode is cuDNN's spatial batch norm: one forward call that
//! also updates the running statistics (momentum, unbiased variance, as candle-nn and
//! PyTorch do) and saves the batch mean and inverse deviation for the backward call, which
//! gives the input, scale and shift gradients at once. Inference mode is a per-channel
//! scale and shift with candle's broadcast ops. Scale, shift and statistics are f32; the
//! data may be f32 or bf16 (cuDNN's mixed-precision batch norm, as under PyTorch's autocast).
use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cudnn::sys;
use candle_core::cuda_backend::cudarc::driver::CudaSlice;
use candle_core::cuda_backend::CudaStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use candle_nn::BatchNorm;

use super::{alloc, by_cuda_dtype, check, handle, one, ptr, tensor, view, with_cuda_storage, zero};
use super::{Elem, TensorDesc};

const MODE: sys::cudnnBatchNormMode_t = sys::cudnnBatchNormMode_t::CUDNN_BATCHNORM_SPATIAL;

/// `(b, c, ...)` as cuDNN's `(b, c, inner, 1)`.
fn dims(shape: &Shape) -> Result<[usize; 4]> {
    let d = shape.dims();
    if d.len() < 2 {
        candle_core::bail!("batch norm needs (batch, channels, ...), got {shape:?}")
    }
    Ok([d[0], d[1], d[2..].iter().product(), 1])
}

/// The per-channel descriptor cuDNN derives for the scale, shift and statistics.
fn param_desc(x: &TensorDesc) -> Result<TensorDesc> {
    let mut raw = std::ptr::null_mut();
    check(
        unsafe { sys::cudnnCreateTensorDescriptor(&mut raw) },
        "batch-norm descriptor",
    )?;
    let desc = TensorDesc(raw);
    check(
        unsafe { sys::cudnnDeriveBNTensorDescriptor(raw, x.0, MODE) },
        "batch-norm descriptor",
    )?;
    Ok(desc)
}

/// The batch mean and inverse standard deviation saved by the forward call.
type Saved = Arc<(CudaSlice<f32>, CudaSlice<f32>)>;

/// Training-mode batch norm `(x, gamma, beta) -> y`, updating the running statistics.
struct TrainForward {
    eps: f64,
    momentum: f64,
    running_mean: Tensor,
    running_var: Tensor,
    saved: Mutex<Option<Saved>>,
}

impl CustomOp3 for TrainForward {
    fn name(&self) -> &'static str {
        "cudnn-batch-norm"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("cudnn-batch-norm runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        sx: &CudaStorage,
        lx: &Layout,
        sg: &CudaStorage,
        lg: &Layout,
        sb: &CudaStorage,
        lb: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let d = dims(lx.shape())?;
        let dev = &sx.device;
        let stat_ptr = |t: &Tensor| with_cuda_storage(t, |s, l| Ok(ptr(&view::<f32>(s, l)?, dev)));
        let (rm, rv) = (stat_ptr(&self.running_mean)?, stat_ptr(&self.running_var)?);
        by_cuda_dtype!(sx.dtype(), self.name(), T => {
            let h = handle(dev)?;
            let xd = TensorDesc::new(T::CUDNN, d)?;
            let pd = param_desc(&xd)?;
            let (x, g, b) = (view::<T>(sx, lx)?, view::<f32>(sg, lg)?, view::<f32>(sb, lb)?);
            let y = alloc::<T>(dev, lx.shape().elem_count())?;
            let (mean, invstd) = (alloc::<f32>(dev, d[1])?, alloc::<f32>(dev, d[1])?);
            check(
                unsafe {
                    sys::cudnnBatchNormalizationForwardTraining(
                        h, MODE, one(), zero(), xd.0, ptr(&x, dev), xd.0, ptr(&y, dev), pd.0,
                        ptr(&g, dev), ptr(&b, dev), self.momentum, rm, rv, self.eps,
                        ptr(&mean, dev), ptr(&invstd, dev),
                    )
                },
                "batch-norm forward",
            )?;
            if let Ok(mut slot) = self.saved.lock() {
                *slot = Some(Arc::new((mean, invstd)));
            }
            Ok((CudaStorage::wrap_cuda_slice(y, dev.clone()), lx.shape().clone()))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(saved) = self.saved.lock().ok().and_then(|s| s.clone()) else {
            candle_core::bail!("cudnn-batch-norm backward before its forward")
        };
        let grads = Arc::new(Mutex::new(None));
        let op = TrainBackward {
            eps: self.eps,
            saved,
            grads: grads.clone(),
        };
        let dx = x.apply_op3_no_bwd(&dy.contiguous()?.to_dtype(x.dtype())?, gamma, &op)?;
        let Some((dgamma, dbeta)) = grads.lock().ok().and_then(|mut g| g.take()) else {
            candle_core::bail!("cudnn-batch-norm backward produced no parameter gradients")
        };
        let (dev, c) = (x.device().as_cuda_device()?, gamma.elem_count());
        Ok((
            Some(dx),
            Some(tensor(dgamma, dev, c)),
            Some(tensor(dbeta, dev, c)),
        ))
    }
}

/// The backward call `(x, dy, gamma) -> dx`, leaving `(dgamma, dbeta)` in `grads`.
struct TrainBackward {
    eps: f64,
    saved: Saved,
    grads: Arc<Mutex<Option<(CudaSlice<f32>, CudaSlice<f32>)>>>,
}

impl CustomOp3 for TrainBackward {
    fn name(&self) -> &'static str {
        "cudnn-batch-norm-grad"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("cudnn-batch-norm-grad runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        sx: &CudaStorage,
        lx: &Layout,
        sdy: &CudaStorage,
        ldy: &Layout,
        sg: &CudaStorage,
        lg: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let d = dims(lx.shape())?;
        if ldy.shape() != lx.shape() {
            candle_core::bail!("batch-norm grad: x {:?}, dy {:?}", lx.shape(), ldy.shape())
        }
        let dev = &sx.device;
        by_cuda_dtype!(sx.dtype(), self.name(), T => {
            let h = handle(dev)?;
            let xd = TensorDesc::new(T::CUDNN, d)?;
            let pd = param_desc(&xd)?;
            let (x, dy, g) = (view::<T>(sx, lx)?, view::<T>(sdy, ldy)?, view::<f32>(sg, lg)?);
            let dx = alloc::<T>(dev, lx.shape().elem_count())?;
            let (dg, db) = (alloc::<f32>(dev, d[1])?, alloc::<f32>(dev, d[1])?);
            let (mean, invstd) = (&self.saved.0, &self.saved.1);
            check(
                unsafe {
                    sys::cudnnBatchNormalizationBackward(
                        h, MODE, one(), zero(), one(), zero(), xd.0, ptr(&x, dev), xd.0,
                        ptr(&dy, dev), xd.0, ptr(&dx, dev), pd.0, ptr(&g, dev), ptr(&dg, dev),
                        ptr(&db, dev), self.eps, ptr(mean, dev), ptr(invstd, dev),
                    )
                },
                "batch-norm backward",
            )?;
            if let Ok(mut slot) = self.grads.lock() {
                *slot = Some((dg, db));
            }
            Ok((CudaStorage::wrap_cuda_slice(dx, dev.clone()), lx.shape().clone()))
        })
    }
}

/// Batch norm of a CUDA tensor `x` (f32 or bf16) with `bn`, then `act`; see the
/// module docs. Errors if `bn` has no affine parameters.
pub(crate) fn batch_norm(
    x: &Tensor,
    bn: &BatchNorm,
    train: bool,
    act: crate::model::kernels::Activation,
) -> Result<Tensor> {
    let Some((gamma, beta)) = bn.weight_and_bias() else {
        candle_core::bail!("cuDNN batch norm needs affine parameters")
    };
    let (gamma, beta) = (
        gamma.to_dtype(DType::F32)?.contiguous()?,
        beta.to_dtype(DType::F32)?.contiguous()?,
    );
    let y = if train {
        let op = TrainForward {
            eps: bn.eps(),
            momentum: crate::model::kernels::norm::momentum(bn),
            running_mean: bn.running_mean().clone(),
            running_var: bn.running_var().clone(),
            saved: Mutex::new(None),
        };
        x.contiguous()?.apply_op3(&gamma, &beta, op)?
    } else {
        let c = x.dim(1)?;
        let mut shape = vec![1; x.rank()];
        shape[1] = c;
        let var = bn.running_var().detach().to_dtype(DType::F32)?;
        let mean = bn.running_mean().detach().to_dtype(DType::F32)?;
        let scale = gamma.broadcast_div(&(var + bn.eps())?.sqrt()?)?;
        let shift = (beta - mean.mul(&scale)?)?;
        let as_x = |t: Tensor| t.to_dtype(x.dtype())?.reshape(shape.as_slice());
        x.broadcast_mul(&as_x(scale)?)?
            .broadcast_add(&as_x(shift)?)?
    };
    crate::model::ops::activate(&y, act)
}
