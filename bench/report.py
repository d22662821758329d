"""Turns one bench/run.sh run into the README's table and bench.json.

Usage: report.py WORK   (the folder run.sh wrote: compare_torch.json,
machine.json, parse.json, embedding.json)

Every ratio divides two figures measured in the same run. The targets are
issues 3's and 16's; each row says whether the run met it.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_table  # noqa: E402  (the training tables, shared with compare_torch.sh)

work = sys.argv[1]


def lines(name):
    with open(os.path.join(work, name)) as f:
        return [json.loads(l) for l in f if l.strip()]


runs = lines("compare_torch.json")
machine = lines("machine.json")
parse = lines("parse.json")
with open(os.path.join(work, "embedding.json")) as f:
    micro = {b["name"]: b for b in json.load(f)["benchmarks"]}


def run(framework, model, threads, precision="fp32"):
    for r in runs:
        if (r["framework"].startswith(framework) and r["model"] == model and r["threads"] == threads
                and torch_table.precision(r) == precision):
            return r
    raise KeyError((framework, model, threads))


def sgemm(threads):
    return next(m for m in machine if "sgemm_square_gflops" in m and m["threads"] == threads)


def gather(threads, floats):
    return next(m["gather_rows_per_sec"] for m in machine
                if "gather_rows_per_sec" in m and m["threads"] == threads and m["row_floats"] == floats)


def rate(name):
    return micro[name]["rows/s"]


out = {"machine": {"cpu_model": runs[0].get("cpu_model"), "cpus": runs[0].get("cpus")}, "training": [],
       "training_best": [], "roofline": [], "phases": [], "embedding": {}, "memory": {}, "input": [], "targets": []}
md = []


def target(name, value, goal, ok, note=""):
    out["targets"].append({"target": name, "value": value, "goal": goal, "met": ok})
    md.append(f"| {name} | {value} | {goal} | {'met' if ok else 'not met'}{note} |")


# 1. Training throughput, cost and quality against PyTorch fp32 and bf16 autocast.
md.append(torch_table.machine_line(runs) + "\n")
training_md, out["training"], out["training_best"], _ = torch_table.tables(runs)
md += training_md

# 2. Roofline of the dense part, and where a training step's time goes.
md.append("\n#### Dense part against the sgemm roofline (DLRM)\n")
md.append("| threads | training FLOP/sample | whole step GFLOP/s | sgemm GFLOP/s (2048^3) | of it | "
          "dense phases GFLOP/s per thread | sgemm at DLRM's shapes, per thread | of it |")
md.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
for t in (1, 2):
    e = run("embark", "dlrm", t)
    s = sgemm(t)
    flops = e["flops_per_sample"]
    whole = e["samples_per_sec"] * flops / 1e9
    ph = e["phase_seconds"]
    dense = flops * e["samples"] / t / (ph["forward"] + ph["backward"]) / 1e9
    row = {"threads": t, "flops_per_sample": flops, "step_gflops": whole, "sgemm_square_gflops": s["sgemm_square_gflops"],
           "step_fraction": whole / s["sgemm_square_gflops"], "dense_gflops_per_thread": dense,
           "sgemm_shapes_gflops_per_thread": s["sgemm_dlrm_shapes_gflops_per_thread"],
           "dense_fraction": dense / s["sgemm_dlrm_shapes_gflops_per_thread"]}
    out["roofline"].append(row)
    md.append(f"| {t} | {flops / 1e6:.2f} M | {whole:.1f} | {s['sgemm_square_gflops']:.1f} | {row['step_fraction']:.0%} | "
              f"{dense:.1f} | {s['sgemm_dlrm_shapes_gflops_per_thread']:.1f} | {row['dense_fraction']:.0%} |")

md.append("\n#### Where a training step's time goes (per thread, share of the step loop)\n")
md.append("| model | threads | lookup | dense forward | backward | embedding update | dense step | input wait |")
md.append("|---|---:|---:|---:|---:|---:|---:|---:|")
for model in ("dlrm", "deepfm"):
    for t in (1, 2):
        e = run("embark", model, t)
        ph, total = e["phase_seconds"], e["train_seconds"]
        shares = {k: ph[k] / total for k in ("lookup", "forward", "backward", "update", "dense_step")}
        shares["input_wait"] = e["input_wait_seconds"] / total
        out["phases"].append({"model": model, "threads": t, **shares})
        md.append(f"| {model} | {t} | " + " | ".join(f"{shares[k]:.0%}" for k in
                  ("lookup", "forward", "backward", "update", "dense_step", "input_wait")) + " |")

# 3. Embedding table against the random gather, 10^7 rows (beyond cache).
md.append("\n#### Embedding table at 10^7 rows (beyond the last cache level), one thread\n")
md.append("| operation | row floats | embark rows/s | random gather rows/s | of it |")
md.append("|---|---:|---:|---:|---:|")
emb = {}
for op, name, floats in (("lookup (uniform keys)", "BM_Lookup/rows:10000000/zipf:0", 16),
                         ("lookup (Zipf keys)", "BM_Lookup/rows:10000000/zipf:1", 16),
                         ("SGD update (uniform)", "BM_UpdateSgd/rows:10000000/zipf:0", 16),
                         ("Adagrad update (uniform)", "BM_UpdateAdagrad/rows:10000000/zipf:0", 32),
                         ("Adagrad update (Zipf)", "BM_UpdateAdagrad/rows:10000000/zipf:1", 32),
                         ("Adagrad update, 3x10^7 rows", "BM_UpdateAdagrad/rows:30000000/zipf:0", 32),
                         ("Adam update (uniform)", "BM_UpdateAdam/rows:10000000/zipf:0", 49),
                         ("insert new keys", "BM_Insert/rows:10000000/zipf:0/iterations:200", 32)):
    if name not in micro:
        continue
    g = gather(1, min(floats, 32))
    emb[op] = {"rows_per_sec": rate(name), "gather_rows_per_sec": g, "fraction": rate(name) / g}
    md.append(f"| {op} | {floats} | {rate(name) / 1e6:.2f} M | {g / 1e6:.2f} M | {rate(name) / g:.0%} |")
adam = "BM_UpdateAdam/rows:10000000/zipf:0"
if adam in micro and any(m.get("row_floats") == 49 and m.get("threads") == 1 for m in machine):
    g = gather(1, 49)
    emb["Adam update (uniform), own width"] = {"rows_per_sec": rate(adam), "gather_rows_per_sec": g,
                                               "fraction": rate(adam) / g}
    md.append(f"| Adam update (uniform), against its own width | 49 | {rate(adam) / 1e6:.2f} M | {g / 1e6:.2f} M | "
              f"{rate(adam) / g:.0%} |")
out["embedding"] = emb
md.append("\n(The gather column is machine_bench's random row gather from 2 GiB on huge pages, rows of "
          "16 or 32 floats; Adam's 49-float row (16 weights, 33 floats of state) is compared with the "
          "32-float gather, as its target is set, and on a line of its own with a gather of 49-float rows.)")

# 4. Memory, from the DLRM run at 2 threads.
e = run("embark", "dlrm", 2)
rows = e["embedding_rows"]
ideal_row = e["embedding_ideal_bytes"] / rows
out["memory"] = {"embedding_rows": rows, "embedding_bytes": e["embedding_bytes"],
                 "ideal_bytes": e["embedding_ideal_bytes"], "overhead": e["embedding_bytes"] / e["embedding_ideal_bytes"],
                 "peak_rss_bytes": e["peak_rss_bytes"], "rss_per_row": e["peak_rss_bytes"] / rows,
                 "ideal_per_row": ideal_row}
m = out["memory"]
md.append("\n#### Memory (DLRM, 2 threads: embedding dim 16, Adagrad)\n")
md.append("| embedding rows | table bytes | ideal bytes | table / ideal | peak RSS per row | ideal per row |")
md.append("|---:|---:|---:|---:|---:|---:|")
md.append(f"| {rows:,} | {m['embedding_bytes'] / 2**20:,.0f} MiB | {m['ideal_bytes'] / 2**20:,.0f} MiB | "
          f"{m['overhead']:.2f}x | {m['rss_per_row']:.0f} B | {ideal_row:.0f} B |")

# 5. Input pipeline.
plain_bytes = parse[0]["file_bytes"]
md.append("\n#### Input pipeline (Criteo TSV of the training run, parsed and batched)\n")
md.append("| input | parser threads | MB/s (uncompressed) | rows/s | DLRM 2-thread trainer samples/s | parse / train |")
md.append("|---|---:|---:|---:|---:|---:|")
trainer = run("embark", "dlrm", 2)["samples_per_sec"]
for p in parse:
    kind = "gzip" if p["file"].endswith(".gz") else "plain"
    mbs = plain_bytes / p["seconds"] / 1e6
    out["input"].append({"input": kind, "threads": p["threads"], "mb_per_sec": mbs, "rows_per_sec": p["rows_per_sec"],
                         "over_trainer": p["rows_per_sec"] / trainer})
    md.append(f"| {kind} | {p['threads']} | {mbs:.1f} | {p['rows_per_sec']:,.0f} | {trainer:,.0f} | "
              f"{p['rows_per_sec'] / trainer:.1f}x |")

# Targets.
md.append("\n#### Targets\n")
md.append("| target | this run | goal | |")
md.append("|---|---|---|---|")
for b in out["training_best"]:
    note = "" if b["equal_auc"] else " (AUC not equal)"
    target(f"{b['model']}: embark's best samples/s vs PyTorch's best fp32", f"{b['vs_pytorch_fp32_best']:.2f}x",
           ">= 3x at equal AUC", b["vs_pytorch_fp32_best"] >= 3 and b["equal_auc"], note)
    if "vs_pytorch_bf16_best" in b:
        target(f"{b['model']}: embark's best samples/s vs PyTorch's best bf16 autocast",
               f"{b['vs_pytorch_bf16_best']:.2f}x", "> 1x at equal AUC",
               b["vs_pytorch_bf16_best"] > 1 and b["equal_auc"], note)
diffs = [abs(r["auc_diff_vs_pytorch_fp32"]) for r in out["training"]
         if r["framework"] == "embark" and r["auc_diff_vs_pytorch_fp32"] is not None]
worst_auc = max(diffs)
target("AUC difference to PyTorch fp32, worst embark run", f"{worst_auc:.4f}", f"<= {torch_table.AUC_TOLERANCE}",
       worst_auc <= torch_table.AUC_TOLERANCE)
dense = min(r["dense_fraction"] for r in out["roofline"])
target("dense phases vs sgemm at the model's shapes (worst thread count)", f"{dense:.0%}", ">= 80%", dense >= 0.8)
step = min(r["step_fraction"] for r in out["roofline"])
target("whole DLRM step vs square sgemm with as many threads (worst thread count)", f"{step:.0%}", ">= 70%",
       step >= 0.7)
up = emb.get("Adagrad update (uniform)", {}).get("fraction", 0)
target("Adagrad updates vs random gather, 10^7 rows", f"{up:.0%}", ">= 50%", up >= 0.5)
ad = emb.get("Adam update (uniform)", {}).get("fraction", 0)
target("Adam updates vs random gather of 32 floats, 10^7 rows", f"{ad:.0%}", ">= 30%", ad >= 0.3)
target("embedding table bytes vs ideal", f"{m['overhead']:.2f}x", "<= 1.5x", m["overhead"] <= 1.5)
one = next(r for r in out["input"] if r["input"] == "plain" and r["threads"] == 1)
target("one parser thread vs the 2-thread DLRM trainer", f"{one['over_trainer']:.1f}x", ">= 3x", one["over_trainer"] >= 3)

# What the 3x fp32 target asks of this machine: DLRM's FLOPs at the
# machine's fp32 sgemm rate bound embark's fp32 samples/s, whatever the code.
top = max(out["roofline"], key=lambda r: r["threads"])
dlrm_best = next((b for b in out["training_best"] if b["model"] == "dlrm"), None)
torch_fp32 = [r for r in out["training"] if r["model"] == "dlrm" and r["framework"] == "pytorch"
              and r["precision"] == "fp32"]
if dlrm_best and torch_fp32:
    ceiling = top["sgemm_square_gflops"] * 1e9 / top["flops_per_sample"]
    best_torch = max(r["samples_per_sec"] for r in torch_fp32)
    out["fp32_ceiling"] = {"threads": top["threads"], "samples_per_sec": ceiling, "vs_pytorch_fp32_best": ceiling / best_torch}
    md.append(f"\n(The fp32 ceiling: at the {top['threads']}-thread square-sgemm rate, {top['sgemm_square_gflops']:.1f} "
              f"GFLOP/s, DLRM's {top['flops_per_sample'] / 1e6:.2f} MFLOP per sample allow at most {ceiling:,.0f} "
              f"samples/s, {ceiling / best_torch:.2f}x PyTorch's best fp32 here: a 3x fp32 target is above this "
              f"machine's limit when that is below 3x; bf16 products are not bound by it.)")

print("\n".join(md))
with open(os.path.join(work, "bench.json"), "w") as f:
    json.dump(out, f, indent=1)
print(f"\n(all figures: {os.path.join(work, 'bench.json')})")
