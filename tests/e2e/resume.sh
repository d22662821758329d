#!/usr/bin/env bash
# Reproducibility: `embark gen` writes the same bytes for the same seed;
# --deterministic runs are bit-identical, and training 2 epochs equals
# training 1 epoch, checkpointing, and resuming for 1 more.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$EMBARK" gen --rows 20000 --valid-rows 4000 --seed 5 --out train.tsv --valid-out valid.tsv --json > gen.json
"$EMBARK" gen --rows 20000 --seed 5 --out again.tsv >/dev/null
"$EMBARK" gen --rows 20000 --seed 6 --out other.tsv >/dev/null
cmp -s train.tsv again.tsv && pass "gen: same seed, same bytes" || fail "gen: same seed gave different bytes"
cmp -s train.tsv other.tsv && fail "gen: another seed gave the same bytes" || pass "gen: another seed, other bytes"
check "gen reports figures in range" "0.5 < $(json_get gen.json optimal_auc) < 1 and 0 < $(json_get gen.json optimal_logloss) < 0.7 and $(json_get gen.json first_order_auc) < $(json_get gen.json optimal_auc)"

for model in dlrm deepfm fm; do
  # Sparse Adam and dense Adam keep per-row and per-parameter state: all of it
  # must survive the checkpoint for the runs to agree.
  common=(--data train.tsv --model "$model" --deterministic --quiet --batch 512 --shuffle-window 5000
          --bottom-mlp 16 --top-mlp 16 --mlp 16,8 --sparse-optimizer adam --sparse-lr 0.01)
  "$EMBARK" train "${common[@]}" --epochs 2 --out "$model.two" >/dev/null
  "$EMBARK" train "${common[@]}" --epochs 2 --out "$model.two_again" >/dev/null
  "$EMBARK" train "${common[@]}" --epochs 1 --out "$model.one" >/dev/null
  "$EMBARK" train "${common[@]}" --epochs 2 --resume "$model.one" --out "$model.resumed" >/dev/null
  for m in two two_again resumed one; do "$EMBARK" predict --model "$model.$m" --data valid.tsv --out "$model.$m.txt"; done
  cmp -s "$model.two.txt" "$model.two_again.txt" && pass "$model: deterministic runs agree bit for bit" \
    || fail "$model: two deterministic runs differ"
  cmp -s "$model.two.txt" "$model.resumed.txt" && pass "$model: 2 epochs == 1 epoch + resume 1" \
    || fail "$model: resumed run differs from the straight run"
  cmp -s "$model.one.txt" "$model.two.txt" && fail "$model: the second epoch changed nothing" || true
done
# Parameters that may change on resume do: the checkpoint's config is the
# base, and an explicit --dense-lr replaces its learning rate.
common=(--data train.tsv --deterministic --quiet --batch 512 --shuffle-window 5000 --epochs 2 --resume dlrm.one)
"$EMBARK" train "${common[@]}" --out dlrm.base >/dev/null
"$EMBARK" train "${common[@]}" --dense-lr 0.05 --out dlrm.faster >/dev/null
"$EMBARK" train "${common[@]}" --sparse-lr 0.05 --out dlrm.sparse >/dev/null
"$EMBARK" train --data train.tsv --epochs 3 --resume dlrm.sparse --out dlrm.sparse3 --quiet >/dev/null
for m in base faster sparse; do "$EMBARK" predict --model "dlrm.$m" --data valid.tsv --out "dlrm.$m.txt"; done
cmp -s dlrm.base.txt dlrm.two.txt && pass "resume with no parameters repeated: the checkpoint's config (as the straight run)" \
  || fail "resume without repeating the parameters differs from the straight run"
cmp -s dlrm.base.txt dlrm.faster.txt && fail "resume: a changed --dense-lr was ignored" \
  || pass "resume: a changed --dense-lr applies"
cmp -s dlrm.base.txt dlrm.sparse.txt && fail "resume: a changed --sparse-lr was ignored" \
  || pass "resume: a changed --sparse-lr applies to the loaded tables"
grep -q '^sparse_lr = 0.05' dlrm.sparse/config.toml && pass "resume: the checkpoint records the run's --sparse-lr" \
  || fail "resume: the checkpoint kept the old sparse_lr: $(grep sparse_lr dlrm.sparse/config.toml)"
grep -q '^sparse_lr = 0.05' dlrm.sparse3/config.toml && pass "resume: a later resume keeps it" \
  || fail "resume: a later resume lost the sparse_lr"
[ "$(wc -l < dlrm.two.txt)" -eq 4000 ] && pass "one prediction per input line" || fail "prediction count"
expect_error "changing the model on resume" "cannot change 'embedding_dim'" \
  "$EMBARK" train --data train.tsv --resume dlrm.one --out x --embedding-dim 8

# Checkpoints written before the first-order table "wide" became "first_order"
# (tests/fixtures/checkpoint_v2) score as they did and resume under the new
# names; --wide-lr / --wide-optimizer are deprecated aliases of the new flags.
fx="$EMBARK_SOURCE_DIR/tests/fixtures/checkpoint_v2"
for m in lr fm; do
  "$EMBARK" predict --model "$fx/$m" --data "$fx/score.tsv" --out "former_$m.pred"
  check "checkpoint from before the rename ($m) scores as it did" \
    "max(abs(float(a) - float(b)) for a, b in zip(open('former_$m.pred'), open('$fx/$m.pred'))) < 1e-6 and len(open('former_$m.pred').readlines()) == 20"
done
lr_resume=(--data train.tsv --resume "$fx/lr" --epochs 2 --quiet)
"$EMBARK" train "${lr_resume[@]}" --wide-lr 0.07 --out lr.former_flag >/dev/null
"$EMBARK" train "${lr_resume[@]}" --first-order-lr 0.07 --out lr.new_flag >/dev/null
if grep -q '^first_order_lr = 0.07$' lr.former_flag/config.toml && grep -q '^first_order_optimizer = "ftrl"$' lr.former_flag/config.toml \
   && ! grep -q wide lr.former_flag/config.toml && [ -f lr.former_flag/first_order.bin ] && [ ! -e lr.former_flag/wide.bin ]; then
  pass "resumed from before the rename: --wide-lr applies; the new checkpoint has the new names"
else
  fail "resumed from before the rename: $(ls lr.former_flag) $(grep -E 'first_order|wide' lr.former_flag/config.toml)"
fi
for m in former_flag new_flag; do "$EMBARK" predict --model "lr.$m" --data valid.tsv --out "lr.$m.txt"; done
cmp -s lr.former_flag.txt lr.new_flag.txt && pass "--wide-lr is --first-order-lr" || fail "--wide-lr and --first-order-lr differ"
expect_error "a fixed parameter under its former name" "cannot change 'first_order_optimizer' when resuming: the checkpoint has ftrl" \
  "$EMBARK" train "${lr_resume[@]}" --wide-optimizer adagrad --out x
finish
