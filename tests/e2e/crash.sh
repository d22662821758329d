#!/usr/bin/env bash
# A short crash campaign (scripts/crash_campaign.sh): training killed with
# SIGKILL at random moments, periodic checkpoints on; after every kill --out
# verifies (old or new checkpoint, never a mix) and no staging is left at the end.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
if EMBARK="$EMBARK" "$EMBARK_SOURCE_DIR/scripts/crash_campaign.sh" 8 "$RANDOM" >crash.log 2>&1; then
  pass "$(tail -1 crash.log)"
else
  fail "crash campaign: $(tail -3 crash.log)"
fi
finish
