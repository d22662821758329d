#!/usr/bin/env bash
# Online training against the truth: on a drifting stream (`embark gen
# --drift`: ids appear and fade and change their click rates from window to
# window, and gen prints each window's optimal AUC), per window and against
# that optimum, the AUC of
#  - online: `train --stream` on a watched directory, the windows' files
#    arriving one at a time; its progressive AUC over each window (every
#    batch scored before it is trained on, --metric-window = a window's rows);
#  - trained once: a model trained on window 0 and never updated, evaluated
#    on each later window;
#  - hourly retraining, as it is usually run: every window (hour), the
#    serving model is trained further on the window that just ended
#    (`train --resume PREV --data window_{t-1}`: warm start, one pass over
#    the newest hour, optimizer state kept), so the model scored on window t
#    has seen windows 0..t-1 once each. At t = 1 it is the trained-once model.
# Window 0 has no batch-trained model before it: those arms start at window 1,
# and the mean gaps are over windows 1..W-1 for every arm. All three arms
# train the same model with the same parameters. A second table gives the
# logloss the same way (the optimum's, and each arm's).
#
# Usage: bench/online_bench.sh [WORK_DIR]
#   WINDOWS (12), ROWS_PER_WINDOW (50000), SEED (1), VOCAB (20000): the data;
#   MODEL (fm), DIM (8), BATCH (512): the model and its mini-batches;
#   REPORT ("200ms"): how often the stream reports.
# The work directory keeps the generated windows between runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EMBARK=${EMBARK:-$ROOT/build/embark}
WORK=${1:-${TMPDIR:-/tmp}/embark-online-bench}
WINDOWS=${WINDOWS:-12}
ROWS_PER_WINDOW=${ROWS_PER_WINDOW:-50000}
SEED=${SEED:-1}
VOCAB=${VOCAB:-20000}
MODEL=${MODEL:-fm}
DIM=${DIM:-8}
BATCH=${BATCH:-512}
REPORT=${REPORT:-200ms}
mkdir -p "$WORK"
cd "$WORK"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo "data: embark gen --drift --windows $WINDOWS --rows $((WINDOWS * ROWS_PER_WINDOW)) --seed $SEED --vocab $VOCAB;" \
  "model: $MODEL, embedding_dim $DIM, batch $BATCH"

data="drift-$WINDOWS-$ROWS_PER_WINDOW-$SEED-$VOCAB"
if [ ! -f "$data/gen.json" ]; then
  rm -rf "$data"
  "$EMBARK" gen --drift --windows "$WINDOWS" --rows $((WINDOWS * ROWS_PER_WINDOW)) --seed "$SEED" --vocab "$VOCAB" \
    --out-dir "$data" --json >gen.json.tmp
  mv gen.json.tmp "$data/gen.json"
fi
part() { printf '%s/part-%05d.tsv' "$data" "$1"; }
model=(--model "$MODEL" --embedding-dim "$DIM" --batch-size "$BATCH" --quiet)
rm -rf arms && mkdir arms

# ---- trained once, and hourly retraining ----
"$EMBARK" train --data "$(part 0)" --out arms/once "${model[@]}" >/dev/null
prev=arms/once
for ((t = 1; t < WINDOWS; t++)); do
  "$EMBARK" eval --model arms/once --data "$(part "$t")" --json >"arms/once-$t.json"
  if ((t > 1)); then
    # --epochs counts all passes, the checkpoint's included: one more.
    "$EMBARK" train --resume "$prev" --epochs "$t" --data "$(part $((t - 1)))" --out "arms/hourly-$t" --quiet \
      >/dev/null
    [ "$prev" = arms/once ] || rm -rf "$prev"
    prev="arms/hourly-$t"
  fi
  "$EMBARK" eval --model "$prev" --data "$(part "$t")" --json >"arms/hourly-$t.json"
done

# ---- online: the windows arrive one at a time in a watched directory ----
mkdir arms/in
"$EMBARK" train --stream --data arms/in --out arms/online --format criteo "${model[@]}" --json \
  --metric-window "$ROWS_PER_WINDOW" --report-every "$REPORT" --max-batch-delay 0.05 --delta-every 0 \
  >arms/online.jsonl 2>arms/online.err &
pid=$!
/usr/bin/python3 - "$data" "$WINDOWS" "$ROWS_PER_WINDOW" arms/online.jsonl "$pid" <<'EOF'
import json, os, shutil, sys, time
data, windows, rows, log, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
out, pos = [], 0
def lines():
    global pos
    with open(log) as f:
        f.seek(pos)
        while True:
            line = f.readline()
            if not line.endswith("\n"):
                break
            pos = f.tell()
            yield line
total = 0
for t in range(windows):
    name = "part-%05d.tsv" % t
    # Written under a dot name, then renamed: the stream sees it whole.
    shutil.copy(os.path.join(data, name), "arms/in/." + name)
    os.rename("arms/in/." + name, "arms/in/" + name)
    total += sum(1 for _ in open(os.path.join(data, name)))
    deadline, got = time.time() + 600, None
    while got is None:
        for line in lines():
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("samples", 0) >= total and j.get("window_samples", 0) >= min(rows, total):
                got = j
        if got is None:
            if time.time() > deadline:
                sys.exit(f"online: no report of {total} samples within 600 s (see arms/online.err)")
            try:
                os.kill(pid, 0)
            except OSError:
                sys.exit("online: train --stream ended early (see arms/online.err)")
            time.sleep(0.05)
    if got["samples"] != total:
        sys.exit(f"online: {got['samples']} samples trained after window {t}, expected {total}")
    out.append({"window": t, "auc": got["window_auc"], "logloss": got["window_logloss"],
                "calibration": got["window_calibration"]})
json.dump(out, open("arms/online.json", "w"))
EOF
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || { echo "train --stream exited $rc after SIGTERM (see $WORK/arms/online.err)" >&2; exit 1; }

/usr/bin/python3 - "$data/gen.json" "$WINDOWS" <<'EOF'
import json, sys
gen = json.load(open(sys.argv[1]))["windows"]
windows = int(sys.argv[2])
online = json.load(open("arms/online.json"))
once = {t: json.load(open(f"arms/once-{t}.json")) for t in range(1, windows)}
hourly = {t: json.load(open(f"arms/hourly-{t}.json")) for t in range(1, windows)}
arms = [("online (progressive)", lambda t, k: online[t][k]),
        ("trained once", lambda t, k: once[t][k] if t in once else None),
        ("hourly retrain", lambda t, k: hourly[t][k] if t in hourly else None)]
for key, best, title in [("auc", "optimal_auc", "AUC"), ("logloss", "optimal_logloss", "logloss")]:
    print(f"\n{title} per window (optimal: that of the true probabilities)\n")
    print("| window | optimal " + title + " | " + " | ".join(a for a, _ in arms) + " |")
    print("|" + "---|" * (2 + len(arms)))
    gaps = {a: [] for a, _ in arms}
    for t in range(windows):
        opt = gen[t][best]
        cells = []
        for a, get in arms:
            v = get(t, key)
            if v is None:
                cells.append("-")
                continue
            cells.append(f"{v:.4f}")
            if t >= 1:
                gaps[a].append(opt - v if key == "auc" else v - opt)
        print(f"| {t} | {opt:.4f} | " + " | ".join(cells) + " |")
    print(f"| mean gap to the optimum, windows 1..{windows - 1} | | " +
          " | ".join(f"{sum(g) / len(g):+.4f}" if g else "-" for g in gaps.values()) + " |")
EOF
