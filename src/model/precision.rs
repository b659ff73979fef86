//! Training precision: `fp32`, or `bf16` autocast as PyTorch's
//! `torch.autocast(device_type, dtype=torch.bfloat16)` does it: convolutions and matrix
//! products take bf16 operands (f32 accumulation), the weights stay f32 (the "master"
//! copy the optimizer updates, cast on every forward pass), batch norm keeps f32 scale,
//! shift and statistics, and the loss is computed in f32.
//!
//! On CUDA the activations between those ops are bf16 tensors and cuDNN/cuBLAS run in bf16
//! on the tensor cores. On the CPU, which has no fast bf16 kernels here, the same numerics
//! are emulated: operands and results are rounded to bf16 and computed in f32, so a CPU run
//! trains as a bf16 run does but gains no speed.
//!
//! [`Model::forward`](super::Model::forward) enters the model's precision for the duration
//! of the forward pass ([`Autocast`]); the ops read it with [`operands`] and [`result`].
use std::cell::Cell;

use candle_core::{DType, Result, Tensor};

pub use crate::run::Precision;

thread_local! {
    static ACTIVE: Cell<Precision> = const { Cell::new(Precision::Fp32) };
}

/// The precision of the forward pass running on this thread.
pub(crate) fn active() -> Precision {
    ACTIVE.with(|a| a.get())
}

/// Sets this thread's precision until dropped (then restores the previous one).
pub(crate) struct Autocast {
    previous: Precision,
}

impl Autocast {
    pub(crate) fn enter(p: Precision) -> Autocast {
        Autocast {
            previous: ACTIVE.with(|a| a.replace(p)),
        }
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(self.previous));
    }
}

/// `t` rounded to bf16 and back (round to nearest even), keeping its dtype.
fn round_bf16(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::BF16)?.to_dtype(t.dtype())
}

/// The operands of a convolution or matrix product under the active precision: unchanged
/// in fp32; in bf16 cast to bf16 on CUDA, rounded to bf16 values on the CPU.
pub(crate) fn operands(x: &Tensor, w: &Tensor) -> Result<(Tensor, Tensor)> {
    match active() {
        Precision::Fp32 => Ok((x.clone(), w.to_dtype(x.dtype())?)),
        Precision::Bf16 if x.device().is_cuda() => {
            Ok((x.to_dtype(DType::BF16)?, w.to_dtype(DType::BF16)?))
        }
        Precision::Bf16 => {
            let x = if x.dtype() == DType::BF16 {
                x.to_dtype(DType::F32)?
            } else {
                round_bf16(x)?
            };
            Ok((x, round_bf16(&w.to_dtype(DType::F32)?)?))
        }
    }
}

/// The result of a convolution or matrix product under the active precision: on the CPU in
/// bf16, rounded to bf16 values as a bf16 activation would be; otherwise unchanged.
pub(crate) fn result(y: Tensor) -> Result<Tensor> {
    match active() {
        Precision::Bf16 if !y.device().is_cuda() && y.dtype() != DType::BF16 => round_bf16(&y),
        _ => Ok(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn names_round_trip_and_default_is_fp32() {
        for p in Precision::ALL {
            assert_eq!(Precision::parse(p.name()), Some(p));
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.name())
            );
        }
        assert_eq!(Precision::parse(" BF16 "), Some(Precision::Bf16));
        assert_eq!(Precision::parse("fp16"), None);
        assert!(Precision::default().is_fp32());
    }

    #[test]
    fn autocast_rounds_operands_on_the_cpu_and_restores() {
        // 1 + 2^-10 is exact in f32 but not in bf16 (8 significant bits): it rounds to 1.
        let x = Tensor::new(&[1.0f32 + 1.0 / 1024.0, 3.0], &Device::Cpu).unwrap();
        let w = Tensor::new(&[1.5f32, 1.0 + 1.0 / 512.0], &Device::Cpu).unwrap();
        {
            let _bf16 = Autocast::enter(Precision::Bf16);
            let (xr, wr) = operands(&x, &w).unwrap();
            assert_eq!(xr.dtype(), DType::F32);
            assert_eq!(xr.to_vec1::<f32>().unwrap(), vec![1.0, 3.0]);
            assert_eq!(wr.to_vec1::<f32>().unwrap(), vec![1.5, 1.0]);
            let y = result(x.clone()).unwrap();
            assert_eq!(y.to_vec1::<f32>().unwrap(), vec![1.0, 3.0]);
            {
                let _inner = Autocast::enter(Precision::Fp32);
                assert_eq!(active(), Precision::Fp32);
            }
            assert_eq!(active(), Precision::Bf16);
        }
        assert_eq!(active(), Precision::Fp32);
        let (xr, _) = operands(&x, &w).unwrap();
        assert_eq!(xr.to_vec1::<f32>().unwrap(), x.to_vec1::<f32>().unwrap());
    }
}
