"""The Python module against the engine and the CLI: numpy in and out, the same
bits as files and as `embark predict`, clear errors, the GIL released while
training, checkpoints interchangeable both ways, Ctrl-C, and the pictures."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import embark
from conftest import REPO, make_data, run, write_csv

# Small and exactly reproducible: one thread, fixed seed.
FAST = dict(model="deepfm", embedding_dim=8, bottom_mlp=[16], top_mlp=[16], batch_size=256, epochs=2,
            deterministic=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    y, x, ids = make_data(6000, seed=1)
    vy, vx, vids = make_data(2000, seed=2)
    train_csv, schema = write_csv(d / "train.csv", y, x, ids)
    valid_csv, _ = write_csv(d / "valid.csv", vy, vx, vids)
    return dict(train=embark.Dataset(y, x, ids), valid=embark.Dataset(vy, vx, vids), train_csv=train_csv,
                valid_csv=valid_csv, schema=schema, arrays=(y, x, ids), valid_arrays=(vy, vx, vids))


def dense_bytes(model_dir):
    with open(os.path.join(model_dir, "dense.bin"), "rb") as f:
        return f.read()


def test_numpy_trains_the_same_bits_as_the_file(data, tmp_path):
    for window in (0, 1000):
        a = embark.train(data["train"], valid=data["valid"], out=tmp_path / f"a{window}", shuffle_window=window, **FAST)
        f = embark.train(data["train_csv"], valid=data["valid_csv"], out=tmp_path / f"f{window}",
                         schema=data["schema"], shuffle_window=window, **FAST)
        assert dense_bytes(a.out) == dense_bytes(f.out)
        pa, pf = a.predict(data["valid"]), f.predict(data["valid_csv"])
        assert pa.dtype == np.float32 and pa.shape == (2000,)
        assert pa.tobytes() == pf.tobytes()
        assert a.history["records"] == [
            {k: v for k, v in r.items() if k != "seconds"} | {"seconds": a.history["records"][i]["seconds"]}
            for i, r in enumerate(f.history["records"])]
        assert a.report["valid"]["auc"] == f.report["valid"]["auc"] > 0.6


def test_the_cli_trains_the_same_model_and_predicts_the_same_bits(data, tmp_path, embark_bin):
    py = embark.train(data["train"], out=tmp_path / "py", **FAST)
    flags = ["--model", "deepfm", "--embedding-dim", "8", "--bottom-mlp", "16", "--top-mlp", "16", "--batch", "256",
             "--epochs", "2", "--deterministic"]
    run(embark_bin, "train", "--data", data["train_csv"], "--schema", data["schema"], "--out", str(tmp_path / "cli"),
        "--quiet", *flags)
    assert dense_bytes(py.out) == dense_bytes(tmp_path / "cli")
    # predict equals the CLI's, for the Python-trained model and the CLI's own.
    for model in (py.out, str(tmp_path / "cli")):
        run(embark_bin, "predict", "--model", model, "--data", data["valid_csv"], "--out", str(tmp_path / "p.txt"))
        cli = np.array([float(line) for line in open(tmp_path / "p.txt") if line.strip()], dtype=np.float32)
        loaded = embark.load(model)
        assert loaded.predict(data["valid"]).tobytes() == cli.tobytes()
        assert loaded.predict(data["valid_csv"]).tobytes() == cli.tobytes()
    assert py.predict(data["valid"]).tobytes() == cli.tobytes()


def test_checkpoints_are_interchangeable_with_the_cli(data, tmp_path, embark_bin):
    # Python -> CLI: eval gives the figures Model.evaluate gives.
    t = embark.train(data["train"], out=tmp_path / "py", **FAST)
    t.save(tmp_path / "saved")
    out = run(embark_bin, "eval", "--model", str(tmp_path / "saved"), "--data", data["valid_csv"], "--json").stdout
    cli = json.loads(out.strip().splitlines()[-1])
    mine = embark.load(tmp_path / "saved").evaluate(data["valid"])
    assert cli["auc"] == pytest.approx(mine["auc"], abs=1e-12)
    assert cli["logloss"] == pytest.approx(mine["logloss"], abs=1e-12)
    # CLI -> Python: resume a CLI checkpoint and train one more epoch from numpy.
    run(embark_bin, "train", "--data", data["train_csv"], "--schema", data["schema"], "--out", str(tmp_path / "cli"),
        "--quiet", "--model", "fm", "--epochs", "1", "--deterministic")
    more = embark.train(data["train"], out=tmp_path / "more", resume=tmp_path / "cli", epochs=2)
    assert more.info["epochs_done"] == 2 and more.info["model"] == "fm"
    assert more.report["samples"] == 6000  # one epoch more, not two


def test_a_model_trained_in_python_is_served(data, tmp_path, embark_bin):
    t = embark.train(data["train"], out=tmp_path / "m", **FAST)
    sys.path.insert(0, os.path.join(REPO, "bench"))
    import serve_util
    p, port = serve_util.start_server(embark_bin, t.out, ["--name", "embark"], str(tmp_path / "serve.log"))
    try:
        import http.client
        y, x, ids = data["valid_arrays"]
        rows = slice(0, 32)
        inputs = [{"name": f"d{i}", "datatype": "FP32", "shape": [32], "data": x[rows, i].tolist()} for i in range(3)]
        inputs += [{"name": f"c{i}", "datatype": "INT64", "shape": [32], "data": ids[rows, i].tolist()} for i in range(4)]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/v2/models/embark/infer", json.dumps({"inputs": inputs}),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200, body
        served = np.array(body["outputs"][0]["data"], dtype=np.float32)
        np.testing.assert_array_equal(served, t.predict(embark.Dataset(None, x[rows], ids[rows])))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


def test_wrong_input_raises_clear_exceptions(data, tmp_path):
    y, x, ids = data["arrays"]
    with pytest.raises(TypeError, match=r"dense: dtype float64; embark reads float32"):
        embark.Dataset(y, x.astype(np.float64), ids)
    with pytest.raises(TypeError, match=r"ids: dtype float32; ids are integers"):
        embark.Dataset(y, x, ids.astype(np.float32))
    with pytest.raises(ValueError, match=r"dense: shape \(6000,\); expected \[rows, columns\]"):
        embark.Dataset(y, x[:, 0], ids)
    with pytest.raises(ValueError, match=r"ids: 5999 rows, the other arrays have 6000"):
        embark.Dataset(y, x, ids[1:])
    with pytest.raises(TypeError, match=r"unknown parameter 'embeding_dim'; did you mean 'embedding_dim'\?"):
        embark.Trainer(data["train"], embeding_dim=8)
    with pytest.raises(embark.InvalidArgument, match=r"--epochs"):
        embark.Trainer(data["train"], epochs=-3)
    with pytest.raises(FileNotFoundError, match=r"nope.csv': no such file") as e:
        embark.Trainer(str(tmp_path / "nope.csv"))
    assert isinstance(e.value, embark.Error)
    with pytest.raises(embark.NotFound):
        embark.load(tmp_path / "no-model")
    t = embark.Trainer(data["train"], **FAST)
    # Columns that do not fit the model's data spec name what it reads.
    with pytest.raises(embark.InvalidArgument, match=r"ids: the model reads 4 categorical id column\(s\) \(c0, c1, c2, c3\)"):
        t.predict(embark.Dataset(None, x, ids[:, :3]))
    with pytest.raises(embark.InvalidArgument, match=r"row 3: label 0.5 is not 0 or 1"):
        bad = y.copy()
        bad[3] = 0.5
        t.evaluate(embark.Dataset(bad, x, ids))
    with pytest.raises(embark.InvalidArgument, match=r"step: training needs labels"):
        t.step(embark.Dataset(None, x, ids))
    # A bad line (the header, a good row, then one of the wrong width) names its file and line.
    lines = open(data["train_csv"]).read().splitlines()
    with open(tmp_path / "train.csv", "w") as f:
        f.write("\n".join(lines[:2] + ["1,2,3"] + lines[2:10]) + "\n")
    with pytest.raises(embark.Error, match=r"train.csv:3: expected 8 columns, found 3"):
        embark.train(str(tmp_path / "train.csv"), schema=data["schema"], **FAST)


def test_step_batches_and_history_callback(data, tmp_path):
    t = embark.Trainer(format="csv", schema=data["schema"], model="fm", deterministic=True)
    losses = [t.step(b)["loss"] for b in t.batches(data["train_csv"], batch_size=512)]
    assert len(losses) == 12 and losses[-1] < losses[0]
    assert t.info["step"] == 12
    s = t.step(data["valid"])
    assert s["samples"] == 2000 and s["step"] == 13
    # The callback sees each record; returning False stops the run cleanly.
    seen = []
    t = embark.Trainer(data["train"], valid=data["valid"], out=tmp_path / "m", eval_every=5, epochs=3, **{
        k: v for k, v in FAST.items() if k != "epochs"})
    records = t.fit(callback=lambda r: seen.append(r) or len(seen) < 2)
    assert records == seen and len(seen) == 2
    assert t.report["stopped"] and t.report["steps"] == 10
    assert [r["step"] for r in t.history["records"]] == [5, 10]
    assert all(0.5 < r["valid"]["auc"] < 1 and r["train_loss"] > 0 for r in records)
    info = embark.load(tmp_path / "m").info
    assert info["epochs_done"] == 0 and info["epoch_samples"] == 10 * 256
    # fit() again goes on from the cursor to the end of the third epoch.
    more = t.fit()
    assert not t.report["stopped"] and t.report["epochs_done"] == 3 and t.report["samples"] == 3 * 6000 - 10 * 256
    assert more[0]["step"] == 15 and t.history["records"][:2] == records


def test_the_gil_is_released_while_training(data, tmp_path):
    def count_for(seconds):
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            n += 1
        return n

    idle_rate = count_for(0.3) / 0.3
    counter = {"n": 0, "run": True}

    def spin():
        while counter["run"]:
            counter["n"] += 1

    th = threading.Thread(target=spin)
    th.start()
    t0 = time.perf_counter()
    embark.train(data["train"], out=tmp_path / "m", threads=1, model="deepfm", embedding_dim=16, epochs=4,
                 batch_size=128, eval_every=20, valid=data["valid"])
    seconds = time.perf_counter() - t0
    counter["run"] = False
    th.join()
    # Holding the GIL would starve the other thread; released, it runs on
    # the second core at nearly its idle rate.
    assert seconds > 0.3
    assert counter["n"] / seconds > 0.25 * idle_rate, (counter["n"], seconds, idle_rate)


CTRL_C = r"""
import json, sys, numpy as np, embark
sys.path.insert(0, sys.argv[2])
from conftest import make_data
y, x, ids = make_data(200000, seed=3)
t = embark.Trainer(embark.Dataset(y, x, ids), valid=embark.Dataset(*make_data(500, seed=4)), out=sys.argv[1],
                   model="deepfm", epochs=50, threads=1, eval_every=20)
