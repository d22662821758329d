#!/usr/bin/env bash
# Distributed training throughput on this machine: DLRM in the Criteo shape
# (examples/dlrm.toml, batch 2048 global, one training thread per rank),
# `embark gen` data, one epoch.
#   1. loopback: 1, 2 and 4 ranks under mpirun (shared memory between ranks);
#   2. links: 2 ranks in 2 network namespaces joined by veth pairs and a
#      bridge (bench/netem.sh), MPI over TCP, links unshaped and shaped to
#      10 Gbit/s and 1 Gbit/s, with staleness 0 and 1 and dense compression;
#      and 1 Gbit/s with 50 ms RTT where the kernel has netem.
# Prints a Markdown table: global samples/s, each 2-rank run's share of the
# 2-rank loopback figure, bytes sent per sample (sparse rows and
# gradients; dense gradients), seconds rank 0 waited on communication, AUC.
# Needs root for the namespaces (skips part 2 otherwise).
#   bench/dist_bench.sh      (env: ROWS=300000 VALID_ROWS=50000 WORK=dir)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROWS=${ROWS:-300000}
VALID_ROWS=${VALID_ROWS:-50000}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/embark-dist-XXXXXX")}
"$ROOT/scripts/build.sh" >/dev/null
E="$ROOT/build/embark"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$WORK"
cd "$WORK"
[ -f train.tsv ] || "$E" gen --rows "$ROWS" --valid-rows "$VALID_ROWS" --vocab 1000000 --seed 1 \
  --out train.tsv --valid-out valid.tsv >/dev/null
args=(train --data train.tsv --valid valid.tsv --config "$ROOT/examples/dlrm.toml" --batch 2048 --threads 1
      --sparse-optimizer adagrad --sparse-lr 0.05 --dense-optimizer adam --dense-lr 0.003 --json --quiet
      --calibrate none)  # the raw model's calibration (a scaling fitted on valid.tsv would make it in-sample)
: > runs.json
record() {  # record LABEL RANKS < json
  /usr/bin/python3 -c "import json,sys; j=json.loads(sys.stdin.read().strip().splitlines()[-1]); j.update(label=sys.argv[1], n=int(sys.argv[2])); print(json.dumps(j))" "$1" "$2" >> runs.json
}

echo "dist_bench: loopback" >&2
"$E" "${args[@]}" --out m1 | record "1 process" 1
for n in 2 4; do
  mpirun -np "$n" --oversubscribe --mca btl self,vader "$E" "${args[@]}" --out "m$n" | record "loopback (shared memory)" "$n"
done

cleanup() { "$ROOT/bench/netem.sh" down 2>/dev/null || true; }
if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null; then
  trap cleanup EXIT
  export PMIX_MCA_ptl_tcp_if_include=embark-br PMIX_MCA_ptl_tcp_remote_connections=1
  net=(-x PMIX_MCA_ptl_tcp_if_include -x PMIX_MCA_ptl_tcp_remote_connections --mca btl self,tcp
       --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include embark-br)
  two() {  # two LABEL extra args...: 2 ranks, one per namespace
    local label=$1
    shift
    mpirun "${net[@]}" -np 1 ip netns exec embark-h0 "$E" "${args[@]}" "$@" --out mlink : \
      -np 1 ip netns exec embark-h1 "$E" "${args[@]}" "$@" --out mlink | record "$label" 2
  }
  for link in "veth, unshaped|" "10 Gbit/s|10gbit" "1 Gbit/s|1gbit"; do
    name=${link%%|*}
    rate=${link##*|}
    echo "dist_bench: link $name" >&2
    "$ROOT/bench/netem.sh" up 2 $rate
    two "$name, staleness 0" --staleness 0
    two "$name, staleness 1" --staleness 1
    if [ "$rate" = 1gbit ]; then
      two "$name, staleness 1, fp16" --staleness 1 --dense-compression fp16
      two "$name, staleness 1, onebit" --staleness 1 --dense-compression onebit
    fi
  done
  echo "dist_bench: 1 Gbit/s, 50 ms RTT" >&2
  if "$ROOT/bench/netem.sh" up 2 1gbit 25ms 2>netem.err; then
    two "1 Gbit/s, 50 ms RTT, staleness 0" --staleness 0
    two "1 Gbit/s, 50 ms RTT, staleness 2" --staleness 2
    two "1 Gbit/s, 50 ms RTT, staleness 2, onebit" --staleness 2 --dense-compression onebit
  else
    echo "dist_bench: skipped the 50 ms RTT link: $(cat netem.err)" >&2
  fi
else
  echo "dist_bench: not root: the network-namespace links are skipped" >&2
fi

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p') (lscpu), $(nproc) CPUs"
/usr/bin/python3 - <<'PY'
import json
runs = [json.loads(l) for l in open("runs.json")]
base = next((r for r in runs if r["label"].startswith("loopback") and r["n"] == 2), None)
print("| setup | ranks | samples/s (all ranks) | of 2-rank loopback | sparse B/sample | dense B/sample | rank 0 comm wait s | train s | AUC | calibration |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in runs:
    sps = r.get("global_samples_per_sec", r["samples_per_sec"])
    share = f"{sps / base['global_samples_per_sec']:.0%}" if base and r["n"] == 2 else ""
    print(f"| {r['label']} | {r['n']} | {sps:,.0f} | {share} | {r.get('sparse_bytes_per_sample', 0):,.0f} | "
          f"{r.get('dense_bytes_per_sample', 0):,.0f} | {r.get('comm_wait_seconds', 0):.2f} | {r['train_seconds']:.1f} | {r['auc']:.4f} | "
          f"{r.get('calibration', float('nan')):.3f} |")
PY
