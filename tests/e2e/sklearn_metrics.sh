#!/usr/bin/env bash
# embark's AUC and logloss equal scikit-learn's on the same predictions (1e-9).
source "$(dirname "$0")/lib.sh"
if ! /usr/bin/python3 -c "import sklearn" 2>/dev/null; then
  echo "SKIP: python3-sklearn is not installed (apt-get install python3-sklearn)"
  exit 77
fi
cd "$WORK"
"$EMBARK" gen --rows 20000 --valid-rows 20000 --seed 9 --out train.tsv --valid-out valid.tsv >/dev/null
"$EMBARK" train --data train.tsv --model fm --out m --quiet >/dev/null
"$EMBARK" predict --model m --data valid.tsv --out pred.txt
"$EMBARK" eval --model m --data valid.tsv --json > eval.json
cut -f1 valid.tsv > labels.txt
/usr/bin/python3 - eval.json pred.txt labels.txt <<'PY'
import json, sys
import numpy as np
from sklearn.metrics import roc_auc_score, log_loss
got = json.load(open(sys.argv[1]))
p = np.loadtxt(sys.argv[2], dtype=np.float64)
y = np.loadtxt(sys.argv[3], dtype=np.float64)
auc, ll = roc_auc_score(y, p), log_loss(y, p)
print(f"embark auc {got['auc']:.12f} logloss {got['logloss']:.12f}")
print(f"sklearn auc {auc:.12f} logloss {ll:.12f}")
ok = abs(got["auc"] - auc) < 1e-9 and abs(got["logloss"] - ll) < 1e-9
sys.exit(0 if ok else 1)
PY
pass "auc and logloss equal scikit-learn's to 1e-9"
finish
