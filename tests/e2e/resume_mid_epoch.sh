#!/usr/bin/env bash
# The mid-epoch cursor: `embark train --checkpoint-every 3` killed with
# SIGKILL part way through its first epoch, then `--resume`d, trains each
# sample exactly once per epoch: it goes on at the sample of the last
# checkpoint (and says so), and ends with the model of a run never killed,
# bit for bit (--deterministic). A time cadence (--checkpoint-every 1s)
# writes checkpoints as the clock says.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
ROWS=30000
"$EMBARK" gen --rows "$ROWS" --valid-rows 2000 --seed 8 --out train.tsv --valid-out valid.tsv >/dev/null
common=(--data train.tsv --model fm --embedding-dim 4 --deterministic --batch 128 --shuffle-window 7000 --epochs 2)

# trainer_json DIR KEY: a field of DIR/trainer.json (0 when absent or unreadable).
trainer_json() {
  /usr/bin/python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1] + "/trainer.json")).get(sys.argv[2], 0))
except Exception: print(0)' "$1" "$2"
}

"$EMBARK" train "${common[@]}" --quiet --out straight >/dev/null

"$EMBARK" train "${common[@]}" --quiet --checkpoint-every 3 --out run >/dev/null 2>killed.err &
pid=$!
# Wait for a checkpoint written mid-way through the first epoch, past its
# first shuffle window, then kill -9.
for _ in $(seq 1 3000); do
  if [ "$(trainer_json run epochs_done)" = 0 ] && [ "$(trainer_json run epoch_samples)" -gt 9000 ]; then break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.01
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
done_epochs=$(trainer_json run epochs_done)
cursor=$(trainer_json run epoch_samples)
trained=$(trainer_json run samples)
if [ "$done_epochs" != 0 ] || [ "$cursor" -le 0 ] || [ "$cursor" -ge "$ROWS" ]; then
  fail "the killed run left no mid-epoch checkpoint (epochs_done $done_epochs, epoch_samples $cursor): it ran too fast to kill"
  finish
fi
pass "killed (SIGKILL) with a checkpoint $cursor samples into epoch 1"
check "the killed checkpoint's cursor is whole steps of 128, its sample count that cursor" \
  "$cursor % 128 == 0 and $trained == $cursor"
"$EMBARK" verify run --json > verify.json
check "embark verify reports the cursor" "$(json_get verify.json epoch_samples) == $cursor"

# Resume into the same directory; the checkpoint's config says every 3
# steps, which this run turns off.
"$EMBARK" train "${common[@]}" --resume run --out run --checkpoint-every 0 --json >resumed.json 2>resumed.err
grep -q "resuming epoch 1 at sample $cursor:" resumed.err && pass "the log says it resumed at sample $cursor" \
  || fail "the resumed run's log lacks 'resuming epoch 1 at sample $cursor': $(head -5 resumed.err)"
check "the resumed run trained only what the killed one had not" \
  "$(json_get resumed.json samples) == 2 * $ROWS - $cursor"
check "every sample trained exactly once per epoch" \
  "$(trainer_json run samples) == 2 * $ROWS and $(trainer_json run epochs_done) == 2 and $(trainer_json run epoch_samples) == 0"
"$EMBARK" predict --model straight --data valid.tsv --out straight.txt
"$EMBARK" predict --model run --data valid.tsv --out run.txt
cmp -s straight.txt run.txt && pass "killed + resumed == never killed, bit for bit" \
  || fail "the resumed run's model differs from the uninterrupted run's"

# Wall time: every second, over a run long enough (100 epochs), killed once
# a checkpoint exists.
"$EMBARK" train --data train.tsv --model fm --embedding-dim 4 --batch 128 --epochs 100 --checkpoint-every 1s \
  --out timed >/dev/null 2>timed.err &
pid=$!
for _ in $(seq 1 1000); do
  grep -q "checkpoint at step" timed.err && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.01
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if grep -q "checkpoint at step" timed.err; then
  pass "--checkpoint-every 1s: $(grep -m1 'checkpoint at step' timed.err | sed 's/.*checkpoint at/checkpoint at/')"
  "$EMBARK" verify timed >/dev/null && pass "the timed checkpoint verifies" || fail "the timed checkpoint does not verify"
else
  fail "--checkpoint-every 1s wrote no checkpoint: $(tail -3 timed.err)"
fi
grep -q '^checkpoint_every = "1s"$' timed/config.toml 2>/dev/null && pass "config.toml records \"1s\"" \
  || fail "config.toml: $(grep checkpoint_every timed/config.toml 2>&1)"
expect_error "a malformed --checkpoint-every" "'10 minutes' is not an interval" \
  "$EMBARK" train --data train.tsv --out x --checkpoint-every "10 minutes"
finish
