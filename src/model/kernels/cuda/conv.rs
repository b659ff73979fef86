//! Dense and grouped (depthwise) 2D convolution on cuDNN: the forward pass, the input
//! gradient (backward data) and the weight gradient (backward filter) of one op type.
use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cudnn::sys;
use candle_core::cuda_backend::{CudaDevice, CudaStorage};
use candle_core::{DType, Layout, Result, Shape};

use super::{alloc, by_cuda_dtype, check, handle, one, ptr, to_i32, view, workspace, zero};
use super::{Elem, TensorDesc};
use crate::model::kernels::geom::Pass;

/// The shapes of one convolution call: input `x`, weight `w`, output `y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Call {
    pass: Pass,
    bf16: bool,
    x: [usize; 4],
    w: [usize; 4],
    y: [usize; 4],
    stride: usize,
    pad: usize,
    groups: usize,
}

impl Call {
    /// Derives every shape from the op's two inputs (see [`Pass`] for which they are).
    fn new(
        pass: Pass,
        (stride, pad, groups): (usize, usize, usize),
        a: &Layout,
        b: &Layout,
        bf16: bool,
    ) -> Result<Call> {
        let da = a.shape().dims4()?;
        let db = b.shape().dims4()?;
        let out = |len: usize, k: usize| -> Result<usize> {
            if stride == 0 || len + 2 * pad < k {
                candle_core::bail!(
                    "cuDNN convolution: kernel {k} larger than padded input {len}+2*{pad}"
                )
            }
            Ok((len + 2 * pad - k) / stride + 1)
        };
        let (x, w, y) = match pass {
            Pass::Forward => {
                let (bs, ci, h, wd) = da;
                let (co, cig, kh, kw) = db;
                let y = [bs, co, out(h, kh)?, out(wd, kw)?];
                ([bs, ci, h, wd], [co, cig, kh, kw], y)
            }
            Pass::InputGrad(h, wd) => {
                let (co, cig, kh, kw) = db;
                (
                    [da.0, cig * groups, h, wd],
                    [co, cig, kh, kw],
                    [da.0, da.1, da.2, da.3],
                )
            }
            Pass::WeightGrad(kh, kw) => {
                let x = [da.0, da.1, da.2, da.3];
                (
                    [da.0, da.1, da.2, da.3],
                    [db.1, x[1] / groups.max(1), kh, kw],
                    [db.0, db.1, db.2, db.3],
                )
            }
        };
        let call = Call {
            pass,
            bf16,
            x,
            w,
            y,
            stride,
            pad,
            groups,
        };
        let fits = groups > 0
            && x[1] == w[1] * groups
            && w[0] == y[1]
            && w[0] % groups == 0
            && x[0] == y[0]
            && y[2] == out(x[2], w[2])?
            && y[3] == out(x[3], w[3])?;
        if !fits {
            candle_core::bail!("cuDNN convolution: inconsistent shapes {call:?}")
        }
        Ok(call)
    }

    fn out_shape(&self) -> Shape {
        let d = match self.pass {
            Pass::Forward => self.y,
            Pass::InputGrad(..) => self.x,
            Pass::WeightGrad(..) => self.w,
        };
        Shape::from(d.to_vec())
    }
}

struct FilterDesc(sys::cudnnFilterDescriptor_t);

impl Drop for FilterDesc {
    fn drop(&mut self) {
        unsafe { sys::cudnnDestroyFilterDescriptor(self.0) };
    }
}

struct ConvDesc(sys::cudnnConvolutionDescriptor_t);

impl Drop for ConvDesc {
    fn drop(&mut self) {
        unsafe { sys::cudnnDestroyConvolutionDescriptor(self.0) };
    }
}

/// The descriptors of one [`Call`].
struct Descs {
    x: TensorDesc,
    w: FilterDesc,
    y: TensorDesc,
    conv: ConvDesc,
}

