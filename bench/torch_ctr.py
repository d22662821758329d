"""PyTorch reference of embark's DLRM and DeepFM for the side-by-side benchmark.

The same architecture as embark's (src/model/model.cc): embedding dim D per
categorical field (sum-pooled nn.EmbeddingBag, sparse gradients, padding row
0 for a missing value, which contributes zeros as in embark); numeric fields
log(1 + max(x, 0)). Dense layers start Xavier-normal with zero biases, as
embark's do (PyTorch's default initialisation cost DLRM 0.015 AUC here).
- dlrm: bottom MLP 13-512-256-64-D, pairwise dot products of the 27 vectors,
  top MLP (D + 351)-512-256-1.
- deepfm: bias + first-order weights (per id and per numeric field) + FM over
  all features (numeric fields with their own factors) + MLP over the
  concatenated embeddings and numeric values.
Embeddings and first-order weights: Adagrad (sparse); dense layers: Adam.

Usage: torch_ctr.py MODEL TRAIN.tsv VALID.tsv THREADS [--autocast bf16]
                    [--dense-lr 0.003 --sparse-lr 0.05 --batch 2048]
--autocast bf16 runs forward and loss, in training and in evaluation, under
torch.autocast("cpu", dtype=torch.bfloat16) (weights and optimizer state stay
fp32; linear layers and bmm compute in bf16).
Prints one JSON line: precision (fp32 or bf16), threads (as asked) and
torch_threads (torch.get_num_threads() after setting it), samples_per_sec and
train_seconds (training loop only, data already in memory), cpu_seconds
(time.process_time() over the same loop: every thread of the process, user
and system), auc, logloss and calibration (mean predicted probability / mean
label) on VALID; cpu_capability (ATen's kernels) and, with --autocast,
bf16_isa and bf16_matmul (oneDNN's ISA and the implementation it picked for
a bf16 linear layer).
"""
import argparse
import contextlib
import json
import math
import os
import re
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

p = argparse.ArgumentParser()
p.add_argument("model", choices=["dlrm", "deepfm"])
p.add_argument("train")
p.add_argument("valid")
p.add_argument("threads", type=int)
p.add_argument("--dense-lr", type=float, default=0.003)
p.add_argument("--sparse-lr", type=float, default=0.05)
p.add_argument("--batch", type=int, default=2048)
p.add_argument("--dim", type=int, default=16)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--autocast", choices=["none", "bf16"], default="none")
p.add_argument("--init-from", metavar="DIR",
               help="start from the weights build/bench/export_rows wrote to DIR (embark's, e.g. those its run "
                    "started from with --init) instead of this script's own random ones")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.set_num_interop_threads(1)
torch.manual_seed(a.seed)


def autocast():
    if a.autocast == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_capability():
    m = re.search(r"CPU capability usage: (\S+)", torch.__config__.show())
    return m.group(1) if m else None


def bf16_probe():
    """oneDNN's ISA and its implementation of a bf16 linear layer, from its
    verbose lines (written to fd 1, so caught in a temporary file)."""
    lin, x = nn.Linear(64, 64), torch.randn(64, 64)
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+") as f:
        os.dup2(f.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON), autocast():
                lin(x)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        f.seek(0)
        text = f.read()
    isa = re.search(r"onednn_verbose,info,cpu,isa:(.*)", text)
    impl = re.search(r"onednn_verbose,exec,cpu,(?:matmul|inner_product),([^,]+),", text)
    return {"bf16_isa": isa.group(1).strip() if isa else None, "bf16_matmul": impl.group(1) if impl else None}


F, ND, D = 26, 13, a.dim
vocab = [dict() for _ in range(F)]  # token -> index (0 is "missing")


def load(path, grow):
    labels, dense, cats = [], [], []
    for line in open(path):
        c = line.rstrip("\n").split("\t")
        labels.append(float(c[0]))
        dense.append([math.log1p(max(int(v), 0)) if v else 0.0 for v in c[1:14]])
        row = []
        for f in range(F):
            t = c[14 + f]
            if not t:
                row.append(0)
                continue
            i = vocab[f].get(t)
            if i is None:
                if grow:
                    i = vocab[f][t] = len(vocab[f]) + 1
                else:
                    i = 0  # unseen in training: reads as zeros, as in embark inference
            row.append(i)
        cats.append(row)
    return (torch.tensor(labels, dtype=torch.float32), torch.tensor(dense, dtype=torch.float32),
            torch.tensor(cats, dtype=torch.int64))


t0 = time.time()
ytr, xtr, ctr = load(a.train, True)
yva, xva, cva = load(a.valid, False)
load_s = time.time() - t0


