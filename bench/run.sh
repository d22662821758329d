#!/usr/bin/env bash
# The benchmark suite, one command: embark side by side with PyTorch and
# against this machine's own limits, from one run on this machine.
#   bench/run.sh      (env: ROWS=500000 VALID_ROWS=100000 WORK=dir,
#                      EMBEDDING_FILTER=regex of embedding_bench cases)
# Steps (bench/README.md says what each measures):
#   1. bench/compare_torch.sh: DLRM and DeepFM, embark and PyTorch (fp32 and
#      bf16 autocast), 1 and 2 threads, same generated data: samples/s,
#      CPU-seconds per 10^6 samples, validation AUC and calibration;
#   2. machine_bench: sgemm GFLOP/s, random row gather rows/s, parse rate;
#   3. embedding_bench: lookup / update / insert rates by table size;
#   4. bench/report.py: the Markdown tables on stdout (lscpu's model name
#      above them), everything in $WORK/bench.json.
# Exits 3 after the report if embark's AUC was more than 0.002 from PyTorch
# fp32's (compare_torch.sh's check). Took about 20 minutes on 2 cores with
# the defaults before the four bf16 PyTorch runs were added.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ROWS=${ROWS:-500000} VALID_ROWS=${VALID_ROWS:-100000}
export WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/embark-bench-XXXXXX")}
mkdir -p "$WORK"
B="$ROOT/build/bench"
echo "bench: working in $WORK" >&2

echo "bench: 1/3 embark and PyTorch training ($ROWS rows)" >&2
auc_check=0
"$ROOT/bench/compare_torch.sh" > "$WORK/compare_torch.md" || auc_check=$?
case $auc_check in 0 | 3) ;; *) exit "$auc_check" ;; esac  # 3: the AUC check failed, the runs are complete

echo "bench: 2/3 machine limits and parse rate" >&2
{
  for t in 1 2; do "$B/machine_bench" sgemm "$t"; done
  "$B/machine_bench" gather 1 16
  "$B/machine_bench" gather 1 32
  "$B/machine_bench" gather 1 49
  "$B/machine_bench" gather 2 32
} > "$WORK/machine.json"
[ -f "$WORK/train.tsv.gz" ] || gzip -1 -k -c "$WORK/train.tsv" > "$WORK/train.tsv.gz"
{
  "$B/machine_bench" parse 1 "$WORK/train.tsv"
  "$B/machine_bench" parse 2 "$WORK/train.tsv"
  "$B/machine_bench" parse 1 "$WORK/train.tsv.gz"
} > "$WORK/parse.json"

echo "bench: 3/3 embedding table micro-benchmarks" >&2
"$B/embedding_bench" --benchmark_filter="${EMBEDDING_FILTER:-.}" --benchmark_format=json --benchmark_out="$WORK/embedding.json" \
  --benchmark_out_format=json > /dev/null

/usr/bin/python3 "$ROOT/bench/report.py" "$WORK"
exit "$auc_check"
