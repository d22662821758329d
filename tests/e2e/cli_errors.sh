#!/usr/bin/env bash
# Bad input of every kind: a clear one-line error naming file/line/field and
# reason, a non-zero exit, and nothing half-written.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$EMBARK" gen --rows 300 --seed 3 --out good.tsv >/dev/null
line() { sed -n "${1}p" good.tsv; }

expect_error "missing file" "no-such-file.tsv" "$EMBARK" train --data no-such-file.tsv --out m
: > empty.tsv
expect_error "empty file" "empty.tsv: file is empty" "$EMBARK" train --data empty.tsv --format criteo --out m
expect_error "empty file, format guessed" "empty.tsv: file is empty" "$EMBARK" train --data empty.tsv --out m
gzip -c good.tsv > full.tsv.gz && head -c 3000 full.tsv.gz > trunc.tsv.gz
expect_error "truncated gzip" "truncated gzip stream" "$EMBARK" train --data trunc.tsv.gz --format criteo --out m
zstd -q -c good.tsv > full.tsv.zst && head -c 3000 full.tsv.zst > trunc.tsv.zst
expect_error "truncated zstd" "truncated zstd stream" "$EMBARK" train --data trunc.tsv.zst --format criteo --out m
/usr/bin/python3 -c 'import random,sys; r=random.Random(1); sys.stdout.buffer.write(bytes(r.randrange(256) for _ in range(20000)))' > garbage.bin
expect_error "binary garbage, format guessed" "garbage.bin: line 1 is binary data" "$EMBARK" train --data garbage.bin --out m
printf 'hello world\nthis is prose\n' > prose.txt
expect_error "text of no known format" "prose.txt: cannot tell the format from line 1" "$EMBARK" train --data prose.txt --out m
printf '1\t\x00\x01\x02\n' > nul.tsv
expect_error "binary garbage as criteo" "nul.tsv:1: binary data (NUL byte)" "$EMBARK" train --data nul.tsv --format criteo --out m
{ line 1; line 2 | cut -f1-30; line 3; } > short.tsv
expect_error "too few fields" "short.tsv:2: expected 40 tab-separated fields" "$EMBARK" train --data short.tsv --out m
{ line 1; printf '%s\textra\n' "$(line 2)"; } > long.tsv
expect_error "too many fields" "long.tsv:2: expected 40 tab-separated fields (label, 13 integer, 26 categorical), found 41" "$EMBARK" train --data long.tsv --out m
{ line 1; line 2 | awk -F'\t' 'BEGIN{OFS="\t"} {$4="123456789012345678901234567890"; print}'; } > range.tsv
expect_error "out-of-range number" "range.tsv:2: field I3: '123456789012345678901234567890' is out of range" "$EMBARK" train --data range.tsv --out m
{ line 1; line 2 | awk -F'\t' 'BEGIN{OFS="\t"} {$1="2"; print}'; } > label.tsv
expect_error "bad label" "label.tsv:2: field label: label '2' must be 0, 1 or -1" "$EMBARK" train --data label.tsv --out m
{ line 1; line 2 | awk -F'\t' 'BEGIN{OFS="\t"} {$20="not-hex!"; print}'; } > cat.tsv
expect_error "bad categorical" "cat.tsv:2: field C6: 'not-hex!' is not a hexadecimal id" "$EMBARK" train --data cat.tsv --out m
printf '1 3:x\n' > bad.svm
expect_error "bad libsvm value" "bad.svm:1: field #1: value 'x' is not a number" "$EMBARK" train --data bad.svm --format libsvm --model fm --out m
if [ -e m ] || ls m.tmp-* >/dev/null 2>&1; then fail "a failed run left files behind"; else pass "failed runs wrote nothing"; fi

# --max-bad-lines: tolerated lines are skipped and reported; one more fails.
{ head -100 good.tsv; echo "junk"; head -200 good.tsv | tail -100; echo "more junk"; } > some_bad.tsv
out=$("$EMBARK" train --data some_bad.tsv --out tolerant --max-bad-lines 2 --quiet --bottom-mlp 8 --top-mlp 8 2>&1)
if grep -q "skipped 2 bad line(s)" <<<"$out" && grep -q "some_bad.tsv:101:" <<<"$out" && [ -f tolerant/MANIFEST.json ]; then
  pass "--max-bad-lines 2 skips and reports"
