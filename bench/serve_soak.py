#!/usr/bin/python3
"""A soak run of `embark serve`: for --seconds (default 600), valid infer
requests from several keep-alive clients, malformed ones from others (bad
JSON, wrong shapes, unknown models, bodies over the limit by Content-Length
and chunked, bodies without framing, garbage instead of HTTP, slow clients
dripping their head), and every --reload-every seconds a model reload
through the repository load endpoint (with the admin token), alternating
between two checkpoints. Every valid answer is compared with `embark
predict` for the version that answered it.

At the end it prints: valid requests and how many failed (any status but
200, a wrong or missing probability, a dropped connection), their p50/p99
latency, malformed requests and how many were answered 4xx (by kind),
reloads, the server's RSS after the warm-up and at the end with the growth,
and the CPU model. It exits 1 if a valid request failed, a malformed one
was not answered 4xx or a reload failed; it asserts no speed.

  bench/serve_soak.py [--embark build/embark] [--seconds 600] [--valid-clients 4] [--bad-clients 2]
                      [--slow-clients 2] [--reload-every 30] [--warmup 20] [--work DIR]
"""
import argparse
import http.client
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402

TOKEN = "soak-admin-token-0123456789abcdef"
MAX_BODY_MB = 4


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.valid_ok = 0
        self.valid_fail = []  # (what, detail)
        self.latency_ms = []
        self.bad = {}  # kind -> {status: count}
        self.reloads_ok = 0
        self.reloads_fail = []

    def bad_result(self, kind, status):
        with self.lock:
            k = self.bad.setdefault(kind, {})
            k[status] = k.get(status, 0) + 1


def formatted(text):
    m = re.search(r'"data":\[([^\]]*)\]', text)
    return m.group(1).split(",") if m and m.group(1) else []


def valid_client(port, cases, expected, stats, stop, seed):
    rng = random.Random(seed)
    conn = None
    while not stop.is_set():
        start, size, body = rng.choice(cases)
        t0 = time.time()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/v2/models/ctr/infer", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            text = r.read().decode()
            ms = (time.time() - t0) * 1000
            if r.status != 200:
                raise ValueError(f"status {r.status}: {text[:200]}")
            v = int(json.loads(text)["model_version"])
            want = expected[1 if v % 2 == 1 else 2][start:start + size]
            if formatted(text) != want:
                raise ValueError(f"version {v}: wrong probabilities for rows {start}..{start + size}")
            with stats.lock:
                stats.valid_ok += 1
                stats.latency_ms.append(ms)
        except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
            with stats.lock:
                stats.valid_fail.append((type(e).__name__, str(e)[:200]))
            if conn is not None:
                conn.close()
            conn = None


