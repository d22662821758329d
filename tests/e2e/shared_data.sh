#!/usr/bin/env bash
# Training on the real datasets of ../shared/data reaches sensible AUC.
# Skips when the folder is absent (a user's clone does not have it).
source "$(dirname "$0")/lib.sh"
if [ ! -d "$SHARED_DATA" ]; then
  echo "SKIP: $SHARED_DATA not found (the shared datasets are not part of a clone)"
  exit 77
fi
"$EMBARK_SOURCE_DIR/scripts/real_data.sh" "$SHARED_DATA" "$EMBARK" | tee "$WORK/table.md"
auc() { awk -F'|' -v d="$1" -v m="$2" '$2 ~ " "d" " && $3 ~ " "m" " {gsub(/ /, "", $6); print $6}' "$WORK/table.md"; }
# Floors well under what these runs reach, over what a broken model gets;
# the 1000-row samples validate on only 200 rows, so their floors are loose.
check "frappe fm" "$(auc frappe fm) > 0.90"
check "frappe deepfm" "$(auc frappe deepfm) > 0.90"
check "ml-100k fm" "$(auc ml-100k fm) > 0.68"
check "ml-latest-small deepfm" "$(auc ml-latest-small deepfm) > 0.74"
check "criteo-1000 lr" "$(auc criteo-1000 lr) > 0.60"
check "criteo-1000 dlrm" "$(auc criteo-1000 dlrm) > 0.58"
check "avazu-1000 lr" "$(auc avazu-1000 lr) > 0.55"
finish
