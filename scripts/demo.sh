#!/usr/bin/env bash
# The main job on an embedded default: installs what is missing, builds,
# generates a Criteo-shaped dataset from a planted model, trains DLRM on it
# and evaluates on a held-out part next to the data's optimal figures.
# ROWS, VALID_ROWS and WORK override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
rows=${ROWS:-1000000}
valid_rows=${VALID_ROWS:-100000}
work=${WORK:-demo}
mkdir -p "$work"
echo "== embark gen: $rows training rows, $valid_rows validation rows"
./build/embark gen --rows "$rows" --valid-rows "$valid_rows" --seed 1 \
  --out "$work/train.tsv" --valid-out "$work/valid.tsv" --json > "$work/gen.json"
echo "== embark train: DLRM (Criteo shape: 13 dense, 26 sparse, dim 16, bottom 512-256-64-16, top 512-256-1)"
# Validation: the first half of the validation rows (which also fits the
# model's Platt scaling); the other half is held out for eval.
half=$(( $(wc -l < "$work/valid.tsv") / 2 ))
head -n "$half" "$work/valid.tsv" > "$work/valid_a.tsv"
tail -n +"$((half + 1))" "$work/valid.tsv" > "$work/valid_b.tsv"
./build/embark train --data "$work/train.tsv" --valid "$work/valid_a.tsv" --model dlrm --out "$work/dlrm" \
  --config examples/dlrm.toml
echo "== embark eval on the held-out half of the validation rows"
./build/embark eval --model "$work/dlrm" --data "$work/valid_b.tsv" --json > "$work/eval.json"
/usr/bin/python3 - "$work/gen.json" "$work/eval.json" <<'PY'
import json, sys
g, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(f"{'':12}{'AUC':>10}{'logloss':>10}")
print(f"{'DLRM':12}{e['auc']:>10.4f}{e['logloss']:>10.4f}")
print(f"{'optimal':12}{g['optimal_auc']:>10.4f}{g['optimal_logloss']:>10.4f}   (the planted model's true probabilities, every validation row)")
print(f"normalized entropy {e['normalized_entropy']:.4f}, calibration {e['calibration']:.4f} (rows the Platt scaling never saw)")
PY
