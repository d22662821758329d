#!/usr/bin/env bash
# Serving latency while online training publishes deltas: the load of
# bench/serve_bench.sh (DLRM in the Criteo shape, examples/dlrm.toml, batch 1
# and batch 256 over 8 connections) against `embark serve`, once with the
# directory left alone and once with a delta of DELTA_ROWS rows (per table)
# arriving every DELTA_EVERY seconds. The deltas are written beforehand by
# tests/e2e/delta_writer.cc (as `embark train --stream` writes them, without
# training) and each is published into the served directory as the trainer
# publishes one (a rename of the complete folder), so what is measured is
# the serving side alone: the trainer runs elsewhere. Target: p99 at most
# 20% above the run without deltas, and no failed request.
#   bench/online_serve_bench.sh   (env: ROWS=200000 SECONDS_EACH=10 DELTA_EVERY=2 DELTA_ROWS=50000
#                                  REPEATS=1 WORK=dir BUILD=1 POLL=1)
# Prints the CPU, a Markdown table, and writes $WORK/online_serve_bench.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROWS=${ROWS:-200000}
SECONDS_EACH=${SECONDS_EACH:-10}
DELTA_EVERY=${DELTA_EVERY:-2}
DELTA_ROWS=${DELTA_ROWS:-50000}
REPEATS=${REPEATS:-1}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/embark-online-serve-bench-XXXXXX")}
[ "${BUILD:-1}" = 0 ] || "$ROOT/scripts/build.sh" >/dev/null
E="$ROOT/build/embark"
LOAD="$ROOT/build/bench/serve_load"
WRITER="$ROOT/build/tests/delta_writer"
mkdir -p "$WORK"
cd "$WORK"
[ -f train.tsv ] || "$E" gen --rows "$ROWS" --valid-rows 10000 --seed 1 --out train.tsv --valid-out valid.tsv >/dev/null
[ -d ctr ] || "$E" train --config "$ROOT/examples/dlrm.toml" --data train.tsv --out ctr --quiet >/dev/null

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

# Enough deltas for one run of both loads, written once (seq 1, 2, ...).
COUNT=$(( (2 * SECONDS_EACH + 20) / DELTA_EVERY + 2 ))
if [ ! -f staged/.done-$COUNT-$DELTA_ROWS ]; then
  rm -rf staged && cp -r ctr staged
  "$WRITER" staged "$COUNT" "$DELTA_ROWS" 0 > writer.jsonl
  touch staged/.done-$COUNT-$DELTA_ROWS
fi

metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
PID="" WPID=""
cleanup() { [ -z "$WPID" ] || kill "$WPID" 2>/dev/null || true; [ -z "$PID" ] || kill "$PID" 2>/dev/null || true; }
trap cleanup EXIT
: > online_serve_bench.json
for rep in $(seq "$REPEATS"); do
  for mode in none deltas; do
    rm -rf served && cp -r ctr served
    "$E" serve --model served --name ctr --port 0 --poll "${POLL:-1}" 2> serve.err &
    PID=$!
    for _ in $(seq 300); do grep -q "http://" serve.err 2>/dev/null && break; sleep 0.1; done
    PORT=$(grep -o 'http://127.0.0.1:[0-9]*' serve.err | head -1 | cut -d: -f3)
    [ -n "$PORT" ] || { echo "embark serve did not start" >&2; cat serve.err >&2; exit 1; }
    if [ "$mode" = deltas ]; then
      # Published one by one: hard links staged under a dot name, renamed.
      (
        mkdir -p served/deltas
        for d in $(ls staged/deltas | sort); do
          cp -rl "staged/deltas/$d" "served/deltas/.tmp-$d" && mv "served/deltas/.tmp-$d" "served/deltas/$d"
          sleep "$DELTA_EVERY"
        done
      ) &
      WPID=$!
      for _ in $(seq 100); do [ "$(metric embark_delta_seq)" != "0" ] && break; sleep 0.1; done
    fi
    for spec in "body1.json 1" "body256.json 256"; do
      set -- $spec
      r=$("$LOAD" "$PORT" /v2/models/ctr/infer "$1" "$2" 8 "$SECONDS_EACH" || true)
      echo "{\"mode\":\"$mode\",\"rep\":$rep,\"load\":$r,\"deltas_applied\":$(metric embark_deltas_applied_total),\"deltas_failed\":$(metric embark_deltas_failed_total),\"apply_s\":$(metric embark_delta_apply_seconds || echo null)}" >> online_serve_bench.json
    done
    if [ -n "$WPID" ]; then kill "$WPID" 2>/dev/null || true; wait "$WPID" 2>/dev/null || true; WPID=""; fi
    kill -TERM "$PID"; wait "$PID" || true; PID=""
  done
done

/usr/bin/python3 - "$DELTA_EVERY" "$DELTA_ROWS" <<'PY'
import json, re, statistics, subprocess, sys
every, drows = sys.argv[1], sys.argv[2]
cpu = re.search(r"^Model name:\s*(.+)$", subprocess.run(["lscpu"], capture_output=True, text=True).stdout, re.M)
print(f"CPU: {cpu.group(1).strip() if cpu else 'unknown'}; deltas of {drows} rows per table every {every} s\n")
runs = []
for l in open("online_serve_bench.json"):
    l = l.replace(":,", ":null,").replace(":}", ":null}")
    runs.append(json.loads(l))
print("| load | deltas | requests/s | p50 ms | p99 ms | p99.9 ms | failed | deltas applied | last apply ms |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for r in runs:
    L = r["load"]
    apply = f"{1e3 * r['apply_s']:.1f}" if r.get("apply_s") is not None else "-"
    print(f"| batch {L['rows_per_request']} x {L['connections']} conns | {r['mode']} | {L['requests_per_sec']:,.0f} "
          f"| {L['p50_ms']:.3f} | {L['p99_ms']:.3f} | {L['p999_ms']:.3f} | {L['errors']} | {r['deltas_applied']} | {apply} |")
print()
for rows in (1, 256):
    base = [r["load"]["p99_ms"] for r in runs if r["mode"] == "none" and r["load"]["rows_per_request"] == rows]
    dl = [r["load"]["p99_ms"] for r in runs if r["mode"] == "deltas" and r["load"]["rows_per_request"] == rows]
    if base and dl:
        b, d = statistics.median(base), statistics.median(dl)
        print(f"batch {rows}: p99 {b:.3f} ms without deltas, {d:.3f} ms with: {100 * (d / b - 1):+.0f}% "
              f"(target: at most +20%)")
PY