else
  fail "--max-bad-lines 2: $out"
fi
expect_error "--max-bad-lines 1 exceeded" "more than --max-bad-lines=1" "$EMBARK" train --data some_bad.tsv --out m --max-bad-lines 1

# Configuration and usage errors.
printf 'embedding_dim = "sixteen"\n' > bad.toml
expect_error "bad config value" "bad.toml: 'embedding_dim': expected an integer, found a string: \"sixteen\"" "$EMBARK" train --data good.tsv --out m --config bad.toml
printf 'embeding_dim = 8\n' > typo.toml
expect_error "unknown config key" "typo.toml: unknown parameter 'embeding_dim'" "$EMBARK" train --data good.tsv --out m --config typo.toml
expect_error "unknown model" "'gbdt' is not one of" "$EMBARK" train --data good.tsv --out m --model gbdt
expect_error "unknown dense compression" "--dense-compression: 'zip' is not one of: none, fp16, onebit" \
  "$EMBARK" train --data good.tsv --out m --dense-compression zip
expect_error "negative staleness" "--staleness: -1 is out of range [0, 64]" "$EMBARK" train --data good.tsv --out m --staleness -1
expect_error "zero comm timeout" "--comm-timeout: 0 is out of range" "$EMBARK" train --data good.tsv --out m --comm-timeout 0
expect_error "csv without schema" "--format csv needs --schema" "$EMBARK" train --data good.tsv --out m --format csv
expect_error "dlrm on one field" "use fm or deepfm" "$EMBARK" train --data bad.svm --format libsvm --out m

# Checkpoints: corrupt, truncated and foreign ones are refused.
"$EMBARK" train --data good.tsv --out ck --quiet --bottom-mlp 8 --top-mlp 8 >/dev/null
cp -r ck ck_corrupt
printf '\x42' | dd of=ck_corrupt/dense.bin bs=1 seek=64 conv=notrunc status=none
expect_error "corrupt checkpoint" "dense.bin: checksum mismatch" "$EMBARK" eval --model ck_corrupt --data good.tsv
cp -r ck ck_trunc
truncate -s 100 ck_trunc/embeddings.bin
expect_error "truncated checkpoint" "embeddings.bin: size 100 bytes" "$EMBARK" predict --model ck_trunc --data good.tsv --out p.txt
[ -e p.txt ] && fail "predict left an output file after failing" || pass "failed predict wrote nothing"
mkdir notack
expect_error "not a checkpoint" "is not a checkpoint" "$EMBARK" eval --model notack --data good.tsv
expect_error "eval on unparseable data" "short.tsv:2: expected 40" "$EMBARK" eval --model ck --data short.tsv

# Resuming: a parameter fixed by the checkpoint keeps its value; an explicit
# different one (flag or --config) is refused with both values, nothing written.
expect_error "resume: changed top_mlp" "cannot change 'top_mlp' when resuming: the checkpoint has 8, requested 16" \
  "$EMBARK" train --data good.tsv --resume ck --out resumed --top-mlp 16
expect_error "resume: changed sparse optimizer" \
  "cannot change 'sparse_optimizer' when resuming: the checkpoint has adam, requested adagrad" \
  "$EMBARK" train --data good.tsv --resume ck --out resumed --sparse-optimizer adagrad --sparse-lr 0.1
printf 'dense_optimizer = "sgd"\ndense_lr = 0.1\n' > sgd.toml
expect_error "resume: changed dense optimizer in --config" \
  "cannot change 'dense_optimizer' when resuming: the checkpoint has adam, requested sgd" \
  "$EMBARK" train --data good.tsv --resume ck --out resumed --config sgd.toml
expect_error "resume: changed seed" "cannot change 'seed' when resuming: the checkpoint has 1, requested 7" \
  "$EMBARK" train --data good.tsv --resume ck --out resumed --seed 7
expect_error "resume: changed format" "cannot change 'format' when resuming: the checkpoint has auto, requested libsvm" \
  "$EMBARK" train --data good.tsv --resume ck --out resumed --format libsvm
