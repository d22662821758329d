#!/usr/bin/env bash
# Tables larger than their memory budget (--memory-budget, --table-dir):
#  - a deterministic run gives the same model with and without the tier
#    (the same predictions, byte for byte);
#  - predict and eval under a budget score a checkpoint as in RAM;
#  - the budget holds: peak RSS falls by what the table no longer keeps in
#    RAM, less the tier's fixed overhead;
#  - kill -9 during tiered training, then a resume from the last checkpoint
#    (the disk tier is scratch: the next run empties and reuses it);
#  - a table directory with someone else's files is refused untouched.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$EMBARK" gen --rows 120000 --valid-rows 10000 --out train.tsv --valid-out valid.tsv --vocab 2000000 --zipf 1.05 \
  --seed 4 >/dev/null
small=(--model dlrm --embedding-dim 32 --bottom-mlp 64,32 --top-mlp 64 --shuffle-window 0 --quiet --json)

"$EMBARK" train --data train.tsv --valid valid.tsv "${small[@]}" --deterministic --out ram >ram.json
"$EMBARK" train --data train.tsv --valid valid.tsv "${small[@]}" --deterministic --out tier \
  --memory-budget 16M --table-dir "$WORK/tables" >tier.json
table=$(json_get ram.json embedding_bytes)
check "the table is several times the budget" "$table > 5 * 16 * 2**20"
check "same validation AUC" "$(json_get ram.json auc) == $(json_get tier.json auc)"
check "same rows" "$(json_get ram.json embedding_rows) == $(json_get tier.json embedding_rows)"
check "the tier's table RAM is within the budget" "$(json_get tier.json embedding_bytes) <= 16 * 2**20"
ram_rss=$(json_get ram.json peak_rss_bytes)
tier_rss=$(json_get tier.json peak_rss_bytes)
# The budget bounds the table; the tier itself (its threads, the disk
# tier's file readers and compaction buffers) costs a fixed overhead
# (docs/storage.md), here allowed 64 MiB.
check "peak RSS: the in-RAM run's, less the table, plus the budget and the tier's overhead ($ram_rss -> $tier_rss)" \
  "$tier_rss <= $ram_rss - $table + 16 * 2**20 + 64 * 2**20"

"$EMBARK" predict --model ram --data valid.tsv --out p_ram.txt
"$EMBARK" predict --model tier --data valid.tsv --out p_tier.txt
"$EMBARK" predict --model ram --data valid.tsv --out p_budget.txt --memory-budget 16M --table-dir "$WORK/serve_tables"
if cmp -s p_ram.txt p_tier.txt; then pass "trained with and without the tier: identical predictions"; else
  fail "predictions differ between the in-RAM and tiered runs"; fi
if cmp -s p_ram.txt p_budget.txt; then pass "predict under a budget: identical predictions"; else
  fail "predict under a memory budget differs from predict in RAM"; fi
"$EMBARK" eval --model ram --data valid.tsv --json --memory-budget 16M --table-dir "$WORK/serve_tables" >ev.json
check "eval under a budget" "$(json_get ev.json auc) == $(json_get ram.json auc)"

# kill -9 while training with periodic checkpoints, then resume.
"$EMBARK" train --data train.tsv --valid valid.tsv "${small[@]}" --epochs 3 --checkpoint-every 20 --out crash \
  --memory-budget 16M --table-dir "$WORK/crash_tables" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 600); do
  [ -f crash/MANIFEST.json ] && break
  sleep 0.1
done
sleep 0.3
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if [ -f crash/MANIFEST.json ]; then
  "$EMBARK" train --resume crash --data train.tsv --valid valid.tsv --epochs 3 --quiet --json --out crash \
    --memory-budget 16M --table-dir "$WORK/crash_tables" >resumed.json
  check "resumed after kill -9 and finished" "$(json_get resumed.json epochs) == 3"
  check "the resumed model learned" "$(json_get resumed.json auc) > 0.7"
else
  fail "no checkpoint was written before the kill"
fi

# A table directory is created per table inside --table-dir; one that holds
# someone else's files is refused, and left as it was.
mkdir -p theirs/embeddings && echo precious >theirs/embeddings/notes.txt
expect_error "a table directory embark did not make" "not made by embark" \
  "$EMBARK" train --data valid.tsv "${small[@]}" --out other --memory-budget 16M --table-dir "$WORK/theirs"
if [ "$(cat theirs/embeddings/notes.txt)" = precious ] && [ "$(ls theirs/embeddings)" = notes.txt ] && [ ! -e other ]; then
  pass "their files untouched, nothing written"
else
  fail "a refused table directory changed something"
fi
finish