try:
    t.fit(callback=lambda r: print("record", flush=True))
    print("finished")
except KeyboardInterrupt:
    print(json.dumps(t.info))
"""


def test_ctrl_c_stops_training_cleanly(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", CTRL_C, str(tmp_path / "m"), os.path.dirname(__file__)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "record\n"  # training is under way
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    info = json.loads(out.strip().splitlines()[-1])
    assert info["step"] >= 20 and info["epochs_done"] == 0
    # The checkpoint of the step it stopped at, with the epoch's cursor.
    saved = embark.load(tmp_path / "m").info
    assert saved["step"] == info["step"] and saved["epoch_samples"] == info["step"] * 2048


def test_report_draws_a_real_history(data, tmp_path, embark_bin):
    t = embark.train(data["train"], valid=data["valid"], out=tmp_path / "m", eval_every=10, **FAST)
    h = t.history
    assert h["model"] == "deepfm" and len(h["records"]) >= 4
    buckets = h["reliability"]["buckets"]
    assert sum(b["count"] for b in buckets) == 2000
    assert [b["mean_pred"] for b in buckets] == sorted(b["mean_pred"] for b in buckets)
    assert embark.load(t.out).history == h
    out = embark.plot_history(t, tmp_path / "report")
    page = open(out["html"]).read()
    for png in ("loss.png", "auc.png", "logloss.png", "calibration.png", "reliability.png"):
        path = tmp_path / "report" / png
        assert path.stat().st_size > 1000 and open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
        assert f'src="{png}"' in page
    p = subprocess.run([embark_bin, "report", "--model", t.out, "--out", str(tmp_path / "cli-report")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(tmp_path / "cli-report")) == sorted(os.listdir(tmp_path / "report"))


def test_params_come_from_the_one_declaration(embark_bin):
    names = [p["name"] for p in embark.params()]
    assert names == [line.split()[0] for line in run(embark_bin, "params").stdout.splitlines() if line.strip()]
    assert {"dense_lr", "embedding_dim", "epochs", "shuffle_window", "deterministic"} <= set(names)
    assert embark.__version__ == run(embark_bin, "--version").stdout.split()[-1]


def test_stop_from_another_thread(data, tmp_path):
    y, x, ids = make_data(100000, seed=5)
    t = embark.Trainer(embark.Dataset(y, x, ids), valid=data["valid"], out=tmp_path / "m", model="fm", epochs=20,
                       eval_every=10, threads=1)
    first = threading.Event()
    result = {}
    th = threading.Thread(target=lambda: result.setdefault("records", t.fit(callback=lambda r: first.set())))
    th.start()
    assert first.wait(60)
    t.stop()
    th.join(60)
    assert not th.is_alive() and t.report["stopped"] and t.report["epochs_done"] < 20
    assert embark.load(tmp_path / "m").info["step"] == t.report["steps"]


def test_model_save_never_replaces_what_is_not_a_checkpoint(data, tmp_path):
    t = embark.train(data["train"], out=tmp_path / "m", **FAST)
    model = embark.load(t.out)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(embark.InvalidArgument, match=r"exists and is not an embark checkpoint"):
        model.save(foreign)
    assert os.listdir(foreign) == ["notes.txt"] and (foreign / "notes.txt").read_text() == "keep me"
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
    # A new path, and then that copy replaced: both load and score alike.
    model.save(tmp_path / "copy")
    model.save(tmp_path / "copy")
    assert embark.load(tmp_path / "copy").predict(data["valid"]).tobytes() == model.predict(data["valid"]).tobytes()
