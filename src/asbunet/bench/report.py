"""The benchmark's outputs (`write_outputs`): `results.md`, `results.csv`, `results.json`, `latency.png` and
`profile.md`."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from asbunet import atomic
from asbunet.bench.config import GENERAL_PEER, PROFILE_MODEL, RUNTIME_LABELS, WIDTH_VARIANTS
from asbunet.bench.machine import describe_isa_of, describe_machine


def _fmt(value, digits: int = 2, suffix: str = "") -> str:
    return "" if value is None else f"{value:.{digits}f}{suffix}"


def _percent(fraction: float | None) -> str:
    return "" if fraction is None else f"{100 * fraction:.0f}%"


def _accuracy_columns(report: dict) -> list[str]:
    return sorted({k for acc in report["accuracies"].values() for k in acc})


def widest_no_slower(report: dict) -> list[dict]:
    """Per thread count at 256x256: the widest ASBU-Net width variant no slower than MediaPipe general (any runtime)."""
    out = []
    for t in report["settings"]["threads"]:
        peer = next(
            (r for r in report["rows"] if r["model"] == GENERAL_PEER and r["threads"] == t and r["size"] == "256x256"),
            None,
        )
        if peer is None:
            continue
        best = None
        for name in sorted(WIDTH_VARIANTS, key=lambda n: -WIDTH_VARIANTS[n]):
            rows = [r for r in report["rows"] if r["model"] == name and r["threads"] == t and r["size"] == "256x256"]
            fastest = min(rows, key=lambda r: r["median_ms"], default=None)
            if fastest is not None and fastest["median_ms"] <= peer["median_ms"]:
                best = fastest
                break
        out.append(
            {
                "threads": t,
                "mediapipe_ms": peer["median_ms"],
                "model": best["model"] if best else None,
                "runtime": best["runtime"] if best else None,
                "median_ms": best["median_ms"] if best else None,
            }
        )
    return out


def summary_lines(report: dict) -> list[str]:
    """The headline numbers: floor ratios, fraction of peak, the widest variant as fast as MediaPipe."""
    lines = []
    for r in report["rows"]:
        if r["model"] == PROFILE_MODEL and r["size"] == "256x256" and r["runtime"] == "onnxruntime-int8":
            lines.append(
                f"- ASBU-Net int8 (onnxruntime), 256x256, {r['threads']} thread(s): {r['median_ms']:.2f} ms "
                f"= {r['floor_ratio']:.2f} x its int8 floor of {r['int8_floor_ms']:.2f} ms "
                f"(2 x {r['macs'] / 1e9:.3f} GMACs at {report['peaks'][str(r['threads'])]['int8']:.0f} GOP/s; "
                "target 1.3 x)"
            )
        if r["model"] == PROFILE_MODEL and r["size"] == "256x256" and r["runtime"] == "onnxruntime":
            lines.append(
                f"- ASBU-Net fp32 (onnxruntime), 256x256, {r['threads']} thread(s): {r['median_ms']:.2f} ms, "
                f"{r['gops']:.0f} GFLOP/s = {100 * r['fraction_of_peak']:.0f}% of the fp32 matmul peak "
                "(target 70%)"
            )
    for w in widest_no_slower(report):
        if w["model"]:
            lines.append(
                f"- {w['threads']} thread(s), 256x256: the widest ASBU-Net no slower than MediaPipe general "
                f"({w['mediapipe_ms']:.2f} ms) is {w['model']} ({RUNTIME_LABELS[w['runtime']]}, "
                f"{w['median_ms']:.2f} ms)"
            )
        else:
            lines.append(
                f"- {w['threads']} thread(s), 256x256: no ASBU-Net width variant measured is as fast as "
                f"MediaPipe general ({w['mediapipe_ms']:.2f} ms)"
            )
    return lines


def format_markdown(report: dict) -> str:
    """`results.md`: machine, peaks, summary, then one table per input size and thread count."""
    acc_cols = _accuracy_columns(report)
    s = report["settings"]
    lines = [
        "# Latency benchmark",
        "",
        f"Machine: {describe_machine(report['machine'])}.",
        "",
        f"Batch 1, float32 input; {s['warmup']} warm-up passes then {s['runs']} timed passes per row, taken "
        "round-robin over the rows of a size and thread count; median and 95th percentile in ms. "
        f"int8 calibration: {report['calibration']}. Registry models run with random weights (latency does not "
        "depend on them).",
        "",
        "Matmul peaks measured in this run (onnxruntime, 2048 x 2048):",
        "",
    ]
    lines += [
        f"- {t} thread(s): fp32 MatMul {p['fp32']:.0f} GFLOP/s, int8 MatMulInteger {p['int8']:.0f} GOP/s"
        for t, p in report["peaks"].items()
    ]
    summary = summary_lines(report)
    if summary:
        lines += ["", "## Summary", "", *summary]
    head = [
        "model",
        "runtime",
        "median ms",
        "p95 ms",
        *[f"accuracy {c}" for c in acc_cols],
        "params",
        "GMACs",
        "file MB",
        "GOP/s",
        "% of peak",
        "x int8 floor",
        "x MediaPipe",
    ]
    groups = defaultdict(list)
    for r in report["rows"]:
        groups[(r["size"], r["threads"])].append(r)
    for (size, t), rows in sorted(
        groups.items(), key=lambda kv: (s["sizes"].index(kv[0][0]) if kv[0][0] in s["sizes"] else 99, kv[0][1])
    ):
        peer = next((r["mediapipe_peer"] for r in rows if r.get("mediapipe_peer")), None)
        lines += [
            "",
            f"## {size}, {t} thread(s)" + (f" (ratios to {peer})" if peer else ""),
            "",
            f"CPU: {describe_isa_of(report['machine'])}.",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * 2 + "---:|" * (len(head) - 2),
        ]
        for r in sorted(rows, key=lambda r: r["median_ms"]):
            acc = [_fmt(r["accuracy"].get(c), 4) for c in acc_cols]
            lines.append(
                "| "
                + " | ".join(
                    [
                        r["model"],
                        RUNTIME_LABELS.get(r["runtime"], r["runtime"]),
                        _fmt(r["median_ms"]),
                        _fmt(r["p95_ms"]),
                        *acc,
                        f"{r['params']:,}" if r.get("params") else "",
                        _fmt(r["macs"] / 1e9 if r.get("macs") else None, 3),
                        _fmt(r["file_mb"], 1),
                        _fmt(r["gops"], 0),
                        _percent(r["fraction_of_peak"]),
                        _fmt(r["floor_ratio"] if r["dtype"] == "int8" else None),
                        _fmt(r["vs_mediapipe"]),
                    ]
                )
                + " |"
            )
    lines += [
        "",
        "GOP/s = 2 x MACs / median latency (MACs of convolutions and linear layers only); % of peak against "
        "the fp32 or int8 matmul peak of the same thread count; x int8 floor = latency / (2 x MACs / int8 "
        "peak), for int8 rows; x MediaPipe = latency / MediaPipe's latency at the same size and threads.",
    ]
    return "\n".join(lines) + "\n"


def format_profile(profile: dict) -> str:
    """`profile.md`: the int8 ablation, per-operator totals (int8 and fp32) and the slowest int8 nodes."""
    p = profile
    lines = [
        f"# Profile of {p['model']} at {p['size']}, {p['threads']} thread(s)",
        "",
        f"CPU: {describe_isa_of(p['machine'])}." if p.get("machine") else "",
        "",
        f"{p['macs'] / 1e9:.3f} GMACs; int8 floor {p['int8_floor_ms']:.2f} ms at {p['int8_peak']:.0f} GOP/s "
        f"(MatMulInteger peak of this run). fp32 onnxruntime: {p['fp32_ms']:.2f} ms = "
        f"{100 * p['fp32_fraction_of_peak']:.0f}% of the fp32 matmul peak ({p['fp32_peak']:.0f} GFLOP/s). "
        f"Relu nodes left in the optimized int8 graph: {p['relu_nodes_left_int8']} (0: every Relu is fused "
        "into its QLinearConv).",
        "",
        "## int8 variants",
        "",
        "| variant | median ms | p95 ms | x int8 floor | Concat ms | rewrites |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for a in p["ablation"]:
        rewrites = ", ".join(f"{k} {v}" for k, v in a["rewrites"].items()) or "none"
        lines.append(
            f"| {a['variant']} | {a['median_ms']:.2f} | {a['p95_ms']:.2f} | {a['floor_ratio']:.2f} | "
            f"{a['concat_ms']:.2f} | {rewrites} |"
        )
    for title, key in (("int8 (shipped)", "int8_ops"), ("fp32", "fp32_ops")):
        total = sum(o["us"] for o in p[key])
        lines += [
            "",
            f"## Kernel time per operator, {title}",
            "",
            "| operator | nodes | us | share |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| {o['op']} | {o['nodes']} | {o['us']:.0f} | {100 * o['us'] / total:.1f}% |" for o in p[key]]
    lines += [
        "",
        "## Slowest int8 nodes",
        "",
        "| node | operator | us | MACs (M) | GOP/s |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {t['node']} | {t['op']} | {t['us']:.0f} | {_fmt(t['macs'] / 1e6 if t['macs'] else None, 1)} | "
        f"{_fmt(t['gops'], 0)} |"
        for t in p["int8_top_nodes"]
    ]
    lines += [
        "",
        "Kernel times are medians over the timed passes of onnxruntime's profiler (per node, microseconds); "
        "latencies are timed without the profiler. MACs are the model's own (without the zero filters and "
        "channels the int8 rewrites add); a merged convolution carries the name of its first branch.",
    ]
    return "\n".join(lines) + "\n"


def write_plot(report: dict, path: Path) -> None:
    """Accuracy (when known) and GMACs against latency at the first size and the most threads, every model and peer."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = report["settings"]
    size, threads = s["sizes"][0], max(s["threads"])
    rows = [r for r in report["rows"] if r["threads"] == threads and (r["size"] == size or r["family"] == "peer")]
    have_acc = any(r["accuracy"] for r in rows)
    panels = [("accuracy", "accuracy (mean over data sets)")] if have_acc else []
    panels.append(("macs", "GMACs"))
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5), squeeze=False)
    markers = {"torch": "s", "onnxruntime": "o", "onnxruntime-int8": "^", "tflite": "*"}
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        for runtime, marker in markers.items():
            pts = [r for r in rows if r["runtime"] == runtime]
            xs, ys, names = [], [], []
            for r in pts:
                y = (
                    (float(np.mean(list(r["accuracy"].values()))) if r["accuracy"] else None)
                    if key == "accuracy"
                    else (r["macs"] / 1e9 if r.get("macs") else None)
                )
                if y is not None:
                    xs.append(r["median_ms"])
                    ys.append(y)
                    names.append(f"{r['model']} {r['size']}" if r["family"] == "peer" else r["model"])
            if xs:
                ax.scatter(xs, ys, marker=marker, s=90 if runtime == "tflite" else 40, label=RUNTIME_LABELS[runtime])
                for x, y, n in zip(xs, ys, names, strict=True):
                    ax.annotate(n, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        if key == "macs":
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set(xlabel=f"median latency, ms ({size}, peers at their own size; {threads} thread(s))", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    isa = describe_isa_of(report["machine"]).split(": ", 1)[1]
    fig.suptitle(f"Latency on {report['machine']['cpu']}, batch 1\n{isa}", fontsize=10)
    fig.tight_layout()
    atomic.save_figure(fig, path, dpi=120)
    plt.close(fig)


def write_outputs(report: dict, output: str | Path) -> list[Path]:
    """Writes results.md, results.csv, results.json, latency.png and (with a profile) profile.md into `output`."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.md", out / "results.csv", out / "results.json", out / "latency.png"]
    atomic.write_text(paths[0], format_markdown(report))
    fields = [
        "model",
        "family",
        "runtime",
        "dtype",
        "size",
        "threads",
        "median_ms",
        "p95_ms",
        "mean_ms",
        "min_ms",
        "runs",
        "params",
        "macs",
        "file_mb",
        "gops",
        "fraction_of_peak",
        "int8_floor_ms",
        "floor_ratio",
        "vs_mediapipe",
        "mediapipe_peer",
        "accuracy",
        "cpu",
        "instruction_sets",
    ]
    isa = describe_isa_of(report["machine"]).split(": ", 1)[1]
    with atomic.open_atomic(paths[1], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in report["rows"]:
            writer.writerow(
                {
                    **{k: r.get(k) for k in fields},
                    "accuracy": json.dumps(r["accuracy"]) if r["accuracy"] else "",
                    "cpu": report["machine"]["cpu"],
                    "instruction_sets": isa,
                }
            )
    atomic.write_text(paths[2], json.dumps(report, indent=2, default=str) + "\n")
    write_plot(report, paths[3])
    if report.get("profile"):
        paths.append(out / "profile.md")
        atomic.write_text(paths[-1], format_profile(report["profile"]))
    return paths
