"""Applies sweep's patch to a copy of candle-core 0.11.1's src/backprop.rs (see README.md).

    python3 vendor/patch-candle-backprop.py vendor/candle-core/src/backprop.rs
"""
import re
import sys

ACCUMULATE = '''    /// Adds `grad` to the gradient of `tensor`: the first contribution is stored as it is
    /// (upstream candle stores `zeros_like(tensor) + grad`, a memset and an add per
    /// gradient: patched here, see vendor/README.md).
    fn accumulate(&mut self, tensor: &Tensor, grad: &Tensor) -> Result<()> {
        match self.0.entry(tensor.id()) {
            Entry::Occupied(mut entry) => {
                let sum = entry.get_mut();
                *sum = sum.add(grad)?;
            }
            Entry::Vacant(entry) => {
                // The checks and the layout `zeros_like(tensor).add(grad)` gave: a gradient
                // of the wrong shape or dtype is an error, and stored gradients are contiguous
                // (scatter and index-add need it; a contiguous grad is not copied).
                if grad.shape() != tensor.shape() {
                    Err(Error::ShapeMismatchBinaryOp {
                        lhs: tensor.shape().clone(),
                        rhs: grad.shape().clone(),
                        op: "add",
                    }
                    .bt())?
                }
                if grad.dtype() != tensor.dtype() {
                    Err(Error::DTypeMismatchBinaryOp {
                        lhs: tensor.dtype(),
                        rhs: grad.dtype(),
                        op: "add",
                    }
                    .bt())?
                }
                entry.insert(grad.contiguous()?);
            }
        }
        Ok(())
    }

    /// Subtracts `grad` from the gradient of `tensor` (see [`GradStore::accumulate`]).
    fn accumulate_neg(&mut self, tensor: &Tensor, grad: &Tensor) -> Result<()> {
        if let Some(sum) = self.0.get_mut(&tensor.id()) {
            *sum = sum.sub(grad)?;
            return Ok(());
        }
        self.accumulate(tensor, &grad.neg()?)
    }

'''

path = sys.argv[1]
s = open(path).read()
s, n_add = re.subn(r"let (\w+) = grads\.or_insert\((\w+)\)\?;\s*\*\1 = \1\.add\(", r"grads.accumulate(\2, ", s)
s, n_sub = re.subn(r"let (\w+) = grads\.or_insert\((\w+)\)\?;\s*\*\1 = \1\.sub\(", r"grads.accumulate_neg(\2, ", s)
# Three reductions broadcast to the old zero entry's shape, which is the argument's.
s = s.replace("grads.accumulate(arg, &arg_grad.broadcast_as(sum_grad.dims())", "grads.accumulate(arg, &arg_grad.broadcast_as(arg.dims())")
s = s.replace("grads.accumulate(arg, &grad.broadcast_as(sum_grad.dims())", "grads.accumulate(arg, &grad.broadcast_as(arg.dims())")
anchor = "    fn or_insert(&mut self, tensor: &Tensor) -> Result<&mut Tensor> {"
assert anchor in s and "fn accumulate(" not in s
s = s.replace(anchor, ACCUMULATE + anchor, 1)
open(path, "w").write(s)
print(f"{n_add} additions and {n_sub} subtractions now accumulate")
