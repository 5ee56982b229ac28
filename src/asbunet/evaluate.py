"""Evaluating models on labelled data sets with the paper's metric (Section IV-C, Eq. 3) and the usual scores.

Every image is segmented by a `Segmenter` and compared with its label at the label's full resolution (see
`asbunet.metrics` for the definitions). Several models can be evaluated on the same images in one run: the first is
the reference, and each other model's row counts the images where the reference's IoU is higher by more than 0.01,
within 0.01, or lower (`asbunet.metrics.count_wins`). MediaPipe Selfie Segmentation runs as a model like the others
(`mediapipe_general`, `mediapipe_landscape`: `asbunet.inference.peers`). A `.txt` list of person-free frames (all-zero
labels) is scored by the share of pixels called person and the number of frames with more than 1% of them.

For each data set the results are printed as a table and written as:

    <output>/summary.json                 settings and every metric, mean over images and pooled over pixels: the
                                          first model under `model`, `settings`, `datasets`, every other one under
                                          `others`; `comparison`: per data set, one row per model
    <output>/results.md                   the same as Markdown tables
    <output>/<data set>/per_image.csv     one row per image: scores and the raw pixel counts behind them
    <output>/<data set>/gallery.png       the worst images: image | label | probability | errors (cf. Fig. 5)
    <output>/<data set>/<model>/          the same two files for each model after the first

Results are deterministic: images are processed in file order and a registry model without weights is initialized
from a fixed seed.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from asbunet import atomic
from asbunet.data.sources import FolderSource, Source, open_source
from asbunet.inference.peers import DEFAULT_PEERS_DIR
from asbunet.inference.postprocess import logits_to_probability
from asbunet.inference.preprocess import check_input_size, prepare_at, to_rgb
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import MODEL_SUFFIXES, load_model
from asbunet.metrics import (
    BOUNDARY_DILATION_RATIO,
    METRICS,
    IgnoreBand,
    ImageStats,
    binarize,
    count_wins,
    false_detection_mask,
    ignore_band,
    image_stats,
    summarize,
)

RESIZE_MODES = ("keep", "square")
SPLIT_NAMES = ("train", "test", "val", "valid", "validation", "images")
DATASET_SUFFIXES = (".json", ".txt")
COUNT_FIELDS = tuple(ImageStats.__dataclass_fields__)
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
PERSON_FREE_LIMIT = 0.01  # a person-free frame with more than this share of pixels called person is counted
GALLERY_SIDE = 256  # long side of each gallery panel, pixels


# ------------------------------------------------------------------------------------------------ the model


def is_model_spec(value: str | Path) -> bool:
    """Whether a command-line value names a model rather than a data set.

    Models are files ending in `.pt`, `.pth`, `.safetensors` or `.onnx`, or names (no folder part, not an existing
    path); data sets are folders, `.json` and `.txt` files and any other path.
    """
    text, path = str(value), Path(value)
    if path.suffix in MODEL_SUFFIXES:
        return True
    return not (path.exists() or path.suffix.lower() in DATASET_SUFFIXES or "/" in text or "\\" in text)


def split_models(values: Sequence[str]) -> tuple[list[str], list[str]]:
    """Splits `--model A B C DATA1 DATA2` into the models and the data sets that follow them.

    The models are the leading values that `is_model_spec` accepts; the first data set and everything after it are
    data sets.
    """
    n = 0
    while n < len(values) and is_model_spec(values[n]):
        n += 1
    return list(values[:n]), list(values[n:])


def predict_probability(segmenter: Segmenter, image: np.ndarray, resize: str = "keep") -> np.ndarray:
    """Person probability `(H, W)` at the image's own size.

    Args:
        segmenter: the model, with its `input_size`.
        image: RGB uint8 `(H, W, 3)`.
        resize: "keep" (long side `input_size`, aspect ratio kept, as `Segmenter.predict`) or "square" (the whole
            image squeezed to `input_size x input_size`). A model of fixed size (the MediaPipe peers) gets the whole
            image resized to its fixed size in either mode.
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {resize!r}; valid: {', '.join(RESIZE_MODES)}")
    if resize == "keep" or segmenter.fixed_size is not None:
        return segmenter.predict(image)
    rgb, s = to_rgb(image), segmenter.input_size
    x = prepare_at(rgb, (s, s))[None]  # (1, 3, s, s)
    return logits_to_probability(segmenter.runner(x)[0, 0], rgb.shape[0], rgb.shape[1])


