#!/usr/bin/env bash
# Two-tower retrieval on MovieLens (../shared/data) against the popularity
# baseline: recall@K and NDCG@K of embark's two_tower model, searched
# exactly and through its HNSW index, on
#   - ml-100k, time-ordered leave-last-out (each user's last rating held out);
#   - ml-100k, a random 80/20 split, the setting of TensorFlow Recommenders'
#     basic retrieval tutorial (top-100 accuracy over all 1,682 movies, rated
#     ones not excluded), with its features only (user id, movie id) and with
#     embark's (demographics, the last 10 movies, genres, year);
#   - ml-latest-small, leave-last-out.
# Prints a markdown table with the machine's CPU model.
#
#   bench/retrieval_bench.sh [--embark build/embark] [--data ../shared/data] [--epochs 8]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
embark=$root/build/embark
data=$root/../shared/data
epochs=8
while [[ $# -gt 0 ]]; do
  case $1 in
    --embark) embark=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -d $data/ml-100k ]] || { echo "skipped: no MovieLens data at $data (see ../shared/data/README.md)"; exit 0; }
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
params=(--model two_tower --epochs "$epochs" --batch-size 1024 --embedding-dim 32 --temperature 0.1 --quiet)

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo
echo "| data | split | model | queries | items | R@10 | R@50 | R@100 | NDCG@10 | NDCG@100 | train s |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"

baseline() {  # dir label split
  local d=$1 label=$2 split=$3
  $py "$root/bench/movielens.py" baseline --dir "$d" > /dev/null
  $py - "$d/baseline.json" "$label" "$split" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))
a = b["all"]  # bench/movielens.py baseline: over all items, rated ones included
def g(k, m):
    return a[f"{m}@{k}"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | popularity | {b['test_rows']} | {b['items']} | "
      f"{g(10,'recall'):.4f} | {g(50,'recall'):.4f} | {g(100,'recall'):.4f} | {g(10,'ndcg'):.4f} | {g(100,'ndcg'):.4f} | |")
EOF
  local t0=$(date +%s.%N)
  "$embark" train "${params[@]}" --schema "$schema" --data "$d/train.csv" --out "$out" > /dev/null
  local t1=$(date +%s.%N)
  "$embark" index --model "$out" --items "$d/items.csv" --out "$idx" > /dev/null
  "$embark" eval --model "$out" --data "$d/test.csv" --items "$d/items.csv" --index "$idx" --json > "$work/eval.json"
  $py - "$work/eval.json" "$label" "$split" "$(basename "$schema" .toml)" "$t0" "$t1" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
what = "two_tower" + (" (user id, movie id)" if sys.argv[4] == "schema_basic" else "")
for kind in ("exact", "ann"):
    m = j[kind]
    secs = float(sys.argv[6]) - float(sys.argv[5])
    print(f"| {sys.argv[2]} | {sys.argv[3]} | {what}, {kind} | {j['queries']} | {m['items']} | {m['recall@10']:.4f} | "
          f"{m['recall@50']:.4f} | {m['recall@100']:.4f} | {m['ndcg@10']:.4f} | {m['ndcg@100']:.4f} | "
          f"{secs:.1f} |")
EOF
}

for spec in "ml-100k last" "ml-100k random" "ml-latest-small last"; do
  set -- $spec
  d=$work/$1-$2
  $py "$root/bench/movielens.py" prepare --data "$data" --set "$1" --split "$2" --out "$d" > /dev/null
  baseline "$d" "$1" "$([[ $2 == last ]] && echo leave-last-out || echo 'random 80/20')"
  if [[ $1 == ml-100k && $2 == random ]]; then
    printf 'label = "label"\ncategorical = ["user_id", "movie_id"]\nuser = ["user_id"]\nitem = ["movie_id"]\n' > "$d/schema_basic.toml"
    row "$d" "$1" "random 80/20" "$d/schema_basic.toml"
  fi
  row "$d" "$1" "$([[ $2 == last ]] && echo leave-last-out || echo 'random 80/20')" "$d/schema.toml"
done