def mlp(sizes, relu_last):
    layers = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        nn.init.xavier_normal_(lin.weight)  # as embark: Xavier-normal weights, zero biases
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i + 2 < len(sizes) or relu_last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Embeddings(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.bags = nn.ModuleList(
            nn.EmbeddingBag(len(v) + 1, dim, mode="sum", sparse=True, padding_idx=0) for v in vocab)
        for b in self.bags:
            nn.init.uniform_(b.weight, -0.01, 0.01) if dim > 1 else nn.init.zeros_(b.weight)
            with torch.no_grad():
                b.weight[0].zero_()

    def forward(self, cats):  # [B, F] -> [B, F, dim]
        return torch.stack([bag(cats[:, f:f + 1]) for f, bag in enumerate(self.bags)], dim=1)


class Dlrm(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = Embeddings(D)
        self.bottom = mlp([ND, 512, 256, 64, D], True)
        v = F + 1
        self.li, self.lj = torch.triu_indices(v, v, offset=1)
        self.top = mlp([D + v * (v - 1) // 2, 512, 256, 1], False)

    def forward(self, x, cats):
        z = self.bottom(x)
        t = torch.cat([z.unsqueeze(1), self.emb(cats)], dim=1)  # [B, 27, D]
        dots = torch.bmm(t, t.transpose(1, 2))[:, self.li, self.lj]
        return self.top(torch.cat([z, dots], dim=1)).squeeze(1)


class DeepFm(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = Embeddings(D)
        self.w1 = Embeddings(1)
        self.bias = nn.Parameter(torch.zeros(1))
        self.wd = nn.Parameter(torch.zeros(ND))
        self.vd = nn.Parameter(torch.empty(ND, D).uniform_(-0.01, 0.01))
        self.deep = mlp([F * D + ND, 400, 400, 400, 1], False)

    def forward(self, x, cats):
        e = self.emb(cats)  # [B, F, D]
        first_order = self.bias + self.w1(cats).sum(dim=(1, 2)) + x @ self.wd
        v = torch.cat([e, x.unsqueeze(2) * self.vd], dim=1)
        s = v.sum(dim=1)
        fm = 0.5 * (s * s - (v * v).sum(dim=1)).sum(dim=1)
        deep = self.deep(torch.cat([e.flatten(1), x], dim=1)).squeeze(1)
        return first_order + fm + deep


model = Dlrm() if a.model == "dlrm" else DeepFm()


def load_embark(model, d):
    """Copies the weights export_rows wrote to d into model (same layout:
    embark's "<part>.<i>.weight" is [out, in] like nn.Linear's)."""
    P = np.fromfile(os.path.join(d, "dense.f32"), dtype=np.float32)
    with torch.no_grad():
        for e in json.load(open(os.path.join(d, "dense.json"))):
            w = torch.from_numpy(P[e["offset"]:e["offset"] + e["size"]].copy())
            name = e["name"].split(".")
            if name[0] in ("bottom", "top", "deep"):  # Sequential with a ReLU after every Linear but the last
                t = getattr(getattr(model, name[0])[2 * int(name[1])], name[2])
            else:
                t = {"first_order.bias": "bias", "first_order.dense": "wd", "fm.dense_factors": "vd"}[e["name"]]
                t = getattr(model, t)
            t.copy_(w.view_as(t))
        for f in sorted(os.listdir(d)):
            if not re.fullmatch(r"table_\d+\.json", f):
                continue
            meta = json.load(open(os.path.join(d, f)))
            R = np.fromfile(os.path.join(d, f[:-5] + ".f32"), dtype=np.float32).reshape(-1, meta["dim"])
            bags = {"embeddings": model.emb, "first_order": getattr(model, "w1", None)}[meta["name"]].bags
            o = 0
            for bag, n in zip(bags, meta["rows_per_field"]):
                assert bag.weight.shape[0] == n + 1, "export_rows read another training file"
                bag.weight[1:].copy_(torch.from_numpy(R[o:o + n]))
                bag.weight[0].zero_()
                o += n


if a.init_from:
    load_embark(model, a.init_from)
sparse = [p for n, p in model.named_parameters() if ".bags." in n]
dense = [p for n, p in model.named_parameters() if ".bags." not in n]
opt_sparse = torch.optim.Adagrad(sparse, lr=a.sparse_lr)
opt_dense = torch.optim.Adam(dense, lr=a.dense_lr)
loss_fn = nn.BCEWithLogitsLoss()

n = len(ytr)
t0, c0 = time.time(), time.process_time()
model.train()
for s in range(0, n, a.batch):
    e = min(n, s + a.batch)
    with autocast():
        logits = model(xtr[s:e], ctr[s:e])
        loss = loss_fn(logits, ytr[s:e])
    opt_sparse.zero_grad()
    opt_dense.zero_grad()
    loss.backward()
    opt_sparse.step()
    opt_dense.step()
train_s, cpu_s = time.time() - t0, time.process_time() - c0

model.eval()
with torch.no_grad(), autocast():
    probs = torch.cat([torch.sigmoid(model(xva[s:s + 8192], cva[s:s + 8192]).float())
                       for s in range(0, len(yva), 8192)])
y = yva.numpy()
pr = probs.numpy().astype(np.float64)
from sklearn.metrics import roc_auc_score, log_loss  # noqa: E402

platform = {"cpu_capability": cpu_capability()}
if a.autocast == "bf16":
    try:
        platform.update(bf16_probe())
    except Exception as e:  # the probe is informative only
        platform.update(bf16_isa=None, bf16_matmul=None, bf16_probe_error=str(e))
print(json.dumps({"framework": "pytorch " + torch.__version__, "model": a.model,
                  "precision": "bf16" if a.autocast == "bf16" else "fp32", "threads": a.threads,
                  "torch_threads": torch.get_num_threads(), "samples": n, "samples_per_sec": n / train_s,
                  "train_seconds": train_s, "cpu_seconds": cpu_s, "load_seconds": load_s,
                  "auc": roc_auc_score(y, pr), "logloss": log_loss(y, np.clip(pr, 1e-15, 1 - 1e-15)),
                  "calibration": float(pr.mean() / y.mean()) if y.mean() > 0 else None, **platform}))
