#!/usr/bin/python3
"""Readiness of `embark serve` under a slowloris: N connections each send a
request head one header line every few seconds and never finish it (a
connection the server answers or closes is opened again at once, as an
attacker would), while a probe asks GET /v2/health/ready on a new
connection every 0.2 s. Prints the fraction of probes answered 200 within
the probe timeout, their latency percentiles, what the dripping
connections got, and the CPU model. A benchmark: it prints, it asserts
nothing.

  bench/serve_slowloris.py [--embark build/embark] [--connections 140] [--seconds 30]
                           [--drip-every 2] [--probe-every 0.2] [--probe-timeout 2]
                           [--work DIR] [--serve-arg=--http-threads=128 ...]
"""
import argparse
import http.client
import json
import os
import select
import signal
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402


class Drips:
    def __init__(self, port, n, every):
        self.port, self.n, self.every = port, n, every
        self.stop = threading.Event()
        self.outcomes = {}  # what ended a dripping connection: a status, or "closed"
        self.opened = 0
        self.thread = threading.Thread(target=self.run)

    def open(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(b"POST /v2/models/ctr/infer HTTP/1.1\r\nHost: x\r\n")
        self.opened += 1
        return s

    def end(self, s):
        try:
            s.setblocking(False)
            head = s.recv(64)
        except OSError:
            head = b""
        what = head.split(b" ")[1].decode() if head.startswith(b"HTTP/1.1 ") else "closed"
        self.outcomes[what] = self.outcomes.get(what, 0) + 1
        s.close()

    def run(self):
        socks = []
        for _ in range(self.n):
            try:
                socks.append(self.open())
            except OSError:
                self.outcomes["connect failed"] = self.outcomes.get("connect failed", 0) + 1
        k = 0
        # Each connection drips at its own phase within the interval.
        while not self.stop.is_set():
            k += 1
            for i in range(len(socks)):
                if self.stop.wait(self.every / max(1, len(socks))):
                    break
                s = socks[i]
                readable, _, _ = select.select([s], [], [], 0)
                try:
                    if readable:
                        raise OSError("answered")
                    s.sendall(b"X-Drip-%d: %d\r\n" % (i, k))
                except OSError:
                    self.end(s)
                    try:
                        socks[i] = self.open()
                    except OSError:
                        self.outcomes["connect failed"] = self.outcomes.get("connect failed", 0) + 1
        for s in socks:
            s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embark", default=os.path.join(su.ROOT, "build", "embark"))
    ap.add_argument("--connections", type=int, default=140)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--drip-every", type=float, default=2.0)
    ap.add_argument("--probe-every", type=float, default=0.2)
    ap.add_argument("--probe-timeout", type=float, default=2.0)
    ap.add_argument("--work", default=None,
                    help="scratch directory (default: a new temporary one); the script writes train.tsv, valid.tsv, "
                         "serve.log and the model directory ctr there")
    ap.add_argument("--serve-arg", action="append", default=[],
                    help="extra flag for embark serve, e.g. --serve-arg=--request-timeout=5")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="embark-slowloris-")
    su.make_model(a.embark, work)
    p, port = su.start_server(a.embark, os.path.join(work, "ctr"), a.serve_arg, os.path.join(work, "serve.log"))
    rss0 = su.rss_mb(p.pid)
    drips = Drips(port, a.connections, a.drip_every)
    drips.thread.start()
    time.sleep(a.drip_every)  # every drip connection is open and has sent its first lines
    lat, probes, refused = [], 0, 0
    t_end = time.time() + a.seconds
    while time.time() < t_end:
        probes += 1
        t0 = time.time()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=a.probe_timeout)
            c.request("GET", "/v2/health/ready")
            r = c.getresponse()
            if r.status == 200 and json.loads(r.read()) == {"ready": True}:
                lat.append((time.time() - t0) * 1000)
            c.close()
        except (OSError, http.client.HTTPException, ValueError):
            refused += 1
        time.sleep(max(0.0, a.probe_every - (time.time() - t0)))
    rss1 = su.rss_mb(p.pid)
    drips.stop.set()
    drips.thread.join()
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=60)

    print(f"cpu: {su.cpu_model()}")
    print(f"server: {a.embark} {' '.join(a.serve_arg)}")
    print(f"drips: {a.connections} connections, a header line each every {a.drip_every:g} s; "
          f"{drips.opened} opened in all; how they ended: {drips.outcomes}")
    print(f"probes: {probes} over {a.seconds:g} s, one every {a.probe_every:g} s, timeout {a.probe_timeout:g} s")
    print(f"answered 200: {len(lat)} ({100 * len(lat) / max(1, probes):.1f}%); failed or timed out: {refused}")
    if lat:
        print("probe latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f" %
              (su.percentile(lat, 50), su.percentile(lat, 90), su.percentile(lat, 99), max(lat)))
    print(f"server RSS: {rss0:.0f} MB before the drips, {rss1:.0f} MB at the end; exit {rc} on SIGTERM")


if __name__ == "__main__":
    main()
