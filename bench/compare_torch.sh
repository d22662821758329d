#!/usr/bin/env bash
# Training throughput of embark against PyTorch on the same generated data,
# side by side on this machine at the same moment: DLRM in the Criteo shape
# (examples/dlrm.toml) and DeepFM (MLP 400-400-400), embedding dim 16,
# batch 2048, embeddings Adagrad, dense layers Adam, one epoch in file order,
# at 1 and 2 threads. The PyTorch models are bench/torch_ctr.py (Debian's
# python3-torch, installed here if missing). Both report validation AUC.
#   bench/compare_torch.sh          (env: ROWS=500000 VALID_ROWS=100000 WORK=dir)
# Prints a Markdown table and writes $WORK/compare_torch.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROWS=${ROWS:-500000}
VALID_ROWS=${VALID_ROWS:-100000}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/embark-torch-XXXXXX")}
EXTRA_PKGS="python3-torch" "$ROOT/scripts/build.sh" >/dev/null
E="$ROOT/build/embark"
mkdir -p "$WORK"
cd "$WORK"
[ -f train.tsv ] || "$E" gen --rows "$ROWS" --valid-rows "$VALID_ROWS" --vocab 1000000 --seed 1 \
  --out train.tsv --valid-out valid.tsv >/dev/null
common=(--data train.tsv --valid valid.tsv --batch 2048 --shuffle-window 0 --sparse-optimizer adagrad
        --sparse-lr 0.05 --first-order-optimizer adagrad --first-order-lr 0.05 --dense-optimizer adam --dense-lr 0.003
        --embedding-dim 16 --json --quiet)
: > compare_torch.json
for model in dlrm deepfm; do
  for t in 1 2; do
    if [ "$model" = dlrm ]; then extra=(--config "$ROOT/examples/dlrm.toml"); else extra=(--mlp 400,400,400); fi
    "$E" train "${common[@]}" "${extra[@]}" --model "$model" --threads "$t" --out "model_$model" |
      /usr/bin/python3 -c "import json,sys; j=json.load(sys.stdin); j.update(framework='embark', model='$model', threads=$t); print(json.dumps(j))" \
      >> compare_torch.json
    /usr/bin/python3 "$ROOT/bench/torch_ctr.py" "$model" train.tsv valid.tsv "$t" --sparse-lr 0.05 --dense-lr 0.003 \
      --batch 2048 >> compare_torch.json
  done
done
/usr/bin/python3 - <<'PY'
import json
runs = [json.loads(l) for l in open("compare_torch.json")]
print("| model | threads | embark samples/s | PyTorch samples/s | ratio | embark AUC | PyTorch AUC | AUC difference |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for i in range(0, len(runs), 2):
    e, t = runs[i], runs[i + 1]
    print(f"| {e['model']} | {e['threads']} | {e['samples_per_sec']:,.0f} | {t['samples_per_sec']:,.0f} | "
          f"{e['samples_per_sec'] / t['samples_per_sec']:.2f}x | {e['auc']:.4f} | {t['auc']:.4f} | {e['auc'] - t['auc']:+.4f} |")
PY
