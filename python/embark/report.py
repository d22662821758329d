"""Pictures of a training run: `embark report --model DIR --out DIR`.

Reads the checkpoint's history.json (format: docs/report.md) and writes PNG
charts and an index.html into the output directory. Run as a script by path
(the embark CLI does), so it imports nothing from the embark package: only
the standard library and matplotlib (Agg, through its Figure API, so that it
never touches pyplot's global backend of a process that imports it).
"""

import argparse
import html
import json
import math
import os
import shutil
import sys

HISTORY_FILE = "history.json"
HISTORY_VERSION = 1
PLOTS = ("loss.png", "auc.png", "logloss.png", "calibration.png", "reliability.png")
REPORT_FILES = frozenset(PLOTS + ("index.html",))


class ReportError(Exception):
    """An expected failure: bad input, refused output directory."""


# ---- reading ----------------------------------------------------------------
def load_history(model_dir):
    path = os.path.join(model_dir, HISTORY_FILE)
    if not os.path.isdir(model_dir):
        raise ReportError(f"{model_dir}: no such directory")
    try:
        with open(path, encoding="utf-8") as f:
            history = json.load(f)
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file: the checkpoint has no training history "
                          "(written before embark kept history, or not a checkpoint directory)") from None
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not valid JSON: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: cannot read: {e}") from None
    check_history(history, path)
    return history


def check_history(history, where):
    if not isinstance(history, dict):
        raise ReportError(f"{where}: not a history: a JSON object was expected")
    version = history.get("version")
    if version != HISTORY_VERSION:
        raise ReportError(f"{where}: history version {json.dumps(version)} is not supported "
                          f"(this report reads version {HISTORY_VERSION})")
    if not isinstance(history.get("records", []), list):
        raise ReportError(f"{where}: 'records' is not a list")


def num(value):
    """A number or NaN: null, absent and non-numbers are all NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def field(obj, key):
    return num(obj.get(key)) if isinstance(obj, dict) else math.nan


def evaluation(record):
    """The record's held-out figures: validation, or an online run's window."""
    if not isinstance(record, dict):
        return None
    return record.get("valid") if record.get("valid") is not None else record.get("window")


def eval_label(records):
    return "validation" if any(isinstance(r, dict) and r.get("valid") is not None for r in records) \
        else "progressive window"


def calibration(ev):
    c = field(ev, "calibration")
    if math.isnan(c) and field(ev, "ctr") > 0:
        c = field(ev, "mean_pred") / field(ev, "ctr")
    return c


def has_data(values):
    return any(math.isfinite(v) for v in values)


# ---- drawing ----------------------------------------------------------------
def new_figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def epoch_marks(ax, records, steps):
    """A faint vertical line at each epoch's end: its last record (a run
    records every epoch's end), before the first record of the next."""
    for rec, nxt, step in zip(records, records[1:], steps):
        if field(nxt, "epoch") > field(rec, "epoch") and math.isfinite(step):
            ax.axvline(step, color="0.85", linewidth=0.8, zorder=0)


def step_chart(path, title, ylabel, records, steps, lines, hline=None):
    fig = new_figure()
    ax = fig.add_subplot()
    epoch_marks(ax, records, steps)
    for label, values, style in lines:
        points = [(x, y) for x, y in zip(steps, values) if math.isfinite(x) and math.isfinite(y)]
        if points:  # a missing value is skipped, the line joins its neighbours
            ax.plot(*zip(*points), style, label=label, markersize=3)
    if hline is not None:
        ax.axhline(hline, color="0.4", linewidth=0.8, linestyle=":")
    ax.set(title=title, xlabel="step", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def reliability_chart(path, buckets, step):
    points = [(field(b, "mean_pred"), field(b, "ctr"), field(b, "count")) for b in buckets]
    points = [p for p in points if math.isfinite(p[0]) and math.isfinite(p[1])]
    if not points:
        return False
    pred, ctr, count = zip(*points)
    fig = new_figure()
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]})
    lo, hi = min(pred + ctr), max(pred + ctr)
    log = lo > 0 and hi / lo >= 10  # small click rates spread over decades
    ref = [lo, hi] if lo < hi else [0, max(hi, 1e-9)]
    top.plot(ref, ref, color="0.5", linestyle=":", label="perfect calibration")
    top.plot(pred, ctr, "o-", markersize=4, label="buckets")
    if log:
        from matplotlib import ticker
        top.set_xscale("log")
        top.set_yscale("log")
        for axis in (top.xaxis, top.yaxis):
            axis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    suffix = f" (model of step {int(step)})" if math.isfinite(step) else ""
    top.set(title="Reliability" + suffix, xlabel="mean predicted probability", ylabel="observed click rate")
    top.grid(alpha=0.3, which="both")
    top.legend()
    bottom.bar(range(1, len(count) + 1), [0 if math.isnan(c) else c for c in count], color="0.6")
    bottom.xaxis.get_major_locator().set_params(integer=True)
    bottom.set(xlabel="bucket (by predicted probability)", ylabel="samples")
    fig.tight_layout()
    fig.savefig(path)
    return True


