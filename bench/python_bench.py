#!/usr/bin/python3
"""What the Python module costs against the CLI, measured in one run on one
machine: training and scoring the same rows from numpy arrays, from a CSV
file through Python, and from the same file with the `embark` binary.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_bench.py [--rows N] [--model deepfm]

Prints the CPU model and a table of samples per second (training loop time,
as each run's report gives it, and wall time of the whole call)."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "build", "python"))
import embark  # noqa: E402


def cpu_model():
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def make(n, dense_cols=13, id_cols=26, vocab=100000, seed=0):
    rng = np.random.default_rng(seed)
    dense = rng.integers(0, 100, (n, dense_cols)).astype(np.float32)
    ids = (rng.zipf(1.2, (n, id_cols)) % vocab).astype(np.int64)
    labels = (rng.random(n) < 0.25).astype(np.float32)
    return labels, dense, ids


def write_csv(path, labels, dense, ids):
    cols = np.concatenate([labels[:, None].astype(np.int64), dense.astype(np.int64), ids], axis=1)
    header = ",".join(["label"] + [f"d{i}" for i in range(dense.shape[1])] + [f"c{i}" for i in range(ids.shape[1])])
    np.savetxt(path, cols, fmt="%d", delimiter=",", header=header, comments="")
    with open(path + ".toml", "w") as f:
        f.write('label = "label"\nnumeric = [%s]\ncategorical = [%s]\n' % (
            ", ".join(f'"d{i}"' for i in range(dense.shape[1])), ", ".join(f'"c{i}"' for i in range(ids.shape[1]))))
    return path, path + ".toml"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=400000)
    ap.add_argument("--model", default="deepfm")
    ap.add_argument("--embark", default=os.path.join(REPO, "build", "embark"))
    args = ap.parse_args()
    params = dict(model=args.model, embedding_dim=16, mlp=[256, 128], batch_size=2048, epochs=1)
    flags = ["--model", args.model, "--embedding-dim", "16", "--mlp", "256,128", "--batch", "2048", "--epochs", "1"]
    tmp = tempfile.mkdtemp(prefix="embark-pybench-")
    labels, dense, ids = make(args.rows)
    csv, schema = write_csv(os.path.join(tmp, "train.csv"), labels, dense, ids)
    data = embark.Dataset(labels, dense, ids)
    rows = []

    t0 = time.perf_counter()
    out = subprocess.run([args.embark, "train", "--data", csv, "--schema", schema, "--out", os.path.join(tmp, "cli"),
                          "--json", "--quiet", *flags], capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t0
    rows.append(("train: embark binary, CSV file", json.loads(out.strip().splitlines()[-1])["samples_per_sec"],
                 args.rows / wall))
    for name, source, kw in (("train: Python, CSV file", csv, dict(schema=schema)),
                             ("train: Python, numpy arrays", data, {})):
        t0 = time.perf_counter()
        t = embark.train(source, out=os.path.join(tmp, name.split()[-1]), **kw, **params)
        wall = time.perf_counter() - t0
        rows.append((name, t.report["samples_per_sec"], args.rows / wall))

    t = embark.Trainer(data, **{k: v for k, v in params.items() if k != "epochs"})
    t0 = time.perf_counter()
    for b in t.batches(data, batch_size=2048):
        t.step(b)
    wall = time.perf_counter() - t0
    rows.append(("train: Python step() loop, numpy", None, args.rows / wall))

    model_dir = os.path.join(tmp, "cli")
    t0 = time.perf_counter()
    subprocess.run([args.embark, "predict", "--model", model_dir, "--data", csv, "--out", os.path.join(tmp, "p.txt")],
                   check=True, capture_output=True)
    rows.append(("predict: embark binary, CSV file", None, args.rows / (time.perf_counter() - t0)))
    m = embark.load(model_dir)
    for name, source in (("predict: Python, CSV file", csv), ("predict: Python, numpy arrays", data)):
        t0 = time.perf_counter()
        p = m.predict(source)
        rows.append((name, None, len(p) / (time.perf_counter() - t0)))

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; {args.rows} rows (13 numeric, 26 id columns), {args.model}")
    print(f"{'run':40s} {'loop samples/s':>15s} {'wall samples/s':>15s}")
    for name, loop, wall in rows:
        print(f"{name:40s} {('%15.0f' % loop) if loop else '%15s' % '-'} {wall:15.0f}")


if __name__ == "__main__":
    main()
