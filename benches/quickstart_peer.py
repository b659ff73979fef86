"""The quickstart's recipe as a plain PyTorch loop: the peer of `sweep run sweeps/quickstart.toml`
for one seed (benches/quickstart.sh times both, alternating).

The users' Keras baseline CNN (src/model/cnn.rs: conv 32, max-pool, dropout .25, conv 64,
conv 64, max-pool, dropout .25, dense 512, dropout .5, dense 10; Glorot-uniform kernels, zero
biases) on data/fashion-mini, 28x28 grey, pixels / 255; a stratified 20% validation split
from the seed; Adam (lr 0.001, betas .9/.999, eps 1e-8), batch 32, shuffled each epoch, up to
12 epochs; validation loss and accuracy every epoch; early stopping on validation loss
(patience 3), learning rate halved after 2 epochs without improvement; the best epoch's
weights saved to disk when it improves; the test folder evaluated with the best weights.

    python benches/quickstart_peer.py [--threads 2] [--seed 1] [--lr 0.001] [--epochs 12] [--patience 3]

Prints `RESULT wall_s <seconds from the interpreter's start>`, epochs trained and test accuracy.
"""
import argparse
import os
import sys
import tempfile
import time

T0 = time.time()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def load(folder):
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    xs, ys = [], []
    for k, c in enumerate(classes):
        for name in sorted(os.listdir(os.path.join(folder, c))):
            img = Image.open(os.path.join(folder, c, name)).convert("L")
            xs.append(np.asarray(img, dtype=np.float32) / 255.0)
            ys.append(k)
    x = torch.from_numpy(np.stack(xs)).unsqueeze(1)
    return x, torch.tensor(ys)


class Cnn(nn.Module):
    def __init__(self, classes, w=32, size=28):
        super().__init__()
        self.conv1 = nn.Conv2d(1, w, 3, padding=1)
        self.conv2 = nn.Conv2d(w, 2 * w, 3, padding=1)
        self.conv3 = nn.Conv2d(2 * w, 2 * w, 3, padding=1)
        self.fc1 = nn.Linear(2 * w * (size // 4) ** 2, 16 * w)
        self.fc2 = nn.Linear(16 * w, classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.dropout(F.max_pool2d(F.relu(self.conv1(x)), 2), 0.25, self.training)
        x = F.relu(self.conv2(x))
        x = F.dropout(F.max_pool2d(F.relu(self.conv3(x)), 2), 0.25, self.training)
        x = F.dropout(F.relu(self.fc1(x.flatten(1))), 0.5, self.training)
        return self.fc2(x)


def evaluate(model, x, y):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), 256):
            logits = model(x[i : i + 256])
            loss += F.cross_entropy(logits, y[i : i + 256], reduction="sum").item()
            correct += (logits.argmax(1) == y[i : i + 256]).sum().item()
    return loss / len(x), correct / len(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--patience", type=int, default=3, help="early stopping's patience")
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "data", "fashion-mini"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x, y = load(os.path.join(a.data, "train"))
    tx, ty = load(os.path.join(a.data, "test"))
    # Stratified 20% validation split.
    g = torch.Generator().manual_seed(a.seed)
    val = []
    for k in range(int(y.max()) + 1):
        idx = (y == k).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        val.append(idx[: round(0.2 * len(idx))])
    val = torch.cat(val)
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[val] = False
    vx, vy, x, y = x[val], y[val], x[mask], y[mask]
    model = Cnn(int(y.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    best, since, epochs = float("inf"), 0, 0
    ckpt = os.path.join(tempfile.mkdtemp(), "best.pt")
    for epoch in range(1, a.epochs + 1):
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), 32):
            b = order[i : i + 32]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
        vloss, vacc = evaluate(model, vx, vy)
        plateau.step(vloss)
        epochs = epoch
        if vloss < best:
            best, since = vloss, 0
            torch.save(model.state_dict(), ckpt)
        else:
            since += 1
            if since >= a.patience:
                break
    model.load_state_dict(torch.load(ckpt))
    tloss, tacc = evaluate(model, tx, ty)
    print(f"epochs {epochs} test_loss {tloss:.4f} test_acc {tacc:.4f}")
    print(f"RESULT wall_s {time.time() - T0:.2f}")


if __name__ == "__main__":
    sys.exit(main())
