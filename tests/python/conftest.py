"""Shared helpers of the Python module's tests: synthetic click data as numpy
arrays and the same values as a CSV file with its schema, and the embark
binary (EMBARK_BIN, as the README's test command sets it)."""

import os
import subprocess

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_data(n, seed=0, dense_cols=3, id_cols=4, vocab=400):
    """Labels drawn from a planted logistic model of numeric and id columns.
    Numeric values are multiples of 1/4, exact as text; ids include negatives."""
    rng = np.random.default_rng(seed)
    dense = (rng.integers(0, 64, (n, dense_cols)) / 4).astype(np.float32)
    ids = rng.integers(-20, vocab, (n, id_cols)).astype(np.int64)
    truth = np.random.default_rng(12345)
    w_dense = truth.normal(size=dense_cols).astype(np.float32)
    w_ids = truth.normal(size=(id_cols, vocab + 20))
    logit = np.log1p(dense) @ w_dense + sum(w_ids[j, ids[:, j] + 20] for j in range(id_cols)) - 0.5
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return labels, dense, ids


def write_csv(path, labels, dense, ids):
    """The arrays as a CSV file (header label,d0..,c0..) and its schema."""
    d, c = dense.shape[1], ids.shape[1]
    with open(path, "w") as f:
        f.write(",".join(["label"] + [f"d{i}" for i in range(d)] + [f"c{i}" for i in range(c)]) + "\n")
        for y, xs, ks in zip(labels, dense, ids):
            f.write(",".join([str(int(y))] + [str(x) for x in xs] + [str(int(k)) for k in ks]) + "\n")
    schema = str(path) + ".schema.toml"
    with open(schema, "w") as f:
        f.write('label = "label"\n')
        f.write("numeric = [" + ", ".join(f'"d{i}"' for i in range(d)) + "]\n")
        f.write("categorical = [" + ", ".join(f'"c{i}"' for i in range(c)) + "]\n")
    return str(path), schema


@pytest.fixture
def embark_bin():
    path = os.environ.get("EMBARK_BIN", os.path.join(REPO, "build", "embark"))
    if not os.path.exists(path):
        pytest.skip(f"no embark binary at {path} (set EMBARK_BIN)")
    return path


def run(*args, check=True):
    p = subprocess.run(list(args), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}: {p.stderr}")
    return p
