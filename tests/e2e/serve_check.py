"""HTTP checks of `embark serve`, driven by serve.sh (which trains the models).

Usage: serve_check.py EMBARK WORKDIR. WORKDIR holds valid.tsv, checkpoints
v1, v2 (DLRM, two seeds) and v3 (DeepFM), their predictions v1.txt.. and
`ctr`, a copy of v1 that the server serves and this script replaces.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time

# The serving benchmarks' helpers: starting a server, raw HTTP reads, RSS.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import serve_util as su  # noqa: E402

EMBARK, WORK = sys.argv[1], sys.argv[2]
FAILS = []


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok else " " + str(detail)[:500]), flush=True)
    if not ok:
        FAILS.append(what)


def start(*extra):
    return su.start_server(EMBARK, os.path.join(WORK, "ctr"), extra, os.path.join(WORK, "serve.log"))


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None, headers=None):
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data,
                                  headers={"Content-Type": "application/json", **(headers or {})})
                r = self.conn.getresponse()
                text = r.read().decode()
                return r.status, text
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt == 1:
                    raise


ROWS = [l.rstrip("\n").split("\t") for l in open(os.path.join(WORK, "valid.tsv"))]


def infer_body(rows, rid=None, nested=False):
    inputs = []
    for i in range(13):
        col = [int(r[1 + i]) if r[1 + i] else None for r in rows]
        inputs.append({"name": f"I{i+1}", "datatype": "INT64", "shape": [len(rows), 1] if nested else [len(rows)],
                       "data": [[v] for v in col] if nested else col})
    for i in range(26):
        inputs.append({"name": f"C{i+1}", "datatype": "BYTES", "shape": [len(rows)], "data": [r[14 + i] for r in rows]})
    body = {"inputs": inputs}
    if rid is not None:
        body["id"] = rid
    return body


def expected(version):
    return [l.strip() for l in open(os.path.join(WORK, f"v{version}.txt"))]


def formatted(resp):
    # The server prints floats as predict does (%.9g); compare the text.
    raw = re.search(r'"data":\[([^\]]*)\]', resp).group(1)
    return raw.split(",") if raw else []


# ---- conformance -----------------------------------------------------------
TOKEN = "s3cret-admin-token-0123456789"
with open(os.path.join(WORK, "admin.token"), "w") as f:
    f.write(TOKEN + "\n")
p, port = start("--poll", "0.2", "--max-body-mb", "0.25", "--timeout", "1",
                "--admin-token-file", os.path.join(WORK, "admin.token"))
c = Client(port)
s, t = c.call("GET", "/v2/health/live")
check("GET /v2/health/live is 200", s == 200 and json.loads(t)["live"] is True, t)
s, t = c.call("GET", "/v2/health/ready")
check("GET /v2/health/ready is 200", s == 200 and json.loads(t)["ready"] is True, t)
s, t = c.call("GET", "/v2")
check("GET /v2 names the server", s == 200 and json.loads(t)["name"] == "embark", t)
s, t = c.call("GET", "/v2/models/ctr")
meta = json.loads(t) if s == 200 else {}
check("GET /v2/models/ctr lists 39 inputs and the output",
      s == 200 and meta.get("name") == "ctr" and len(meta.get("inputs", [])) == 39 and
      meta["inputs"][0] == {"name": "I1", "datatype": "INT64", "shape": [-1]} and
      meta["inputs"][13] == {"name": "C1", "datatype": "BYTES", "shape": [-1]} and
      meta["outputs"][0]["name"] == "probability" and meta["versions"] == ["1"], t)
s, t = c.call("GET", "/v2/models/ctr/ready")
check("GET /v2/models/ctr/ready is 200", s == 200, t)
s, t = c.call("GET", "/v2/models/ctr/versions/1")
check("metadata by version", s == 200, t)
s, t = c.call("GET", "/v2/models/other")
check("unknown model metadata is 404", s == 404 and "error" in json.loads(t), t)

s, t = c.call("POST", "/v2/models/ctr/infer", infer_body(ROWS[:7], rid="req-1"))
r = json.loads(t) if s == 200 else {}
check("infer answers 7 probabilities with the id echoed",
      s == 200 and r.get("id") == "req-1" and r["model_name"] == "ctr" and r["model_version"] == "1" and
      r["outputs"][0]["shape"] == [7] and r["outputs"][0]["datatype"] == "FP32" and len(r["outputs"][0]["data"]) == 7, t)
s, t = c.call("POST", "/v2/models/ctr/versions/1/infer", infer_body(ROWS[:3], nested=True))
check("infer by version with [N, 1] nested data", s == 200 and formatted(t) == expected(1)[:3], t)

# ---- serve == predict, bit for bit, with concurrent requests of mixed sizes
want = expected(1)
got = [None] * len(ROWS)
errors = []


def worker(k):
    cl = Client(port)
    i, size = k * 7, 1 + k % 9
    while i < len(ROWS):
        chunk = ROWS[i:i + size]
        st, tx = cl.call("POST", "/v2/models/ctr/infer", infer_body(chunk))
        if st != 200:
            errors.append((st, tx))
            return
        got[i:i + len(chunk)] = formatted(tx)
        i += 8 * 7
        # cover the rows in between with the other workers' offsets
    return


threads = []
for k in range(8):
    th = threading.Thread(target=worker, args=(k,))
    threads.append(th)
    th.start()
for th in threads:
    th.join()
covered = [i for i in range(len(ROWS)) if got[i] is not None]
check("concurrent infer: no error", not errors, errors[:2])
check("serve equals predict bit for bit (%d rows, 8 connections, batches of 1-9 rows)" % len(covered),
      len(covered) > 500 and all(got[i] == want[i] for i in covered),
      [(i, got[i], want[i]) for i in covered if got[i] != want[i]][:3])
s, t = c.call("GET", "/metrics")
check("metrics: micro-batches held several requests",
      s == 200 and re.search(r'embark_batch_rows_bucket\{le="1"\} (\d+)', t) is not None and
      int(re.search(r"embark_batch_rows_count (\d+)", t).group(1)) > 0, t[:300])

# ---- bad requests ----------------------------------------------------------
def bad(what, body, status, needle, path="/v2/models/ctr/infer"):
    s, t = c.call("POST", path, body)
    try:
        msg = json.loads(t).get("error", "")
    except ValueError:
        msg = ""
    check(f"{what}: {status} naming '{needle}'", s == status and needle in msg, (s, t[:300]))


good = infer_body(ROWS[:2])


def mutate(fn):
    b = json.loads(json.dumps(good))
    fn(b)
    return b


bad("malformed JSON", b'{"inputs": [', 400, "not valid JSON")
bad("not an object", b"[1,2]", 400, "JSON object")
bad("no inputs", {}, 400, "inputs")
bad("missing input", mutate(lambda b: b["inputs"].pop(5)), 400, "I6")
bad("unknown input", mutate(lambda b: b["inputs"].append({"name": "zzz", "datatype": "FP32", "shape": [2], "data": [1, 2]})), 400, "zzz")
bad("input twice", mutate(lambda b: b["inputs"].append(dict(b["inputs"][0]))), 400, "twice")
bad("wrong datatype", mutate(lambda b: b["inputs"][0].update(datatype="TEXT")), 400, "I1")
bad("number for a BYTES input", mutate(lambda b: b["inputs"][14].update(data=[5, 6])), 400, "C2")
bad("string for a numeric datatype", mutate(lambda b: b["inputs"][2].update(data=["x", 1])), 400, "I3")
bad("shape/data mismatch", mutate(lambda b: b["inputs"][1].update(shape=[3])), 400, "I2")
bad("bad shape", mutate(lambda b: b["inputs"][1].update(shape=[2, 2])), 400, "I2")
bad("rows differ between inputs",
    mutate(lambda b: b["inputs"][3].update(shape=[1], data=[1])), 400, "I4")
bad("non-integer Criteo count", mutate(lambda b: b["inputs"][4].update(data=[1.5, 2])), 400, "I5")
bad("non-hex Criteo id", mutate(lambda b: b["inputs"][20].update(data=["zz", "ab"])), 400, "C8")
bad("unknown output", mutate(lambda b: b.update(outputs=[{"name": "logit"}])), 400, "logit")
bad("unknown model", good, 404, "nope", path="/v2/models/nope/infer")
bad("unknown version", good, 404, "version", path="/v2/models/ctr/versions/9/infer")
s, t = c.call("POST", "/v2/models/ctr/infer", b"{" + b" " * 300000 + b"}")
check("body over --max-body-mb is 413", s == 413 and "error" in json.loads(t), (s, t[:200]))
s, t = c.call("GET", "/v2/nothing/here")
check("unknown path is 404 with a JSON error", s == 404 and "error" in json.loads(t), (s, t))
s, t = c.call("POST", "/v2/models/ctr/infer", good)
check("still answering correctly after the bad requests", s == 200 and formatted(t) == want[:2], t)

# ---- request bodies are bounded however they are framed -------------------
def read_response(sock, timeout=10):
    """su.read_response with the body as text."""
    st, hd, body = su.read_response(sock, timeout)
    return st, hd, body.decode()


def stream_then_read(sock, chunks):
    """Sends the chunks until the server answers (it may answer before the
    body ends, as it should for a body over the limit), then reads it."""
    st, hd, body = su.send_until_answered(sock, chunks)
    return st, hd, body.decode()


rss0 = su.rss_mb(p.pid)
big = b"40000\r\n" + b" " * 0x40000 + b"\r\n"  # 256 KiB chunks: 256 of them are 64 MiB
sock = su.connect(port)
sock.sendall(b"POST /v2/models/ctr/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
st, hd, tx = stream_then_read(sock, [big] * 256 + [b"0\r\n\r\n"])
check("a chunked body over --max-body-mb is 413 with a JSON error",
      st == 413 and "larger than the limit" in json.loads(tx or "{}").get("error", ""), (st, tx[:200]))
check("... and its connection is closed", "connection: close" in hd.lower() and read_response(sock, 5)[0] is None, hd)
sock.close()
sock = su.connect(port)  # chunked within the limit is read and decoded
body = json.dumps(infer_body(ROWS[:2])).encode()
sock.sendall(b"POST /v2/models/ctr/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
             b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000]) for i in range(0, len(body), 1000)) +
             b"0\r\n\r\n")
st, hd, tx = read_response(sock)
check("a chunked body within the limit is answered", st == 200 and formatted(tx) == want[:2], (st, tx[:200]))
sock.close()
# A body without Content-Length or chunked framing is no body (RFC 9112):
# its bytes are read as the next request, refused, and never buffered.
# More than the 64 KiB head limit goes out with the request itself, so the
# server has a refusable next "request" whenever its first answer comes back.
sock = su.connect(port)
sock.sendall(b"POST /v2/models/ctr/infer HTTP/1.1\r\nHost: x\r\n\r\n{" + b" " * 0x20000)
st, hd, tx = stream_then_read(sock, [b" " * 0x100000] * 64)
check("an unframed body is not read as a body (400, empty body)", st == 400 and "not valid JSON" in tx, (st, tx[:200]))
st2, hd2, tx2 = read_response(sock)
check("... and its bytes are refused as a request (400 or 431), connection closed",
      st2 in (400, 431) and "connection: close" in hd2.lower(), (st2, tx2[:200]))
sock.close()
rss1 = su.rss_mb(p.pid)
check("RSS stays bounded after 128 MiB of refused bodies (%.0f -> %.0f MB)" % (rss0, rss1), rss1 - rss0 < 32,
      (rss0, rss1))
s, t = c.call("POST", "/v2/models/ctr/infer", good)
check("still answering after the refused bodies", s == 200 and formatted(t) == want[:2], t)

# ---- pipelining: requests written back to back, answered in order ----------
sock = su.connect(port)
body = json.dumps(infer_body(ROWS[:3])).encode()
sock.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n" +
             b"POST /v2/models/ctr/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: %d\r\n\r\n%s" % (len(body), body) +
             b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
answers = [read_response(sock) for _ in range(3)]
check("3 pipelined requests get 3 answers in order on one connection",
      [a[0] for a in answers] == [200, 200, 200] and json.loads(answers[0][2]) == {"ready": True} and
      formatted(answers[1][2]) == want[:3] and json.loads(answers[2][2]) == {"live": True},
      [(a[0], a[2][:80]) for a in answers])
sock.sendall(b"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n")
st, hd, tx = read_response(sock)
check("... and the connection stays open after them", st == 200 and json.loads(tx)["name"] == "embark", (st, tx))
sock.close()

# A slow client is cut off after --timeout; others are not affected.
sock = socket.create_connection(("127.0.0.1", port))
sock.sendall(b"POST /v2/models/ctr/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
sock.settimeout(10)
t0 = time.time()
try:
    closed = sock.recv(4096) is not None
except socket.timeout:
    closed = False
check("a stalled request is timed out (%.1fs)" % (time.time() - t0), closed and time.time() - t0 < 8)
sock.close()
s, t = Client(port).call("POST", "/v2/models/ctr/infer", good)
check("others are still served", s == 200, t)

# ---- hot reload under load -------------------------------------------------
stop = threading.Event()
results = {"ok": 0, "fail": [], "versions": set()}
lock = threading.Lock()
sample = ROWS[:4]
want_by_version = {"1": expected(1)[:4], "2": expected(2)[:4], "3": expected(3)[:4]}


def hammer():
    cl = Client(port)
    while not stop.is_set():
        st, tx = cl.call("POST", "/v2/models/ctr/infer", infer_body(sample))
        with lock:
            if st != 200:
                results["fail"].append((st, tx[:200]))
                continue
            r = json.loads(tx)
            v = r["model_version"]
            results["versions"].add(v)
            # version N of the server is the Nth checkpoint swapped in below
            mapping = {"1": "1", "2": "2", "3": "3", "4": "3"}
            if formatted(tx) != want_by_version[mapping.get(v, "3")]:
                results["fail"].append(("wrong answer for version", v))
            results["ok"] += 1


def swap_in(src):
    # What `embark train --out ctr` does: stage beside, then exchange.
    tmp = os.path.join(WORK, "ctr.incoming")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(os.path.join(WORK, src), tmp)
    old = os.path.join(WORK, "ctr.old")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(os.path.join(WORK, "ctr"), old)
    os.rename(tmp, os.path.join(WORK, "ctr"))


def wait_version(v, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, tx = Client(port).call("GET", "/v2/models/ctr")
        if st == 200 and json.loads(tx)["versions"] == [v]:
            return True
        time.sleep(0.05)
    return False


hammers = [threading.Thread(target=hammer) for _ in range(4)]
for h in hammers:
    h.start()
time.sleep(0.5)
swap_in("v2")
check("a new checkpoint in the directory is picked up (version 2)", wait_version("2"))
time.sleep(0.3)
# A broken checkpoint: one flipped byte in the embeddings.
broken = os.path.join(WORK, "broken")
shutil.copytree(os.path.join(WORK, "v3"), broken)
with open(os.path.join(broken, "embeddings.bin"), "r+b") as f:
    f.seek(100)
    b = f.read(1)
    f.seek(100)
    f.write(bytes([b[0] ^ 0xFF]))
swap_in("broken")
time.sleep(1.0)
s, t = c.call("POST", "/v2/repository/models/ctr/load")
check("the load endpoint refuses a request without the admin token", s == 401, (s, t))
s, t = c.call("POST", "/v2/repository/models/ctr/load", headers={"Authorization": "Bearer wrong-token-0123456789"})
check("the load endpoint refuses a wrong admin token", s == 401, (s, t))
s, t = c.call("POST", "/v2/repository/models/ctr/load", headers={"Authorization": "Bearer " + TOKEN})
check("loading a broken checkpoint is refused with the reason", s == 500 and "checksum" in t.lower(), (s, t))
check("the error body names the model, not the server's paths", WORK not in t and "<model ctr>" in t, t)
s, t = c.call("GET", "/v2/models/ctr")
check("the old version keeps serving", s == 200 and json.loads(t)["versions"] == ["2"], t)
swap_in("v3")
check("a good checkpoint after the broken one is picked up (version 3)", wait_version("3"))
os.kill(p.pid, signal.SIGHUP)
check("SIGHUP reloads (version 4)", wait_version("4"))
time.sleep(0.3)
stop.set()
for h in hammers:
    h.join()
check("hot reload under load: %d requests, none failed or answered wrongly" % results["ok"],
      results["ok"] > 100 and not results["fail"], results["fail"][:3])
check("requests were answered by versions 1 to 4", results["versions"] >= {"1", "2", "3", "4"}, results["versions"])
s, t = c.call("GET", "/metrics")
check("metrics count the failed reload", 'embark_model_reloads_total{result="failure"}' in t and
      re.search(r'embark_model_reloads_total\{result="failure"\} [1-9]', t) is not None, t[-400:])
check("metrics show the model version", "embark_model_version 4" in t, t[-400:])

# ---- graceful shutdown -----------------------------------------------------
inflight = {}


def big_request():
    st, tx = Client(port).call("POST", "/v2/models/ctr/infer", infer_body(ROWS[:400]))
    inflight["status"] = st


th = threading.Thread(target=big_request)
th.start()
time.sleep(0.02)
os.kill(p.pid, signal.SIGTERM)
th.join()
rc = p.wait(timeout=20)
check("SIGTERM: exit 0", rc == 0, rc)
check("the request in flight at SIGTERM was answered", inflight.get("status") == 200, inflight)

# ---- a slowloris: readiness keeps answering, drips are cut at the deadline -
class Drips:
    """`n` connections that each send a request head one header line every
    `every` seconds and never finish it; one the server answers or closes is
    opened again, as an attacker would. Runs on one thread."""

    def __init__(self, port, n, every):
        self.port, self.n, self.every = port, n, every
        self.stop = threading.Event()
        self.answers = {}  # status -> count of drip connections the server answered
        self.thread = threading.Thread(target=self.run)

    def open(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"POST /v2/models/ctr/infer HTTP/1.1\r\nHost: x\r\n")
        return s

    def cut(self, s):
        try:
            s.setblocking(False)
            head = s.recv(64)
        except OSError:
            head = b""
        status = head.split(b" ")[1].decode() if head.startswith(b"HTTP/1.1 ") else "closed"
        self.answers[status] = self.answers.get(status, 0) + 1
        s.close()

    def run(self):
        import select
        socks = [self.open() for _ in range(self.n)]
        k = 0
        while not self.stop.wait(self.every):
            k += 1
            readable, _, _ = select.select(socks, [], [], 0)
            for s in readable:
                self.cut(s)
                socks[socks.index(s)] = self.open()
            for i, s in enumerate(socks):
                try:
                    s.sendall(b"X-Drip-%d: %d\r\n" % (i, k))
                except OSError:
                    self.cut(s)
                    socks[i] = self.open()
        for s in socks:
            s.close()


p, port = start("--timeout", "5", "--request-timeout", "2", "--http-threads", "4")
drips = Drips(port, 140, 1.0)
drips.thread.start()
time.sleep(0.5)
probes, answered, t_end = 0, 0, time.time() + 6
while time.time() < t_end:
    probes += 1
    try:
        cl = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        cl.request("GET", "/v2/health/ready")
        r = cl.getresponse()
        answered += r.status == 200 and json.loads(r.read()) == {"ready": True}
        cl.close()
    except (OSError, http.client.HTTPException, ValueError):
        pass
    time.sleep(0.1)
drips.stop.set()
drips.thread.join()
check("140 dripping connections: %d of %d readiness probes answered (at least 80%%)" % (answered, probes),
      probes > 10 and answered >= 0.8 * probes, (answered, probes))
check("dripping connections are answered 408 at --request-timeout (%s)" % drips.answers,
      drips.answers.get("408", 0) >= 100, drips.answers)
s, t = Client(port).call("POST", "/v2/models/ctr/infer", good)
check("infer answers after the drips", s == 200 and formatted(t) == expected(3)[:2], (s, t[:200]))
os.kill(p.pid, signal.SIGTERM)
check("SIGTERM after the drips: exit 0", p.wait(timeout=20) == 0)

# ---- a memory budget: rows read through a RAM cache over a disk tier --------
p, port = start("--memory-budget", "16M", "--table-dir", os.path.join(WORK, "serve_tables"))
c = Client(port)
s, t = c.call("POST", "/v2/models/ctr/infer", infer_body(ROWS[:50]))
check("under --memory-budget, infer answers as predict does", s == 200 and formatted(t) == expected(3)[:50],
      (s, t[:200]))
s, t = c.call("GET", "/metrics")
misses = re.search(r'embark_table_cache_misses_total\{table="embeddings"\} (\d+)', t)
hits = re.search(r'embark_table_cache_hits_total\{table="embeddings"\} (\d+)', t)
check("/metrics reports the table cache's hits and misses", s == 200 and misses and hits and
      int(misses.group(1)) + int(hits.group(1)) > 0, t[-600:])
os.kill(p.pid, signal.SIGTERM)
check("SIGTERM under a memory budget: exit 0", p.wait(timeout=20) == 0)

if FAILS:
    print(f"{len(FAILS)} check(s) failed", flush=True)
    sys.exit(1)
print("all serve checks passed")
