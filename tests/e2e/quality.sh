#!/usr/bin/env bash
# Acceptance: on `embark gen` data (2M training rows, 200K validation rows, one
# epoch) DLRM, DeepFM and DCN-v2 reach validation AUC within 0.01 of the data's
# optimal AUC; FM within 0.03 of it (the planted model is an FM, so the optimum
# is what the FM class can reach); LR within 0.03 of the AUC of the planted
# model's first-order part (an LR-representable model, so a lower bound on the
# best LR). The deep models use the smaller layer sizes of examples/quality/
# to keep the suite fast; scripts/acceptance.sh runs the full Criteo shapes.
# Calibration: every model fits its Platt scaling on the first 100K
# validation rows (the default, calibrate = platt) and predicts within
# [0.97, 1.03] times the click rate on the other 100K, which it never saw.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
rows=2000000  # the configs in examples/quality assume this size
"$EMBARK" gen --rows "$rows" --valid-rows 200000 --seed 1 --out train.tsv --valid-out valid.tsv --json > gen.json
opt=$(json_get gen.json optimal_auc)
first=$(json_get gen.json first_order_auc)
head -100000 valid.tsv > calib.tsv
tail -n +100001 valid.tsv > heldout.tsv
echo "optimal auc $opt, first-order auc $first"
cfg="$EMBARK_SOURCE_DIR/examples/quality"
train() {  # name config-args...
  local name=$1
  shift
  "$EMBARK" train --data train.tsv --valid calib.tsv --out "m_$name" --quiet --json "$@" > "$name.json"
  "$EMBARK" eval --model "m_$name" --data heldout.tsv --json > "$name.heldout.json"
  echo "$name: auc $(json_get "$name.json" auc), held-out calibration $(json_get "$name.heldout.json" calibration)" \
    "(before Platt scaling $(json_get "$name.json" uncalibrated.calibration)), $(json_get "$name.json" samples_per_sec) samples/s"
}
train dlrm --config "$cfg/dlrm.toml"
train deepfm --config "$cfg/deepfm.toml"
train dcnv2 --config "$cfg/dcnv2.toml"
train fm --model fm
train lr --model lr
train lr_ftrl --model lr --first-order-optimizer ftrl --first-order-lr 0.05
for m in dlrm deepfm dcnv2; do
  check "$m within 0.01 of optimal" "$(json_get "$m.json" auc) >= $opt - 0.01"
done
check "fm within 0.03 of optimal" "$(json_get fm.json auc) >= $opt - 0.03"
check "lr within 0.03 of the first-order model" "$(json_get lr.json auc) >= $first - 0.03"
check "lr (FTRL) within 0.03 of the first-order model" "$(json_get lr_ftrl.json auc) >= $first - 0.03"
for m in dlrm deepfm dcnv2 fm lr lr_ftrl; do
  c=$(json_get "$m.heldout.json" calibration)
  check "$m held-out calibration $c within [0.97, 1.03]" "0.97 <= $c <= 1.03"
done
check "deep models beat lr" "$(json_get dlrm.json auc) > $(json_get lr.json auc) + 0.02"
finish
