#!/usr/bin/env bash
# Training throughput, cost and quality of embark against PyTorch on the same
# generated data, side by side on this machine at the same moment: DLRM in
# the Criteo shape (examples/dlrm.toml) and DeepFM (MLP 400-400-400),
# embedding dim 16, batch 2048, embeddings Adagrad, dense layers Adam, one
# epoch in file order. embark at 1 and 2 threads in fp32 and with
# --dense-precision bf16; PyTorch (bench/torch_ctr.py,
# Debian's python3-torch, installed here if missing) at 1 and 2 threads in
# fp32 and under bf16 autocast, starting from embark's initial weights
# (build/bench/export_rows --init). Every run reports samples/s, CPU-seconds of
# its training loop, validation AUC and calibration.
#   bench/compare_torch.sh          (env: ROWS=500000 VALID_ROWS=100000 WORK=dir)
# Prints lscpu's model name and a Markdown table per model (bench/torch_table.py:
# each run against PyTorch's best fp32 and best bf16 thread count), writes
# $WORK/compare_torch.json (one JSON line per run), and exits 3 (after the
# tables) if embark's AUC is more than 0.002 from PyTorch fp32's at any
# thread count both ran, naming the model and the gap.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROWS=${ROWS:-500000}
VALID_ROWS=${VALID_ROWS:-100000}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/embark-torch-XXXXXX")}
EXTRA_PKGS="python3-torch" "$ROOT/scripts/build.sh" >/dev/null
E="$ROOT/build/embark"
PY=/usr/bin/python3
mkdir -p "$WORK"
cd "$WORK"
[ -f train.tsv ] || "$E" gen --rows "$ROWS" --valid-rows "$VALID_ROWS" --vocab 1000000 --seed 1 \
  --out train.tsv --valid-out valid.tsv >/dev/null
export CPU_MODEL=$(lscpu | sed -n 's/^Model name: *//p') CPUS=$(nproc)
# Adds the machine and (for embark) the run's identity to one JSON line.
tag() {
  "$PY" -c "
import json, os, sys
j = json.load(sys.stdin)
j.update(sys.argv[1] and json.loads(sys.argv[1]) or {}, cpu_model=os.environ['CPU_MODEL'], cpus=int(os.environ['CPUS']))
print(json.dumps(j))" "${1:-}"
}
# --calibrate none: both sides' raw models (embark's Platt scaling, fitted on
# the validation file, would make its calibration column in-sample).
common=(--data train.tsv --valid valid.tsv --batch 2048 --shuffle-window 0 --sparse-optimizer adagrad
        --sparse-lr 0.05 --first-order-optimizer adagrad --first-order-lr 0.05 --dense-optimizer adam --dense-lr 0.003
        --embedding-dim 16 --calibrate none --json --quiet)
: > compare_torch.json
for model in dlrm deepfm; do
  if [ "$model" = dlrm ]; then extra=(--config "$ROOT/examples/dlrm.toml"); else extra=(--mlp 400,400,400); fi
  for t in 1 2; do
    "$E" train "${common[@]}" "${extra[@]}" --model "$model" --threads "$t" --out "model_$model" |
      tag "{\"framework\": \"embark\", \"model\": \"$model\", \"threads\": $t, \"precision\": \"fp32\"}" \
      >> compare_torch.json
    "$E" train "${common[@]}" "${extra[@]}" --model "$model" --threads "$t" --dense-precision bf16 --out "model_${model}_bf16" |
      tag "{\"framework\": \"embark\", \"model\": \"$model\", \"threads\": $t, \"precision\": \"bf16\"}" \
      >> compare_torch.json
    # PyTorch starts from the weights embark's run started from: the same
    # model from the same start, so an AUC gap is the training's, not the
    # luck of an initialisation (seeds alone move DLRM's AUC by up to 0.008).
    [ -d "init_$model" ] || "$ROOT/build/bench/export_rows" --init "model_$model" train.tsv "init_$model"
    for autocast in none bf16; do
      "$PY" "$ROOT/bench/torch_ctr.py" "$model" train.tsv valid.tsv "$t" --autocast "$autocast" --sparse-lr 0.05 \
        --dense-lr 0.003 --batch 2048 --init-from "init_$model" | tag >> compare_torch.json
    done
  done
done
"$PY" "$ROOT/bench/torch_table.py" compare_torch.json
