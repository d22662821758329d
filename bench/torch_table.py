"""The embark-vs-PyTorch training tables, from compare_torch.sh's runs.

Usage: torch_table.py COMPARE_TORCH.json   (one JSON line per run)
Prints the tables, then checks equal AUC: for every model and every thread
count that both embark and PyTorch fp32 ran, |AUC(embark) - AUC(PyTorch
fp32)| <= AUC_TOLERANCE, and embark bf16 (--dense-precision bf16) within
AUC_TOLERANCE of embark fp32. Exits 3, naming each model, thread count and gap
that fails, after printing the tables. report.py imports it for the suite.

Per model, against PyTorch's best thread count in fp32 and in bf16 autocast
(best: the most samples/s); every row has samples/s, its ratio to those two,
validation AUC and calibration (mean prediction / mean label), CPU-seconds
per million training samples (process user + system time of the training
loop, all threads), and the AUC difference to PyTorch fp32 at the same
thread count.
"""
import json
import sys

AUC_TOLERANCE = 0.002


def precision(r):
    return r.get("precision", "fp32")


def framework(r):
    return "embark" if r["framework"] == "embark" else "pytorch"


def cpu_per_million(r):
    return r["cpu_seconds"] * 1e6 / r["samples"] if r.get("cpu_seconds") and r["samples"] else None


def select(runs, model, fw, prec="fp32"):
    """The runs of one model, framework and precision, by thread count."""
    return {r["threads"]: r for r in runs if r["model"] == model and framework(r) == fw and precision(r) == prec}


def best(by_threads):
    return max(by_threads.values(), key=lambda r: r["samples_per_sec"]) if by_threads else None


def machine_line(runs):
    r = runs[0]
    line = f"CPU: {r.get('cpu_model', 'unknown')} (lscpu), {r.get('cpus', '?')} CPUs available"
    torch = next((x for x in runs if framework(x) == "pytorch"), None)
    if torch:
        line += f"; PyTorch {torch['framework'].split()[-1]}, ATen CPU capability {torch.get('cpu_capability')}"
    bf16 = next((x for x in runs if precision(x) == "bf16" and x.get("bf16_matmul")), None)
    if bf16:
        line += f"; PyTorch's bf16 linear layers: oneDNN {bf16['bf16_matmul']} ({bf16.get('bf16_isa')})"
    emb = next((x for x in runs if framework(x) == "embark" and x.get("onednn_isa")), None)
    if emb:
        line += f"; embark: oneDNN ISA {emb['onednn_isa']}, bf16 products by {emb.get('bf16_method')}"
    return line


def models(runs):
    seen = []
    for r in runs:
        if r["model"] not in seen:
            seen.append(r["model"])
    return seen


def fmt(v, spec, none="—"):
    return none if v is None or v != v else format(v, spec)


