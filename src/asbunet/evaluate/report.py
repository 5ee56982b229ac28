"""The evaluation's tables and files: `per_image.csv`, the printed and Markdown tables (`results.md`)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from asbunet import atomic
from asbunet.evaluate.scoring import COUNT_FIELDS, PERSON_FREE_LIMIT, ImageResult
from asbunet.metrics import (
    METRICS,
    IgnoreBand,
)

LABELS = {  # metric key -> table row name
    "ignore_band_iou": "ignore-band IoU (Eq. 3)",
    "band_iou": "IoU outside the band",
    "false_detections": "false detections / image",
    "iou": "IoU",
    "dice": "Dice (F1)",
    "precision": "precision",
    "recall": "recall",
    "boundary_iou": "Boundary IoU",
    "mae": "MAE of probability",
    "background_fp_rate": "background FP rate",
    "person_share": "share called person",
    "over_2x": "person area > 2x label",
}


SUMMARY_COLUMNS = ("ignore_band_iou", "iou", "dice", "boundary_iou", "mae", "false_detections", "background_fp_rate")


def write_csv(results: list[ImageResult], path: Path, band: IgnoreBand) -> None:
    """Per-image CSV: full-precision scores and the counts that `asbunet.metrics.summarize` pools."""
    fields = ["image", "height", "width", *METRICS, "flicker", *(f for f in COUNT_FIELDS if f not in METRICS)]
    with atomic.open_atomic(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in results:
            writer.writerow(r.row(band))


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _table(head: Sequence[str], rows: list[Sequence[str]], markdown: bool, indent: str = "  ") -> list[str]:
    """Rows under a header, as Markdown (first column left-aligned, the others right) or aligned text."""
    if markdown:
        return [f"| {' | '.join(head)} |", f"|---|{'---:|' * (len(head) - 1)}", *(f"| {' | '.join(r)} |" for r in rows)]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows, strict=True)]
    return [
        indent + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in (head, *rows)
    ]


def format_table(name: str, entry: dict, markdown: bool) -> str:
    """One data set's metrics, mean over images and pooled over pixels, as aligned text or Markdown."""
    rows = [(LABELS[k], _number(entry["mean"][k]), _number(entry["pooled"][k])) for k in METRICS]
    head = ("metric", "mean over images", "pooled over pixels")
    if markdown:
        return "\n".join(_table(head, rows, markdown=True)) + "\n"
    title = f"{name}: {entry['images']} images ({entry['path']})"
    if entry.get("person_free"):
        title += (
            f", person-free: {entry['mean']['person_share']:.4f} of the pixels called person, "
            f"{entry['frames_over_1pct']} frames above {PERSON_FREE_LIMIT:.0%}"
        )
    return "\n".join([title, *_table(head, rows, markdown=False)])


def format_comparison(name: str, comparison: dict, markdown: bool) -> str:
    """One data set's row per model (see `comparison_rows`), as aligned text or Markdown."""
    models = list(comparison["rows"])
    if comparison["person_free"]:
        head = ("model", "share called person", f"frames > {PERSON_FREE_LIMIT:.0%}")
        rows = [
            (m, _number(r["person_share"]), f"{r['frames_over_1pct']} / {comparison['images']}")
            for m, r in comparison["rows"].items()
        ]
    else:
        video = comparison.get("video", False)
        head = ("model", "IoU", *(("flicker",) if video else ()), "background FP rate", "area > 2x label")
        head = (*head, f"{models[0]} wins / ties / losses")
        rows = [
            (
                m,
                _number(r["iou"]),
                *((_number(r["flicker"], 5),) if video else ()),
                _number(r["background_fp_rate"]),
                _number(r["over_2x"], 3),
                "reference" if r["wins"] is None else f"{r['wins']} / {r['ties']} / {r['losses']}",
            )
            for m, r in comparison["rows"].items()
        ]
    kind = "person-free frames" if comparison["person_free"] else "images"
    title = f"{name}: {comparison['images']} {kind} ({comparison['path']})"
    if markdown:
        return "\n".join(_table(head, rows, markdown=True)) + "\n"
    return "\n".join([title, *_table(head, rows, markdown=False)])


