#!/usr/bin/env bash
# Trains embark on the small real datasets in ../shared/data (see its README)
# and prints a Markdown table of validation AUC, logloss and held-out
# calibration (with the Platt scaling each run fits, and without). The README's
# table comes from this script. Runs are --deterministic: the table repeats
# exactly on the same machine. Usage: scripts/real_data.sh [DATA_DIR] [EMBARK]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$root/../shared/data}"
embark="${2:-$root/build/embark}"
if [ ! -d "$data" ]; then
  echo "no datasets at $data (the shared data folder is not part of a user's clone)" >&2
  exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/embark-real-XXXXXX")
trap 'rm -rf "$work"' EXIT
schemas="$root/examples/schemas"

# The Criteo and Avazu samples have no validation split: the first 800 rows
# train, the last 200 validate.
head -800 "$data/criteo/kaggle_train_head1000.tsv" > "$work/criteo_train.tsv"
tail -200 "$data/criteo/kaggle_train_head1000.tsv" > "$work/criteo_valid.tsv"
head -801 "$data/avazu/avazu_train_head1000.csv" > "$work/avazu_train.csv"
{ head -1 "$data/avazu/avazu_train_head1000.csv"; tail -200 "$data/avazu/avazu_train_head1000.csv"; } > "$work/avazu_valid.csv"

# Calibration on held-out rows: each validation file is split in two, its
# even and its odd lines (some files are sorted, by user for MovieLens; a
# header line, when the file has one, heads both); the Platt scaling is
# fitted on the even lines (--valid) and measured on the odd ones, which the
# run never saw, as is the same model trained with --calibrate none. AUC and
# logloss are over the whole validation file.
split_valid() {  # valid -> $work/va.* (even lines) and $work/vb.* (odd lines)
  /usr/bin/python3 - "$1" "$work" <<'PY'
import os, sys
path, work = sys.argv[1], sys.argv[2]
lines = open(path).read().splitlines(keepends=True)
head = [] if lines and (lines[0][:1].isdigit() or lines[0][:1] == "-") else lines[:1]
body = lines[len(head):]
ext = os.path.splitext(path)[1]
for name, part in (("va", body[0::2]), ("vb", body[1::2])):
    open(os.path.join(work, name + ext), "w").writelines(head + part)
PY
}

run() {  # name model train valid extra-args...
  local name=$1 model=$2 train=$3 valid=$4
  shift 4
  split_valid "$valid"
  local ext="${valid##*.}" trained all held raw
  trained=$("$embark" train --data "$train" --valid "$work/va.$ext" --model "$model" --out "$work/model" --quiet \
    --json --deterministic "$@")
  all=$("$embark" eval --model "$work/model" --data "$valid" --json)
  held=$("$embark" eval --model "$work/model" --data "$work/vb.$ext" --json)
  "$embark" train --data "$train" --valid "$work/va.$ext" --model "$model" --out "$work/model" --quiet --json \
    --deterministic --calibrate none "$@" > /dev/null
  raw=$("$embark" eval --model "$work/model" --data "$work/vb.$ext" --json)
  local shown="$*"
  shown="${shown//$root\//}"
  /usr/bin/python3 - "$name" "$model" "$trained" "$all" "$held" "$raw" "$shown" <<'PY'
import json, sys
name, model, args = sys.argv[1], sys.argv[2], sys.argv[7]
t, a, h, r = (json.loads(x) for x in sys.argv[3:7])
print(f"| {name} | {model} | {t['samples'] // max(1, t['epochs'])} | {a['rows']} | {a['auc']:.4f} | {a['logloss']:.4f} | "
      f"{h['calibration']:.3f} | {r['calibration']:.3f} | {h['rows']} | `{args}` |")
PY
}

echo "| dataset | model | train rows | valid rows | AUC | logloss | held-out calibration | without Platt scaling | held-out rows | flags |"
echo "|---|---|---|---|---|---|---|---|---|---|"
run frappe fm "$data/frappe/frappe.validation.libfm" "$data/frappe/frappe.test.libfm" --epochs 5
run frappe deepfm "$data/frappe/frappe.validation.libfm" "$data/frappe/frappe.test.libfm" --epochs 5 --batch 256 --mlp 64,64
run ml-100k fm "$data/ml-100k/u1.base" "$data/ml-100k/u1.test" --schema "$schemas/ml-100k.toml" --epochs 5 --batch 256
run ml-latest-small deepfm "$data/ml-latest-small/ctr_train.csv" "$data/ml-latest-small/ctr_test.csv" --schema "$schemas/ml-latest-ctr.toml" --epochs 5 --batch 256 --mlp 64,64
run criteo-1000 lr "$work/criteo_train.tsv" "$work/criteo_valid.tsv" --epochs 3 --batch 64 --first-order-optimizer ftrl --first-order-lr 0.05
run criteo-1000 dlrm "$work/criteo_train.tsv" "$work/criteo_valid.tsv" --epochs 3 --batch 64 --bottom-mlp 32 --top-mlp 32
run avazu-1000 lr "$work/avazu_train.csv" "$work/avazu_valid.csv" --schema "$schemas/avazu.toml" --epochs 3 --batch 64 --first-order-optimizer ftrl --first-order-lr 0.05