impl Descs {
    fn new<T: Elem>(c: &Call) -> Result<Descs> {
        let x = TensorDesc::new(T::CUDNN, c.x)?;
        let y = TensorDesc::new(T::CUDNN, c.y)?;
        let mut raw = std::ptr::null_mut();
        check(
            unsafe { sys::cudnnCreateFilterDescriptor(&mut raw) },
            "filter descriptor",
        )?;
        let w = FilterDesc(raw);
        let [k, ch, kh, kw] = to_i32(c.w)?;
        let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        check(
            unsafe { sys::cudnnSetFilter4dDescriptor(raw, T::CUDNN, nchw, k, ch, kh, kw) },
            "filter descriptor shape",
        )?;
        let mut raw = std::ptr::null_mut();
        check(
            unsafe { sys::cudnnCreateConvolutionDescriptor(&mut raw) },
            "convolution descriptor",
        )?;
        let conv = ConvDesc(raw);
        let [p, s, g] = to_i32([c.pad, c.stride, c.groups])?;
        let mode = sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION;
        let compute = sys::cudnnDataType_t::CUDNN_DATA_FLOAT;
        check(
            unsafe { sys::cudnnSetConvolution2dDescriptor(raw, p, p, s, s, 1, 1, mode, compute) },
            "convolution descriptor",
        )?;
        // PyTorch's choices: TF32 allowed for f32 (allow_tf32 = True), tensor cores for bf16.
        let math = if c.bf16 {
            sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH
        } else {
            sys::cudnnMathType_t::CUDNN_DEFAULT_MATH
        };
        check(
            unsafe { sys::cudnnSetConvolutionMathType(raw, math) },
            "math type",
        )?;
        check(
            unsafe { sys::cudnnSetConvolutionGroupCount(raw, g) },
            "group count",
        )?;
        Ok(Descs { x, w, y, conv })
    }
}

/// A cuDNN algorithm for one of the three passes.
#[derive(Clone, Copy)]
enum Algo {
    Fwd(sys::cudnnConvolutionFwdAlgo_t),
    Data(sys::cudnnConvolutionBwdDataAlgo_t),
    Filter(sys::cudnnConvolutionBwdFilterAlgo_t),
}

thread_local! {
    /// Algorithm and workspace bytes per call shape: cuDNN's heuristics are asked once.
    static ALGOS: RefCell<HashMap<Call, (Algo, usize)>> = RefCell::new(HashMap::new());
}

/// The first supported algorithm among up to 8 that cuDNN's heuristics rank for one pass,
/// and its workspace bytes: `$get` and `$size` are that pass's heuristics and workspace
/// calls, `$descs` their descriptor arguments (the same for both).
macro_rules! heuristic {
    ($h:expr, $call:expr, $perf:ty, $get:ident, $size:ident, ($($descs:expr),*), $what:literal, $algo:ident) => {{
        let mut perf: [$perf; 8] = unsafe { std::mem::zeroed() };
        let mut n = 0;
        check(
            unsafe { sys::$get($h, $($descs),*, 8, &mut n, perf.as_mut_ptr()) },
            concat!($what, " heuristics"),
        )?;
        let ok = sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS;
        let Some(p) = perf[..n as usize].iter().find(|p| p.status == ok) else {
            candle_core::bail!("cuDNN has no {} algorithm for {:?}", $what, $call)
        };
        let mut bytes = 0usize;
        check(
            unsafe { sys::$size($h, $($descs),*, p.algo, &mut bytes) },
            concat!($what, " workspace"),
        )?;
        (Algo::$algo(p.algo), bytes)
    }};
}

