//! The numeric precision a run trains in (`precision = "fp32" | "bf16"`); how the model
//! applies it is `model::precision`'s job.

/// The numeric precision a run trains in.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32 (on CUDA, cuDNN may use TF32 for convolutions, PyTorch's default).
    #[default]
    Fp32,
    /// bf16 autocast with f32 master weights and an f32 loss.
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 2] = [Precision::Fp32, Precision::Bf16];

    /// The name used in sweep files: "fp32" or "bf16".
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Inverse of [`Precision::name`] (ASCII case-insensitive, surrounding spaces ignored).
    pub fn parse(s: &str) -> Option<Precision> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this is the default, f32 (run ids leave the default out of the hash).
    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
