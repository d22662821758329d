"""bench/movielens.py on the real ml-100k files (../shared/data, skipped when absent):
the splits, the histories, the catalogue, and the popularity baseline against a
brute-force recomputation."""

import collections
import csv
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "movielens.py"
DATA = REPO.parent / "shared" / "data"

pytestmark = pytest.mark.skipif(not (DATA / "ml-100k" / "u.data").exists(),
                                reason=f"no MovieLens 100K at {DATA / 'ml-100k'} (the shared test data)")

_spec = importlib.util.spec_from_file_location("movielens", SCRIPT)
movielens = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(movielens)


def tool(*args):
    p = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, f"{args} exited {p.returncode}: {p.stderr}"
    return p.stdout


@pytest.fixture(scope="module")
def ratings():
    """(user, movie) -> timestamp, from u.data."""
    out = {}
    with open(DATA / "ml-100k" / "u.data") as f:
        for line in f:
            u, m, _r, t = map(int, line.split("\t"))
            out[(u, m)] = t
    return out


@pytest.fixture(scope="module", params=["last", "random"])
def prepared(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"ml100k-{request.param}")
    tool("prepare", "--data", DATA, "--set", "ml-100k", "--split", request.param, "--out", d)
    tool("baseline", "--dir", d)
    read = lambda name: list(csv.DictReader(open(d / name, newline="")))  # noqa: E731
    return request.param, d, read("train.csv"), read("test.csv"), read("items.csv")


def key(row, ratings):
    """A row's place in its user's time order."""
    m = int(row["movie_id"])
    return ratings[(int(row["user_id"]), m)], m


def test_counts_and_catalogue(prepared):
    split, d, train, test, items = prepared
    assert len(train) + len(test) == 100000
    if split == "last":
        assert len(test) == 943
    else:
        assert len(test) == 20000
    assert len(items) == 1682
    assert sorted(int(r["movie_id"]) for r in items) == list(range(1, 1683))
    assert all(r["user_id"] == "" and r["history"] == "" and r["label"] == "1" for r in items)
    assert all(r["label"] == "1" for r in train + test)
    stats = json.loads((d / "stats.json").read_text())
    assert (stats["users"], stats["items"], stats["train_rows"], stats["test_rows"]) == (943, 1682, len(train), len(test))
    assert list(train[0]) == "label,user_id,age,gender,occupation,history,movie_id,genres,year".split(",")


def test_split_and_order(prepared, ratings):
    split, _d, train, test, _items = prepared
    by_user = collections.defaultdict(list)
    for (u, m), t in ratings.items():
        by_user[u].append((t, m))
    if split == "last":
        for r in test:
            assert key(r, ratings) == max(by_user[int(r["user_id"])])
    times = [(ratings[(int(r["user_id"]), int(r["movie_id"]))], int(r["user_id"]), int(r["movie_id"])) for r in train]
    assert times == sorted(times)
    users = [int(r["user_id"]) for r in test]
    assert users == sorted(users)


def test_histories(prepared, ratings):
    _split, _d, train, test, _items = prepared
    train_of = collections.defaultdict(list)
    for r in train:
        train_of[int(r["user_id"])].append(key(r, ratings))
    for rows in (train, test):
        for r in rows:
            u, k = int(r["user_id"]), key(r, ratings)
            hist = [int(m) for m in r["history"].split("|")] if r["history"] else []
            assert len(hist) <= 10
            assert all(ratings.get((u, m)) is not None for m in hist)
            keys = [(ratings[(u, m)], m) for m in hist]
            assert all(h < k for h in keys), "history holds a rating at or after the row's"
            assert keys == sorted(keys, reverse=True), "history is not most recent first"
            # exactly the latest train ratings before the row
            assert keys == sorted((t for t in train_of[u] if t < k), reverse=True)[:10]


def test_test_history_is_train_only(prepared, ratings):
    _split, _d, train, test, _items = prepared
    in_train = {(int(r["user_id"]), int(r["movie_id"])) for r in train}
    for r in test:
        u = int(r["user_id"])
        assert all((u, int(m)) in in_train for m in r["history"].split("|") if m)


def brute_rank(movie, items, count, exclude=()):
    """1-based rank of movie, every other catalogue item scored one by one."""
    better = 0
    for m in items:
        if m != movie and m not in exclude and (count[m], -m) > (count[movie], -movie):
            better += 1
    return better + 1


def test_popularity_baseline(prepared):
    _split, d, train, test, items = prepared
    result = json.loads((d / "baseline.json").read_text())
    assert 0.05 < result["all"]["recall@100"] < 0.5
    assert result["excluding_seen"]["recall@100"] >= result["all"]["recall@100"]
    count = collections.Counter(int(r["movie_id"]) for r in train)
    seen = collections.defaultdict(set)
    for r in train:
        seen[int(r["user_id"])].add(int(r["movie_id"]))
    ids = [int(r["movie_id"]) for r in items]
    sample = test[:: max(1, len(test) // 7)]
    tr = [(int(r["user_id"]), int(r["movie_id"])) for r in train]
    rows = [(int(r["user_id"]), int(r["movie_id"])) for r in sample]
    all_ranks, excl_ranks = movielens.popularity_ranks(tr, rows, ids, seen)
    for (u, m), a, e in zip(rows, all_ranks, excl_ranks):
        assert a == brute_rank(m, ids, count)
        assert e == brute_rank(m, ids, count, seen[u])
    # the reported recall@100 from brute-force ranks of every test row
    ranks = [brute_rank(int(r["movie_id"]), ids, count) for r in test[:200]]
    full, _ = movielens.popularity_ranks(tr, [(int(r["user_id"]), int(r["movie_id"])) for r in test], ids, seen)
    assert list(full[:200]) == ranks
    assert math.isclose(result["all"]["recall@100"], float(np.mean(full <= 100)))


def test_rank_metrics():
    got = movielens.rank_metrics([1, 3, 11, math.inf], [10])
    assert got["recall@10"] == 0.5
    assert math.isclose(got["ndcg@10"], (1 + 1 / math.log2(4)) / 4)


def test_score_matches_baseline(prepared, tmp_path):
    _split, d, train, test, items = prepared
    count = collections.Counter(r["movie_id"] for r in train)
    order = sorted((r["movie_id"] for r in items), key=lambda m: (-count[m], int(m)))
    seen = collections.Counter(r["user_id"] for r in train)
    topk = tmp_path / "topk.txt"  # long enough that 100 stay once the user's train movies are dropped
    topk.write_text("".join(" ".join(order[:100 + seen[r["user_id"]]]) + "\n" for r in test))
    result = json.loads((d / "baseline.json").read_text())
    for flag, name in (((), "all"), (("--exclude-seen",), "excluding_seen")):
        out = tool("score", "--dir", d, "--topk", topk, "--k", "100", *flag)
        figures = [float(x) for x in out.strip().splitlines()[-1].split()[-2:]]
        assert figures == pytest.approx([result[name]["recall@100"], result[name]["ndcg@100"]], abs=1e-4)


def test_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    p = subprocess.run([sys.executable, str(SCRIPT), "prepare", "--data", str(DATA), "--set", "ml-100k",
                        "--split", "last", "--out", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode != 0 and "notes.txt" in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["notes.txt"]
