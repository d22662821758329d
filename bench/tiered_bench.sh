#!/usr/bin/env bash
# Tables larger than memory: DLRM (embedding_dim 64, so rows are large) on
# generated data whose Zipf ids make a table of a few GiB, trained with
# every row in RAM, then under a memory budget of a third and a tenth of
# that table. Prints, side by side: samples/s (and the ratio to in-RAM),
# validation AUC (and its difference), the cache's hit rate, disk bytes read
# and written per sample, time the steps waited on the disk, peak RSS and
# what it holds beyond the budget, and bytes per row in RAM and on disk.
#
# Usage: bench/tiered_bench.sh [WORK_DIR]
#   ROWS (default 1000000), VOCAB (10000000), ZIPF (1.05): the data;
#   RATIOS ("3 10"): table size over budget.
# The work directory keeps the data between runs; the disk tier lives there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EMBARK=${EMBARK:-$ROOT/build/embark}
WORK=${1:-${TMPDIR:-/tmp}/embark-tiered-bench}
ROWS=${ROWS:-1000000}
VOCAB=${VOCAB:-10000000}
ZIPF=${ZIPF:-1.05}
RATIOS=${RATIOS:-"3 10"}
mkdir -p "$WORK"
cd "$WORK"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo "disk tier on: $(df -h "$WORK" | awk 'NR == 2 { print $1 " (" $2 ")" }')"
data="train-$ROWS-$VOCAB-$ZIPF.tsv"
if [ ! -f "$data" ]; then
  "$EMBARK" gen --rows "$ROWS" --valid-rows 100000 --out "$data.tmp" --valid-out valid.tsv --vocab "$VOCAB" \
    --zipf "$ZIPF" --seed 7 >/dev/null
  mv "$data.tmp" "$data"
fi
model=(--model dlrm --embedding-dim 64 --bottom-mlp 256,64 --top-mlp 256,128 --sparse-optimizer adagrad --quiet --json)

run() {  # run NAME [FLAGS...]: trains, writes NAME.json
  local name=$1
  shift
  rm -rf "out-$name"
  "$EMBARK" train --data "$data" --valid valid.tsv "${model[@]}" --out "out-$name" "$@" >"$name.json"
  rm -rf "out-$name"
}

run ram
table=$(/usr/bin/python3 -c 'import json; print(json.load(open("ram.json"))["embedding_bytes"])')
names=(ram)
budgets=(0)
for r in $RATIOS; do
  budget=$((table / r))
  run "x$r" --memory-budget "$budget" --table-dir "$WORK/tables"
  names+=("x$r")
  budgets+=("$budget")
done
rm -rf "$WORK/tables"

/usr/bin/python3 - "${names[*]}" "${budgets[*]}" <<'EOF'
import json, sys
names, budgets = sys.argv[1].split(), [int(b) for b in sys.argv[2].split()]
runs = [json.load(open(n + ".json")) for n in names]
base = runs[0]
mib = 1 << 20
print(f"table in RAM: {base['embedding_bytes'] / mib:,.0f} MiB, {base['embedding_rows']:,} rows "
      f"({base['embedding_ideal_bytes'] / base['embedding_rows']:.0f} bytes of weights and state each); "
      f"{base['samples']:,} samples")
cols = ["budget", "samples/s", "vs RAM", "AUC", "dAUC", "hit rate", "read B/sample", "written B/sample",
        "stall s", "peak RSS MiB", "RSS - budget MiB", "RAM B/row", "disk B/row"]
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
for n, b, r in zip(names, budgets, runs):
    rows = max(1, r["embedding_rows"])
    ram = r.get("table_ram_bytes", r["embedding_bytes"])
    print("| " + " | ".join([
        "all in RAM" if b == 0 else f"{b / mib:,.0f} MiB (table/{n[1:]})",
        f"{r['samples_per_sec']:,.0f}",
        f"{r['samples_per_sec'] / base['samples_per_sec']:.2f}",
        f"{r['auc']:.4f}",
        f"{r['auc'] - base['auc']:+.4f}",
        "-" if b == 0 else f"{r.get('cache_hit_rate', 0):.3f}",
        "-" if b == 0 else f"{r.get('disk_read_bytes_per_sample', 0):,.0f}",
        "-" if b == 0 else f"{r.get('disk_write_bytes_per_sample', 0):,.0f}",
        "-" if b == 0 else f"{r.get('stall_seconds', 0):.1f}",
        f"{r['peak_rss_bytes'] / mib:,.0f}",
        "-" if b == 0 else f"{(r['peak_rss_bytes'] - b) / mib:,.0f}",
        f"{ram / rows:.0f}" if b == 0 else "-",
        "-" if b == 0 else f"{r.get('table_disk_bytes', 0) / rows:.0f}",
    ]) + " |")
EOF
