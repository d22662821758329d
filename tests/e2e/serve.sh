#!/usr/bin/env bash
# embark serve end to end: every endpoint of the Open Inference Protocol,
# every bad-request case, answers equal to `embark predict` bit for bit, hot
# reload under concurrent load with no failed request, SIGTERM draining.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$WORK"
"$EMBARK" gen --rows 20000 --valid-rows 3000 --seed 11 --out train.tsv --valid-out valid.tsv >/dev/null
small=(--data train.tsv --quiet --batch 512 --bottom-mlp 32,16 --top-mlp 32 --embedding-dim 8 --threads 2)
"$EMBARK" train "${small[@]}" --model dlrm --out v1 >/dev/null
"$EMBARK" train "${small[@]}" --model dlrm --seed 2 --out v2 >/dev/null
"$EMBARK" train "${small[@]}" --model deepfm --mlp 16,8 --out v3 >/dev/null
for v in v1 v2 v3; do "$EMBARK" predict --model "$v" --data valid.tsv --out "$v.txt"; done
cp -r v1 ctr
/usr/bin/python3 "$HERE/serve_check.py" "$EMBARK" "$WORK" || fail "serve checks (see above)"
finish