# ------------------------------------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class Settings:
    """How predictions are made and scored."""

    threshold: float | None = None  # None: the model's own (`Segmenter.threshold`)
    resize: str = "keep"
    band: IgnoreBand = IgnoreBand()
    boundary_ratio: float = BOUNDARY_DILATION_RATIO

    def __post_init__(self):
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {self.resize!r}; valid: {', '.join(RESIZE_MODES)}")
        if self.threshold is not None and not 0 <= self.threshold < 1:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}")

    def for_segmenter(self, segmenter: Segmenter) -> Settings:
        """These settings with the model's own threshold where none is set."""
        return self if self.threshold is not None else replace(self, threshold=segmenter.threshold)

    def describe(self, segmenter: Segmenter) -> dict:
        """The settings a model was evaluated with, for `summary.json`."""
        fixed = segmenter.fixed_size
        return {
            "input_size": segmenter.input_size,
            "fixed_size": None if fixed is None else list(fixed),  # (H, W) every image is resized to
            "threshold": self.threshold,
            "resize": "fixed" if fixed is not None else self.resize,
            "ignore_band": asdict(self.band),
            "boundary_dilation_ratio": self.boundary_ratio,
        }


@dataclass(frozen=True)
class ImageResult:
    """One evaluated image."""

    index: int
    image: str
    height: int
    width: int
    stats: ImageStats

    def row(self, band: IgnoreBand) -> dict:
        """CSV row: name, size, every score and the raw counts."""
        return {
            "image": self.image,
            "height": self.height,
            "width": self.width,
            **self.stats.scores(band),
            **self.stats.as_dict(),
        }


def evaluate_source(
    segmenter: Segmenter, source: Source, settings: Settings, desc: str = "", progress: bool = True
) -> list[ImageResult]:
    """Segments every image of `source` in order and scores it against its label."""
    settings = settings.for_segmenter(segmenter)
    results = []
    for i in tqdm(range(len(source)), desc=desc, unit="img", disable=not progress, file=sys.stderr):
        image, label = source.load(i)
        prob = predict_probability(segmenter, image, settings.resize)
        stats = image_stats(binarize(prob, settings.threshold), label, prob, settings.band, settings.boundary_ratio)
        results.append(ImageResult(i, source.samples[i].image.name, label.shape[0], label.shape[1], stats))
    return results


def is_person_free(source: Source) -> bool:
    """Whether a source is a list of person-free frames (all-zero labels): scored by the share called person."""
    return isinstance(source, FolderSource) and source.masks_dir is None


def worst(results: list[ImageResult], k: int, band: IgnoreBand) -> list[ImageResult]:
    """The `k` lowest ignore-band scores (ties: lower IoU first, then file order)."""

    def key(r: ImageResult) -> tuple[float, float, int]:
        s = r.stats.scores(band)
        return s["ignore_band_iou"], s["iou"], r.index

    return sorted(results, key=key)[:k]


def dataset_slug(path: str | Path, taken: set[str]) -> str:
    """Folder name for a data set's files: `ccp_test` for `.../ccp/test`, `ccp_samples` for `.../ccp_samples`,
    `davis_scenes_person_free_eval` for `.../davis_scenes/person_free_eval.txt`."""
    p = Path(path).resolve()
    name = p.stem if p.suffix.lower() in DATASET_SUFFIXES else p.name
    if p.parent.name and (name.lower() in SPLIT_NAMES or p.suffix.lower() == ".txt"):
        name = f"{p.parent.name}_{name}"
    return unique(name, taken)


