"""Latency of `embark serve --index`: sequential one-row requests for the top K
of a two_tower model on MovieLens 100K, retrieve-only and retrieve-then-rank
(--ranker, a DeepFM on the same columns), p50 and p99.

    /usr/bin/python3 bench/retrieval_serve_bench.py [--data ../shared/data] [--work /tmp/retrieval-bench]
        [--embark build/embark] [--requests 200] [--k 100] [--catalogue DIR]

Prepares ml-100k with bench/movielens.py (split `last`), trains the two-tower
model (3 epochs, batch 1024) and the ranker (DeepFM, schema_ctr.toml, whose
labels are all 1: its scores mean nothing, its cost is the point), builds an
HNSW index of items.csv, and sends test.csv's first users one at a time, K
items each. With --catalogue DIR (the --keep folder of
bench/retrieval_catalogue.sh: data/, model/, index/ of 10^6 generated items)
it serves that model and index instead, the ranker a DeepFM trained on its
data. Standard library only."""
import argparse
import http.client
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402

USER_COLS = ["user_id", "age", "gender", "occupation", "history"]


def prepare_catalogue(a):
    """The model and index of bench/retrieval_catalogue.sh --keep DIR, and a ranker on its data."""
    global USER_COLS
    d, tt, idx = (os.path.join(a.catalogue, n) for n in ("data", "model", "index"))
    USER_COLS = json.load(open(os.path.join(tt, "data_spec.json")))["csv"]["user"]
    rk = os.path.join(a.work, "catalogue-rk")
    if not os.path.isdir(rk):
        schema = os.path.join(a.work, "catalogue_ctr.toml")
        with open(schema, "w") as f:
            f.write('label = "label"\ncategorical = ["user_id", "segment", "item_id", "category"]\n')
        run(a.embark, "train", "--quiet", "--model", "deepfm", "--schema", schema, "--data",
            os.path.join(d, "train.csv"), "--epochs", "1", "--batch-size", "2048", "--out", rk)
    lines = open(os.path.join(d, "test.csv")).read().splitlines()
    head = lines[0].split(",")
    rows = [dict(zip(head, line.split(","))) for line in lines[1:a.requests + 1]]
    return tt, rk, idx, rows


def run(*cmd):
    subprocess.run(list(cmd), check=True, stdout=subprocess.DEVNULL)


def prepare(a):
    d = os.path.join(a.work, "mls")
    if not os.path.exists(os.path.join(d, "test.csv")):
        run("/usr/bin/python3", os.path.join(su.ROOT, "bench", "movielens.py"), "prepare", "--data", a.data, "--set",
            "ml-100k", "--split", "last", "--out", d)
    tt, rk, idx = (os.path.join(a.work, n) for n in ("tt", "rk", "idx"))
    if not os.path.isdir(tt):
        run(a.embark, "train", "--quiet", "--model", "two_tower", "--schema", os.path.join(d, "schema.toml"), "--data",
            os.path.join(d, "train.csv"), "--epochs", "3", "--batch-size", "1024", "--out", tt)
    if not os.path.isdir(rk):
        run(a.embark, "train", "--quiet", "--model", "deepfm", "--schema", os.path.join(d, "schema_ctr.toml"), "--data",
            os.path.join(d, "train.csv"), "--epochs", "1", "--batch-size", "1024", "--out", rk)
    if not os.path.isdir(idx):
        run(a.embark, "index", "--model", tt, "--items", os.path.join(d, "items.csv"), "--out", idx)
    lines = open(os.path.join(d, "test.csv")).read().splitlines()
    head = lines[0].split(",")
    rows = [dict(zip(head, line.split(","))) for line in lines[1:a.requests + 1]]
    return tt, rk, idx, rows


def body(row, k):
    return json.dumps({"inputs": [{"name": c, "datatype": "BYTES", "shape": [1], "data": [row[c] or None]}
                                  for c in USER_COLS], "parameters": {"k": k}}).encode()


def measure(a, tt, idx, rows, extra):
    p, port = su.start_server(a.embark, tt, ["--index", idx, "--poll", "0", *extra],
                              os.path.join(a.work, "serve.log"))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        path = f"/v2/models/{os.path.basename(tt)}/infer"
        for row in rows[:10]:  # warm-up
            conn.request("POST", path, body=body(row, a.k), headers={"Content-Type": "application/json"})
            conn.getresponse().read()
        lat = []
        for row in rows:
            t0 = time.perf_counter()
            conn.request("POST", path, body=body(row, a.k), headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            text = r.read()
            lat.append(time.perf_counter() - t0)
            if r.status != 200:
                raise SystemExit(f"HTTP {r.status}: {text[:300]!r}")
        return lat
    finally:
        p.terminate()
        p.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(su.ROOT, "..", "shared", "data"))
    ap.add_argument("--work", default="/tmp/retrieval-bench")
    ap.add_argument("--embark", default=os.path.join(su.ROOT, "build", "embark"))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--catalogue", help="the --keep folder of bench/retrieval_catalogue.sh")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    tt, rk, idx, rows = prepare_catalogue(a) if a.catalogue else prepare(a)
    items = json.load(open(os.path.join(idx, "MANIFEST.json")))
    items = items["count"] + items.get("hnsw", {}).get("aliases", 0)
    print(f"cpu: {su.cpu_model()}; {'generated catalogue' if a.catalogue else 'ml-100k'} two_tower, hnsw index of "
          f"{items} items; {len(rows)} sequential one-row requests, K={a.k}")
    print(f"{'mode':<22} {'p50 ms':>8} {'p99 ms':>8}")
    for name, extra in (("retrieve", []), ("retrieve + rank", ["--ranker", rk])):
        lat = measure(a, tt, idx, rows, extra)
        print(f"{name:<22} {su.percentile(lat, 50) * 1e3:8.2f} {su.percentile(lat, 99) * 1e3:8.2f}")


if __name__ == "__main__":
    main()
