#!/usr/bin/env bash
# Crash campaign: kills training with SIGKILL at random moments, many of them
# during checkpoint writes, and checks after each kill that --out holds a
# checkpoint that verifies byte for byte (the old one or the new one, never
# a mix: a mix fails the manifest's checksums) and has trained on no fewer
# samples than the one verified before.
#
#   scripts/crash_campaign.sh [KILLS=200] [SEED=1]
#
# Every run continues the previous one (--resume into the same --out, one
# more epoch) with a checkpoint every few steps, so most of its time goes to
# saves. At the end one run goes to completion; it must leave no staging
# directory of the killed runs behind. Uses $EMBARK or build/embark.
set -euo pipefail
KILLS=${1:-200}
SEED=${2:-1}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EMBARK=${EMBARK:-$ROOT/build/embark}
[ -x "$EMBARK" ] || { echo "crash_campaign: no embark binary at $EMBARK (run ./scripts/build.sh)" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
RANDOM=$SEED

"$EMBARK" gen --rows 100000 --seed 7 --out train.tsv >/dev/null
# A model whose save takes a visible share of each step interval.
ARGS=(--data train.tsv --out model --model deepfm --embedding-dim 16 --mlp 32 --batch-size 512 --threads 2
      --checkpoint-every 4 --quiet)

verify_json() { "$EMBARK" verify model --json 2>verify.err; }
field() { /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

fail() { echo "crash_campaign: FAIL after kill $1: $2" >&2; exit 1; }

last_samples=0
kills=0 during_save=0 no_checkpoint_yet=0
start=$(date +%s)
attempts=0
while ((kills < KILLS)); do
  attempts=$((attempts + 1)) i=$((kills + 1))
  ((attempts <= 3 * KILLS)) || fail "$i" "runs keep finishing before the kill ($attempts attempts)"
  if [ -d model ]; then
    info=$(verify_json) || fail "$i" "$(cat verify.err)"
    epochs=$(field epochs_done <<<"$info")
    "$EMBARK" train "${ARGS[@]}" --resume model --epochs $((epochs + 1)) >/dev/null 2>run.err &
  else
    "$EMBARK" train "${ARGS[@]}" >/dev/null 2>run.err &
  fi
  pid=$!
  # A moment between 0.05 s and about 2 s into the run.
  sleep "$(printf '0.%02d' $((RANDOM % 100)))"
  sleep "$(printf '%d.%02d' $((RANDOM % 2)) $((RANDOM % 100)))"
  staging=0
  compgen -G "model.tmp-$pid" >/dev/null && staging=1
  if kill -9 "$pid" 2>/dev/null; then
    kills=$((kills + 1))
    during_save=$((during_save + staging))
  fi
  wait "$pid" 2>/dev/null || true
  if [ ! -d model ]; then
    # Killed before the first save of the first run: nothing to check yet.
    no_checkpoint_yet=$((no_checkpoint_yet + 1))
    continue
  fi
  info=$(verify_json) || fail "$i" "the checkpoint does not verify: $(cat verify.err)"
  samples=$(field samples <<<"$info")
  [ "$samples" -ge "$last_samples" ] || fail "$i" "the checkpoint went back from $last_samples to $samples samples"
  last_samples=$samples
done

# One run to completion: it removes the staging directories killed runs left.
epochs=$(verify_json | field epochs_done) || fail end "$(cat verify.err)"
"$EMBARK" train "${ARGS[@]}" --resume model --epochs $((epochs + 1)) >/dev/null 2>run.err || fail end "$(cat run.err)"
verify_json >/dev/null || fail end "$(cat verify.err)"
left=$(compgen -G "model.tmp-*" || true)
[ -z "$left" ] || fail end "staging directories left behind: $left"
/usr/bin/python3 -c 'import platform; print("cpu:", next((l.split(":",1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor()))'
echo "crash_campaign: $kills kills in $attempts runs ($during_save while a staging directory existed, $no_checkpoint_yet before any" \
  "checkpoint), every checkpoint verified, samples never went back (last $last_samples), no staging left;" \
  "$(($(date +%s) - start)) s"