/// The algorithm for a call, as PyTorch picks it with `cudnn.benchmark = False` (see
/// [`heuristic!`]), asked once per call shape.
fn pick(h: sys::cudnnHandle_t, c: &Call, d: &Descs) -> Result<(Algo, usize)> {
    if let Some(found) = ALGOS.with(|m| m.borrow().get(c).copied()) {
        return Ok(found);
    }
    let (x, w, y, conv) = (d.x.0, d.w.0, d.y.0, d.conv.0);
    let found = match c.pass {
        Pass::Forward => heuristic!(
            h,
            c,
            sys::cudnnConvolutionFwdAlgoPerf_t,
            cudnnGetConvolutionForwardAlgorithm_v7,
            cudnnGetConvolutionForwardWorkspaceSize,
            (x, w, conv, y),
            "forward",
            Fwd
        ),
        Pass::InputGrad(..) => heuristic!(
            h,
            c,
            sys::cudnnConvolutionBwdDataAlgoPerf_t,
            cudnnGetConvolutionBackwardDataAlgorithm_v7,
            cudnnGetConvolutionBackwardDataWorkspaceSize,
            (w, y, conv, x),
            "backward-data",
            Data
        ),
        Pass::WeightGrad(..) => heuristic!(
            h,
            c,
            sys::cudnnConvolutionBwdFilterAlgoPerf_t,
            cudnnGetConvolutionBackwardFilterAlgorithm_v7,
            cudnnGetConvolutionBackwardFilterWorkspaceSize,
            (x, y, conv, w),
            "backward-filter",
            Filter
        ),
    };
    ALGOS.with(|m| m.borrow_mut().insert(*c, found));
    Ok(found)
}

/// Runs one pass of a convolution with `(stride, pad, groups)` on the op's two inputs:
/// `(x, weight)` forward, `(dy, weight)` for the input gradient, `(x, dy)` for the weight
/// gradient.
pub(crate) fn conv2d(
    pass: Pass,
    geometry: (usize, usize, usize),
    (s1, l1): (&CudaStorage, &Layout),
    (s2, l2): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    if s1.dtype() != s2.dtype() {
        candle_core::bail!(
            "cuDNN convolution: inputs {:?} and {:?}",
            s1.dtype(),
            s2.dtype()
        )
    }
    let call = Call::new(pass, geometry, l1, l2, s1.dtype() == DType::BF16)?;
    let dev = &s1.device;
    by_cuda_dtype!(s1.dtype(), "cuDNN convolution", T => {
        let out = run::<T>(&call, dev, (s1, l1), (s2, l2))?;
        Ok((CudaStorage::wrap_cuda_slice(out, dev.clone()), call.out_shape()))
    })
}

fn run<T: Elem>(
    c: &Call,
    dev: &CudaDevice,
    (s1, l1): (&CudaStorage, &Layout),
    (s2, l2): (&CudaStorage, &Layout),
) -> Result<candle_core::cuda_backend::cudarc::driver::CudaSlice<T>> {
    let h = handle(dev)?;
    let d = Descs::new::<T>(c)?;
    let (algo, bytes) = pick(h, c, &d)?;
    let ws = workspace(dev, bytes)?;
    let ws_ptr = ws.as_ref().map_or(std::ptr::null_mut(), |w| ptr(w, dev));
    let (a, b) = (view::<T>(s1, l1)?, view::<T>(s2, l2)?);
    let (a, b) = (ptr(&a, dev), ptr(&b, dev));
    let out_len = c.out_shape().elem_count();
    let out = alloc::<T>(dev, out_len)?;
    let o = ptr(&out, dev);
    let status = unsafe {
        match algo {
            Algo::Fwd(al) => sys::cudnnConvolutionForward(
                h,
                one(),
                d.x.0,
                a,
                d.w.0,
                b,
                d.conv.0,
                al,
                ws_ptr,
                bytes,
                zero(),
                d.y.0,
                o,
            ),
            Algo::Data(al) => sys::cudnnConvolutionBackwardData(
                h,
                one(),
                d.w.0,
                b,
                d.y.0,
                a,
                d.conv.0,
                al,
                ws_ptr,
                bytes,
                zero(),
                d.x.0,
                o,
            ),
            Algo::Filter(al) => sys::cudnnConvolutionBackwardFilter(
                h,
                one(),
                d.x.0,
                a,
                d.y.0,
                b,
                d.conv.0,
                al,
                ws_ptr,
                bytes,
                zero(),
                d.w.0,
                o,
            ),
        }
    };
    check(status, "convolution")?;
    // The workspace is freed in stream order (cudarc's stream-ordered allocator), so it
    // outlives the launch even though it is dropped here.
    drop(ws);
    Ok(out)
}
