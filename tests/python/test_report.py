"""embark report: python/embark/report.py, and the CLI path when EMBARK_BIN names the binary."""

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "python" / "embark" / "report.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Loaded by path, as the CLI runs it (no embark package import).
_spec = importlib.util.spec_from_file_location("embark_report", SCRIPT)
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)


def record(step, epoch, loss, auc, logloss, calibration):
    return {"step": step, "epoch": epoch, "samples": step * 4096, "seconds": step * 0.12,
            "train_loss": loss, "train_calibration": 1.01,
            "valid": {"count": 10000, "auc": auc, "logloss": logloss, "ne": 0.9, "ctr": 0.25,
                      "mean_pred": 0.26, "calibration": calibration}}


def history():
    nulls = record(200, 1, None, None, None, None)
    nulls["train_calibration"] = None
    return {"version": 1, "model": "deepfm",
            "records": [record(100, 1, 0.50, 0.74, 0.48, 1.04), nulls,
                        record(300, 2, 0.46, 0.76, 0.47, 1.02), record(400, 2, 0.45, 0.77, 0.46, 1.01)],
            "reliability": {"step": 400, "buckets": [
                {"count": 500, "mean_pred": 0.031, "ctr": 0.028},
                {"count": 500, "mean_pred": 0.12, "ctr": 0.13},
                {"count": 500, "mean_pred": 0.45, "ctr": None},
                {"count": 500, "mean_pred": 0.61, "ctr": 0.6}]}}


def online_history():
    h = history()
    for r in h["records"]:
        r["window"] = {k: r["valid"][k] for k in ("count", "auc", "logloss", "calibration")}
        del r["valid"]
    del h["reliability"]
    return h


def checkpoint(tmp_path, h, name="ck"):
    d = tmp_path / name
    d.mkdir()
    (d / "history.json").write_text(json.dumps(h))
    return d


def check_report(result, out):
    """Every image is a PNG, and index.html shows exactly those."""
    assert Path(result["html"]) == out / "index.html"
    page = (out / "index.html").read_text()
    shown = set(re.findall(r'<img src="([^"]+)"', page))
    assert shown == {Path(p).name for p in result["images"]}
    for name in shown:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000, name
    assert sorted(os.listdir(out)) == sorted(shown | {"index.html"})
    return page


def run_script(*args, env=None):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env=env)


def test_draws_every_chart_from_a_checkpoint(tmp_path):
    ck = checkpoint(tmp_path, history())
    out = tmp_path / "report"
    page = check_report(report.plot_history(str(ck), str(out)), out)
    assert {Path(p).name for p in report.plot_history(ck, out)["images"]} == set(report.PLOTS)
    assert "deepfm" in page and str(ck) in page
    assert "<th>valid auc</th><td>0.77</td>" in page  # the last record's numbers
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary left


def test_online_history_draws_the_window(tmp_path):
    out = tmp_path / "report"
    result = report.plot_history(online_history(), out)
    page = check_report(result, out)
    assert {"loss.png", "auc.png", "logloss.png", "calibration.png"} <= {Path(p).name for p in result["images"]}
    assert "window auc" in page
    assert "No reliability.png" in page


def test_without_validation_no_auc_chart_and_the_page_says_so(tmp_path):
    h = history()
    for r in h["records"]:
        del r["valid"]
    out = tmp_path / "report"
    page = check_report(report.plot_history(h, out), out)
    assert not (out / "auc.png").exists() and not (out / "logloss.png").exists()
    assert "No auc.png: no validation or window AUC recorded" in page
    assert (out / "loss.png").exists()


def all_null(step):
    r = record(step, 1, None, None, None, None)
    r["train_calibration"] = None
    r["valid"] = {k: None for k in r["valid"]}
    return r


@pytest.mark.parametrize("records,charts", [
    ([], set()),
    ([all_null(100), all_null(200)], set()),
    ([record(100, 1, 0.5, 0.7, 0.5, 1.0)], {"loss.png", "auc.png", "logloss.png", "calibration.png"}),
])
def test_empty_all_null_and_single_record_histories(tmp_path, records, charts):
    out = tmp_path / "report"
    result = report.plot_history({"version": 1, "model": "lr", "records": records}, out)
    page = check_report(result, out)
    assert {Path(p).name for p in result["images"]} == charts
    assert ("holds no records" in page) == (not records)


