# Shared helpers of the end-to-end tests. $EMBARK is the binary under test.
set -euo pipefail
: "${EMBARK:?EMBARK must point at the embark binary}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/embark-e2e-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILS=0

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { echo "ok: $*"; }

# expect_error "what" "needle" cmd...: the command must exit non-zero and
# print `needle` on stderr.
expect_error() {
  local what=$1 needle=$2
  shift 2
  local err rc=0
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  if [ "$rc" -eq 0 ]; then fail "$what: exit 0, expected an error"; return; fi
  if ! grep -qF -- "$needle" <<<"$err"; then fail "$what: stderr lacks '$needle': $err"; return; fi
  if [ "$(wc -l <<<"$err")" -gt 3 ]; then fail "$what: error is not short: $err"; return; fi
  pass "$what (exit $rc): $(head -1 <<<"$err")"
}

# json_get FILE KEY: a number from embark's one-line JSON output (KEY may be
# a dotted path into nested objects: uncalibrated.calibration).
json_get() {
  /usr/bin/python3 -c 'import functools,json,sys; print(functools.reduce(lambda j, k: j[k], sys.argv[2].split("."), json.load(open(sys.argv[1]))))' "$1" "$2"
}

# check "what" EXPR: a Python boolean expression over numbers.
check() {
  local what=$1 expr=$2
  if /usr/bin/python3 -c "import sys; sys.exit(0 if ($expr) else 1)"; then pass "$what: $expr"; else fail "$what: $expr"; fi
}

finish() {
  if [ "$FAILS" -gt 0 ]; then echo "$FAILS check(s) failed" >&2; exit 1; fi
  echo "all checks passed"
}

SHARED_DATA="${EMBARK_SHARED_DATA:-$EMBARK_SOURCE_DIR/../shared/data}"