def model_slug(model: str | Path) -> str:
    """Short name of a model for folders: `person_best` for `runs/person/best.pt`, the name itself for a name."""
    p = Path(model)
    return f"{p.parent.name}_{p.stem}" if p.suffix and p.parent.name else p.stem or str(model)


def default_output(model: str | Path | Sequence[str | Path]) -> Path:
    """`evaluation/<model>`: `evaluation/person_best` for `runs/person/best.pt`, `evaluation/asbunet` for a name;
    `evaluation/<first>_vs_<second>_<third>` for several models."""
    models = [model] if isinstance(model, (str, Path)) else list(model)
    name = model_slug(models[0])
    if len(models) > 1:
        name += "_vs_" + "_".join(model_slug(m) for m in models[1:])
    return Path("evaluation") / name


def evaluate_model(
    model: str | Path | Sequence[str | Path],
    datasets: list[str | Path],
    output: str | Path,
    size: int | None = None,
    settings: Settings | None = None,
    gallery: int = 8,
    threads: int | None = None,
    progress: bool = True,
    peers: str | Path = DEFAULT_PEERS_DIR,
    runtime: str | None = None,
) -> dict:
    """Evaluates one model, or several on the same images, on each data set; prints a table per data set and writes
    the files of the module docstring.

    Args:
        model: a model or a list of them, the first being the reference: bundled model name, `.pt` checkpoint,
            `.onnx` file, registry model name or MediaPipe peer name (see `asbunet.inference.weights.load_model`).
        datasets: folders with `images/` and `masks/`, COCO `.json` files or `.txt` lists of person-free frames.
        output: folder for the results (created).
        size: network input size (long side, or side with `resize="square"`); None for the model's own. Peers
            always run at their own size.
        settings: threshold (None: each model's own), resize mode and metric parameters.
        gallery: number of worst images drawn per data set and model; 0 for none.
        threads: CPU threads of PyTorch, onnxruntime and the peers' interpreter; None leaves the default.
        progress: show a progress bar.
        peers: folder with the MediaPipe `.tflite` files.
        runtime: how bundled models run ("onnx", "onnx-int8", "torch"; None: `Segmenter.from_pretrained`'s default).

    Returns:
        The summary written to `summary.json`.
    """
    settings = settings or Settings()
    models = [str(model)] if isinstance(model, (str, Path)) else [str(m) for m in model]
    if not models:
        raise ValueError("give at least one model")
    repeated = sorted({m for m in models if models.count(m) > 1})
    if repeated:
        raise ValueError(f"model {repeated[0]!r} is given twice; give each model once")
    if gallery < 0:
        raise ValueError(f"gallery must be >= 0 images, got {gallery}")
    if not datasets:
        raise ValueError(
            "give at least one data set (a folder with images/ and masks/, a COCO .json file or a .txt list of "
            "person-free frames)"
        )
    sources = [open_source(d) for d in datasets]  # fail on a missing data set before loading the models
    if size is not None:
        check_input_size(size)
    segmenters = [Segmenter.from_loaded(load_model(m, runtime, threads, peers), size) for m in models]
    model_settings = [settings.for_segmenter(s) for s in segmenters]
    taken_models: set[str] = set()
    subfolders = [""] + [unique(model_slug(m), taken_models) for m in models[1:]]
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    reports = [
        {"model": seg.name, "settings": st.describe(seg), "datasets": {}}
        for seg, st in zip(segmenters, model_settings, strict=True)
    ]
    comparison = {}
    taken: set[str] = set()
    for path, source in zip(datasets, sources, strict=True):
        slug = dataset_slug(path, taken)
        person_free = is_person_free(source)
        results = []
        for name, seg, st, sub, report in zip(models, segmenters, model_settings, subfolders, reports, strict=True):
            folder = out / slug / sub
            folder.mkdir(parents=True, exist_ok=True)
            res = evaluate_source(seg, source, st, f"{slug} {name}" if len(models) > 1 else slug, progress)
            prefix = f"{slug}/{sub}/" if sub else f"{slug}/"
            write_csv(res, folder / "per_image.csv", st.band)
            entry = {
                "path": str(path),
                "images": len(res),
                "person_free": person_free,
                **summarize([r.stats for r in res], st.band),
                "per_image_csv": f"{prefix}per_image.csv",
                "gallery": None,
            }
            if person_free:
                entry["frames_over_1pct"] = sum(
                    r.stats.scores(st.band)["person_share"] > PERSON_FREE_LIMIT for r in res
                )
            if gallery:
                write_gallery(seg, source, worst(res, gallery, st.band), folder / "gallery.png", st)
                entry["gallery"] = f"{prefix}gallery.png"
            report["datasets"][slug] = entry
            results.append(res)
            if len(models) == 1:
                print(format_table(slug, entry, markdown=False), flush=True)
        comparison[slug] = {
            "path": str(path),
            "images": len(source),
            "person_free": person_free,
            "rows": comparison_rows(models, [r["datasets"][slug] for r in reports], results, settings.band),
        }
        if len(models) > 1:
            print(format_comparison(slug, comparison[slug], markdown=False), flush=True)
    summary = {**reports[0], "models": models, "others": dict(zip(models[1:], reports[1:], strict=True))}
    summary["comparison"] = comparison
    if len(models) > 1:
        print(format_overall(summary, markdown=False), flush=True)
    atomic.write_text(out / "summary.json", json.dumps(json_safe(summary), indent=2) + "\n")
    atomic.write_text(out / "results.md", format_markdown(summary))
    print(f"wrote {out / 'results.md'}, {out / 'summary.json'} and per-data-set files under {out}", flush=True)
    return summary


