//! ReLU, the residual join `relu(a + b)` and their gradient `dy * (y > 0)` on cuDNN
//! (activation and op-tensor calls): one pass each, where candle's ReLU backward takes five.
//! NaN propagates, so a diverged run still shows a NaN loss.
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cudnn::sys;
use candle_core::cuda_backend::CudaStorage;
use candle_core::{Layout, Result, Shape};

use super::{alloc, by_cuda_dtype, check, handle, one, ptr, view, zero, Elem, TensorDesc};

/// The elementwise ops, as in the CPU kernels' `Eltwise`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Relu,
    AddRelu,
    ReluGrad,
}

struct ActivationDesc(sys::cudnnActivationDescriptor_t);

impl ActivationDesc {
    fn relu() -> Result<ActivationDesc> {
        let mut raw = std::ptr::null_mut();
        check(
            unsafe { sys::cudnnCreateActivationDescriptor(&mut raw) },
            "activation descriptor",
        )?;
        let desc = ActivationDesc(raw);
        let (mode, nan) = (
            sys::cudnnActivationMode_t::CUDNN_ACTIVATION_RELU,
            sys::cudnnNanPropagation_t::CUDNN_PROPAGATE_NAN,
        );
        check(
            unsafe { sys::cudnnSetActivationDescriptor(raw, mode, nan, 0.0) },
            "activation descriptor",
        )?;
        Ok(desc)
    }
}

impl Drop for ActivationDesc {
    fn drop(&mut self) {
        unsafe { sys::cudnnDestroyActivationDescriptor(self.0) };
    }
}

struct OpTensorDesc(sys::cudnnOpTensorDescriptor_t);

impl OpTensorDesc {
    fn add() -> Result<OpTensorDesc> {
        let mut raw = std::ptr::null_mut();
        check(
            unsafe { sys::cudnnCreateOpTensorDescriptor(&mut raw) },
            "op-tensor descriptor",
        )?;
        let desc = OpTensorDesc(raw);
        let (op, compute, nan) = (
            sys::cudnnOpTensorOp_t::CUDNN_OP_TENSOR_ADD,
            sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            sys::cudnnNanPropagation_t::CUDNN_PROPAGATE_NAN,
        );
        check(
            unsafe { sys::cudnnSetOpTensorDescriptor(raw, op, compute, nan) },
            "op-tensor descriptor",
        )?;
        Ok(desc)
    }
}

impl Drop for OpTensorDesc {
    fn drop(&mut self) {
        unsafe { sys::cudnnDestroyOpTensorDescriptor(self.0) };
    }
}

/// A shape as cuDNN's 4D descriptor: NCHW as is, anything else as one long row.
fn dims4(shape: &Shape) -> [usize; 4] {
    match shape.dims() {
        [n, c, h, w] => [*n, *c, *h, *w],
        _ => [1, 1, 1, shape.elem_count()],
    }
}

/// Runs `op` on one input (`Relu`) or two (`AddRelu`: a, b; `ReluGrad`: y, dy).
pub(crate) fn run(
    op: Op,
    (s1, l1): (&CudaStorage, &Layout),
    second: Option<(&CudaStorage, &Layout)>,
) -> Result<(CudaStorage, Shape)> {
    if let Some((s2, l2)) = second {
        if l1.shape() != l2.shape() || s1.dtype() != s2.dtype() {
            candle_core::bail!(
                "{op:?}: {:?} {:?} and {:?} {:?} differ",
                s1.dtype(),
                l1.shape(),
                s2.dtype(),
                l2.shape()
            )
        }
    }
    let dev = &s1.device;
    by_cuda_dtype!(s1.dtype(), "cuDNN elementwise", T => {
        let h = handle(dev)?;
        let desc = TensorDesc::new(T::CUDNN, dims4(l1.shape()))?;
        let act = ActivationDesc::relu()?;
        let a = view::<T>(s1, l1)?;
        let out = alloc::<T>(dev, l1.shape().elem_count())?;
        let (a, o) = (ptr(&a, dev), ptr(&out, dev));
        let d = desc.0;
        match (op, second) {
            (Op::Relu, None) => check(
                unsafe { sys::cudnnActivationForward(h, act.0, one(), d, a, zero(), d, o) },
                "relu",
            )?,
            (Op::AddRelu, Some((s2, l2))) => {
                let b = view::<T>(s2, l2)?;
                let add = OpTensorDesc::add()?;
                check(
                    unsafe { sys::cudnnOpTensor(h, add.0, one(), d, a, one(), d, ptr(&b, dev), zero(), d, o) },
                    "add",
                )?;
                check(
                    unsafe { sys::cudnnActivationForward(h, act.0, one(), d, o, zero(), d, o) },
                    "relu",
                )?;
            }
            (Op::ReluGrad, Some((s2, l2))) => {
                // For ReLU, y > 0 exactly where x > 0: y stands in for x.
                let dy = view::<T>(s2, l2)?;
                check(
                    unsafe {
                        sys::cudnnActivationBackward(h, act.0, one(), d, a, d, ptr(&dy, dev), d, a, zero(), d, o)
                    },
                    "relu gradient",
                )?;
            }
            _ => candle_core::bail!("{op:?}: wrong number of arguments"),
        }
        Ok((CudaStorage::wrap_cuda_slice(out, dev.clone()), l1.shape().clone()))
    })
}
