#!/usr/bin/python3
"""MovieLens as retrieval data: train/test CSV files for a two-tower model, their
embark schemas, and a popularity baseline to compare a trained model with.

    bench/movielens.py prepare --data ../shared/data --set ml-100k --split last --out DIR
    bench/movielens.py baseline --dir DIR [--k 10,50,100]
    bench/movielens.py score --dir DIR --topk FILE [--k 10,50,100]

`prepare` writes DIR/train.csv, test.csv, items.csv, schema.toml, schema_ctr.toml and
stats.json. Every rating is an interaction (label 1). The columns are

    label,user_id,age,gender,occupation,history,movie_id,genres,year   (ml-100k)
    label,user_id,history,movie_id,genres,year                         (ml-latest-small)

- age: ml-1m's buckets, written as their lower bound (1 = under 18, 18, 25, 35, 45,
  50, 56); gender and occupation as u.user spells them.
- history: the user's latest (up to --history) train movies before this rating, most
  recent first, '|'-separated. A user's ratings are in time order sorted by
  (timestamp, movie id); a test row's history holds only that user's train rows.
- genres: '|'-separated names (ml-100k's "unknown" flag and ml-latest-small's
  "(no genres listed)" are written as no genre); year: ml-100k's release date year,
  ml-latest-small's "(YYYY)" at the end of the title; empty when there is none.

Splits: `last` puts each user's last rating in test (users with one rating stay in
train); `random` is TensorFlow Recommenders' basic retrieval split, a seeded
permutation of all ratings of which the first 80% train. train.csv is in time order
(timestamp, user id, movie id), as a log arrives; test.csv in user id order (then time).
items.csv is the whole catalogue of the set's movie file, user columns empty.

`baseline` ranks the catalogue by train rows per movie (ties: smaller movie id first)
and reports, over test rows, recall@K (hit rate of the one held-out movie) and
ndcg@K, over all items (TFRS's FactorizedTopK: movies the user rated in train stay in
the ranking) and excluding the user's train movies. It prints a table and writes
DIR/baseline.json. `score` computes the same metrics from another ranker's output.
"""

import argparse
import collections
import csv
import json
import math
import os
import re
import sys

import numpy as np

SETS = ("ml-100k", "ml-latest-small")
WRITTEN = ("train.csv", "test.csv", "items.csv", "schema.toml", "schema_ctr.toml", "stats.json", "baseline.json")
USER_COLS = {"ml-100k": ["user_id", "age", "gender", "occupation", "history"],
             "ml-latest-small": ["user_id", "history"]}
ITEM_COLS = ["movie_id", "genres", "year"]
AGE_BUCKETS = (1, 18, 25, 35, 45, 50, 56)  # ml-1m's codes: 1 is "under 18"
TITLE_YEAR = re.compile(r"\((\d{4})\)\s*$")

TOPK_HELP = """\
--topk FILE: one line per row of DIR/test.csv, in its order: the movie ids a ranker
retrieved for that row, best first, separated by spaces (as many as it retrieved; an
empty line retrieves nothing). A row's rank is the position of its movie in its line,
a miss when absent. --exclude-seen first drops from each line the movies the user has
in train.csv (but not the row's own movie)."""


class DataError(Exception):
    pass


# ---------------------------------------------------------------- reading the sets


def age_bucket(age):
    return max(b for b in AGE_BUCKETS if age >= b) if age >= 18 else 1


def load_ml100k(root):
    """(ratings, users, movies): ratings an (n, 3) int64 array of user, movie,
    timestamp; users {id: (age, gender, occupation)}; movies {id: (genres, year)}."""
    ratings = np.loadtxt(os.path.join(root, "u.data"), dtype=np.int64, usecols=(0, 1, 3), ndmin=2)
    with open(os.path.join(root, "u.genre"), encoding="latin-1") as f:
        genre = {int(i): name for name, i in (line.rsplit("|", 1) for line in f.read().split("\n") if line)}
    movies = {}
    with open(os.path.join(root, "u.item"), encoding="latin-1") as f:
        for n, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("|")
            if len(fields) != 5 + len(genre):
                raise DataError(f"u.item:{n}: {len(fields)} fields, expected {5 + len(genre)}")
            names = [genre[i] for i, flag in enumerate(fields[5:]) if flag == "1" and genre[i] != "unknown"]
            date = fields[2]
            movies[int(fields[0])] = ("|".join(names), date[-4:] if date else "")
    users = {}
    with open(os.path.join(root, "u.user"), encoding="latin-1") as f:
        for line in f:
            uid, age, gender, occupation, _zip = line.rstrip("\n").split("|")
            users[int(uid)] = (str(age_bucket(int(age))), gender, occupation)
    return ratings, users, movies


