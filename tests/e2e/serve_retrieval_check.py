"""HTTP checks of `embark serve --index` (and --ranker), driven by
serve_retrieval.sh (which writes the data, trains the models and runs
`embark retrieve` for the expected answers).

Usage: serve_retrieval_check.py EMBARK WORKDIR. WORKDIR holds `served` (a
copy of the two_tower model tt, which this script swaps), tt8 (tower_dim
8), rk (a DeepFM ranker), idx (the index of items.csv, which this script
corrupts and rebuilds from items2.csv), users.csv, users_noage.csv and
ret10.tsv, ret5.tsv, ret_noage.tsv (embark retrieve's answers).
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import serve_util as su  # noqa: E402

EMBARK, WORK = sys.argv[1], sys.argv[2]
FAILS = []


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok else " " + str(detail)[:600]), flush=True)
    if not ok:
        FAILS.append(what)


def call(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=None if body is None else json.dumps(body).encode(),
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    return r.status, text


def w(name):
    return os.path.join(WORK, name)


def csv_rows(name):
    return [line.split(",") for line in open(w(name)).read().splitlines()[1:]]


def retrieved(name):
    out = []
    for line in open(w(name)):
        f = line.rstrip("\n").split("\t")
        out.append((f[0::2], [float(x) for x in f[1::2]]))
    return out


def body(rows, k=None, drop=()):
    n = len(rows)
    inputs = [{"name": "user_id", "datatype": "BYTES", "shape": [n], "data": [r[1] for r in rows]},
              {"name": "user_group", "datatype": "BYTES", "shape": [n], "data": [r[2] for r in rows]},
              {"name": "age", "datatype": "INT64", "shape": [n], "data": [int(r[3]) if r[3] else None for r in rows]}]
    b = {"inputs": [i for i in inputs if i["name"] not in drop]}
    if k is not None:
        b["parameters"] = {"k": k}
    return b


def outputs(text):
    return {o["name"]: o for o in json.loads(text)["outputs"]}


def close(a, b):
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def equals_retrieved(text, expect, k):
    o = outputs(text)
    ids, scores = o["item_ids"]["data"], o["scores"]["data"]
    if o["item_ids"]["shape"] != [len(expect), k] or o["scores"]["shape"] != [len(expect), k]:
        return False, ("shape", o["item_ids"]["shape"])
    for r, (names, sc) in enumerate(expect):
        if ids[r * k:(r + 1) * k] != names[:k]:
            return False, (r, ids[r * k:(r + 1) * k], names[:k])
        if not all(close(a, b) for a, b in zip(scores[r * k:(r + 1) * k], sc[:k])):
            return False, (r, scores[r * k:(r + 1) * k], sc[:k])
    return True, ""


def metric(port, name):
    _, text = call(port, "GET", "/metrics")
    m = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def wait_for(cond, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


USERS = csv_rows("users.csv")
RET10, RET5, NOAGE = retrieved("ret10.tsv"), retrieved("ret5.tsv"), retrieved("ret_noage.tsv")
ITEM_CAT = {r[4]: r[5] for r in csv_rows("items2.csv")}
INFER = "/v2/models/served/infer"

# ---- retrieval ----------------------------------------------------------
log = w("serve.log")
p, port = su.start_server(EMBARK, w("served"), ["--index", w("idx"), "--k", "10", "--poll", "0.2"], log)
try:
    st, text = call(port, "GET", "/v2/models/served")
    meta = json.loads(text)
    check("metadata lists the user columns as inputs", st == 200 and
          sorted(i["name"] for i in meta["inputs"]) == ["age", "user_group", "user_id"], text)
    check("metadata lists item_ids and scores as outputs", meta.get("outputs") == [
        {"name": "item_ids", "datatype": "BYTES", "shape": [-1, 10]},
        {"name": "scores", "datatype": "FP32", "shape": [-1, 10]}], text)

    st, text = call(port, "POST", INFER, body(USERS))
    ok, why = equals_retrieved(text, RET10, 10) if st == 200 else (False, text)
    check(f"top 10 of {len(USERS)} users equals embark retrieve (ids exactly, scores within 1e-6)", ok, why)
    st, text = call(port, "POST", INFER, body(USERS, k=5))
    ok, why = equals_retrieved(text, RET5, 5) if st == 200 else (False, text)
    check("parameters.k = 5 equals embark retrieve --k 5", ok, why)
    st, text = call(port, "POST", INFER, body(USERS, drop=("age",)))
    ok, why = equals_retrieved(text, NOAGE, 10) if st == 200 else (False, text)
    check("a user column left out is missing in every row (equals retrieve with it empty)", ok, why)
    for bad in (0, 81, 20000, "5", 2.5, -1):
        st, text = call(port, "POST", INFER, body(USERS[:2], k=bad))
        check(f"parameters.k = {bad!r} is refused with 400 naming 'k'", st == 400 and "'k'" in text, (st, text))
    st, text = call(port, "POST", INFER, {"inputs": body(USERS[:1])["inputs"] + [
        {"name": "item_cat", "datatype": "BYTES", "shape": [1], "data": ["c1"]}]})
    check("an item column in a request is refused", st == 400 and "item_cat" in text, (st, text))
    st, text = call(port, "POST", INFER, {**body(USERS[:1]), "outputs": [{"name": "probability"}]})
    check("an unknown output is refused naming the outputs", st == 400 and "item_ids" in text, (st, text))
    check("metrics: index version 1", metric(port, "embark_index_version") == 1)

    # ---- ranker (a second server on the same index) ---------------------
    rlog = w("serve_ranker.log")
    rp, rport = su.start_server(EMBARK, w("served"), ["--index", w("idx"), "--ranker", w("rk"), "--k", "10",
                                                      "--poll", "0"], rlog)
    try:
        st, text = call(rport, "GET", "/v2/models/served")
        check("ranker metadata adds retrieval_scores",
              [o["name"] for o in json.loads(text)["outputs"]] == ["item_ids", "scores", "retrieval_scores"], text)
        st, text = call(rport, "POST", INFER, body(USERS))
        check("ranked request answers 200", st == 200, text)
        o = outputs(text)
        ids, probs, rscores = o["item_ids"]["data"], o["scores"]["data"], o["retrieval_scores"]["data"]
        perm = sort = rs_ok = True
        combined = ["label,user_id,user_group,age,item_id,item_cat"]
        for r, (names, sc) in enumerate(RET10):
            got = ids[r * 10:(r + 1) * 10]
            perm &= sorted(got) == sorted(names)
            sort &= all(a >= b for a, b in zip(probs[r * 10:(r + 1) * 10], probs[r * 10 + 1:(r + 1) * 10]))
            by_name = dict(zip(names, sc))
            rs_ok &= all(close(rscores[r * 10 + c], by_name.get(got[c], 1e30)) for c in range(10))
            u = USERS[r]
            combined += [f"0,{u[1]},{u[2]},{u[3]},{item},{ITEM_CAT[item]}" for item in got]
        check("ranked items are a permutation of the retrieved ones", perm, ids[:10])
        check("ranked items are sorted by ranker probability, best first", sort, probs[:10])
        check("retrieval_scores are each item's retrieval score", rs_ok, rscores[:10])
        with open(w("combined.csv"), "w") as f:
            f.write("\n".join(combined) + "\n")
        subprocess.run([EMBARK, "predict", "--model", w("rk"), "--data", w("combined.csv"), "--out",
                        w("combined.txt")], check=True)
        offline = [float(x) for x in open(w("combined.txt")).read().split()]
        check("ranker scores equal embark predict on the combined rows",
              len(offline) == len(probs) and all(close(a, b) for a, b in zip(probs, offline)),
              list(zip(probs, offline))[:5])
    finally:
        rp.terminate()
        rp.wait(timeout=30)

    # ---- reloads ---------------------------------------------------------
    # A model of another tower_dim no longer fits the index: refused.
    os.rename(w("served"), w("served_old"))
    shutil.copytree(w("tt8"), w("served"))
    check("a model of another tower_dim is refused",
          wait_for(lambda: (metric(port, 'embark_model_reloads_total{result="failure"}') or 0) >= 1),
          open(log).read()[-2000:])
    check("the refusal names tower_dim", "tower_dim" in open(log).read(), open(log).read()[-2000:])
    st, text = call(port, "POST", INFER, body(USERS))
    ok, why = equals_retrieved(text, RET10, 10) if st == 200 else (False, text)
    check("the old model keeps answering", ok, why)
    shutil.rmtree(w("served"))
    shutil.rmtree(w("served_old"))
    shutil.copytree(w("tt"), w("served"))
    check("a fitting model is loaded again", wait_for(lambda: metric(port, "embark_model_version") == 2),
          open(log).read()[-2000:])

    # A corrupted index file: refused, the old index keeps answering.
    with open(w("idx/hnsw.bin"), "r+b") as f:
        f.seek(os.path.getsize(w("idx/hnsw.bin")) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    check("a corrupted index is refused (metrics count it)",
          wait_for(lambda: (metric(port, 'embark_index_reloads_total{result="failure"}') or 0) >= 1),
          open(log).read()[-2000:])
    check("the refusal is logged with its reason", re.search(r"index .* refused, still serving index version 1: .*hnsw.bin",
                                                             open(log).read()) is not None, open(log).read()[-2000:])
    st, text = call(port, "POST", INFER, body(USERS))
    ok, why = equals_retrieved(text, RET10, 10) if st == 200 else (False, text)
    check("the old index keeps answering", ok, why)

    # A rebuilt index with one more item is picked up by polling, under
    # load: every request is answered, by the old index or the new one.
    statuses, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            statuses.append(call(port, "POST", INFER, body(USERS[:4]))[0])

    loader = threading.Thread(target=load)
    loader.start()
    subprocess.run([EMBARK, "index", "--model", w("tt"), "--items", w("items2.csv"), "--out", w("idx")], check=True,
                   stdout=subprocess.DEVNULL)
    check("a rebuilt index is picked up", wait_for(lambda: metric(port, "embark_index_version") == 2),
          open(log).read()[-2000:])
    time.sleep(0.3)
    stop.set()
    loader.join()
    check(f"every request during the swap is answered ({len(statuses)} requests)",
          len(statuses) > 0 and all(x == 200 for x in statuses), sorted(set(statuses)))
    st, text = call(port, "POST", INFER, body(USERS[:3], k=81))
    o = outputs(text) if st == 200 else {}
    check("the new index answers k = 81 with its new item", st == 200 and "i80" in o["item_ids"]["data"][:81] and
          json.loads(text)["parameters"]["index_version"] == "2", text[:300])
    subprocess.run([EMBARK, "retrieve", "--model", w("tt"), "--index", w("idx"), "--data", w("users.csv"), "--k", "10",
                    "--out", w("ret10b.tsv")], check=True)
    st, text = call(port, "POST", INFER, body(USERS))
    ok, why = equals_retrieved(text, retrieved("ret10b.tsv"), 10) if st == 200 else (False, text)
    check("the new index's answers equal embark retrieve on it", ok, why)

    # A new tower_dim: the index first (refused: it does not fit the model
    # served), then the model; the next model load takes both.
    os.rename(w("idx"), w("idx_old"))
    shutil.copytree(w("idx8"), w("idx"))
    check("an index of another dim is refused while the model is not",
          wait_for(lambda: (metric(port, 'embark_index_reloads_total{result="failure"}') or 0) >= 2),
          open(log).read()[-2000:])
    os.rename(w("served"), w("served_old"))
    shutil.copytree(w("tt8"), w("served"))
    check("the model of that dim then loads with it",
          wait_for(lambda: metric(port, "embark_model_version") == 3 and metric(port, "embark_index_version") == 3),
          open(log).read()[-2000:])
    subprocess.run([EMBARK, "retrieve", "--model", w("tt8"), "--index", w("idx8"), "--data", w("users.csv"), "--k",
                    "10", "--out", w("ret8.tsv")], check=True)
    st, text = call(port, "POST", INFER, body(USERS))
    ok, why = equals_retrieved(text, retrieved("ret8.tsv"), 10) if st == 200 else (False, text)
    check("the new model and index answer as embark retrieve", ok, why)
    # SIGHUP loads both again.
    p.send_signal(signal.SIGHUP)
    check("SIGHUP reloads the index too", wait_for(lambda: metric(port, "embark_index_version") == 4 and
                                                   metric(port, "embark_model_version") == 4),
          open(log).read()[-2000:])
finally:
    p.terminate()
    p.wait(timeout=30)

if FAILS:
    print(f"{len(FAILS)} check(s) failed", file=sys.stderr)
    sys.exit(1)