expect_error "resume: not a checkpoint" "is not a checkpoint" "$EMBARK" train --data good.tsv --resume notack --out resumed
[ -e resumed ] && fail "a refused resume wrote a checkpoint" || pass "refused resumes wrote nothing"
# The same values again, and changed ones that may change, are accepted.
"$EMBARK" train --data good.tsv --resume ck --out resumed --quiet --bottom-mlp 8 --top-mlp 8 --seed 1 --epochs 2 \
  --dense-lr 0.01 --sparse-lr 0.01 --batch 64 >/dev/null && [ -f resumed/MANIFEST.json ] \
  && pass "resume: repeated fixed values and changed learning rates are accepted" \
  || fail "resume: repeated fixed values and changed learning rates"

# Nothing a user types destroys their data: --out replaces only an embark
# checkpoint, and no output is an input.
mkdir -p userdir && echo "my notes" > userdir/notes.txt
expect_error "--out: a directory of someone's files" "'userdir' exists and is not an embark checkpoint (it holds 'notes.txt')" \
  "$EMBARK" train --data good.tsv --out userdir --bottom-mlp 8 --top-mlp 8
cp -r ck ck_plus && echo "added" > ck_plus/README
expect_error "--out: a checkpoint someone added a file to" "'ck_plus' exists and is not an embark checkpoint (it holds 'README')" \
  "$EMBARK" train --data good.tsv --out ck_plus --bottom-mlp 8 --top-mlp 8
cp good.tsv data_copy.tsv
expect_error "--out: the training file" "'data_copy.tsv' exists and is not a directory" \
  "$EMBARK" train --data data_copy.tsv --out data_copy.tsv --bottom-mlp 8 --top-mlp 8
expect_error "predict --out: the input" "is also an input (--data 'data_copy.tsv')" \
  "$EMBARK" predict --model ck --data data_copy.tsv --out ./data_copy.tsv
expect_error "predict --out: a directory" "'userdir' is a directory" "$EMBARK" predict --model ck --data good.tsv --out userdir
if [ "$(cat userdir/notes.txt)" = "my notes" ] && [ -f ck_plus/README ] && cmp -s good.tsv data_copy.tsv; then
  pass "refused outputs left every file as it was"
else
  fail "a refused output changed a user's file"
fi
mkdir -p emptydir
"$EMBARK" train --data good.tsv --out emptydir --quiet --bottom-mlp 8 --top-mlp 8 >/dev/null && [ -f emptydir/MANIFEST.json ] \
  && pass "--out: an empty directory takes the checkpoint" || fail "--out: an empty directory"

# Pipes: read once, so never sniffed first, one epoch, never validation.
mkfifo pipe
expect_error "pipe without --format" "pipe: is a pipe or device, which can be read once, so the format cannot be read from it first: give --format" \
  timeout 20 "$EMBARK" train --data pipe --out m
expect_error "pipe with --epochs 2" "--data 'pipe' is a pipe or device, which can be read once: --epochs must be 1 (it is 2)" \
  timeout 20 "$EMBARK" train --data pipe --format criteo --epochs 2 --out m
expect_error "pipe as --valid" "--valid 'pipe' is a pipe or device" timeout 20 "$EMBARK" train --data good.tsv --valid pipe --out m
cat good.tsv > pipe &
timeout 60 "$EMBARK" train --data pipe --format criteo --out piped --quiet --bottom-mlp 8 --top-mlp 8 >/dev/null \
  && [ -f piped/MANIFEST.json ] && pass "a pipe with --format trains" || fail "a pipe with --format"
wait

# CSV schemas: each column has one role; the threshold is a number.
printf 'y,a,b,x\n1,u,v,0.5\n0,w,v,1.5\n' > small.csv
printf 'label = "y"\ncategorical = ["a", "y"]\n' > s_label.toml
expect_error "schema: label also a feature" "s_label.toml: key 'categorical': column 'y' is the label; it cannot also be a feature" \
  "$EMBARK" train --data small.csv --schema s_label.toml --out m
printf 'label = "y"\nlabel_threshold = nan\ncategorical = ["a"]\n' > s_nan.toml
expect_error "schema: NaN threshold" "s_nan.toml: key 'label_threshold': must be a finite number" \
  "$EMBARK" train --data small.csv --schema s_nan.toml --out m
printf 'label = "y"\ncategorical = ["a", "b", "a"]\n' > s_twice.toml
expect_error "schema: a column listed twice" "s_twice.toml: key 'categorical': lists column 'a' twice" \
  "$EMBARK" train --data small.csv --schema s_twice.toml --out m
