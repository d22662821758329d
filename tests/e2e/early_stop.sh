#!/usr/bin/env bash
# Early stopping on validation AUC: a model that overfits a small dataset
# stops before its epoch budget, and the checkpoint left behind is the best
# one seen (its AUC is the best validation AUC of the run).
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$EMBARK" gen --rows 4000 --valid-rows 4000 --seed 2 --out train.tsv --valid-out valid.tsv >/dev/null
"$EMBARK" train --data train.tsv --valid valid.tsv --model fm --sparse-lr 0.05 --first-order-lr 0.05 --epochs 30 \
  --early-stop-patience 2 --deterministic --out m --json 2> log.txt > run.json
grep -o "validation after step [0-9]*: auc [0-9.]*" log.txt
evals=$(grep -c "validation after step" log.txt)
check "stopped early" "'$(json_get run.json stopped_early)' == 'True'"
check "before the epoch budget" "$(json_get run.json epochs) < 30 and $evals < 30"
best=$(grep -o "auc [0-9.]*" log.txt | awk '{print $2}' | sort -g | tail -1)
"$EMBARK" eval --model m --data valid.tsv --json > eval.json
check "the checkpoint is the best model" "abs($(json_get eval.json auc) - $best) < 1e-6"
check "the reported figures are the checkpoint's" "abs($(json_get run.json auc) - $(json_get eval.json auc)) < 1e-12"
finish
