"""What the serving benchmarks (serve_slowloris.py, serve_soak.py) share:
a small model trained on generated data, a server started on a free port,
infer bodies, raw HTTP reads, RSS and the CPU model. Standard library only."""
import json
import os
import re
import select
import socket
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        return m.group(1).strip() if m else "unknown"
    except OSError:
        return "unknown"


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q / 100 * len(v)))]


def make_model(embark, work, name="ctr", seed=1):
    """Generated Criteo-shaped data and a small DLRM trained on it, as the
    serve end-to-end test trains it. Returns the validation rows."""
    os.makedirs(work, exist_ok=True)
    train, valid = os.path.join(work, "train.tsv"), os.path.join(work, "valid.tsv")
    if not os.path.exists(valid):
        subprocess.run([embark, "gen", "--rows", "20000", "--valid-rows", "3000", "--seed", "11", "--out", train,
                        "--valid-out", valid], check=True, stdout=subprocess.DEVNULL)
    out = os.path.join(work, name)
    if not os.path.isdir(out):
        subprocess.run([embark, "train", "--data", train, "--quiet", "--batch", "512", "--bottom-mlp", "32,16",
                        "--top-mlp", "32", "--embedding-dim", "8", "--threads", "2", "--model", "dlrm",
                        "--seed", str(seed), "--out", out], check=True, stdout=subprocess.DEVNULL)
    return [l.rstrip("\n").split("\t") for l in open(valid)]


def start_server(embark, model_dir, args, log_path):
    """Starts `embark serve` on a free port; returns (process, port)."""
    log = open(log_path, "a", buffering=1)  # line by line: tests read it while the server runs
    p = subprocess.Popen([embark, "serve", "--model", model_dir, "--port", "0", *args], stdout=log,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        log.write(line)
        m = re.search(r"http://[^:]+:(\d+)/", line)
        if m:
            threading.Thread(target=lambda: [log.write(l) for l in p.stderr], daemon=True).start()
            return p, int(m.group(1))
    p.kill()
    raise SystemExit("embark serve did not start; see " + log_path)


def infer_body(rows, rid=None):
    inputs = []
    for i in range(13):
        inputs.append({"name": f"I{i+1}", "datatype": "INT64", "shape": [len(rows)],
                       "data": [int(r[1 + i]) if r[1 + i] else None for r in rows]})
    for i in range(26):
        inputs.append({"name": f"C{i+1}", "datatype": "BYTES", "shape": [len(rows)], "data": [r[14 + i] for r in rows]})
    body = {"inputs": inputs}
    if rid is not None:
        body["id"] = rid
    return json.dumps(body).encode()


def read_response(sock, timeout=30):
    """One HTTP response off a raw socket: (status, head, body bytes), or
    (None, '', b'') if the connection closed or timed out first. Bytes read
    past it stay in sock._pending for the next call."""
    sock.settimeout(timeout)
    buf = getattr(sock, "_pending", b"")
    try:
        while b"\r\n\r\n" not in buf:
            d = sock.recv(65536)
            if not d:
                return None, "", b""
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            d = sock.recv(65536)
            if not d:
                return None, "", b""
            rest += d
    except (socket.timeout, OSError):
        return None, "", b""
    sock._pending = rest[n:]
    return int(head.split(b" ")[1]), head.decode("latin-1"), rest[:n]


def send_until_answered(sock, chunks):
    """Sends until the server answers (it may answer before the body ends),
    then reads the answer."""
    sock.setblocking(False)
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            r, w, _ = select.select([sock], [sock], [], 10)
            if r or not w:
                sock.setblocking(True)
                return read_response(sock)
            try:
                view = view[sock.send(view):]
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                sock.setblocking(True)
                return read_response(sock)
    sock.setblocking(True)
    return read_response(sock)


class Sock(socket.socket):
    """A socket that can carry bytes read ahead (read_response's _pending)."""


def connect(port, timeout=30):
    s = Sock(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s
