#!/usr/bin/env bash
# Runs the bad-input catalogue, tests/e2e/bad_inputs.tsv (its header says the
# format). Each case runs in a fresh copy of the fixtures below and passes when
#  - its command exits with exactly the expected code, under `timeout 60`
#    (no hang), by no signal (no crash) and with no sanitizer report;
#  - its stderr holds the expected fragment;
#  - it left nothing behind: no path that was not there before, no `*.tmp-*`
#    or `*.tmp.*` staging, and every file that was there is byte for byte as
#    it was (a refused --out keeps the user's files).
# The part of a command before its last `&& $EMBARK` prepares input; it must
# succeed, and what it writes is part of the "before".
# Usage: bad_inputs.sh [CASE-NAME-PATTERN]   (a grep -E pattern; default all)
source "$(dirname "$0")/lib.sh"
CATALOGUE="$(cd "$(dirname "$0")" && pwd)/bad_inputs.tsv"
only=${1:-}

# ---- fixtures ---------------------------------------------------------------
FIX="$WORK/fixtures"
mkdir -p "$FIX"
(
  cd "$FIX"
  small=(--bottom-mlp 8 --top-mlp 8 --embedding-dim 4 --quiet)
  "$EMBARK" gen --rows 300 --seed 3 --out good.tsv --valid-rows 100 --valid-out valid.tsv >/dev/null
  "$EMBARK" train --data good.tsv --out model "${small[@]}" >/dev/null
  gzip -c good.tsv > good.tsv.gz
  zstd -q -c good.tsv > good.tsv.zst
  # The same rows as libsvm (the integer fields as features), libffm (one
  # field per integer column) and CSV (label, two categorical, one numeric).
  awk -F'\t' '{ s = $1; for (i = 2; i <= 14; i++) if ($i != "") s = s " " (i - 1) ":" $i; print s }' good.tsv > good.svm
  awk -F'\t' '{ s = $1; for (i = 2; i <= 14; i++) if ($i != "") s = s " " (i - 2) ":" (i - 1) ":1"; print s }' good.tsv > good.ffm
  { echo 'y,a,b,x'; awk -F'\t' '{ print $1 "," $15 "," $16 "," $2 }' good.tsv; } > good.csv
  printf 'label = "y"\ncategorical = ["a", "b"]\nnumeric = ["x"]\n' > schema.toml
  "$EMBARK" train --data good.svm --format libsvm --model fm --out model_svm --embedding-dim 4 --quiet >/dev/null
  # Bytes of no format, with a NUL in the first line; the same every run.
  /usr/bin/python3 -c 'import random,sys; r=random.Random(1); sys.stdout.buffer.write(bytes(r.randrange(256) for _ in range(20000)))' > garbage.bin
)

# ---- one case ---------------------------------------------------------------
# snapshot DIR: every path (type and name), and every plain file's checksum.
snapshot() {
  (cd "$1" && find . -mindepth 1 -printf '%y %p\n' | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r md5sum)
}

CASES=0 FAILED=0
run_case() {
  local name=$1 cmd=$2 want_rc=$3 want=$4
  local dir="$WORK/case" prep=":" body=$cmd rc=0 why=""
  rm -rf "$dir"
  cp -a "$FIX" "$dir"
  if [[ "$cmd" == *'&& $EMBARK'* ]]; then
    prep=${cmd%'&& $EMBARK'*}
    body='$EMBARK'${cmd##*'&& $EMBARK'}
  fi
  if ! (cd "$dir" && bash -c "$prep") >"$WORK/prep.out" 2>&1; then
    why="its preparation failed: $(head -c 300 "$WORK/prep.out")"
  else
    snapshot "$dir" > "$WORK/before"
    (cd "$dir" && exec timeout -k 5 60 bash -c "$body") >/dev/null 2>"$WORK/stderr" </dev/null || rc=$?
    snapshot "$dir" > "$WORK/after"
    local err
    err=$(head -c 2000 "$WORK/stderr")
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      why="hung (killed after 60 s)"
    elif [ "$rc" -gt 128 ]; then
      why="crashed (exit $rc, signal $((rc - 128))): $err"
    elif grep -qE 'Sanitizer|runtime error:|terminate called' "$WORK/stderr"; then
      why="sanitizer or runtime report: $err"
    elif [ "$rc" -ne "$want_rc" ]; then
      why="exit $rc, expected $want_rc: $err"
    elif ! grep -qF -- "$want" "$WORK/stderr"; then
      why="stderr lacks '$want': $err"
    elif ! cmp -s "$WORK/before" "$WORK/after"; then
      why="left the directory changed: $(diff "$WORK/before" "$WORK/after" | grep '^[<>]' | head -5 | tr '\n' ' ')"
    elif find "$dir" -name '*.tmp-*' -o -name '*.tmp.*' | grep . >/dev/null; then
      why="left staging behind: $(find "$dir" -name '*.tmp-*' -o -name '*.tmp.*' | head -3 | tr '\n' ' ')"
    fi
  fi
  CASES=$((CASES + 1))
  if [ -z "$why" ]; then
    printf 'pass  %-40s exit %d\n' "$name" "$rc"
  else
    printf 'FAIL  %-40s %s\n' "$name" "$why"
    FAILED=$((FAILED + 1))
  fi
}

export EMBARK
export SMALL="--bottom-mlp 8 --top-mlp 8 --embedding-dim 4 --quiet"
line_no=0
while IFS= read -r line || [ -n "$line" ]; do
  line_no=$((line_no + 1))
  case "$line" in '' | '#'*) continue ;; esac
  IFS=$'\t' read -r name cmd rc want extra <<<"$line"
  if [ -z "$want" ] || [ -n "${extra:-}" ] || ! [[ "$rc" =~ ^[1-9][0-9]*$ ]]; then
    echo "FAIL  bad_inputs.tsv:$line_no: expected 4 tab-separated columns (name, command, exit code > 0, fragment)"
    CASES=$((CASES + 1)) FAILED=$((FAILED + 1))
    continue
  fi
  if [ -n "$only" ] && ! grep -qE -- "$only" <<<"$name"; then continue; fi
  run_case "$name" "$cmd" "$rc" "$want"
done < "$CATALOGUE"

echo "$CASES case(s): $((CASES - FAILED)) passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
