#!/usr/bin/env bash
# Distributed training under OpenMPI on this one machine (ranks oversubscribe
# the cores): 1, 2 and 4 ranks reach the same AUC; deterministic ranks train
# the one-process model; a checkpoint written by 4 ranks loads into 1 and 2;
# a killed or hung rank ends the job with an error naming it, and training
# resumes from the last complete checkpoint.
source "$(dirname "$0")/lib.sh"
if ! command -v mpirun >/dev/null; then
  echo "skipped: mpirun not found (scripts/deps.sh installs openmpi-bin)"
  exit 77
fi
# grep without -q reads all of ldd's output: closing the pipe early fails the
# pipeline (pipefail) when ldd is still writing, and would skip the test.
if ! ldd "$EMBARK" | grep libmpi >/dev/null; then
  echo "skipped: this embark was built without MPI"
  exit 77
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# Shared memory and loopback TCP only; no probing for other networks.
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
run() { local n=$1; shift; timeout 300 mpirun -np "$n" --oversubscribe "$EMBARK" "$@"; }
# The PID of one rank (not mpirun) of the job writing to --out $1.
rank_pid() { pgrep -f "^$EMBARK train .*--out $1( |\$)" | tail -1; }
cd "$WORK"
"$EMBARK" gen --rows 60000 --valid-rows 10000 --seed 3 --vocab 5000 --out train.tsv --valid-out valid.tsv >/dev/null
common=(--data train.tsv --valid valid.tsv --model dlrm --bottom-mlp 32 --top-mlp 32 --embedding-dim 8
        --batch 1024 --threads 1 --quiet --json)

# 1. AUC for 1, 2 and 4 ranks, default settings (own chunks of the input, staleness 1).
"$EMBARK" train "${common[@]}" --out m1 > r1.json
for n in 2 4; do run "$n" train "${common[@]}" --out "m$n" > "r$n.json"; done
check "2 ranks: AUC within 0.005 of 1 rank" "abs($(json_get r2.json auc) - $(json_get r1.json auc)) <= 0.005"
check "4 ranks: AUC within 0.005 of 1 rank" "abs($(json_get r4.json auc) - $(json_get r1.json auc)) <= 0.005"
check "4 ranks trained on every sample once" "$(json_get r4.json ranks) == 4 and $(json_get r1.json samples) == 60000"

# 2. Deterministic, staleness 0: N ranks train the one-process model, up to
# the order of floating-point sums (probabilities within 1e-4).
det=(--deterministic --staleness 0 --shuffle-window 0)
"$EMBARK" train "${common[@]}" "${det[@]}" --out d1 >/dev/null
"$EMBARK" predict --model d1 --data valid.tsv --out d1.txt
for n in 2 4; do
  run "$n" train "${common[@]}" "${det[@]}" --out "d$n" >/dev/null
  "$EMBARK" predict --model "d$n" --data valid.tsv --out "d$n.txt"
  worst=$(paste d1.txt "d$n.txt" | awk '{d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d} END {printf "%.3g", m + 0}')
  check "$n deterministic ranks == 1 rank (largest probability difference $worst)" "$worst < 1e-4"
done

# 3. Resharding: 4 shards load into 1 process (predict) and into 2 ranks
# (resumed for no further epoch, which writes a 2-shard checkpoint).
ls m4/embeddings-*-of-4.bin >/dev/null 2>&1 && pass "4 ranks wrote 4 shards" || fail "no 4-way shards in m4"
"$EMBARK" predict --model m4 --data valid.tsv --out p4.txt
run 2 train --data train.tsv --resume m4 --epochs 1 --out m4to2 --quiet >/dev/null
ls m4to2/embeddings-*-of-2.bin >/dev/null 2>&1 && pass "resumed on 2 ranks: 2 shards" || fail "no 2-way shards"
"$EMBARK" predict --model m4to2 --data valid.tsv --out p2.txt
cmp -s p4.txt p2.txt && pass "4 ranks' checkpoint via 2 ranks predicts identically" || fail "resharded predictions differ"

# 4. A rank killed mid-training ends the job with an error naming it; the
# run resumes from its last complete checkpoint (written at each better
# validation) and finishes with the expected AUC.
long=(--data train.tsv --valid valid.tsv --model dlrm --bottom-mlp 32 --top-mlp 32 --embedding-dim 8
      --batch 256 --threads 1 --epochs 3 --eval-every 40 --early-stop-patience 100 --quiet)
run 2 train "${long[@]}" --out straight --json > straight.json
rc=0
run 2 train "${long[@]}" --out killed > kill.out 2> kill.err &
job=$!
for _ in $(seq 100); do [ -f killed/MANIFEST.json ] && break; sleep 0.2; done
victim=$(rank_pid killed)
[ -n "$victim" ] && kill -9 "$victim"
wait "$job" || rc=$?
[ "$rc" -ne 0 ] && pass "killed rank: the job exits non-zero ($rc)" || fail "killed rank: the job exited 0"
grep -qiE "rank [0-9]" kill.err && pass "the error names a rank: $(grep -iE 'rank [0-9]' kill.err | head -1)" \
  || fail "no rank named: $(head -3 kill.err)"
if [ -f killed/MANIFEST.json ]; then
  "$EMBARK" eval --model killed --data valid.tsv --json > before.json && pass "the last checkpoint before the kill loads"
  run 2 train "${long[@]}" --resume killed --out resumed --json > resumed.json
  check "resumed from the checkpoint: AUC as an uninterrupted run's (within 0.01)" \
    "abs($(json_get resumed.json auc) - $(json_get straight.json auc)) <= 0.01"
else
  fail "no complete checkpoint before the kill"
fi

# 5. A hung rank (stopped) is noticed by its peer within --comm-timeout.
rc=0
run 2 train "${common[@]}" --epochs 50 --comm-timeout 3 --out hung > hang.out 2> hang.err &
job=$!
sleep 3
victim=$(rank_pid hung)
[ -n "$victim" ] && kill -STOP "$victim"
start=$(date +%s)
wait "$job" || rc=$?
took=$(( $(date +%s) - start ))
[ "$rc" -ne 0 ] && pass "hung rank: the job ends (exit $rc) after ${took}s" || fail "hung rank: exit 0"
grep -q "no .* from rank" hang.err && pass "peer names it: $(grep -o 'rank [0-9]*: no .*' hang.err | head -1)" \
  || fail "hung rank not named: $(head -3 hang.err)"
check "ended within the timeout and shutdown (< 30 s)" "$took < 30"
[ -n "$victim" ] && kill -CONT "$victim" 2>/dev/null || true
finish
