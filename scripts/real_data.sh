#!/usr/bin/env bash
# Trains embark on the small real datasets in ../shared/data (see its README)
# and prints a Markdown table of validation AUC, logloss and calibration (after
# the Platt scaling each run fits on its validation set, and before it). The README's
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

run() {  # name model train valid extra-args...
  local name=$1 model=$2 train=$3 valid=$4
  shift 4
  local json
  json=$("$embark" train --data "$train" --valid "$valid" --model "$model" --out "$work/model" --quiet --json --deterministic "$@")
  local shown="$*"
  shown="${shown//$root\//}"
  /usr/bin/python3 - "$name" "$model" "$json" "$shown" <<'PY'
import json, sys
name, model, j, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
raw = j.get("uncalibrated", j)
print(f"| {name} | {model} | {j['samples'] // max(1, j['epochs'])} | {j['rows']} | {j['auc']:.4f} | {j['logloss']:.4f} | "
      f"{j['calibration']:.3f} | {raw['calibration']:.3f} | `{args}` |")
PY
}

echo "| dataset | model | train rows | valid rows | AUC | logloss | calibration | before Platt scaling | flags |"
echo "|---|---|---|---|---|---|---|---|---|"
run frappe fm "$data/frappe/frappe.validation.libfm" "$data/frappe/frappe.test.libfm" --epochs 5
run frappe deepfm "$data/frappe/frappe.validation.libfm" "$data/frappe/frappe.test.libfm" --epochs 5 --batch 256 --mlp 64,64
run ml-100k fm "$data/ml-100k/u1.base" "$data/ml-100k/u1.test" --schema "$schemas/ml-100k.toml" --epochs 5 --batch 256
run ml-latest-small deepfm "$data/ml-latest-small/ctr_train.csv" "$data/ml-latest-small/ctr_test.csv" --schema "$schemas/ml-latest-ctr.toml" --epochs 5 --batch 256 --mlp 64,64
run criteo-1000 lr "$work/criteo_train.tsv" "$work/criteo_valid.tsv" --epochs 3 --batch 64 --first-order-optimizer ftrl --first-order-lr 0.05
run criteo-1000 dlrm "$work/criteo_train.tsv" "$work/criteo_valid.tsv" --epochs 3 --batch 64 --bottom-mlp 32 --top-mlp 32
run avazu-1000 lr "$work/avazu_train.csv" "$work/avazu_valid.csv" --schema "$schemas/avazu.toml" --epochs 3 --batch 64 --first-order-optimizer ftrl --first-order-lr 0.05
