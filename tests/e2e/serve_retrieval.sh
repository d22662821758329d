#!/usr/bin/env bash
# embark serve --index: a two_tower model's top K over HTTP equal to embark
# retrieve, parameters.k and its errors, --ranker equal to embark predict on
# the combined rows, start-up refusals, and the index hot reload (a
# corrupted index refused, a rebuilt one picked up by polling).
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$WORK"
# 120 users in 4 groups, 80 items in 4 categories: a user clicks items of
# its group's category (label 1) and skips others (label 0).
/usr/bin/python3 - <<'EOF'
import random
random.seed(5)
head = "label,user_id,user_group,age,item_id,item_cat\n"
with open("train.csv", "w") as f:
    f.write(head)
    for u in range(120):
        g = u % 4
        for _ in range(12):
            j = random.randrange(20) * 4 + g
            f.write(f"1,u{u},g{g},{20 + u % 37},i{j},c{j % 4}\n")
        for _ in range(6):
            j = random.randrange(80)
            f.write(f"{int(j % 4 == g)},u{u},g{g},{20 + u % 37},i{j},c{j % 4}\n")
with open("items.csv", "w") as f:
    f.write(head + "".join(f"1,,,,i{j},c{j % 4}\n" for j in range(80)))
with open("items2.csv", "w") as f:  # one more item
    f.write(head + "".join(f"1,,,,i{j},c{j % 4}\n" for j in range(81)))
with open("users.csv", "w") as f:
    f.write(head + "".join(f"0,u{u},g{u % 4},{20 + u % 37},,\n" for u in range(0, 120, 7)))
with open("users_noage.csv", "w") as f:
    f.write(head + "".join(f"0,u{u},g{u % 4},,,\n" for u in range(0, 120, 7)))
with open("train_ctx.csv", "w") as f:
    f.write("label,user_id,item_id,ctx\n" + "".join(f"{u % 2},u{u},i{u % 80},x{u % 3}\n" for u in range(200)))
EOF
cat >tt.toml <<'EOF'
label = "label"
categorical = ["user_id", "user_group", "item_id", "item_cat"]
numeric = ["age"]
user = ["user_id", "user_group", "age"]
item = ["item_id", "item_cat"]
item_id = "item_id"
EOF
cat >rank.toml <<'EOF'
label = "label"
categorical = ["user_id", "user_group", "item_id", "item_cat"]
numeric = ["age"]
EOF
cat >ctx.toml <<'EOF'
label = "label"
categorical = ["user_id", "item_id", "ctx"]
EOF
q=(--quiet --threads 2 --batch-size 256)
"$EMBARK" train "${q[@]}" --model two_tower --schema tt.toml --data train.csv --epochs 3 --out tt >/dev/null
"$EMBARK" train "${q[@]}" --model two_tower --schema tt.toml --data train.csv --epochs 1 --tower-dim 8 --out tt8 >/dev/null
"$EMBARK" train "${q[@]}" --model deepfm --schema rank.toml --data train.csv --epochs 3 --out rk >/dev/null
"$EMBARK" train "${q[@]}" --model lr --schema ctx.toml --data train_ctx.csv --epochs 1 --out rkctx >/dev/null
"$EMBARK" index --model tt --items items.csv --out idx >/dev/null
"$EMBARK" index --model tt8 --items items.csv --out idx8 >/dev/null
cp -r tt served
for k in 10 5; do "$EMBARK" retrieve --model tt --index idx --data users.csv --k $k --out ret$k.tsv; done
"$EMBARK" retrieve --model tt --index idx --data users_noage.csv --k 10 --out ret_noage.tsv

expect_error "two_tower without --index" "--index" "$EMBARK" serve --model tt --port 0
expect_error "ranking model with --index" "ranking model" "$EMBARK" serve --model rk --index idx --port 0
expect_error "index of another dim" "dim" "$EMBARK" serve --model tt --index idx8 --port 0
expect_error "ranker column nobody fills" "'ctx'" "$EMBARK" serve --model tt --index idx --ranker rkctx --port 0
expect_error "retrieve k above the index" "--k" "$EMBARK" retrieve --model tt --index idx --data users.csv --k 81 --out x

/usr/bin/python3 "$HERE/serve_retrieval_check.py" "$EMBARK" "$WORK" || fail "serve retrieval checks (see above)"
finish