def unique(name: str, taken: set[str]) -> str:
    """`name`, or `name_2`, `name_3`... if taken; the result is added to `taken`."""
    slug, n = name, 2
    while slug in taken:
        slug, n = f"{name}_{n}", n + 1
    taken.add(slug)
    return slug


def comparison_rows(
    models: list[str], entries: list[dict], results: list[list[ImageResult]], band: IgnoreBand
) -> dict[str, dict]:
    """One data set's row per model: IoU, background false-positive rate, over-2x share and the reference's
    wins, ties and losses against that model (None for the reference); for person-free frames the share of pixels
    called person and the number of frames above 1%."""
    if entries[0]["person_free"]:
        return {
            m: {"person_share": e["mean"]["person_share"], "frames_over_1pct": e["frames_over_1pct"]}
            for m, e in zip(models, entries, strict=True)
        }
    reference = [r.stats.scores(band)["iou"] for r in results[0]]
    rows = {}
    for k, (m, e, res) in enumerate(zip(models, entries, results, strict=True)):
        wins = None if k == 0 else count_wins(reference, [r.stats.scores(band)["iou"] for r in res])
        rows[m] = {
            "iou": e["mean"]["iou"],
            "background_fp_rate": e["mean"]["background_fp_rate"],
            "over_2x": e["mean"]["over_2x"],
            **(wins or {"wins": None, "ties": None, "losses": None}),
        }
    return rows


