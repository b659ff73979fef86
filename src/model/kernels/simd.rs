//! Kernel bodies compiled for the CPU's vector unit: every work item of [`super::par_chunks`],
//! [`super::par_new`] and [`super::par_chunks2`] runs inside a function compiled with
//! AVX-512 or AVX2 + FMA where the CPU has them (detected once, at run time), so the
//! elementwise, batch-norm, depthwise and pooling loops vectorise 16 or 8 lanes wide instead
//! of the baseline x86-64's 4 (SSE2), while one binary still runs on every x86-64 CPU.
//!
//! A body is compiled for a level only where it is inlined into that level's function: the
//! kernels' per-item closures and the helpers they call in their loops are
//! `#[inline(always)]`. The levels compute the same results bit for bit: Rust never fuses a
//! multiply and an add nor reorders a floating-point sum on its own, so wider vectors only
//! change how many lanes each instruction handles.
use std::cell::Cell;
use std::sync::OnceLock;

/// The instruction sets a kernel body can be compiled for, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// The target's baseline (SSE2 on x86-64, NEON on aarch64).
    Baseline,
    /// AVX2 with FMA (x86-64-v3: Haswell and later, Zen).
    Avx2,
    /// AVX-512 F + VL besides AVX2 and FMA (Skylake-SP, Ice Lake, Zen 4 and later).
    Avx512,
}

impl Simd {
    /// The widest level this CPU has.
    pub fn detected() -> Simd {
        static LEVEL: OnceLock<Simd> = OnceLock::new();
        *LEVEL.get_or_init(detect)
    }

    /// The level the kernels use on the calling thread: [`Simd::detected`], or lower if
    /// [`set_simd`] capped it.
    pub fn current() -> Simd {
        let cap = CAP.with(|c| c.get());
        Simd::detected().min(cap)
    }

    /// Runs `f` compiled for this level (which the CPU must have: it comes from
    /// [`Simd::current`]). `f` and what it calls inline are compiled for the level.
    #[inline(always)]
    pub(crate) fn run<R>(self, f: impl FnOnce() -> R) -> R {
        #[cfg(target_arch = "x86_64")]
        match self {
            // SAFETY: `self` is at most `Simd::detected()`, so the CPU has these features.
            Simd::Avx512 => return unsafe { avx512(f) },
            // SAFETY: as above.
            Simd::Avx2 => return unsafe { avx2(f) },
            Simd::Baseline => {}
        }
        f()
    }

    /// Parses `baseline`, `avx2` or `avx512` (the benches' `--simd`).
    pub fn parse(s: &str) -> Option<Simd> {
        match s {
            "baseline" => Some(Simd::Baseline),
            "avx2" => Some(Simd::Avx2),
            "avx512" => Some(Simd::Avx512),
            _ => None,
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Simd {
    use std::is_x86_feature_detected as has;
    if has!("avx512f") && has!("avx512vl") && has!("avx2") && has!("fma") {
        Simd::Avx512
    } else if has!("avx2") && has!("fma") {
        Simd::Avx2
    } else {
        Simd::Baseline
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Simd {
    Simd::Baseline
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

thread_local! {
    static CAP: Cell<Simd> = const { Cell::new(Simd::Avx512) };
}

/// Caps, for the calling thread, the instruction set the kernels' loops use (the default is
/// the widest the CPU has). For benchmarks that measure what each level gives and for tests
/// that check the levels agree.
#[doc(hidden)]
pub fn set_simd(cap: Simd) {
    CAP.with(|c| c.set(cap));
}