printf 'label = "y"\nnumeric = ["x"]\ncategorical = ["a", "x"]\n' > s_roles.toml
expect_error "schema: numeric and categorical" "column 'x' is already in 'numeric'; a column has one role" \
  "$EMBARK" train --data small.csv --schema s_roles.toml --out m
printf 'y,a,a\n1,u,v\n' > duphead.csv
printf 'label = "y"\ncategorical = ["a"]\n' > s_ok.toml
expect_error "csv: a duplicated header column" "duphead.csv:1: the header names column 'a' more than once" \
  "$EMBARK" train --data duphead.csv --schema s_ok.toml --out m --model fm
printf '1 0:1:1 99999999:2:1\n' > hugefield.ffm
expect_error "libffm: field index beyond the limit" "hugefield.ffm:1: field index '99999999' is beyond the 4096 fields" \
  "$EMBARK" train --data hugefield.ffm --out m --model fm
expect_error "too large a dense model" "would need 4323" "$EMBARK" train --data good.tsv --out m --model deepfm --mlp 65536,65536

# Ranges are the declaration's, for every subcommand alike.
expect_error "eval: negative --max-bad-lines" "--max-bad-lines: -1 is out of range [0," "$EMBARK" eval --model ck --data good.tsv --max-bad-lines -1
expect_error "predict: too many --threads" "--threads: 100000 is out of range [0, 1024]" "$EMBARK" predict --model ck --data good.tsv --out p.txt --threads 100000
expect_error "eval: --threads not a number" "--threads: 'many' is not an integer" "$EMBARK" eval --model ck --data good.tsv --threads many

# Divergence is an error naming the step, and no model is written.
expect_error "diverging run" "training diverged at step" "$EMBARK" train --data good.tsv --out diverged --model fm \
  --sparse-optimizer sgd --sparse-lr 10 --first-order-optimizer sgd --first-order-lr 10 --batch 16
[ -e diverged ] && fail "a diverged run wrote a model" || pass "a diverged run wrote nothing"
expect_error "learning rate out of range" "--dense-lr: 100 is out of range [0, 10]" "$EMBARK" train --data good.tsv \
  --out lr100 --dense-lr 100
# A loss that explodes but stays finite is warned about, naming the rates.
"$EMBARK" gen --rows 5000 --seed 3 --out g5k.tsv >/dev/null
err=$("$EMBARK" train --data g5k.tsv --out exploding --model deepfm --mlp 16 --embedding-dim 4 --dense-lr 10 \
  --sparse-lr 10 --quiet 2>&1 >/dev/null) || true
if grep -q "the run is diverging; try learning rates 10x lower (now --dense-lr 10, --sparse-lr 10" <<<"$err"; then
  pass "an exploding loss is warned about"
else
  fail "no warning on an exploding loss: $err"
fi
err=$("$EMBARK" train --data g5k.tsv --out calm --model deepfm --mlp 16 --embedding-dim 4 --quiet 2>&1 >/dev/null)
grep -q "diverging" <<<"$err" && fail "a healthy run was warned: $err" || pass "a healthy run gets no warning"

# serve refuses what it cannot serve, at once.
expect_error "serve: not a checkpoint" "is not a checkpoint" "$EMBARK" serve --model notack --port 0
expect_error "serve: corrupt checkpoint" "dense.bin: checksum mismatch" "$EMBARK" serve --model ck_corrupt --port 0
# A port already taken: hold one open while serve tries it.
/usr/bin/python3 -c '
import socket, subprocess, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
r = subprocess.run([sys.argv[1], "serve", "--model", "ck", "--port", str(s.getsockname()[1])],
                   capture_output=True, text=True, timeout=60)
sys.exit(0 if r.returncode != 0 and "cannot bind" in r.stderr and "Address already in use" in r.stderr else 1)
' "$EMBARK" && pass "serve: a port in use is a clear error" || fail "serve: a port in use"
printf 'short\n' > short.token
expect_error "serve: a short admin token" "the token must be at least 16 characters" \
  "$EMBARK" serve --model ck --port 0 --admin-token-file short.token
expect_error "serve: bad port" "--port" "$EMBARK" serve --model ck --port 70000
finish