def json_safe(value):
    """`value` with every NaN replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# ------------------------------------------------------------------------------------------------ writing


def write_csv(results: list[ImageResult], path: Path, band: IgnoreBand) -> None:
    """Per-image CSV: full-precision scores and the counts that `asbunet.metrics.summarize` pools."""
    fields = ["image", "height", "width", *METRICS, *(f for f in COUNT_FIELDS if f not in METRICS)]
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
        head = ("model", "IoU", "background FP rate", "area > 2x label", f"{models[0]} wins / ties / losses")
        rows = [
            (
                m,
                _number(r["iou"]),
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


# ------------------------------------------------------------------------------------------------ gallery

COLORS = {  # RGB of the error panel
    "correct": (235, 235, 235),
    "false positive": (230, 50, 40),
    "false negative": (40, 110, 240),
    "ignore band": (250, 200, 0),
    "false detection": (255, 0, 255),
}


def error_panel(
    image: np.ndarray, pred: np.ndarray, label: np.ndarray, band: np.ndarray, false_blobs: np.ndarray
) -> np.ndarray:
    """RGB picture of the errors: dimmed image, correct person pixels, false positives and negatives coloured, the
    ignore band blended in, false detections outlined."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    panel = np.repeat((gray * 0.35).astype(np.uint8)[..., None], 3, axis=2)
    for mask, name in ((pred & label, "correct"), (pred & ~label, "false positive"), (~pred & label, "false negative")):
        panel[mask] = COLORS[name]
    panel[band] = (0.5 * panel[band] + 0.5 * np.asarray(COLORS["ignore band"])).astype(np.uint8)
    contours, _ = cv2.findContours(false_blobs.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thickness = max(1, round(max(image.shape[:2]) / 200))
    cv2.drawContours(panel, contours, -1, COLORS["false detection"], thickness)
    return panel


def write_gallery(
    segmenter: Segmenter, source: Source, chosen: list[ImageResult], path: Path, settings: Settings
) -> None:
    """PNG of `chosen` images, one row each: image | label and band | probability heatmap | errors."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    settings = settings.for_segmenter(segmenter)
    rows = max(1, len(chosen))
    aspect = max((r.height / r.width for r in chosen), default=1.0)  # panel height / width
    fig = Figure(figsize=(4 * 2.4, rows * (2.4 * min(aspect, 2.0) + 0.3) + 0.5), dpi=100)
    axes = fig.subplots(rows, 4, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for row, r in zip(axes, chosen, strict=False):
        image, label = source.load(r.index)
        prob = predict_probability(segmenter, image, settings.resize)
        pred, y = binarize(prob, settings.threshold), label.astype(bool)
        band = ignore_band(y, settings.band)
        min_area = int(np.ceil(settings.band.min_false_fraction * y.size))
        blobs, _ = false_detection_mask(pred, y, band, min_area)
        label_view = np.where(y, 255, 0).astype(np.uint8)[..., None].repeat(3, axis=2)
        label_view[band] = (0.5 * label_view[band] + 0.5 * np.asarray(COLORS["ignore band"])).astype(np.uint8)
        scale = GALLERY_SIDE / max(y.shape)
        size = (max(1, round(y.shape[1] * scale)), max(1, round(y.shape[0] * scale)))
        panels = [
            cv2.resize(image, size, interpolation=cv2.INTER_AREA),
            cv2.resize(label_view, size, interpolation=cv2.INTER_AREA),
            cv2.resize(prob, size, interpolation=cv2.INTER_AREA),
            cv2.resize(error_panel(image, pred, y, band, blobs), size, interpolation=cv2.INTER_AREA),
        ]
        for ax, panel in zip(row, panels, strict=True):
            heatmap = {"cmap": "inferno", "vmin": 0.0, "vmax": 1.0} if panel.ndim == 2 else {}
            ax.imshow(panel, interpolation="nearest", **heatmap)
        s = r.stats.scores(settings.band)
        row[0].set_title(r.image, fontsize=8, loc="left")
        row[3].set_title(
            f"IoU {s['iou']:.3f}  Eq.3 {s['ignore_band_iou']:.3f}  false {r.stats.false_detections}", fontsize=7
        )
    for ax, title in zip(axes[0], ("", "label + ignore band", "probability", ""), strict=True):
        if title:
            ax.set_title(title, fontsize=8)
    handles = [Patch(color=np.asarray(c) / 255, label=n) for n, c in COLORS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.subplots_adjust(
        left=0.01,
        right=0.99,
        top=1 - 0.3 / fig.get_figheight(),
        bottom=0.45 / fig.get_figheight(),
        wspace=0.04,
        hspace=0.18,
    )
    atomic.save_figure(fig, path, metadata={"Software": None})
