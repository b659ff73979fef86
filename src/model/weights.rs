//! Reading weight files into a model: safetensors (our checkpoints) and PyTorch state dicts
//! (`.pth`/`.pt`/`.bin`, as `torch.save(model.state_dict(), f)` writes them). Every problem is
//! found before anything changes, and reported at once by name: missing tensors, unexpected
//! ones, shape mismatches.
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use candle_core::{Device, Result, Tensor};

/// Prefix of sweep's entries in a checkpoint's safetensors metadata (`sweep.backbone`,
/// `sweep.width`, `sweep.normalize`, ...).
pub const METADATA_PREFIX: &str = "sweep.";

/// What a weight file holds, read from its header alone (no tensor data is loaded).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Header {
    /// Tensor name -> shape.
    pub shapes: HashMap<String, Vec<usize>>,
    /// sweep's metadata entries without their prefix (empty for files sweep did not write).
    pub metadata: HashMap<String, String>,
}

/// The names, shapes and sweep metadata of a weight file, without reading its tensors: the
/// header of a safetensors file, or the pickle of a PyTorch state dict.
pub fn inspect(path: &Path) -> Result<Header> {
    if is_pickle(path) {
        let mut infos = Vec::new();
        for key in [None, Some("state_dict"), Some("model")] {
            infos = candle_core::pickle::read_pth_tensor_info(path, false, key)?;
            if !infos.is_empty() {
                break;
            }
        }
        let shapes = infos
            .into_iter()
            .map(|i| (i.name, i.layout.shape().dims().to_vec()))
            .collect();
        return Ok(Header {
            shapes,
            metadata: HashMap::new(),
        });
    }
    let bad = |why: String| candle_core::Error::Msg(format!("{}: {why}", path.display()));
    let mut file = std::fs::File::open(path)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| bad("too short to be a safetensors file".into()))?;
    let len = u64::from_le_bytes(len);
    let size = file.metadata()?.len();
    if len > size.saturating_sub(8) || len > 100_000_000 {
        return Err(bad(
            "not a safetensors file (its header length is impossible)".into(),
        ));
    }
    let mut text = vec![0u8; len as usize];
    file.read_exact(&mut text)?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&text)
        .map_err(|e| {
            bad(format!(
                "not a safetensors file (its header is not JSON: {e})"
            ))
        })?;
    let mut out = Header::default();
    for (name, entry) in header {
        if name == "__metadata__" {
            for (k, v) in entry.as_object().into_iter().flatten() {
                if let (Some(k), Some(v)) = (k.strip_prefix(METADATA_PREFIX), v.as_str()) {
                    out.metadata.insert(k.to_string(), v.to_string());
                }
            }
            continue;
        }
        let shape = entry
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|s| s.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
            .ok_or_else(|| bad(format!("tensor {name} has no shape in the header")))?;
        out.shapes.insert(name, shape);
    }
    Ok(out)
}

fn is_pickle(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(ext.as_str(), "pth" | "pt" | "bin" | "ckpt")
}

/// Checks a weight file's names and shapes (from [`inspect`]) against the variables a model
/// expects (`expected`: name -> shape), ignoring the names in `skip` on both sides (the head,
/// for pretrained weights). `Err` lists every problem, as [`match_names`] does.
pub fn check_shapes(
    path: &Path,
    header: &Header,
    expected: &[(String, Vec<usize>)],
    skip: &std::collections::BTreeSet<String>,
    hint: &str,
) -> Result<()> {
    let want: HashMap<&str, &[usize]> = expected
        .iter()
        .filter(|(n, _)| !skip.contains(n))
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    let have: HashMap<&str, &[usize]> = header
        .shapes
        .iter()
        .filter(|(n, _)| !skip.contains(*n))
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    check_fit(path, &want, &have, hint)
}

/// The tensors of a weight file, by name, on `device`.
pub fn read(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    match is_pickle(path) {
        true => {
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
        false => candle_core::safetensors::load(path, device),
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
    hint: &str,
) -> Result<Vec<(String, Tensor)>> {
    fn shapes(m: &HashMap<String, Tensor>) -> HashMap<&str, &[usize]> {
        m.iter().map(|(n, t)| (n.as_str(), t.dims())).collect()
    }
    check_fit(path, &shapes(expected), &shapes(&loaded), hint)?;
    let mut out = Vec::with_capacity(expected.len());
    for (name, var) in expected {
        // Present with the right shape: `check_fit` said so.
        if let Some(t) = loaded.remove(name) {
            let t = if t.dtype() == var.dtype() {
                t
            } else {
                t.to_dtype(var.dtype())?
            };
            out.push((name.clone(), t));
        }
    }
    Ok(out)
}

/// Checks a file's tensors (`loaded`) against a model's (`expected`), both name -> shape:
/// one error listing every missing, unexpected (PyTorch's batch counters aside) and
/// mis-shaped tensor, by name, ending with what to check (`hint`).
fn check_fit(
    path: &Path,
    expected: &HashMap<&str, &[usize]>,
    loaded: &HashMap<&str, &[usize]>,
    hint: &str,
) -> Result<()> {
    let mut missing: Vec<String> = Vec::new();
    let mut shapes: Vec<String> = Vec::new();
    let mut names: Vec<&str> = expected.keys().copied().collect();
    names.sort();
    for name in names {
        let want = expected[name];
        match loaded.get(name) {
            None => missing.push(name.to_string()),
            Some(got) if *got != want => shapes.push(format!(
                "{name} is {got:?} in the file, the model has {want:?}"
            )),
            Some(_) => {}
        }
    }
    let mut unexpected: Vec<String> = loaded
        .keys()
        .filter(|n| !expected.contains_key(*n) && !ignorable(n))
        .map(|n| n.to_string())
        .collect();
    unexpected.sort();
    if missing.is_empty() && unexpected.is_empty() && shapes.is_empty() {
        return Ok(());
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
    for (what, names) in [
        ("missing", missing),
        ("unexpected", unexpected),
        ("of another shape", shapes),
    ] {
        if !names.is_empty() {
            parts.push(format!("{} {what}: {}", names.len(), list(names)));
        }
    }
    candle_core::bail!(
        "{} does not fit this model ({}); {hint}",
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
        let e = match_names(Path::new("w.pth"), &expected, loaded, "check it")
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
        let set = match_names(Path::new("w.safetensors"), &expected, ok, "").unwrap();
        assert_eq!(set.len(), 3);
        assert!(set.iter().all(|(_, t)| t.dtype() == DType::F32));
    }
}
