#!/usr/bin/env bash
# Feature admission, row caps and row expiry end to end: `embark train` with
# --admit-min-count, --max-rows and --row-ttl reports non-zero, consistent
# row counters, holds fewer rows than the run without them, and still learns.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$EMBARK" gen --rows 30000 --valid-rows 10000 --seed 3 --out train.tsv --valid-out valid.tsv >/dev/null
common=(--data train.tsv --valid valid.tsv --model fm --epochs 1 --batch 256 --deterministic --json)
"$EMBARK" train "${common[@]}" --out base > base.json
"$EMBARK" train "${common[@]}" --admit-min-count 2 --out mc > mc.json
"$EMBARK" train "${common[@]}" --max-rows 20000 --out cap > cap.json
"$EMBARK" train "${common[@]}" --row-ttl 20 --out ttl > ttl.json
# The counters are sums over the model's tables; embedding_rows is the
# largest table's rows: what is left of what was admitted lies between it
# and it times the tables (fm: 2).
held() { echo "$(json_get $1 rows_admitted) - $(json_get $1 rows_evicted) - $(json_get $1 rows_expired)"; }
consistent() { check "$1: counters add up" "$(json_get $1.json embedding_rows) <= $(held $1.json) <= 2 * $(json_get $1.json embedding_rows)"; }
base_rows=$(json_get base.json embedding_rows)
check "no policy: every row admitted, none refused" \
  "$(json_get base.json rows_admitted) == 2 * $base_rows and $(json_get base.json rows_rejected) == 0"
check "min count: ids refused a row" "$(json_get mc.json rows_rejected) > 0"
check "min count: fewer rows" "$(json_get mc.json embedding_rows) < 0.8 * $base_rows"
consistent mc
check "cap: rows evicted" "$(json_get cap.json rows_evicted) > 0 and $(json_get cap.json rows_expired) == 0"
check "cap: fewer rows" "$(json_get cap.json embedding_rows) < $base_rows"
check "cap: the saved tables hold at most the cap" "$(json_get cap.json embedding_rows) <= 20000"
consistent cap
check "ttl: rows expired" "$(json_get ttl.json rows_expired) > 0 and $(json_get ttl.json rows_evicted) == 0"
consistent ttl
for r in base mc cap ttl; do
  check "$r: AUC reasonable" "$(json_get $r.json auc) > 0.68"
  check "$r: memory store has no disk tier" \
    "$(json_get $r.json cache_hit_rate) == 0 and $(json_get $r.json table_disk_bytes) == 0"
done
check "min count costs little AUC" "$(json_get mc.json auc) > $(json_get base.json auc) - 0.02"
# Deterministic runs evict at fixed steps: the same model twice.
"$EMBARK" train "${common[@]}" --max-rows 20000 --row-ttl 20 --out again1 > a1.json
"$EMBARK" train "${common[@]}" --max-rows 20000 --row-ttl 20 --out again2 > a2.json
check "deterministic with eviction" "$(json_get a1.json auc) == $(json_get a2.json auc)"
finish
