#!/usr/bin/env bash
# Online training (train --stream, docs/online.md):
#  - a stream from a named pipe ends cleanly on SIGTERM (exit 0) with a
#    checkpoint that loads;
#  - a watched directory's files are each consumed once, across a restart;
#  - kill -9, then a restart into the same --out: the model loses at most
#    the training since the last delta and trains nothing twice beyond it.
#    The guarantee tested exactly: with deterministic training, the
#    restarted run ends with the same model, bit for bit, as a run never
#    interrupted, and has trained on every sample exactly once;
#  - the stream's position, progressive metrics and deltas are reported.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$EMBARK" gen --rows 20000 --out all.tsv --seed 7 --vocab 5000 >/dev/null
split -l 5000 -d all.tsv part-   # part-00 .. part-03, 5000 rows each
common=(--format criteo --model fm --embedding-dim 8 --batch-size 500 --report-every 200ms --max-batch-delay 0.2 --json)

# last_json FILE KEY: KEY of the last JSON line of FILE with a window_auc (0 if none yet).
last_json() {
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import json, sys
v = 0
try:
    for line in open(sys.argv[1]):
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if "window_auc" in j:
            v = j[sys.argv[2]]
except FileNotFoundError:
    pass
print(v)
EOF
}
# wait_for FILE KEY N: until the stream reports KEY >= N (60 s at most).
wait_for() {
  for _ in $(seq 600); do
    if [ "$(last_json "$1" "$2")" -ge "$3" ] 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  fail "timed out waiting for $2 >= $3 in $1"
  return 1
}
# stop PID: SIGTERM, then its exit status in $rc.
stop() {
  kill -TERM "$1"
  rc=0
  wait "$1" || rc=$?
}
trained() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["samples"])' "$1/trainer.json"; }

# ---- a named pipe, stopped by SIGTERM ----
mkfifo pipe
"$EMBARK" train --stream --data pipe --out m_pipe "${common[@]}" >pipe.jsonl 2>pipe.err &
pid=$!
cat part-00 part-01 >pipe
wait_for pipe.jsonl samples 10000 || true
stop $pid
check "SIGTERM ends the pipe stream with exit 0" "$rc == 0"
check "every sample from the pipe was trained" "$(trained m_pipe) == 10000"
check "progressive AUC over the window is reported" "$(last_json pipe.jsonl window_auc) > 0.5"
if "$EMBARK" eval --model m_pipe --data part-02 --json >ev.json; then
  check "the final checkpoint loads and scores held-out data" "$(json_get ev.json auc) > 0.55"
else
  fail "the checkpoint written on SIGTERM does not load"
fi

# ---- a directory, each file consumed once across a restart ----
mkdir in
cp part-00 in/part-00 && cp part-01 in/part-01
"$EMBARK" train --stream --data in --out m_dir "${common[@]}" >dir1.jsonl 2>dir1.err &
pid=$!
wait_for dir1.jsonl samples 10000 || true
stop $pid
check "first run stopped cleanly" "$rc == 0"
# A file written under a dot name is not read until renamed into place.
cp part-02 in/.part-02.partial
"$EMBARK" train --stream --data in --out m_dir "${common[@]}" >dir2.jsonl 2>dir2.err &
pid=$!
sleep 1
check "a dot-file is not read" "$(last_json dir2.jsonl samples) == 10000"
mv in/.part-02.partial in/part-02
wait_for dir2.jsonl samples 15000 || true
sleep 1  # time to (wrongly) read anything twice
stop $pid
check "second run stopped cleanly" "$rc == 0"
check "after the restart only the new file was read: 15000 samples in all" "$(trained m_dir) == 15000"
grep -q "stream resumes at" dir2.err && pass "the restart resumed the stream position" ||
  fail "the restart did not report resuming: $(cat dir2.err)"

# ---- kill -9, then restart: nothing lost, nothing trained twice ----
# Four more files of 10000 rows (40 batches); the run is killed once it
# reports 20000 samples, mid-stream, and restarted into the same --out.
"$EMBARK" gen --rows 40000 --out more.tsv --seed 8 --vocab 5000 >/dev/null
det=(--deterministic --delta-every 3)
mkdir ref_in crash_in
split -l 10000 -d more.tsv ref_in/part-
cp ref_in/part-* crash_in/
"$EMBARK" train --stream --data ref_in --out m_ref "${common[@]}" "${det[@]}" >ref.jsonl 2>ref.err &
pid=$!
wait_for ref.jsonl samples 40000 || true
stop $pid
check "reference run stopped cleanly" "$rc == 0"

"$EMBARK" train --stream --data crash_in --out m_crash "${common[@]}" "${det[@]}" >crash1.jsonl 2>crash1.err &
pid=$!
wait_for crash1.jsonl samples 20000 || true
kill -9 $pid
wait $pid 2>/dev/null || true
check "deltas were written before the crash" "$(ls m_crash/deltas 2>/dev/null | wc -l) >= 1"
"$EMBARK" train --stream --data crash_in --out m_crash "${common[@]}" "${det[@]}" >crash2.jsonl 2>crash2.err &
pid=$!
wait_for crash2.jsonl samples 40000 || true
sleep 0.5
stop $pid
check "restarted run stopped cleanly" "$rc == 0"
grep -q "stream resumes at" crash2.err && pass "the restart resumed at the last delta's position" ||
  fail "the restart did not resume: $(head -5 crash2.err)"
restarted=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["samples"])' crash2.jsonl)
check "the restart trained only what the last delta did not hold" "0 < $restarted < 40000"
check "every sample trained exactly once: 40000" "$(trained m_crash) == 40000"
"$EMBARK" predict --model m_ref --data more.tsv --out p_ref.txt
"$EMBARK" predict --model m_crash --data more.tsv --out p_crash.txt
if cmp -s p_ref.txt p_crash.txt; then pass "killed and restarted: the same model as the uninterrupted run"; else
  fail "the model after kill -9 and restart differs from the uninterrupted run's"; fi

# ---- a growing file, followed ----
: >grow.tsv
"$EMBARK" train --stream --data grow.tsv --out m_follow "${common[@]}" >follow.jsonl 2>follow.err &
pid=$!
cat part-00 >>grow.tsv
wait_for follow.jsonl samples 5000 || true
cat part-01 >>grow.tsv
wait_for follow.jsonl samples 10000 || true
stop $pid
check "a followed file: both appends trained, then a clean stop" "$rc == 0 and $(trained m_follow) == 10000"

# ---- bad input ----
expect_error "a stream source that does not exist" "no-such-dir" \
  "$EMBARK" train --stream --data no-such-dir --out m_bad --format criteo
expect_error "--stream with two sources" "--stream reads one source" \
  "$EMBARK" train --stream --data in --data ref_in --out m_bad --format criteo
expect_error "a directory without --stream" "add --stream" "$EMBARK" train --data in --out m_bad --format criteo
finish
