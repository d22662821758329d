#!/usr/bin/env bash
# Sustained online training: `embark train --stream` on a watched directory
# that a feeder keeps two files ahead of the trainer (and prunes behind it,
# as a retention policy would), for DURATION seconds, with a TTL and a cap
# on the tables so that memory must stay flat. Prints, per report interval
# sampled every SAMPLE_S seconds: samples/s, table rows, RSS, deltas; then
# the sustained rate after the first minute and RSS growth over the second
# half of the run.
#
# Usage: bench/stream_bench.sh [WORK_DIR]
#   DURATION (1800 s), FILES (6 distinct files, fed round robin),
#   ROWS_PER_FILE (200000), VOCAB (2000000), MODEL (deepfm),
#   TTL (steps, 2000), MAX_ROWS (per table, 1500000), SAMPLE_S (60).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EMBARK=${EMBARK:-$ROOT/build/embark}
WORK=${1:-${TMPDIR:-/tmp}/embark-stream-bench}
DURATION=${DURATION:-1800}
FILES=${FILES:-6}
ROWS_PER_FILE=${ROWS_PER_FILE:-200000}
VOCAB=${VOCAB:-2000000}
MODEL=${MODEL:-deepfm}
TTL=${TTL:-2000}
MAX_ROWS=${MAX_ROWS:-1500000}
SAMPLE_S=${SAMPLE_S:-60}
mkdir -p "$WORK/src"
cd "$WORK"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
for i in $(seq 1 "$FILES"); do
  f="src/seed-$i-$ROWS_PER_FILE-$VOCAB.tsv"
  [ -f "$f" ] || "$EMBARK" gen --rows "$ROWS_PER_FILE" --vocab "$VOCAB" --zipf 1.1 --seed "$i" --out "$f" >/dev/null
done
rm -rf in model stream.jsonl
mkdir in
"$EMBARK" train --stream --data in --out model --format criteo --model "$MODEL" --row-ttl "$TTL" \
  --max-rows "$MAX_ROWS" --delta-every 10s --snapshot-every 10m --report-every "${SAMPLE_S}s" --json --quiet \
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
    cp "src/seed-$(( (n - 1) % FILES + 1 ))-$ROWS_PER_FILE-$VOCAB.tsv" "in/.$name"
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
rows = [json.loads(l) for l in open("stream.jsonl") if '"window_auc"' in l]
mib = 1 << 20
print(f"\n| minute | samples | samples/s | window AUC | table rows | RSS MiB | deltas |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['seconds'] / 60:.1f} | {r['samples']:,} | {r['samples_per_sec']:,.0f} | {r['window_auc']:.4f} | "
          f"{r['rows']:,} | {r['rss_bytes'] / mib:,.0f} | {r['deltas']} |")
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
