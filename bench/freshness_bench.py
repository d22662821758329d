#!/usr/bin/python3
"""Freshness end to end: a sample appended to the stream -> a served prediction that reflects its update.

`embark train --stream` follows a growing file that a feeder appends background traffic to at a steady rate;
`embark serve` serves its --out directory and applies each delta as it appears. After each probe has ended,
the bench waits a random part of a delta period (so that probes do not lock onto the delta cadence), then
appends one probe sample whose C1 value is an id never seen before, and from then on asks the server,
every 50 ms, for the prediction of that sample and of the same sample with another never-seen id (the
control). Until the probe's row has been trained, written in a delta and applied by the server, both ids read
as absent rows and the two predictions are equal; the first answer in which they differ ends the probe. The
time from the append to that answer is its freshness. Prints p50, p90, p99 and max over the probes, with the
settings (--delta-every, --max-batch-delay, serve --poll) that bound it.

Usage: bench/freshness_bench.py [WORK_DIR]   (env: PROBES=40, RATE=4000 lines/s,
       DELTA_EVERY=10s, MODEL=deepfm, EMBARK=build/embark)
"""
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMBARK = os.environ.get("EMBARK", os.path.join(ROOT, "build", "embark"))
WORK = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("TMPDIR", "/tmp"), "embark-freshness-bench")
PROBES = int(os.environ.get("PROBES", "40"))
RATE = int(os.environ.get("RATE", "4000"))
DELTA_EVERY = os.environ.get("DELTA_EVERY", "10s")
MODEL = os.environ.get("MODEL", "deepfm")
os.makedirs(WORK, exist_ok=True)
os.chdir(WORK)
print(f"CPU: {su.cpu_model()}, {os.cpu_count()} cores")

if not os.path.exists("background.tsv"):
    subprocess.run([EMBARK, "gen", "--rows", "400000", "--out", "background.tsv", "--vocab", "200000", "--seed", "3"],
                   check=True, stdout=subprocess.DEVNULL)
background = open("background.tsv").read().splitlines()
for p in ["grow.tsv"]:
    open(p, "w").close()
subprocess.run(["rm", "-rf", "model"], check=True)

stop = threading.Event()
append_lock = threading.Lock()


def append(lines):
    with append_lock, open("grow.tsv", "a") as f:
        f.write("".join(l + "\n" for l in lines))


def feeder():
    i = 0
    step = max(1, RATE // 10)
    while not stop.is_set():
        append(background[i:i + step])
        i = (i + step) % (len(background) - step)
        time.sleep(0.1)


append(background[:20000])
trainer = subprocess.Popen([EMBARK, "train", "--stream", "--data", "grow.tsv", "--out", "model", "--format", "criteo",
                            "--model", MODEL, "--delta-every", DELTA_EVERY, "--snapshot-every", "1h",
                            "--report-every", "5s", "--json", "--quiet"], stdout=open("train.jsonl", "w"))
threading.Thread(target=feeder, daemon=True).start()
while not os.path.exists("model/MANIFEST.json"):
    time.sleep(0.1)
server, port = su.start_server(EMBARK, "model", ["--name", "ctr", "--poll", "1"], os.path.join(WORK, "serve.log"))
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)


def predict(rows):
    global conn
    try:
        conn.request("POST", "/v2/models/ctr/infer", su.infer_body(rows), {"Content-Type": "application/json"})
        r = conn.getresponse()
    except (OSError, http.client.HTTPException):
        # The server closes a connection idle for its --timeout (5 s): open another.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v2/models/ctr/infer", su.infer_body(rows), {"Content-Type": "application/json"})
        r = conn.getresponse()
    data = json.loads(r.read())
    if r.status != 200:
        raise RuntimeError(data)
    return data["outputs"][0]["data"]


rng = random.Random(5)
period = float(DELTA_EVERY[:-1]) if DELTA_EVERY.endswith("s") else 10.0
lat = []
time.sleep(2)
for k in range(PROBES):
    base = background[rng.randrange(len(background))].split("\t")
    probe, control = list(base), list(base)
    probe[14] = f"f{k:03x}{rng.randrange(1 << 16):04x}"
    control[14] = f"e{k:03x}{rng.randrange(1 << 16):04x}"
    probe[0] = "1"
    # A random phase against the trainer's delta cadence: otherwise each probe would start just after the
    # delta that ended the one before, and every probe would wait a whole period.
    time.sleep(rng.uniform(0, period))
    a, b = predict([probe, control])
    if a != b:
        print(f"probe {k}: differs before it was sent; skipped")
        continue
    t0 = time.time()
    append(["\t".join(probe)])
    while True:
        a, b = predict([probe, control])
        if a != b:
            lat.append(time.time() - t0)
            break
        if time.time() - t0 > 120:
            lat.append(float("inf"))
            break
        time.sleep(0.05)

conn.request("GET", "/metrics")
metrics = conn.getresponse().read().decode()
stop.set()
server.terminate()
trainer.terminate()
server.wait()
trainer.wait()

lat.sort()
def pct(p):
    return su.percentile(lat, p)
print(f"model {MODEL}, --delta-every {DELTA_EVERY}, --max-batch-delay 1 (default), serve --poll 1; "
      f"background {RATE} samples/s")
print(f"\n| probes | p50 s | p90 s | p99 s | max s |\n|---:|---:|---:|---:|---:|")
print(f"| {len(lat)} | {pct(50):.2f} | {pct(90):.2f} | {pct(99):.2f} | {lat[-1]:.2f} |")
for line in metrics.splitlines():
    if line.startswith("embark_delta") and not line.startswith("#"):
        print(line)
