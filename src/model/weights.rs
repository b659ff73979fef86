//! Reading weight files into a model: safetensors (our checkpoints) and PyTorch state dicts
//! (`.pth`/`.pt`/`.bin`, as `torch.save(model.state_dict(), f)` writes them). Every problem is
//! found before anything changes, and reported at once by name: missing tensors, unexpected
//! ones, shape mismatches.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Result, Tensor};

/// The tensors of a weight file, by name, on `device`.
pub fn read(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "pth" | "pt" | "bin" | "ckpt" => {
            // A bare state dict, or one under "state_dict" / "model" (training checkpoints).
            let mut tensors = candle_core::pickle::read_all(path)?;
            for key in ["state_dict", "model"] {
                if !tensors.is_empty() {
                    break;
                }
                tensors = candle_core::pickle::read_all_with_key(path, Some(key))?;
            }
            tensors
                .into_iter()
                .map(|(n, t)| Ok((n, t.to_device(device)?)))
                .collect()
        }
        _ => candle_core::safetensors::load(path, device),
    }
}

/// Whether a state-dict entry carries no weight sweep keeps (PyTorch's batch counters).
fn ignorable(name: &str) -> bool {
    name.ends_with(".num_batches_tracked")
}

/// Checks `loaded` against the model's variables (`expected`: name -> its tensor) and returns
/// the tensors to set, converted to each variable's dtype; or one error listing every missing,
/// unexpected and mis-shaped tensor.
pub fn match_names(
    path: &Path,
    expected: &HashMap<String, Tensor>,
    mut loaded: HashMap<String, Tensor>,
) -> Result<Vec<(String, Tensor)>> {
    let mut missing: Vec<&str> = Vec::new();
    let mut shapes: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut names: Vec<&String> = expected.keys().collect();
    names.sort();
    for name in names {
        let want = &expected[name];
        match loaded.remove(name) {
            None => missing.push(name),
            Some(t) if t.dims() != want.dims() => shapes.push(format!(
                "{name} is {:?} in the file, the model has {:?}",
                t.dims(),
                want.dims()
            )),
            Some(t) => {
                let t = if t.dtype() == want.dtype() {
                    t
                } else {
                    t.to_dtype(want.dtype())?
                };
                out.push((name.clone(), t));
            }
        }
    }
    let mut unexpected: Vec<&String> = loaded.keys().filter(|n| !ignorable(n)).collect();
    unexpected.sort();
    if missing.is_empty() && unexpected.is_empty() && shapes.is_empty() {
        return Ok(out);
    }
    let list = |v: Vec<String>| {
        let n = v.len();
        let mut shown: Vec<String> = v.into_iter().take(8).collect();
        if n > 8 {
            shown.push(format!("and {} more", n - 8));
        }
        shown.join(", ")
    };
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "{} missing: {}",
            missing.len(),
            list(missing.iter().map(|s| s.to_string()).collect())
        ));
    }
    if !unexpected.is_empty() {
        parts.push(format!(
            "{} unexpected: {}",
            unexpected.len(),
            list(unexpected.iter().map(|s| s.to_string()).collect())
        ));
    }
    if !shapes.is_empty() {
        parts.push(format!(
            "{} of another shape: {}",
            shapes.len(),
            list(shapes)
        ));
    }
    candle_core::bail!(
        "{} does not fit this model ({}); check the backbone, width, image channels and number of classes",
        path.display(),
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn every_problem_is_listed_at_once() {
        let dev = Device::Cpu;
        let t = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &dev).unwrap();
        let expected: HashMap<String, Tensor> = [
            ("a.weight".to_string(), t(&[2, 3])),
            ("b.weight".to_string(), t(&[4])),
            ("c.bias".to_string(), t(&[1])),
        ]
        .into();
        let loaded: HashMap<String, Tensor> = [
            ("a.weight".to_string(), t(&[3, 2])),
            ("b.weight".to_string(), t(&[4])),
            ("bn.num_batches_tracked".to_string(), t(&[])),
            ("z.extra".to_string(), t(&[1])),
        ]
        .into();
        let e = match_names(Path::new("w.pth"), &expected, loaded)
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 missing: c.bias"), "{e}");
        assert!(e.contains("1 unexpected: z.extra"), "{e}");
        assert!(
            e.contains("a.weight is [3, 2] in the file, the model has [2, 3]"),
            "{e}"
        );
        assert!(!e.contains("num_batches_tracked"), "{e}");
        let ok: HashMap<String, Tensor> = [
            (
                "a.weight".to_string(),
                t(&[2, 3]).to_dtype(DType::F64).unwrap(),
            ),
            ("b.weight".to_string(), t(&[4])),
            ("c.bias".to_string(), t(&[1])),
        ]
        .into();
        let set = match_names(Path::new("w.safetensors"), &expected, ok).unwrap();
        assert_eq!(set.len(), 3);
        assert!(set.iter().all(|(_, t)| t.dtype() == DType::F32));
    }
}