def tables(runs):
    """Returns (markdown lines, rows for bench.json, summaries, AUC failures)."""
    md, rows, summaries, failures = [], [], [], []
    for model in models(runs):
        emb, emb16, fp32, bf16 = (select(runs, model, "embark"), select(runs, model, "embark", "bf16"),
                                  select(runs, model, "pytorch"), select(runs, model, "pytorch", "bf16"))
        eb, fb, bb = best(emb), best(fp32), best(bf16)
        eb_any = best({**{("fp32", t): r for t, r in emb.items()}, **{("bf16", t): r for t, r in emb16.items()}})
        title = f"#### {model}: embark against PyTorch"
        if fb:
            title += f" (best fp32: {fb['threads']} thread{'s' if fb['threads'] > 1 else ''}"
            if bb:
                title += f", best bf16 autocast: {bb['threads']} thread{'s' if bb['threads'] > 1 else ''}"
            title += ")"
        md += [title, "",
               "| run | threads | samples/s | vs PyTorch fp32 best | vs PyTorch bf16 best | AUC | calibration | "
               "CPU-s per 1M samples | ΔAUC vs PyTorch fp32, same threads |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, fw, prec, by in (("embark", "embark", "fp32", emb), ("embark bf16", "embark", "bf16", emb16),
                                   ("PyTorch fp32", "pytorch", "fp32", fp32),
                                   ("PyTorch bf16 autocast", "pytorch", "bf16", bf16)):
            top = best(by)
            for t in sorted(by):
                r = by[t]
                ref = fp32.get(t)
                d = None if (fw, prec) == ("pytorch", "fp32") or ref is None else r["auc"] - ref["auc"]
                row = {"model": model, "framework": fw, "precision": prec, "threads": t,
                       "best_thread_count": r is top, "samples_per_sec": r["samples_per_sec"],
                       "vs_pytorch_fp32_best": r["samples_per_sec"] / fb["samples_per_sec"] if fb else None,
                       "vs_pytorch_bf16_best": r["samples_per_sec"] / bb["samples_per_sec"] if bb else None,
                       "auc": r["auc"], "calibration": r.get("calibration"),
                       "cpu_seconds_per_million_samples": cpu_per_million(r), "auc_diff_vs_pytorch_fp32": d}
                rows.append(row)
                label = name + (" (best)" if r is top and len(by) > 1 else "")
                md.append(f"| {label} | {t} | {r['samples_per_sec']:,.0f} | "
                          f"{fmt(row['vs_pytorch_fp32_best'], '.2f')}x | {fmt(row['vs_pytorch_bf16_best'], '.2f')}x | "
                          f"{r['auc']:.4f} | "
                          f"{fmt(row['calibration'], '.3f')} | {fmt(row['cpu_seconds_per_million_samples'], ',.0f')} | "
                          f"{fmt(d, '+.4f')} |")
                if (fw, prec) == ("embark", "fp32") and ref is not None and abs(d) > AUC_TOLERANCE:
                    failures.append(f"{model} at {t} thread{'s' if t > 1 else ''}: embark AUC {r['auc']:.4f}, "
                                    f"PyTorch fp32 {ref['auc']:.4f}, |ΔAUC| {abs(d):.4f} > {AUC_TOLERANCE}")
                if (fw, prec) == ("embark", "bf16") and t in emb and abs(r["auc"] - emb[t]["auc"]) > AUC_TOLERANCE:
                    failures.append(f"{model} at {t} thread{'s' if t > 1 else ''}: embark bf16 AUC {r['auc']:.4f}, "
                                    f"embark fp32 {emb[t]['auc']:.4f}, |ΔAUC| {abs(r['auc'] - emb[t]['auc']):.4f} > "
                                    f"{AUC_TOLERANCE}")
        if eb and fb:
            equal = not any(f.startswith(model + " ") for f in failures)
            s = {"model": model, "embark_best_threads": eb["threads"], "pytorch_fp32_best_threads": fb["threads"],
                 "vs_pytorch_fp32_best": eb["samples_per_sec"] / fb["samples_per_sec"], "equal_auc": equal}
            text = (f"embark's best ({eb['threads']} thread{'s' if eb['threads'] > 1 else ''}) is "
                    f"{s['vs_pytorch_fp32_best']:.2f}x PyTorch's best fp32")
            if bb:
                s.update(pytorch_bf16_best_threads=bb["threads"], embark_fastest=f"{precision(eb_any)}, "
                         f"{eb_any['threads']} thread{'s' if eb_any['threads'] > 1 else ''}",
                         vs_pytorch_bf16_best=eb_any["samples_per_sec"] / bb["samples_per_sec"])
                text += (f"; embark's fastest ({s['embark_fastest']}) is {s['vs_pytorch_bf16_best']:.2f}x its best "
                         "bf16 autocast")
            text += ", at equal AUC." if equal else f", but not at equal AUC (|ΔAUC| > {AUC_TOLERANCE}: see below)."
            summaries.append(s)
            md += ["", text]
        md.append("")
    md.append("(CPU-seconds: user + system time of the whole process over the training loop, every thread; "
              "embark's includes its parser threads, PyTorch's data is in memory before its clock starts. "
              "ΔAUC: against PyTorch fp32 at the same thread count; the check requires "
              f"|ΔAUC| <= {AUC_TOLERANCE} for embark fp32 at every thread count both ran, and embark bf16 within "
              f"{AUC_TOLERANCE} of embark fp32. PyTorch starts from embark's initial weights.)")
    return md, rows, summaries, failures


def main():
    with open(sys.argv[1]) as f:
        runs = [json.loads(l) for l in f if l.strip()]
    md, _, _, failures = tables(runs)
    print(machine_line(runs) + "\n")
    print("\n".join(md))
    sys.stdout.flush()
    if not failures:
        print(f"\nAUC check passed: embark within {AUC_TOLERANCE} of PyTorch fp32 for every model and thread count.")
    for f in failures:
        print(f"\nAUC check FAILED: {f}")
        print(f"compare_torch: AUC check failed: {f}", file=sys.stderr)
    return 3 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
