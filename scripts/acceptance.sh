#!/usr/bin/env bash
# The acceptance run of the single-machine trainer, at full model sizes:
# `embark gen` data (ROWS training rows, 200K validation rows), one epoch of
# every model with its defaults (DLRM in the Criteo shape), AUC next to the
# data's optimum, and DLRM's samples/s with 1 and 2 threads and peak RSS.
# Calibration is measured on held-out rows: the Platt scaling (the default
# with --valid) is fitted on the first 100K validation rows, which the AUC,
# logloss and "before Platt scaling" columns are measured on, and checked
# on the other 100K.
# Prints a Markdown table. Takes about 15 minutes on 2 cores.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
embark="${EMBARK:-$root/build/embark}"
rows=${ROWS:-2000000}
work=$(mktemp -d "${TMPDIR:-/tmp}/embark-accept-XXXXXX")
trap 'rm -rf "$work"' EXIT
"$embark" gen --rows "$rows" --valid-rows 200000 --seed 1 --out "$work/train.tsv" --valid-out "$work/valid.tsv" --json > "$work/gen.json"
get() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
opt=$(get "$work/gen.json" optimal_auc)
head -100000 "$work/valid.tsv" > "$work/calib.tsv"
tail -n +100001 "$work/valid.tsv" > "$work/heldout.tsv"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p') (lscpu), $(nproc) CPUs"
echo "data: $rows training rows, 200000 validation rows; optimal AUC $(printf %.4f "$opt"), optimal logloss $(printf %.4f "$(get "$work/gen.json" optimal_logloss)"), first-order AUC $(printf %.4f "$(get "$work/gen.json" first_order_auc)")"
echo
echo "| model | threads | AUC | gap to optimal | logloss | held-out calibration | before Platt scaling | samples/s | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|"
run() {  # label threads args...
  local label=$1 threads=$2
  shift 2
  "$embark" train --data "$work/train.tsv" --valid "$work/calib.tsv" --out "$work/model" --quiet --json --threads "$threads" "$@" > "$work/r.json"
  "$embark" eval --model "$work/model" --data "$work/heldout.tsv" --json > "$work/h.json"
  /usr/bin/python3 - "$work/r.json" "$work/h.json" "$label" "$threads" "$opt" <<'PY'
import json, sys
j, h, label, threads, opt = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4], float(sys.argv[5])
raw = j.get("uncalibrated", j)
print(f"| {label} | {threads} | {j['auc']:.4f} | {opt - j['auc']:.4f} | {j['logloss']:.4f} | {h['calibration']:.3f} | "
      f"{raw['calibration']:.3f} | {j['samples_per_sec']:.0f} | {j['peak_rss_bytes'] / 2**20:.0f} |")
PY
}
run "dlrm (Criteo shape)" 2 --config "$root/examples/dlrm.toml"
run "dlrm (Criteo shape)" 1 --config "$root/examples/dlrm.toml"
run deepfm 2 --model deepfm
run dcnv2 2 --model dcnv2
run wdl 2 --model wdl
run fm 2 --model fm
run lr 2 --model lr
run "lr (FTRL)" 2 --model lr --first-order-optimizer ftrl --first-order-lr 0.05
