"""The comparison's report: `results.md` (Fig. 6 and 7, ours beside the paper's, and the claims), `results.csv`,
`results.json` and `accuracy_latency.png`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from asbunet import atomic
from asbunet.compare.config import CSV_FIELDS, CompareConfig
from asbunet.compare.results import add_ratios, claims, finished_results, model_row
from asbunet.compare.runs import recipe
from asbunet.paper import PAPER_FIG6, PAPER_FIG7, PAPER_MACHINE


def _fmt(value: float | None, digits: int = 4, std: float | None = None) -> str:
    if value is None:
        return "pending"
    text = f"{value:.{digits}f}"
    return text if std is None else f"{text} ± {std:.{digits}f}"


def _paper(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_markdown(
    cfg: CompareConfig, rows: list[dict], claim_rows: list[dict], latencies: dict | None, test_images: int | None
) -> str:
    """`results.md`: settings, the Fig. 6 and Fig. 7 tables with the paper's figures beside ours, and the claims."""
    t = cfg.train_config(cfg.models[0], cfg.seeds[0])
    shapes = ", ".join(f"{h}x{w}" for h, w in t.shapes)
    b = cfg.latency
    lat_line = (
        f"one `(1, 3, {b.sizes[0][0]}, {b.sizes[0][1]})` float32 image, PyTorch eager, {b.device}, {b.threads[0]} "
        f"thread(s), median of {b.runs} passes after {b.warmup} warm-up passes, all models in one run; "
        f"{latencies['machine']}"
        if latencies
        else "pending"
    )
    split = (
        f"validation on {', '.join(map(str, t.data.val))}"
        if t.data.val
        else f"{1 - t.data.val_fraction:.0%} train / {t.data.val_fraction:.0%} validation"
    )
    epochs = f"{t.epochs} epoch{'s' if t.epochs != 1 else ''}" + (
        f" (at most {t.max_steps} steps)" if t.max_steps else ""
    )
    lines = [
        "# ASBU-Net against the paper's baselines (Fig. 6 and 7)",
        "",
        f"Every model trained with one recipe: {', '.join(map(str, t.data.train))} ({split}), canvases {shapes}, batch "
        f"{t.batch_size}, {epochs}, "
        f"{t.optimizer} lr {t.lr:g} ({t.schedule}), the same augmentation and seed for every model. Scored on "
        f"{cfg.test}{f' ({test_images} images)' if test_images else ''} with the {cfg.checkpoint} checkpoint, long "
        f"side {cfg.eval_size}, labels at full resolution. Seeds: the number of finished runs per model; "
        "figures are means over seeds ± the sample standard deviation.",
        "",
        "- accuracy: ignore-band IoU (Eq. 3, `asbunet.metrics`), mean over test images; IoU: plain person IoU.",
        f"- latency, ours: {lat_line}.",
        f"- paper: Fig. 6 and 7 ({PAPER_MACHINE}). Absolute times are not comparable across machines; the "
        "ratios to ASBU-Net ReLU are.",
        "- params: PyTorch count (Keras-style count, with the BatchNorm moving statistics, in results.csv); size: "
        "fp32 state dict in MB.",
        "",
        "## Accuracy and computation time (Fig. 6)",
        "",
        "| model | seeds | accuracy (Eq. 3) ours | paper | IoU ours | latency ms ours | paper | x ASBU-Net ReLU "
        "ours | paper |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['seeds']} | {_fmt(r['accuracy'], 4, r['accuracy_std'])} | "
            f"{_paper(r['paper_accuracy'], '.4f')} | {_fmt(r['iou'], 4, r['iou_std'])} | "
            f"{_fmt(r['latency_ms'], 2)} | {_paper(r['paper_latency_ms'], '.2f')} | {_fmt(r['latency_ratio'], 2)} | "
            f"{_paper(r['paper_latency_ratio'], '.2f')} |"
        )
    lines += [
        "",
        "Eq. 3 in parts: the IoU outside the ignore bands, minus 1.0 for each false detection (a predicted blob "
        "touching no person).",
        "",
        "| model | accuracy (Eq. 3) | IoU outside the band | false detections per image | IoU |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {_fmt(r['accuracy'])} | {_fmt(r['band_iou'])} | {_fmt(r['false_detections'], 3)} | "
            f"{_fmt(r['iou'])} |"
        )
    lines += [
        "",
        "## Parameters and model size (Fig. 7)",
        "",
        f"| model | params ours | paper | size MB ours | paper | GMACs at {b.sizes[0][0]}x{b.sizes[0][1]} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['params']:,} | {_paper(r['paper_params'], ',')} | {r['size_mb']:.1f} | "
            f"{_paper(r['paper_size_mb'], '.1f')} | {r['gmacs']:.3f} |"
        )
    lines += [
        "",
        "## The paper's claims",
        "",
        "| claim | paper (Fig. 6) | ours | verdict | test |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {c['claim']} | {c['paper']} | {c['ours']} | {c['verdict']} | {c['test']} |" for c in claim_rows]
    lines += ["", "![accuracy against latency](accuracy_latency.png)", ""]
    return "\n".join(lines)


