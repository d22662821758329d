"""HTTP checks of `embark serve` on an online model directory, driven by
serve_deltas.sh (which trains the checkpoints).

Usage: serve_deltas_check.py EMBARK DELTA_WRITER WORKDIR. WORKDIR holds
train.tsv, valid.tsv, `online` (the served directory, deltas are written into
it) and `next` (a later snapshot, swapped in); the last part runs
`embark train --stream` into `live` and serves that.
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

EMBARK, WRITER, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
ONLINE = os.path.join(WORK, "online")
FAILS = []


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok else " " + str(detail)[:600]), flush=True)
    if not ok:
        FAILS.append(what)


ROWS = [l.rstrip("\n").split("\t") for l in open(os.path.join(WORK, "valid.tsv"))][:400]
BODY = su.infer_body(ROWS)


def call(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    return r.status, text


def answers(port):
    s, t = call(port, "POST", "/v2/models/online/infer", BODY)
    if s != 200:
        return None, s, t
    r = json.loads(t)
    raw = re.search(r'"data":\[([^\]]*)\]', t).group(1)
    return raw.split(","), r["model_version"], t


def predict(tag):
    """`embark predict --model online` on the same rows: snapshot plus deltas."""
    data, out = os.path.join(WORK, tag + ".tsv"), os.path.join(WORK, tag + ".txt")
    with open(data, "w") as f:
        f.writelines("\t".join(r) + "\n" for r in ROWS)
    subprocess.run([EMBARK, "predict", "--model", ONLINE, "--data", data, "--out", out], check=True)
    return [l.strip() for l in open(out)]


def metric(port, name):
    s, t = call(port, "GET", "/metrics")
    m = re.search(r"^" + re.escape(name) + r" ([-0-9.e+]+)$", t, re.M)
    return float(m.group(1)) if m else None


def wait_metric(port, name, value, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metric(port, name) == value:
            return True
        time.sleep(0.05)
    return False


def write_deltas(directory, count, rows, every):
    out = subprocess.run([WRITER, directory, str(count), str(rows), str(every)], check=True, capture_output=True,
                         text=True).stdout
    return [json.loads(l) for l in out.splitlines()]


p, port = su.start_server(EMBARK, ONLINE, ["--poll", "0.2"], os.path.join(WORK, "serve.log"))
want0 = predict("p0")
got, version, _ = answers(port)
check("the snapshot is served as predict answers it", got == want0 and version == "1", (version, got and got[:3]))

# ---- deltas applied in place under load ------------------------------------
stop = threading.Event()
load = {"ok": 0, "fail": []}


def hammer(model="online"):
    """Infer requests back to back until `stop`, counted in `load`."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = su.infer_body(ROWS[:8])
    while not stop.is_set():
        c.request("POST", f"/v2/models/{model}/infer", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status == 200:
            load["ok"] += 1
        else:
            load["fail"].append(r.status)


hammers = [threading.Thread(target=hammer) for _ in range(4)]
for h in hammers:
    h.start()
written = write_deltas(ONLINE, 3, 3000, 0.5)
check("delta_writer wrote deltas 1 to 3", [d["seq"] for d in written] == [1, 2, 3], written)
check("the server applies them in place (embark_delta_seq 3)", wait_metric(port, "embark_delta_seq", 3))
time.sleep(0.3)
stop.set()
for h in hammers:
    h.join()
check("requests answered while deltas applied: %d, none failed" % load["ok"], load["ok"] > 20 and not load["fail"],
      load["fail"][:5])
want3 = predict("p3")
got, version, _ = answers(port)
check("after the deltas, serve equals predict on snapshot + deltas bit for bit (%d rows)" % len(ROWS),
      got == want3, [(i, a, b) for i, (a, b) in enumerate(zip(got or [], want3)) if a != b][:3])
check("... which differ from the snapshot's", want3 != want0)
check("... and the version is still 1 (deltas are no reload)", version == "1", version)
check("metrics: 3 deltas applied, none failed, model version 1",
      metric(port, "embark_deltas_applied_total") == 3 and metric(port, "embark_deltas_failed_total") == 0 and
      metric(port, "embark_model_version") == 1)
age, sample_age, took = (metric(port, n) for n in
                         ("embark_delta_age_seconds", "embark_delta_sample_age_seconds", "embark_delta_apply_seconds"))
check("metrics: the delta's age (%s s), its newest sample's age (%s s), the apply's time (%s s)" % (age, sample_age, took),
      age is not None and 0 <= age < 60 and sample_age is not None and sample_age >= 0 and
      took is not None and 0 <= took < 10)

# ---- a corrupted delta is refused; serving goes on ---------------------------
# Written into a copy, corrupted there, then renamed into the served
# directory whole, so the server never sees it uncorrupted.
scratch = os.path.join(WORK, "scratch")
shutil.copytree(ONLINE, scratch)
write_deltas(scratch, 1, 3000, 0)
victim = os.path.join(scratch, "deltas", "000000000004", "embeddings.bin")
with open(victim, "r+b") as f:
    f.seek(os.path.getsize(victim) // 2)
    b = f.read(1)
    f.seek(os.path.getsize(victim) // 2)
    f.write(bytes([b[0] ^ 0xFF]))
os.rename(os.path.join(scratch, "deltas", "000000000004"), os.path.join(ONLINE, "deltas", "000000000004"))
check("the corrupted delta is refused and counted (embark_deltas_failed_total 1)",
      wait_metric(port, "embark_deltas_failed_total", 1))
time.sleep(1.0)  # several polls: it is not tried again
check("... once: not tried again at every poll", metric(port, "embark_deltas_failed_total") == 1)
check("... the model served is still snapshot + deltas 1-3", metric(port, "embark_delta_seq") == 3)
got, version, _ = answers(port)
check("... and answers as before, bit for bit", got == want3, got and got[:3])
log = open(os.path.join(WORK, "serve.log")).read()
refusals = re.findall(r"delta 4 of .* refused.*checksum", log)
check("the refusal is logged once, with the reason", len(refusals) == 1, log[-800:])

# ---- a new snapshot recovers -------------------------------------------------
old = os.path.join(WORK, "online.old")
os.rename(ONLINE, old)
os.rename(os.path.join(WORK, "next"), ONLINE)
check("a new snapshot is loaded in full (version 2)", wait_metric(port, "embark_model_version", 2))
want_next = predict("pn")
got, version, _ = answers(port)
check("... and served as predict answers it", got == want_next and version == "2", (version, got and got[:3]))
check("... at delta 0", metric(port, "embark_delta_seq") == 0)

os.kill(p.pid, signal.SIGTERM)
check("SIGTERM: exit 0", p.wait(timeout=20) == 0)

# ---- under a memory budget: deltas go into the tiered store's cache ----------
p, port = su.start_server(EMBARK, ONLINE, ["--poll", "0.2", "--memory-budget", "16M", "--table-dir",
                                           os.path.join(WORK, "serve_tables")], os.path.join(WORK, "serve.log"))
write_deltas(ONLINE, 2, 3000, 0)
check("under --memory-budget, deltas 1-2 of the new snapshot are applied", wait_metric(port, "embark_delta_seq", 2))
want = predict("pb")
got, version, _ = answers(port)
check("... and serve equals predict on snapshot + deltas", got == want and want != want_next, got and got[:3])
os.kill(p.pid, signal.SIGTERM)
check("SIGTERM under a memory budget: exit 0", p.wait(timeout=20) == 0)
# ---- following `embark train --stream` -------------------------------------
# The trainer reads a named pipe fed 500 rows every 0.25 s and writes a delta
# every second; the server follows it under load. Then the stream pauses:
# once its last delta is served, serve equals predict on the directory; the
# trainer's final snapshot (SIGTERM) is loaded in full.
LIVE = os.path.join(WORK, "live")
pipe = os.path.join(WORK, "pipe")
os.mkfifo(pipe)
feed_rows = open(os.path.join(WORK, "train.tsv")).readlines()[:10000]
trainer = subprocess.Popen([EMBARK, "train", "--stream", "--data", pipe, "--out", LIVE, "--format", "criteo",
                            "--model", "fm", "--embedding-dim", "8", "--batch-size", "500", "--delta-every", "1s",
                            "--max-batch-delay", "0.2", "--report-every", "200ms", "--json"],
                           stdout=open(os.path.join(WORK, "stream.jsonl"), "w"),
                           stderr=open(os.path.join(WORK, "stream.err"), "w"))


def feed():
    with open(pipe, "w") as f:
        for i in range(0, len(feed_rows), 500):
            f.writelines(feed_rows[i:i + 500])
            f.flush()
            time.sleep(0.25)
        # Held open: the stream pauses rather than ends.
        time.sleep(8)


feeder = threading.Thread(target=feed)
feeder.start()
deadline = time.time() + 30
while time.time() < deadline and not os.path.exists(os.path.join(LIVE, "MANIFEST.json")):
    time.sleep(0.05)
p, port = su.start_server(EMBARK, LIVE, ["--poll", "0.2"], os.path.join(WORK, "serve.log"))
BODY = su.infer_body(ROWS)
stop.clear()
load = {"ok": 0, "fail": []}

# One request first, alone: under TSan, the first requests of a fresh server
# arriving at once on two handler threads are reported inside the
# uninstrumented libcpp-httplib (its lazily built statics), which has
# nothing to do with deltas; serve_check.py starts the same way.
call(port, "POST", "/v2/models/live/infer", BODY)
hammers = [threading.Thread(target=hammer, args=("live",)) for _ in range(2)]
for h in hammers:
    h.start()
ages, seqs = [], []
t_end = time.time() + 5.5
while time.time() < t_end:
    a, q = metric(port, "embark_delta_sample_age_seconds"), metric(port, "embark_delta_seq")
    if a is not None:
        ages.append(a)
    seqs.append(q)
    time.sleep(0.1)
stop.set()
for h in hammers:
    h.join()


def trained_samples():
    n = 0
    for line in open(os.path.join(WORK, "stream.jsonl")):
        try:
            n = max(n, json.loads(line).get("samples", 0))
        except ValueError:
            pass
    return n


deadline = time.time() + 30
while time.time() < deadline and trained_samples() < len(feed_rows):
    time.sleep(0.1)
time.sleep(2.0)  # the last delta (due 1 s after the last step) is written
last = max([int(n) for n in os.listdir(os.path.join(LIVE, "deltas")) if n.isdigit()] or [0])
check("the stream trained every row fed (%d) and wrote deltas (the last: %d)" % (trained_samples(), last),
      trained_samples() == len(feed_rows) and last >= 3)
check("the server followed the trainer's deltas in place (seq %s .. %s)" % (seqs[0], seqs[-1]),
      seqs[-1] is not None and seqs[-1] >= 2 and metric(port, "embark_model_version") == 1)
check("freshness while the stream ran: newest trained sample served at most %.2f s old (deltas every 1 s, poll 0.2 s)"
      % max(ages or [99]), ages and max(ages) < 5, ages[-10:])
check("requests answered while following the stream: %d, none failed" % load["ok"], load["ok"] > 10 and not load["fail"],
      load["fail"][:5])
check("the last delta (%d) is served" % last, wait_metric(port, "embark_delta_seq", last))
ONLINE = LIVE
want = predict("pl")
s_, t_ = call(port, "POST", "/v2/models/live/infer", BODY)
got = re.search(r'"data":\[([^\]]*)\]', t_).group(1).split(",") if s_ == 200 else None
check("serve equals predict on the stream's snapshot + deltas, bit for bit", got == want,
      [(i, a, b) for i, (a, b) in enumerate(zip(got or [], want)) if a != b][:3])
check("no delta refused", metric(port, "embark_deltas_failed_total") == 0)
trainer.send_signal(signal.SIGTERM)
check("the stream trainer stops on SIGTERM (exit 0)", trainer.wait(timeout=60) == 0)
feeder.join()
check("its final snapshot is loaded in full (version 2)", wait_metric(port, "embark_model_version", 2))
want = predict("pf")
s_, t_ = call(port, "POST", "/v2/models/live/infer", BODY)
got = re.search(r'"data":\[([^\]]*)\]', t_).group(1).split(",") if s_ == 200 else None
check("... and served as predict answers it", got == want, got and got[:3])
os.kill(p.pid, signal.SIGTERM)
check("SIGTERM: exit 0", p.wait(timeout=20) == 0)

if FAILS:
    print(f"{len(FAILS)} check(s) failed", flush=True)
    sys.exit(1)
print("all serve delta checks passed")
