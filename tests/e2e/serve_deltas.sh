#!/usr/bin/env bash
# embark serve following online training: deltas written into the served
# directory are applied in place (answers equal to `embark predict` on
# snapshot plus deltas, bit for bit, with no failed request under load); a
# corrupted delta is refused and counted while serving goes on; a new
# snapshot loads in full and recovers; the same under --memory-budget.
# Deltas come from tests/e2e/delta_writer.cc (written as the stream trainer writes
# them, without training), then from `embark train --stream` itself: the
# server follows it under load, with the newest trained sample served within
# seconds, and equals predict on its directory once the stream pauses.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
WRITER=${EMBARK_DELTA_WRITER:-$(dirname "$EMBARK")/tests/delta_writer}
if [ ! -x "$WRITER" ]; then echo "skipped: no $WRITER (build the delta_writer target)"; exit 77; fi
cd "$WORK"
"$EMBARK" gen --rows 20000 --valid-rows 1000 --seed 11 --out train.tsv --valid-out valid.tsv >/dev/null
small=(--data train.tsv --quiet --batch 512 --bottom-mlp 32,16 --top-mlp 32 --embedding-dim 8 --threads 2 --model dlrm)
"$EMBARK" train "${small[@]}" --out online >/dev/null
"$EMBARK" train "${small[@]}" --seed 2 --out next >/dev/null
/usr/bin/python3 "$HERE/serve_deltas_check.py" "$EMBARK" "$WRITER" "$WORK" || fail "serve delta checks (see above)"
finish
