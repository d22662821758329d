#!/usr/bin/env bash
# Load benchmark of embark serve on loopback, DLRM in the Criteo shape
# (examples/dlrm.toml): latency at batch 1 with 1, 8 and 64 connections, and
# rows/s at saturation against the offline `embark predict` rate.
#   bench/serve_bench.sh            (env: ROWS=200000 SECONDS_EACH=10 WORK=dir)
# Prints a Markdown table and writes $WORK/serve_bench.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROWS=${ROWS:-200000}
SECONDS_EACH=${SECONDS_EACH:-10}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/embark-serve-bench-XXXXXX")}
"$ROOT/scripts/build.sh" >/dev/null
E="$ROOT/build/embark"
LOAD="$ROOT/build/bench/serve_load"
mkdir -p "$WORK"
cd "$WORK"
[ -f train.tsv ] || "$E" gen --rows "$ROWS" --valid-rows 100000 --seed 1 --out train.tsv --valid-out valid.tsv >/dev/null
[ -d ctr ] || "$E" train --config "$ROOT/examples/dlrm.toml" --data train.tsv --out ctr --quiet >/dev/null

# Offline rate: predict on 100K rows (parsing included, as serving includes JSON).
t0=$(date +%s.%N)
"$E" predict --model ctr --data valid.tsv --out predict.txt
t1=$(date +%s.%N)
PREDICT_RATE=$(/usr/bin/python3 -c "print(100000 / ($t1 - $t0))")

/usr/bin/python3 - <<'PY'
import json
rows = [l.rstrip("\n").split("\t") for l in open("valid.tsv")][:256]
def body(rs):
    ins = [{"name": f"I{i+1}", "datatype": "INT64", "shape": [len(rs)],
            "data": [int(r[1+i]) if r[1+i] else None for r in rs]} for i in range(13)]
    ins += [{"name": f"C{i+1}", "datatype": "BYTES", "shape": [len(rs)], "data": [r[14+i] for r in rs]} for i in range(26)]
    return json.dumps({"inputs": ins})
open("body1.json", "w").write(body(rows[:1]))
open("body256.json", "w").write(body(rows[:256]))
PY

"$E" serve --model ctr --port 0 ${SERVE_ARGS:-} 2> serve.err &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "http://" serve.err 2>/dev/null && break; sleep 0.1; done
PORT=$(grep -o 'http://127.0.0.1:[0-9]*' serve.err | head -1 | cut -d: -f3)
[ -n "$PORT" ] || { echo "embark serve did not start" >&2; cat serve.err >&2; exit 1; }
URL=/v2/models/ctr/infer
: > serve_bench.json
for c in 1 8 64; do "$LOAD" "$PORT" "$URL" body1.json 1 "$c" "$SECONDS_EACH" >> serve_bench.json; done
"$LOAD" "$PORT" "$URL" body256.json 256 8 "$SECONDS_EACH" >> serve_bench.json
kill -TERM $PID; wait $PID || true

/usr/bin/python3 - "$PREDICT_RATE" <<'PY'
import json, sys
predict = float(sys.argv[1])
runs = [json.loads(l) for l in open("serve_bench.json")]
print("| load | connections | requests/s | rows/s | p50 ms | p99 ms | p99.9 ms |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in runs:
    print(f"| batch {r['rows_per_request']} | {r['connections']} | {r['requests_per_sec']:,.0f} | {r['rows_per_sec']:,.0f} "
          f"| {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['p999_ms']:.3f} |")
sat = runs[-1]["rows_per_sec"]
print(f"\noffline `embark predict`: {predict:,.0f} rows/s; saturated serving: {sat:,.0f} rows/s = {100*sat/predict:.0f}% of it")
PY