def load_mllatest(root):
    with open(os.path.join(root, "ratings.csv"), newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        if next(r) != ["userId", "movieId", "rating", "timestamp"]:
            raise DataError("ratings.csv: unexpected header")
        ratings = np.array([(int(u), int(m), int(t)) for u, m, _rating, t in r], dtype=np.int64).reshape(-1, 3)
    movies = {}
    with open(os.path.join(root, "movies.csv"), newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        if next(r) != ["movieId", "title", "genres"]:
            raise DataError("movies.csv: unexpected header")
        for mid, title, genres in r:
            year = TITLE_YEAR.search(title)
            movies[int(mid)] = ("" if genres == "(no genres listed)" else genres, year.group(1) if year else "")
    return ratings, None, movies


# ---------------------------------------------------------------- splitting


def split(ratings, how, seed):
    """Boolean mask of the test ratings."""
    n = len(ratings)
    test = np.zeros(n, dtype=bool)
    if how == "last":
        order = np.lexsort((ratings[:, 1], ratings[:, 2], ratings[:, 0]))  # user, time, movie
        users = ratings[order, 0]
        last = np.r_[users[1:] != users[:-1], True]
        first = np.r_[True, users[1:] != users[:-1]]
        test[order[last & ~first]] = True  # a user with one rating keeps it in train
    else:
        perm = np.random.default_rng(seed).permutation(n)
        test[perm[int(n * 0.8):]] = True
    return test


def histories(ratings, test, length):
    """Per rating, the user's up to `length` latest train movies before it in
    (timestamp, movie id) order, most recent first, '|'-joined."""
    order = np.lexsort((ratings[:, 1], ratings[:, 2], ratings[:, 0]))
    out = [""] * len(ratings)
    recent, user = collections.deque(maxlen=length), None
    for i in order.tolist():
        u, m = int(ratings[i, 0]), int(ratings[i, 1])
        if u != user:
            recent.clear()
            user = u
        out[i] = "|".join(map(str, reversed(recent)))
        if not test[i] and length > 0:
            recent.append(m)
    return out


# ---------------------------------------------------------------- writing


def check_dir(path):
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise DataError(f"{path} exists and is not a directory")
        others = sorted(set(os.listdir(path)) - set(WRITTEN))
        if others:
            raise DataError(f"{path} is not empty and holds files this tool does not write: {', '.join(others[:5])}")
    os.makedirs(path, exist_ok=True)


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            for name, v in zip(header, row):
                if "," in v or "\n" in v or "\r" in v or '"' in v:
                    raise DataError(f"{os.path.basename(path)}: column {name}: value {v!r} holds a comma, quote "
                                    "or newline")
            f.write(",".join(row) + "\n")


def schema_text(dataset, split_name, retrieval):
    cols = USER_COLS[dataset] + ITEM_COLS
    single = [c for c in cols if c not in ("history", "genres")]
    lines = [f"# {dataset}, split {split_name}: written by bench/movielens.py prepare",
             'label = "label"',
             "categorical = [" + ", ".join(f'"{c}"' for c in single) + "]",
             'multi = { history = "|", genres = "|" }']
    if retrieval:
        lines += ["user = [" + ", ".join(f'"{c}"' for c in USER_COLS[dataset]) + "]",
                  "item = [" + ", ".join(f'"{c}"' for c in ITEM_COLS) + "]",
                  'item_id = "movie_id"']
    return "\n".join(lines) + "\n"


def prepare(args):
    root = os.path.join(args.data, args.set)
    if not os.path.isdir(root):
        raise DataError(f"no {args.set} under {args.data}")
    check_dir(args.out)
    ratings, users, movies = (load_ml100k if args.set == "ml-100k" else load_mllatest)(root)
    unknown = sorted(set(ratings[:, 1].tolist()) - set(movies))
    if unknown:
        raise DataError(f"{len(unknown)} rated movies are not in the movie file, e.g. {unknown[:5]}")
    if users is not None:
        missing = sorted(set(ratings[:, 0].tolist()) - set(users))
        if missing:
            raise DataError(f"{len(missing)} users are not in u.user, e.g. {missing[:5]}")
    pairs = ratings[:, 0] * (ratings[:, 1].max() + 1) + ratings[:, 1]
    if len(np.unique(pairs)) != len(pairs):
        raise DataError("a user rates a movie twice: each (user, movie) must appear once")
    test = split(ratings, args.split, args.seed)
    hist = histories(ratings, test, args.history)

    header = ["label"] + USER_COLS[args.set] + ITEM_COLS

    def row(i):
        u, m = int(ratings[i, 0]), int(ratings[i, 1])
        user = [str(u)] + (list(users[u]) if users is not None else []) + [hist[i]]
        return ["1"] + user + [str(m), *movies[m]]

    train_idx = np.flatnonzero(~test)
    train_idx = train_idx[np.lexsort((ratings[train_idx, 1], ratings[train_idx, 0], ratings[train_idx, 2]))]
    test_idx = np.flatnonzero(test)
    test_idx = test_idx[np.lexsort((ratings[test_idx, 1], ratings[test_idx, 2], ratings[test_idx, 0]))]
    write_csv(os.path.join(args.out, "train.csv"), header, map(row, train_idx.tolist()))
    write_csv(os.path.join(args.out, "test.csv"), header, map(row, test_idx.tolist()))
    blank = [""] * len(USER_COLS[args.set])
    write_csv(os.path.join(args.out, "items.csv"), header,
              (["1"] + blank + [str(m), *movies[m]] for m in sorted(movies)))
    for name, retrieval in (("schema.toml", True), ("schema_ctr.toml", False)):
        with open(os.path.join(args.out, name), "w") as f:
            f.write(schema_text(args.set, args.split, retrieval))

    train_movies = set(ratings[train_idx, 1].tolist())
    test_movies = ratings[test_idx, 1].tolist()
    last_ts = {}
    for u, _m, t in ratings.tolist():
        last_ts[u] = max(t, last_ts.get(u, t))
    stats = {
        "set": args.set, "split": args.split, "seed": args.seed, "history": args.history,
        "ratings": int(len(ratings)),
        "users": int(len(np.unique(ratings[:, 0]))),
        "items": len(movies),
        "items_rated": int(len(np.unique(ratings[:, 1]))),
        "items_in_train": len(train_movies),
        "train_rows": int(len(train_idx)),
        "test_rows": int(len(test_idx)),
        "test_users": int(len(np.unique(ratings[test_idx, 0]))),
        "test_items": len(set(test_movies)),
        "test_items_not_in_train": len(set(test_movies) - train_movies),
        "test_rows_item_not_in_train": sum(m not in train_movies for m in test_movies),
        "test_rows_empty_history": sum(not hist[i] for i in test_idx.tolist()),
    }
    if args.split == "last":
        # The last rating shares its second with an earlier one: the movie id decided.
        ts = ratings[:, 2]
        tied = collections.Counter((u, t) for u, t in zip(ratings[:, 0].tolist(), ts.tolist()))
        stats["test_rows_tied_in_time"] = sum(tied[(int(ratings[i, 0]), int(ts[i]))] > 1 for i in test_idx.tolist())
    with open(os.path.join(args.out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=2)
        f.write("\n")
    print(json.dumps(stats, indent=2))


# ---------------------------------------------------------------- metrics


def rank_metrics(ranks, ks):
    """recall@K and ndcg@K averaged over rows, from 1-based ranks of each row's one
    relevant item (np.inf: not retrieved)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {}
    for k in ks:
        hit = ranks <= k
        gain = np.zeros(len(ranks))
        gain[hit] = 1.0 / np.log2(ranks[hit] + 1.0)
        out[f"recall@{k}"] = float(hit.mean()) if len(ranks) else math.nan
        out[f"ndcg@{k}"] = float(gain.mean()) if len(ranks) else math.nan
    return out


def read_columns(path, *names):
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        idx = [header.index(n) for n in names]
        return [tuple(int(row[i]) for i in idx) for row in r]


def read_split(d):
    train = read_columns(os.path.join(d, "train.csv"), "user_id", "movie_id")
    test = read_columns(os.path.join(d, "test.csv"), "user_id", "movie_id")
    items = [m for (m,) in read_columns(os.path.join(d, "items.csv"), "movie_id")]
    seen = collections.defaultdict(set)
    for u, m in train:
        seen[u].add(m)
    return train, test, items, seen


def popularity_ranks(train, test, items, seen):
    """1-based rank of each test row's movie in the popularity order, over all
    items and with the user's other train movies removed."""
    count = collections.Counter(m for _u, m in train)
    order = sorted(items, key=lambda m: (-count[m], m))
    pos = {m: i for i, m in enumerate(order)}
    seen_pos = {u: np.sort(np.fromiter((pos[m] for m in ms), dtype=np.int64, count=len(ms))) for u, ms in seen.items()}
    empty = np.zeros(0, dtype=np.int64)
    all_ranks, excl_ranks = [], []
    for u, m in test:
        p = pos[m]
        above = int(np.searchsorted(seen_pos.get(u, empty), p))  # seen items ranked above m (m itself not counted)
        all_ranks.append(p + 1)
        excl_ranks.append(p + 1 - above)
    return np.array(all_ranks), np.array(excl_ranks)


def print_table(title, results, ks):
    print(title)
    cols = [f"{m}@{k}" for k in ks for m in ("recall", "ndcg")]
    print(f"{'':16s}" + "".join(f"{c:>12s}" for c in cols))
    for name, r in results.items():
        print(f"{name:16s}" + "".join(f"{r[c]:12.4f}" for c in cols))


def parse_ks(text):
    try:
        ks = [int(k) for k in text.split(",")]
    except ValueError:
        raise DataError(f"--k {text!r}: expected integers separated by commas")
    if not ks or min(ks) < 1:
        raise DataError(f"--k {text!r}: each K must be at least 1")
    return ks


def baseline(args):
    ks = parse_ks(args.k)
    train, test, items, seen = read_split(args.dir)
    unknown = sorted({m for _u, m in train + test} - set(items))
    if unknown:
        raise DataError(f"{len(unknown)} movies of train/test are not in items.csv, e.g. {unknown[:5]}")
    all_ranks, excl_ranks = popularity_ranks(train, test, items, seen)
    results = {"all": rank_metrics(all_ranks, ks), "excluding_seen": rank_metrics(excl_ranks, ks)}
    out = {"model": "popularity (train rows per movie; ties: smaller movie id first)",
           "test_rows": len(test), "items": len(items), **results}
    with open(os.path.join(args.dir, "baseline.json"), "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print_table(f"popularity baseline, {len(test)} test rows, {len(items)} items ({args.dir})", results, ks)


def score(args):
    ks = parse_ks(args.k)
    _train, test, _items, seen = read_split(args.dir)
    with open(args.topk) as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(test):
        raise DataError(f"{args.topk}: {len(lines)} lines for {len(test)} test rows")
    ranks, shortest = [], math.inf
    for n, ((u, m), line) in enumerate(zip(test, lines), 1):
        try:
            ids = [int(x) for x in line.split()]
        except ValueError:
            raise DataError(f"{args.topk}:{n}: expected movie ids separated by spaces")
        if args.exclude_seen:
            ids = [x for x in ids if x == m or x not in seen[u]]
        shortest = min(shortest, len(ids))
        try:
            ranks.append(ids.index(m) + 1)
        except ValueError:
            ranks.append(math.inf)
    if shortest < max(ks):
        print(f"note: some lines hold {shortest} ids, fewer than K = {max(ks)}: a miss there may be a hit "
              "in a longer list", file=sys.stderr)
    name = "excluding_seen" if args.exclude_seen else "as given"
    print_table(f"{args.topk}: {len(test)} test rows", {name: rank_metrics(ranks, ks)}, ks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="write train/test/items CSV, schemas and stats.json into --out",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder holding ml-100k/ and ml-latest-small/")
    p.add_argument("--set", required=True, choices=SETS)
    p.add_argument("--split", required=True, choices=("last", "random"))
    p.add_argument("--out", required=True, help="directory to write (new, empty, or holding only this tool's files)")
    p.add_argument("--history", type=int, default=10, help="movies in a row's history (default 10)")
    p.add_argument("--seed", type=int, default=42, help="seed of the random split (default 42)")
    b = sub.add_parser("baseline", help="popularity baseline on a prepared DIR; writes DIR/baseline.json")
    b.add_argument("--dir", required=True, help="a prepared DIR")
    b.add_argument("--k", default="10,50,100", help="cut-offs (default 10,50,100)")
    s = sub.add_parser("score", help="recall@K and ndcg@K of a ranker's retrieved ids per test row",
                       description=TOPK_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--dir", required=True, help="a prepared DIR (its test.csv, train.csv)")
    s.add_argument("--topk", required=True, metavar="FILE", help="retrieved ids, one line per test row (see above)")
    s.add_argument("--k", default="10,50,100", help="cut-offs (default 10,50,100)")
    s.add_argument("--exclude-seen", action="store_true", help="drop the user's train movies from each line first")
    args = ap.parse_args()
    if args.cmd == "prepare" and args.history < 0:
        ap.error("--history must be 0 or more")
    try:
        {"prepare": prepare, "baseline": baseline, "score": score}[args.cmd](args)
    except DataError as e:
        sys.exit(f"movielens.py: error: {e}")


if __name__ == "__main__":
    main()