def format_overall(summary: dict, markdown: bool) -> str:
    """Every data set against every model: mean IoU, or for person-free frames the share called person."""
    models = summary["models"]
    head = ("data set", "figure", *models)
    rows = []
    for slug, c in summary["comparison"].items():
        key = "person_share" if c["person_free"] else "iou"
        rows.append(
            (slug, "share called person" if c["person_free"] else "IoU", *(_number(c["rows"][m][key]) for m in models))
        )
    if markdown:
        return "\n".join(_table(head, rows, markdown=True)) + "\n"
    return "\n".join(
        [
            "overall (mean over images; person-free frames: share of pixels called person, lower is better)",
            *_table(head, rows, markdown=False),
        ]
    )


def _model_markdown(report: dict, heading: str) -> list[str]:
    """One model's settings line, its summary row per data set and each data set's full table."""
    s, band = report["settings"], report["settings"]["ignore_band"]
    size = (
        f"{s['fixed_size'][0]}x{s['fixed_size'][1]} (whole image resized)"
        if s.get("fixed_size")
        else (f"{s['input_size']} ({s['resize']})")
    )
    lines = [
        f"Input size {size}, threshold {s['threshold']}, labels compared at full "
        f"resolution. Ignore band (Eq. 3): half-width clip(round({band['scale']} * sqrt(object area)), "
        f"{band['min_width']}, {band['max_width']}) px, penalty {band['penalty']} per false detection "
        f"(components >= {band['min_false_fraction']} of the image), floor {band['floor']}. Boundary IoU dilation "
        f"{s['boundary_dilation_ratio']} of the image diagonal.",
        "",
        "Mean over images:",
        "",
        f"| data set | images | {' | '.join(LABELS[k] for k in SUMMARY_COLUMNS)} |",
        f"|---|---:|{'---:|' * len(SUMMARY_COLUMNS)}",
    ]
    for slug, e in report["datasets"].items():
        values = " | ".join(_number(e["mean"][k]) for k in SUMMARY_COLUMNS)
        lines.append(f"| {slug} | {e['images']} | {values} |")
    for slug, e in report["datasets"].items():
        lines += [
            "",
            f"{heading} {slug}",
            "",
            f"`{e['path']}`, {e['images']} images, per image: `{e['per_image_csv']}`",
        ]
        if e.get("person_free"):
            lines[-1] += (
                f"; person-free frames: {e['mean']['person_share']:.4f} of the pixels called person, "
                f"{e['frames_over_1pct']} frames above {PERSON_FREE_LIMIT:.0%}"
            )
        lines += ["", format_table(slug, e, markdown=True)]
        if e["gallery"]:
            lines.append(f"![worst images of {slug}]({e['gallery']})")
    return lines


def format_markdown(summary: dict) -> str:
    """`results.md`: for one model its settings, one summary row per data set, then each data set's full table; for
    several models first the overall and per-data-set comparison tables, then each model's section."""
    models = summary["models"]
    if len(models) == 1:
        lines = [f"# Evaluation of {summary['model']}", "", *_model_markdown(summary, "##")]
        return "\n".join(lines) + "\n"
    reference = models[0]
    lines = [
        f"# Evaluation of {', '.join(models)}",
        "",
        f"All models on the same images. Wins / ties / losses: images where {reference} (the reference) has an IoU "
        "higher by more than 0.01 than the model of the row, within 0.01, or lower by more than 0.01. Person-free "
        f"frames are scored by the share of pixels called person (lower is better) and the frames above "
        f"{PERSON_FREE_LIMIT:.0%}.",
        "",
        "## Overall",
        "",
        format_overall(summary, markdown=True),
    ]
    for slug, c in summary["comparison"].items():
        kind = "person-free frames" if c["person_free"] else "images"
        lines += [f"## {slug}", "", f"`{c['path']}`, {c['images']} {kind}", "", format_comparison(slug, c, True)]
    reports = {reference: summary, **summary["others"]}
    for m in models:
        name = reports[m]["model"]
        lines += [f"## {name if name.startswith(m) else f'{m}: {name}'}", "", *_model_markdown(reports[m], "###"), ""]
    return "\n".join(lines) + "\n"