def write_plot(rows: list[dict], path: Path, latencies: dict | None) -> None:
    """Accuracy against latency, ours (mean ± std over seeds) beside the paper's Fig. 6, as PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5), dpi=100)
    ours_ax, paper_ax = fig.subplots(1, 2, sharey=True)
    markers = {"asbunet": "*", "mobilenetv2": "o", "efficientnet": "s"}

    def marker(name: str) -> str:
        return next((m for prefix, m in markers.items() if name.startswith(prefix)), "D")

    for i, r in enumerate(rows):
        style = {"color": f"C{i % 10}", "markersize": 9}
        if r["accuracy"] is not None and r["latency_ms"] is not None:
            ours_ax.errorbar(
                r["latency_ms"], r["accuracy"], yerr=r["accuracy_std"] or 0, fmt=marker(r["model"]), capsize=3, **style
            )
            ours_ax.annotate(
                r["label"], (r["latency_ms"], r["accuracy"]), fontsize=7, xytext=(4, 4), textcoords="offset points"
            )
        if r["paper_accuracy"] is not None:
            paper_ax.plot(r["paper_latency_ms"], r["paper_accuracy"], marker(r["model"]), **style)
            paper_ax.annotate(
                r["label"],
                (r["paper_latency_ms"], r["paper_accuracy"]),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
    b = latencies["settings"] if latencies else None
    ours_title = (
        f"ours: {b['device']}, {b['threads'][0]} thread(s), {b['sizes'][0][0]}x{b['sizes'][0][1]}"
        if b
        else "ours: latency pending"
    )
    ours_ax.set(xlabel="latency (ms, median)", ylabel="accuracy: ignore-band IoU (Eq. 3)", title=ours_title)
    paper_ax.set(xlabel="computation time (ms)", title="paper, Fig. 6: RTX 2080 SUPER")
    for ax in (ours_ax, paper_ax):
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)  # latency ratios read off the axis
    if not any(r["accuracy"] is not None and r["latency_ms"] is not None for r in rows):
        ours_ax.text(0.5, 0.5, "results pending", transform=ours_ax.transAxes, ha="center", va="center")
    fig.tight_layout()
    atomic.save_figure(fig, path, metadata={"Software": None})


def write_report(cfg: CompareConfig, latencies: dict | None) -> dict:
    """Writes `results.md`, `results.csv`, `results.json` and `accuracy_latency.png`; returns the JSON content."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    rows = [model_row(cfg, m, latencies) for m in cfg.models]
    add_ratios(rows)
    claim_rows = claims(rows)
    images = next((r["test"]["images"] for m in cfg.models for r in finished_results(cfg, m)), None)
    atomic.write_text(out / "results.md", format_markdown(cfg, rows, claim_rows, latencies, images))
    with atomic.open_atomic(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: ("" if r[k] is None else r[k]) for k in CSV_FIELDS} for r in rows)
    write_plot(rows, out / "accuracy_latency.png", latencies)
    report = {
        "models": rows,
        "claims": claim_rows,
        "latency": latencies,
        "evaluation": cfg.evaluation(),
        "recipe": recipe(cfg.train_config(cfg.models[0], cfg.seeds[0]), cfg.evaluation())["train"],
        "paper": {"fig6": PAPER_FIG6, "fig7": PAPER_FIG7, "machine": PAPER_MACHINE},
    }
    atomic.write_text(out / "results.json", json.dumps(report, indent=2) + "\n")
    return report