def bad_client(port, good_body, stats, stop, seed):
    rng = random.Random(seed)
    infer = b"POST /v2/models/ctr/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    wrong_shape = json.loads(good_body)
    wrong_shape["inputs"][3]["shape"] = [99]
    wrong_shape = json.dumps(wrong_shape).encode()
    over = MAX_BODY_MB * 2 << 20
    kinds = {
        "bad JSON": lambda: [infer + b"Content-Length: 12\r\n\r\n{\"inputs\": ["],
        "wrong shape": lambda: [infer + b"Content-Length: %d\r\n\r\n" % len(wrong_shape) + wrong_shape],
        "unknown model": lambda: [b"POST /v2/models/nope/infer HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(good_body)
                                  + good_body],
        "over the limit, Content-Length": lambda: [infer + b"Content-Length: %d\r\n\r\n" % over] +
                                                  [b" " * (1 << 20)] * (over >> 20),
        "over the limit, chunked": lambda: [infer + b"Transfer-Encoding: chunked\r\n\r\n"] +
                                           [b"100000\r\n" + b" " * (1 << 20) + b"\r\n"] * (over >> 20),
        "body without framing": lambda: [infer + b"\r\n" + good_body],
        "not HTTP": lambda: [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"],
        "bad chunk size": lambda: [infer + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"],
    }
    names = sorted(kinds)
    while not stop.is_set():
        kind = rng.choice(names)
        try:
            sock = su.connect(port)
            status, _, _ = su.send_until_answered(sock, kinds[kind]())
            sock.close()
        except OSError:
            status = None
        stats.bad_result(kind, status)


def slow_client(port, stats, stop):
    """Sends a request head one header line every 0.5 s until answered."""
    while not stop.is_set():
        status = None
        try:
            sock = su.connect(port)
            sock.sendall(b"POST /v2/models/ctr/infer HTTP/1.1\r\nHost: x\r\n")
            for k in range(120):
                r, _, _ = select.select([sock], [], [], 0.5)
                if r:
                    break
                sock.sendall(b"X-Slow: %d\r\n" % k)
            status, _, _ = su.read_response(sock, timeout=10)
            sock.close()
        except OSError:
            pass
        stats.bad_result("slow client", status)


def swap_in(work, src):
    """What `embark train --out ctr` does: stage beside, then exchange."""
    tmp, old, live = (os.path.join(work, n) for n in ("ctr.incoming", "ctr.old", "ctr"))
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(os.path.join(work, src), tmp)
    shutil.rmtree(old, ignore_errors=True)
    os.rename(live, old)
    os.rename(tmp, live)


def reloader(port, work, every, stats, stop):
    n = 0
    while not stop.wait(every):
        n += 1
        swap_in(work, "v2" if n % 2 == 1 else "v1")  # version n+1: odd versions are v1
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("POST", "/v2/repository/models/ctr/load", headers={"Authorization": "Bearer " + TOKEN})
            r = c.getresponse()
            text = r.read().decode()
            ok = r.status == 200 and json.loads(text)["version"] == str(n + 1)
            with stats.lock:
                if ok:
                    stats.reloads_ok += 1
                else:
                    stats.reloads_fail.append((r.status, text[:200]))
            c.close()
        except (OSError, http.client.HTTPException, ValueError) as e:
            with stats.lock:
                stats.reloads_fail.append((type(e).__name__, str(e)[:200]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embark", default=os.path.join(su.ROOT, "build", "embark"))
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--valid-clients", type=int, default=4)
    ap.add_argument("--bad-clients", type=int, default=2)
    ap.add_argument("--slow-clients", type=int, default=2)
    ap.add_argument("--reload-every", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=20, help="seconds before the starting RSS is taken")
    ap.add_argument("--work", default=None,
                    help="scratch directory (default: a new temporary one); the script writes train.tsv, valid.tsv, "
                         "serve.log and the model directories ctr*, v1, v2 there")
    ap.add_argument("--serve-arg", action="append", default=[],
                    help="extra flag for embark serve, e.g. --serve-arg=--http-threads=16")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="embark-soak-")
    rows = su.make_model(a.embark, work, "v1", seed=1)
    su.make_model(a.embark, work, "v2", seed=2)
    expected = {}
    for v in (1, 2):
        out = os.path.join(work, f"v{v}.txt")
        if not os.path.exists(out):
            subprocess.run([a.embark, "predict", "--model", os.path.join(work, f"v{v}"), "--data",
                            os.path.join(work, "valid.tsv"), "--out", out], check=True)
        expected[v] = [l.strip() for l in open(out)]
    shutil.rmtree(os.path.join(work, "ctr"), ignore_errors=True)
    shutil.copytree(os.path.join(work, "v1"), os.path.join(work, "ctr"))
    token = os.path.join(work, "admin.token")
    with open(token, "w") as f:
        f.write(TOKEN + "\n")
    rng = random.Random(7)
    cases = []
    for _ in range(300):
        size = rng.choice([1, 1, 1, 2, 4, 8, 16, 64])
        start = rng.randrange(0, len(rows) - size)
        cases.append((start, size, su.infer_body(rows[start:start + size])))

    args = ["--poll", "0", "--admin-token-file", token, "--max-body-mb", str(MAX_BODY_MB), "--request-timeout", "3",
            "--timeout", "5", *a.serve_arg]
    p, port = su.start_server(a.embark, os.path.join(work, "ctr"), args, os.path.join(work, "serve.log"))
    stats, stop = Stats(), threading.Event()
    threads = [threading.Thread(target=valid_client, args=(port, cases, expected, stats, stop, i))
               for i in range(a.valid_clients)]
    threads += [threading.Thread(target=bad_client, args=(port, cases[0][2], stats, stop, 100 + i))
                for i in range(a.bad_clients)]
    threads += [threading.Thread(target=slow_client, args=(port, stats, stop)) for _ in range(a.slow_clients)]
    threads.append(threading.Thread(target=reloader, args=(port, work, a.reload_every, stats, stop)))
    t_start = time.time()
    for t in threads:
        t.start()
    time.sleep(min(a.warmup, a.seconds))
    rss_start, rss_max = su.rss_mb(p.pid), 0.0
    timeline = [(time.time() - t_start, rss_start)]
    with stats.lock:
        warm_valid = stats.valid_ok
    while time.time() < t_start + a.seconds:
        time.sleep(min(5, max(0.0, t_start + a.seconds - time.time())))
        rss = su.rss_mb(p.pid)
        rss_max = max(rss_max, rss)
        if time.time() - t_start >= timeline[-1][0] + 30:
            timeline.append((time.time() - t_start, rss))
    rss_end = su.rss_mb(p.pid)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.time() - t_start
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=60)

    bad_total = sum(sum(k.values()) for k in stats.bad.values())
    bad_4xx = sum(n for k in stats.bad.values() for s, n in k.items() if s is not None and 400 <= s < 500)
    print(f"cpu: {su.cpu_model()}")
    print(f"server: {a.embark} serve {' '.join(args)}")
    print(f"duration: {elapsed:.0f} s; {a.valid_clients} valid, {a.bad_clients} malformed and {a.slow_clients} slow "
          f"clients; a reload every {a.reload_every:g} s")
    print(f"valid requests: {stats.valid_ok + len(stats.valid_fail)}, failed: {len(stats.valid_fail)}"
          + (f" (first: {stats.valid_fail[:3]})" if stats.valid_fail else ""))
    print("valid latency ms: p50 %.2f  p99 %.2f  (%d after the warm-up)" %
          (su.percentile(stats.latency_ms, 50), su.percentile(stats.latency_ms, 99), stats.valid_ok - warm_valid))
    print(f"malformed requests: {bad_total}, answered 4xx: {bad_4xx}")
    for kind in sorted(stats.bad):
        print(f"  {kind}: {dict(sorted(stats.bad[kind].items(), key=lambda kv: str(kv[0])))}")
    print(f"reloads: {stats.reloads_ok} ok, {len(stats.reloads_fail)} failed"
          + (f" ({stats.reloads_fail[:3]})" if stats.reloads_fail else ""))
    growth = 100 * (rss_end - rss_start) / rss_start if rss_start else float("nan")
    print(f"RSS: {rss_start:.1f} MB after the {a.warmup:g} s warm-up, {rss_end:.1f} MB at the end "
          f"({growth:+.1f}%), {rss_max:.1f} MB at most")
    print("RSS every 30 s: " + ", ".join(f"{t:.0f}s {m:.0f}MB" for t, m in timeline))
    print(f"server exit on SIGTERM: {rc}")
    sys.exit(0 if not stats.valid_fail and bad_4xx == bad_total and not stats.reloads_fail and rc == 0 else 1)


if __name__ == "__main__":
    main()