def test_foreign_out_dir_is_refused_and_left_alone(tmp_path):
    ck = checkpoint(tmp_path, history())
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "loss.png").write_text("not a report's")
    r = run_script("--model", ck, "--out", out)
    assert r.returncode == 1
    assert r.stderr.startswith("embark report: error: ") and "notes.txt" in r.stderr
    assert sorted(os.listdir(out)) == ["loss.png", "notes.txt"]
    assert (out / "notes.txt").read_text() == "keep me" and (out / "loss.png").read_text() == "not a report's"


def test_replaces_a_previous_report(tmp_path):
    out = tmp_path / "report"
    report.plot_history(history(), out)
    assert (out / "auc.png").exists()
    h = history()
    for r in h["records"]:
        del r["valid"]
    (tmp_path / "keep.txt").write_text("x")
    check_report(report.plot_history(h, out), out)
    assert not (out / "auc.png").exists()  # the old report went whole
    assert sorted(os.listdir(tmp_path)) == ["keep.txt", "report"]


def test_a_failed_drawing_leaves_the_previous_report(tmp_path, monkeypatch):
    out = tmp_path / "report"
    report.plot_history(history(), out)
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}

    def fail(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "write_page", fail)
    with pytest.raises(report.ReportError, match="No space left"):
        report.plot_history(history(), out)
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before
    assert os.listdir(tmp_path) == ["report"]


def test_empty_out_dir_is_used(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    check_report(report.plot_history(history(), out), out)


@pytest.mark.parametrize("content,reason", [
    (None, "has no training history"),
    ("{\"version\": 1, ", "not valid JSON"),
    ("{\"version\": 2, \"records\": []}", "version 2 is not supported"),
])
def test_bad_history_is_one_clear_line(tmp_path, content, reason):
    ck = tmp_path / "ck"
    ck.mkdir()
    if content is not None:
        (ck / "history.json").write_text(content)
    out = tmp_path / "report"
    r = run_script("--model", ck, "--out", out)
    assert r.returncode == 1
    assert r.stderr.startswith("embark report: error: ") and r.stderr.count("\n") == 1
    assert str(ck / "history.json") in r.stderr and reason in r.stderr
    assert not out.exists() and os.listdir(tmp_path) == ["ck"]


def test_missing_matplotlib_names_the_package(tmp_path):
    fake = tmp_path / "fake"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    ck = checkpoint(tmp_path, history())
    r = run_script("--model", ck, "--out", tmp_path / "report", env={**os.environ, "PYTHONPATH": str(fake)})
    assert r.returncode == 1
    assert r.stderr.startswith("embark report: error: ") and "python3-matplotlib" in r.stderr
    assert not (tmp_path / "report").exists()


# ---- the CLI ------------------------------------------------------------------
EMBARK_BIN = os.environ.get("EMBARK_BIN")
needs_bin = pytest.mark.skipif(not EMBARK_BIN, reason="set EMBARK_BIN to the embark binary to test `embark report`")


def embark(*args, **env):
    return subprocess.run([EMBARK_BIN, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "EMBARK_PYTHON_DIR": str(REPO / "python"), **env})


@needs_bin
def test_cli_writes_the_report_with_spaces_in_paths(tmp_path):
    ck = checkpoint(tmp_path, history(), name="check point")
    out = tmp_path / "my report"
    r = embark("report", "--model", ck, "--out", out)
    assert r.returncode == 0, r.stderr
    check_report({"html": str(out / "index.html"), "images": [str(out / n) for n in report.PLOTS]}, out)


@needs_bin
def test_cli_passes_the_exit_status_and_message_through(tmp_path):
    (tmp_path / "ck").mkdir()
    r = embark("report", "--model", tmp_path / "ck", "--out", tmp_path / "report")
    assert r.returncode == 1
    assert r.stderr.startswith("embark report: error: ") and "no training history" in r.stderr


@needs_bin
def test_cli_names_the_places_it_looked(tmp_path):
    r = embark("report", "--model", tmp_path, "--out", tmp_path / "report", EMBARK_PYTHON_DIR=str(tmp_path))
    assert r.returncode != 0
    assert str(tmp_path / "embark" / "report.py") in r.stderr


@needs_bin
def test_cli_help_names_the_options():
    r = embark("report", "--help")
    assert r.returncode == 0 and "--model" in r.stdout and "--out" in r.stdout and "matplotlib" in r.stdout
