#!/usr/bin/python3
"""A generated retrieval data set with a large catalogue, for the figures of
a 10^6-item index (bench/retrieval_catalogue.sh): users in segments, items in
categories, each segment preferring a few categories and, within them, the
more popular items (Zipf). Writes into --out:

  train.csv, test.csv  label,user_id,segment,item_id,category (every row a positive)
  items.csv            every item once, user columns empty
  schema.toml          the two towers: user_id, segment | item_id, category

  bench/two_tower_gen.py --items 1000000 --users 100000 --rows 2000000 --out DIR [--seed 1]
"""
import argparse
import os
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--test-rows", type=int, default=10_000)
    ap.add_argument("--segments", type=int, default=100)
    ap.add_argument("--categories", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if min(a.items, a.users, a.rows, a.test_rows, a.segments, a.categories) < 1:
        sys.exit("two_tower_gen: every count must be at least 1")
    if os.path.exists(a.out) and os.listdir(a.out):
        sys.exit(f"two_tower_gen: {a.out} exists and is not empty")
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    category = rng.integers(0, a.categories, a.items)
    segment = rng.integers(0, a.segments, a.users)
    # Each segment likes 5 categories; an item's pull within its category is Zipf(1.1)-like.
    liked = rng.integers(0, a.categories, (a.segments, 5))
    order = np.argsort(category, kind="stable")
    starts = np.searchsorted(category[order], np.arange(a.categories + 1))

    def draw(n):
        users = rng.integers(0, a.users, n)
        cats = liked[segment[users], rng.integers(0, 5, n)]
        sizes = starts[cats + 1] - starts[cats]
        ok = sizes > 0
        users, cats, sizes = users[ok], cats[ok], sizes[ok]
        rank = np.minimum(rng.zipf(1.1, len(cats)) - 1, sizes - 1)
        return users, order[starts[cats] + rank]

    def write(path, users, items):
        with open(path, "w") as f:
            f.write("label,user_id,segment,item_id,category\n")
            lines = np.char.add(np.char.add(np.char.add(np.char.add(
                "1,", users.astype(str)), np.char.add(",", segment[users].astype(str))),
                np.char.add(",", items.astype(str))), np.char.add(",", category[items].astype(str)))
            f.write("\n".join(lines.tolist()))
            f.write("\n")

    write(os.path.join(a.out, "train.csv"), *draw(a.rows))
    write(os.path.join(a.out, "test.csv"), *draw(a.test_rows))
    with open(os.path.join(a.out, "items.csv"), "w") as f:
        f.write("label,user_id,segment,item_id,category\n")
        ids = np.arange(a.items)
        f.write("\n".join(np.char.add(np.char.add("1,,,", ids.astype(str)),
                                      np.char.add(",", category.astype(str))).tolist()))
        f.write("\n")
    with open(os.path.join(a.out, "schema.toml"), "w") as f:
        f.write('# written by bench/two_tower_gen.py\nlabel = "label"\n'
                'categorical = ["user_id", "segment", "item_id", "category"]\n'
                'user = ["user_id", "segment"]\nitem = ["item_id", "category"]\nitem_id = "item_id"\n')
    print(f"wrote {a.out}: {a.rows} train rows, {a.test_rows} test rows, {a.items} items")


if __name__ == "__main__":
    main()
