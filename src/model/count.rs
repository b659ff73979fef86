//! Sizes of networks without building them: the variables a constructor asks for, recorded by
//! a `VarBuilder` backend that hands out broadcast zeros, so a full-size VGG-16 is counted
//! without allocating its 138M weights (`sweep models`, the parameter-count tests).
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use super::{is_running_stat, ModelSpec};

struct ShapeRecorder(Arc<Mutex<Vec<(String, Shape)>>>);

impl SimpleBackend for ShapeRecorder {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        if let Ok(mut shapes) = self.0.lock() {
            shapes.push((name.to_string(), s.clone()));
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("no variable {name}")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        false
    }
}

/// Name and shape of every variable (running statistics included) the network `spec`
/// describes, in the order its constructor asks for them.
pub fn shapes(spec: &ModelSpec) -> Result<Vec<(String, Shape)>> {
    spec.validate()?;
    let shapes = Arc::new(Mutex::new(Vec::new()));
    let vb = VarBuilder::from_backend(
        Box::new(ShapeRecorder(shapes.clone())),
        DType::F32,
        Device::Cpu,
    );
    spec.backbone.build(vb, spec)?;
    let shapes = shapes
        .lock()
        .map_err(|_| candle_core::Error::Msg("shape recorder poisoned".into()))?;
    Ok(shapes.clone())
}

/// The head of the network `spec` describes: the variables whose shape depends on the number
/// of classes (`fc.*`, `classifier.6.*`, `predictions.*`). Transfer learning makes them anew
/// for the dataset's classes; they always train.
pub fn head(spec: &ModelSpec) -> Result<BTreeSet<String>> {
    let other: HashMap<String, Shape> = shapes(&ModelSpec {
        classes: spec.classes + 1,
        ..spec.clone()
    })?
    .into_iter()
    .collect();
    Ok(shapes(spec)?
        .into_iter()
        .filter(|(name, shape)| other.get(name) != Some(shape))
        .map(|(name, _)| name)
        .collect())
}

/// One stage of a backbone, as `unfreeze_from` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    pub name: String,
    /// Its trainable parameters (running statistics excluded).
    pub params: usize,
    /// Whether it is (part of) the head.
    pub head: bool,
}

/// The stages of the network `spec` describes, in build order (the order the input flows
/// through them).
pub fn stages(spec: &ModelSpec) -> Result<Vec<Stage>> {
    let head = head(spec)?;
    let mut out: Vec<Stage> = Vec::new();
    for (name, shape) in shapes(spec)? {
        let stage = spec.backbone.stage_of(&name);
        let params = if is_running_stat(&name) {
            0
        } else {
            shape.elem_count()
        };
        match out.last_mut() {
            Some(last) if last.name == stage => {
                last.params += params;
                last.head |= head.contains(&name);
            }
            _ => out.push(Stage {
                name: stage.to_string(),
                params,
                head: head.contains(&name),
            }),
        }
    }
    Ok(out)
}

/// Trainable parameters of the network `spec` describes (batch-norm running statistics
/// excluded), as PyTorch's `sum(p.numel() for p in m.parameters())` counts them.
pub fn parameter_count(spec: &ModelSpec) -> Result<usize> {
    Ok(shapes(spec)?
        .iter()
        .filter(|(name, _)| !is_running_stat(name))
        .map(|(_, s)| s.elem_count())
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Backbone, Model};

    /// The count from shapes is the built model's own count, for every backbone.
    #[test]
    fn counts_match_a_built_model() {
        for b in Backbone::ALL {
            let side = b.min_size().max(8);
            let spec = ModelSpec {
                backbone: b,
                channels: 3,
                height: side,
                width: side,
                classes: 5,
                base_width: 2,
            };
            let built = Model::new(&spec, &Device::Cpu, 0).unwrap();
            assert_eq!(
                parameter_count(&spec).unwrap(),
                built.parameter_count(),
                "{b}"
            );
        }
    }
}
