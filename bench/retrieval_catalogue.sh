#!/usr/bin/env bash
# A two-tower model over a generated catalogue of 10^6 items
# (bench/two_tower_gen.py): training, embark index (HNSW) over every item,
# and recall@K of held-out interactions searched exactly and through the
# index, with the index's build seconds, size and query latency.
#
#   bench/retrieval_catalogue.sh [--embark build/embark] [--items 1000000] [--rows 2000000] [--keep DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
embark=$root/build/embark
items=1000000
rows=2000000
keep=
while [[ $# -gt 0 ]]; do
  case $1 in
    --embark) embark=$2; shift 2 ;;
    --items) items=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
work=${keep:-$(mktemp -d)}
[[ -n $keep ]] || trap 'rm -rf "$work"' EXIT
py=/usr/bin/python3
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
[[ -f $work/data/items.csv ]] || $py "$root/bench/two_tower_gen.py" --items "$items" --rows "$rows" --out "$work/data"
"$embark" train --model two_tower --schema "$work/data/schema.toml" --data "$work/data/train.csv" --epochs 1 \
  --out "$work/model" --json --quiet > "$work/train.json"
"$embark" index --model "$work/model" --items "$work/data/items.csv" --out "$work/index" --json > "$work/index.json"
"$embark" eval --model "$work/model" --data "$work/data/test.csv" --items "$work/data/items.csv" --index "$work/index" \
  --json > "$work/eval.json"
$py - "$work" <<'EOF'
import json, os, sys
w = sys.argv[1]
t, i, e = (json.load(open(os.path.join(w, f))) for f in ("train.json", "index.json", "eval.json"))
m = json.load(open(os.path.join(w, "index", "MANIFEST.json")))
size = sum(os.path.getsize(os.path.join(w, "index", f)) for f in os.listdir(os.path.join(w, "index")))
print(f"train: {t['samples']} rows, {t['samples_per_sec']:.0f} rows/s")
print(f"index: {i['items']} items ({m['count']} in the graph, {m['hnsw'].get('aliases', 0)} aliases), "
      f"embedded in {i['embed_seconds']:.1f} s, built in {i['build_seconds']:.1f} s, "
      f"{i['memory_bytes'] / 1e6:.0f} MB in memory, {size / 1e6:.0f} MB on disk")
print()
print("| search | items | R@10 | R@50 | R@100 | NDCG@10 | queries/s (all cores, batches of 256) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for k in ("exact", "ann"):
    r = e[k]
    print(f"| {'exact' if k == 'exact' else 'hnsw (M 16, ef 100)'} | {r['items']} | {r['recall@10']:.4f} | "
          f"{r['recall@50']:.4f} | {r['recall@100']:.4f} | {r['ndcg@10']:.4f} | {e['queries'] / r['search_seconds']:.0f} |")
EOF
