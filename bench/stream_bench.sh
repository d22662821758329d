#!/usr/bin/env bash
# Sustained online training: `embark train --stream` on a watched directory
# that a feeder keeps two files ahead of the trainer (and prunes behind it,
# as a retention policy would), for DURATION seconds, with a TTL and a cap
# on the tables so that memory must stay flat. The files are the windows of
# `embark gen --drift` (ids appear and fade), fed round robin. Prints, per
# report interval (every SAMPLE_S seconds): samples/s, progressive AUC,
# table rows, rows dropped by the cap and the TTL, RSS, deltas; then the
# sustained rate after the first minute and RSS growth over the second half.
#
# Usage: bench/stream_bench.sh [WORK_DIR]
#   DURATION (1800 s), FILES (20 drift windows), ROWS_PER_FILE (200000),
#   VOCAB (2000000), MODEL (deepfm), TTL (steps, 2000),
#   MAX_ROWS (per table, 1000000), SAMPLE_S (60).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EMBARK=${EMBARK:-$ROOT/build/embark}
WORK=${1:-${TMPDIR:-/tmp}/embark-stream-bench}
DURATION=${DURATION:-1800}
FILES=${FILES:-20}
ROWS_PER_FILE=${ROWS_PER_FILE:-200000}
VOCAB=${VOCAB:-2000000}
MODEL=${MODEL:-deepfm}
TTL=${TTL:-2000}
MAX_ROWS=${MAX_ROWS:-1000000}
SAMPLE_S=${SAMPLE_S:-60}
mkdir -p "$WORK/src"
cd "$WORK"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
src="src/drift-$FILES-$ROWS_PER_FILE-$VOCAB"
if [ ! -d "$src" ]; then
  "$EMBARK" gen --drift --windows "$FILES" --rows $((FILES * ROWS_PER_FILE)) --vocab "$VOCAB" --seed 1 \
    --out-dir "$src.tmp" >/dev/null
  mv "$src.tmp" "$src"
fi
windows=("$src"/part-*)
rm -rf in model stream.jsonl
mkdir in
"$EMBARK" train --stream --data in --out model --format criteo --model "$MODEL" --row-ttl "$TTL" \
  --max-rows "$MAX_ROWS" --delta-every 10s --snapshot-every 10m --report-every 2s --json --quiet \
  >stream.jsonl &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT

# The feeder: two files ahead of the stream's position; files behind it go.
n=0
feed() {
  local pos
  pos=$(tail -1 stream.jsonl 2>/dev/null | /usr/bin/python3 -c 'import json,sys
try: print((json.loads(sys.stdin.read()).get("position") or {}).get("file", ""))
except ValueError: print("")' 2>/dev/null || true)
  for f in in/part-*; do
    [ -e "$f" ] || continue
    [ -n "$pos" ] && [[ "$(basename "$f")" < "$pos" ]] && rm -f "$f"
  done
  local ahead=0
  for f in in/part-*; do
    [ -e "$f" ] || continue
    [[ -z "$pos" || ! "$(basename "$f")" < "$pos" ]] && ahead=$((ahead + 1))
  done
  while [ "$ahead" -lt 3 ]; do
    n=$((n + 1))
    name=$(printf 'part-%08d.tsv' "$n")
    cp "${windows[$(( (n - 1) % ${#windows[@]} ))]}" "in/.$name"
    mv "in/.$name" "in/$name"
    ahead=$((ahead + 1))
  done
}
end=$((SECONDS + DURATION))
while [ $SECONDS -lt $end ]; do
  feed
  sleep 1
done
kill -TERM $pid
wait $pid
trap - EXIT

/usr/bin/python3 - <<'EOF'
import json
import os
every = float(os.environ.get("SAMPLE_S", "60"))
all_rows = [json.loads(l) for l in open("stream.jsonl") if '"window_auc"' in l]
# One row per SAMPLE_S seconds (the stream reports every 2 s, which the feeder follows).
rows, next_t = [], every
for r in all_rows:
    if r["seconds"] >= next_t or r is all_rows[-1]:
        rows.append(r)
        next_t = (r["seconds"] // every + 1) * every
mib = 1 << 20
print(f"\n| minute | samples | samples/s (since the row above) | window AUC | table rows | evicted (cap) | expired (TTL) | RSS MiB | deltas |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
prev = {"samples": 0, "seconds": 0.0}
for r in rows:
    rate = (r["samples"] - prev["samples"]) / max(1e-9, r["seconds"] - prev["seconds"])
    prev = r
    print(f"| {r['seconds'] / 60:.1f} | {r['samples']:,} | {rate:,.0f} | {r['window_auc']:.4f} | "
          f"{r['rows']:,} | {r['rows_evicted']:,} | {r['rows_expired']:,} | {r['rss_bytes'] / mib:,.0f} | {r['deltas']} |")
late = [r for r in rows if r["seconds"] >= 60]
if len(late) >= 2:
    rate = (late[-1]["samples"] - late[0]["samples"]) / (late[-1]["seconds"] - late[0]["seconds"])
    print(f"\nsustained after the first minute: {rate:,.0f} samples/s over {(late[-1]['seconds'] - late[0]['seconds']) / 60:.1f} min")
    half = [r for r in rows if r["seconds"] >= rows[-1]["seconds"] / 2]
    if len(half) >= 2:
        growth = (half[-1]["rss_bytes"] - half[0]["rss_bytes"]) / mib
        mins = (half[-1]["seconds"] - half[0]["seconds"]) / 60
        print(f"RSS over the second half: {half[0]['rss_bytes'] / mib:,.0f} -> {half[-1]['rss_bytes'] / mib:,.0f} MiB "
              f"({growth:+,.0f} MiB in {mins:.1f} min); peak table rows {max(r['rows'] for r in rows):,}")
EOF