def draw(history, out):
    """Writes the charts that have data into `out`; returns {png: why it was skipped} for those without."""
    records = history.get("records") or []
    steps = [field(r, "step") for r in records]
    evs = [evaluation(r) for r in records]
    label = eval_label(records)
    train_loss = [field(r, "train_loss") for r in records]
    ev = {k: [field(e, k) for e in evs] for k in ("auc", "logloss")}
    calib = [calibration(e) for e in evs]
    train_calib = [field(r, "train_calibration") for r in records]
    skipped = {}

    def chart(name, why_not, values, *args, **kwargs):
        if has_data(values):
            step_chart(os.path.join(out, name), *args, **kwargs)
        else:
            skipped[name] = why_not

    chart("loss.png", "no training loss recorded", train_loss, "Training loss", "logloss", records, steps,
          [("train loss", train_loss, "o-")])
    chart("auc.png", "no validation or window AUC recorded", ev["auc"], f"AUC ({label})", "AUC", records, steps,
          [(label, ev["auc"], "o-")])
    chart("logloss.png", "no validation or window logloss recorded", ev["logloss"], f"Logloss ({label})", "logloss",
          records, steps, [(label, ev["logloss"], "o-"), ("train loss", train_loss, "o--")])
    chart("calibration.png", "no calibration recorded", calib + train_calib, "Calibration (mean prediction / CTR)",
          "calibration", records, steps, [(label, calib, "o-"), ("training", train_calib, "o--")], hline=1.0)
    rel = history.get("reliability")
    buckets = rel.get("buckets") if isinstance(rel, dict) else None
    if not (isinstance(buckets, list) and
            reliability_chart(os.path.join(out, "reliability.png"), buckets, field(rel, "step"))):
        skipped["reliability.png"] = "no reliability buckets recorded"
    return skipped


# ---- the page ---------------------------------------------------------------
def fmt(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}" if math.isfinite(value) else "n/a"


def last_record_rows(records):
    if not records or not isinstance(records[-1], dict):
        return []
    rec = records[-1]
    rows = [(k, rec.get(k)) for k in ("step", "epoch", "samples", "seconds", "train_loss", "train_calibration")]
    ev = evaluation(rec)
    if isinstance(ev, dict):
        name = "valid" if rec.get("valid") is not None else "window"
        rows += [(f"{name} {k}", v) for k, v in ev.items()]
    return rows


def write_page(path, history, title_dir, skipped):
    e = html.escape
    family = history.get("model") if isinstance(history.get("model"), str) else "unknown model"
    title = f"embark report: {title_dir} ({family})" if title_dir else f"embark report: {family}"
    records = history.get("records") or []
    parts = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">", f"<title>{e(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:760px;margin:2em auto}"
             "td,th{padding:2px 12px;text-align:left}img{max-width:100%}</style>",
             "</head><body>", f"<h1>{e(title)}</h1>"]
    rows = last_record_rows(records)
    if rows:
        parts.append(f"<h2>Last record ({len(records)} in all)</h2><table>")
        parts += [f"<tr><th>{e(k)}</th><td>{e(fmt(v))}</td></tr>" for k, v in rows]
        parts.append("</table>")
    else:
        parts.append("<p>The history holds no records.</p>")
    for name in PLOTS:
        if name in skipped:
            parts.append(f"<p>No {e(name)}: {e(skipped[name])}.</p>")
        else:
            parts.append(f"<p><img src=\"{e(name)}\" alt=\"{e(name)}\"></p>")
    parts.append("</body></html>\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))


# ---- the output directory ---------------------------------------------------
def check_out_dir(out):
    """`out` may be absent, empty, or a previous report: never anyone else's files."""
    if not os.path.lexists(out):
        return
    if os.path.islink(out) or not os.path.isdir(out):
        raise ReportError(f"{out}: exists and is not a directory")
    for name in sorted(os.listdir(out)):
        if name not in REPORT_FILES or not os.path.isfile(os.path.join(out, name)):
            raise ReportError(f"{out}: refusing to write here: it holds {name!r}, which a report does not write "
                              "(give a new or empty directory, or a previous report's)")


def plot_history(source, out_dir):
    """Charts of a training run. `source`: a checkpoint directory (its history.json) or a
    loaded history dict. Writes PNGs and index.html into `out_dir` (absent, empty or a previous
    report; replaced whole, never half-written). Returns {"html": path, "images": [paths]}."""
    if isinstance(source, dict):
        check_history(source, "history")
        history, title_dir = source, None
    else:
        source = os.fspath(source)
        history, title_dir = load_history(source), source
    try:
        import matplotlib  # noqa: F401  (checked before anything is written)
    except ImportError:
        raise ReportError(f"matplotlib is not installed for {sys.executable}: "
                          "install python3-matplotlib (Debian: apt-get install python3-matplotlib)") from None
    out = os.path.normpath(os.fspath(out_dir))
    check_out_dir(out)
    parent, base = os.path.split(os.path.abspath(out))
    tmp = os.path.join(parent, f".{base}.tmp-{os.getpid()}")
    old = os.path.join(parent, f".{base}.old-{os.getpid()}")
    try:
        os.makedirs(parent, exist_ok=True)
        os.mkdir(tmp)
        skipped = draw(history, tmp)
        write_page(os.path.join(tmp, "index.html"), history, title_dir, skipped)
        if os.path.lexists(out):
            os.rename(out, old)
            try:
                os.rename(tmp, out)
            except OSError:
                os.rename(old, out)
                raise
            shutil.rmtree(old)
        else:
            os.rename(tmp, out)
    except OSError as e:
        raise ReportError(f"{out}: cannot write the report: {e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    images = [os.path.join(out, name) for name in PLOTS if name not in skipped]
    return {"html": os.path.join(out, "index.html"), "images": images}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="embark report",
                                     description="Draw a checkpoint's training history (history.json) as PNG "
                                                 "charts and an index.html")
    parser.add_argument("--model", required=True, metavar="DIR", help="checkpoint directory")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output directory: new, empty, or a previous report (replaced)")
    args = parser.parse_args(argv)
    try:
        result = plot_history(args.model, args.out)
    except ReportError as e:
        print(f"embark report: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {result['html']} and {len(result['images'])} chart(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
