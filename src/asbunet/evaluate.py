"""Evaluating a model on labelled data sets with the paper's metric (Section IV-C, Eq. 3) and the usual scores.

Every image is segmented by a `Segmenter` and compared with its label at the label's full resolution (see
`asbunet.metrics` for the definitions). For each data set the results are printed as a table and written as:

    <output>/summary.json                 settings and every metric, mean over images and pooled over pixels
    <output>/results.md                   the same as Markdown tables
    <output>/<data set>/per_image.csv     one row per image: scores and the raw pixel counts behind them
    <output>/<data set>/gallery.png       the worst images: image | label | probability | errors (cf. Fig. 5)

Results are deterministic: images are processed in file order and a registry model without weights is initialized
from a fixed seed.
"""

from __future__ import annotations

import csv
import json
import sys
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from asbunet import atomic
from asbunet.data.augment import normalize
from asbunet.data.sources import Source, open_source
from asbunet.inference import SIZE_MULTIPLE, logits_to_probability, to_rgb
from asbunet.metrics import (
    BOUNDARY_DILATION_RATIO,
    METRICS,
    IgnoreBand,
    ImageStats,
    binarize,
    false_detection_mask,
    ignore_band,
    image_stats,
    summarize,
)
from asbunet.predict import Segmenter, TorchRunner, bundled_models

RESIZE_MODES = ("keep", "square")
SPLIT_NAMES = ("train", "test", "val", "valid", "validation", "images")
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
}
SUMMARY_COLUMNS = ("ignore_band_iou", "iou", "dice", "boundary_iou", "mae", "false_detections")
GALLERY_SIDE = 256  # long side of each gallery panel, pixels


# ------------------------------------------------------------------------------------------------ the model


def load_segmenter(model: str | Path, size: int | None = None, threads: int | None = None) -> Segmenter:
    """A segmenter for a bundled model name, a `.pt` checkpoint, a `.safetensors` or `.onnx` file or a registry
    model name.

    A registry model name (`asbunet.list_models()`) without bundled weights is built with random weights from a
    fixed seed, with a warning: useful to test the pipeline, meaningless as a score.
    """
    from asbunet.models import create_model, list_models

    if size is not None and (size < SIZE_MULTIPLE or size % SIZE_MULTIPLE):
        below = max(SIZE_MULTIPLE, size // SIZE_MULTIPLE * SIZE_MULTIPLE)
        raise ValueError(
            f"size must be a positive multiple of {SIZE_MULTIPLE} (the models' output stride), got "
            f"{size}; try {below} or {below + SIZE_MULTIPLE}"
        )
    spec, path = str(model), Path(model)
    names = (
        f"bundled models: {', '.join(bundled_models()) or 'none'}; registry models (random weights): "
        f"{', '.join(list_models())}"
    )
    if path.suffix in (".pt", ".pth", ".safetensors", ".onnx"):
        if not path.is_file():
            raise FileNotFoundError(
                f"model file not found: {path}; give a .pt checkpoint written by `asbunet train`, a .safetensors "
                f"file written by `asbunet bundle`, an .onnx file, or a model name ({names})"
            )
        try:
            return Segmenter.from_pretrained(path, size, threads)
        except ModuleNotFoundError as err:
            if err.name != "asbunet.export":
                raise
            raise ValueError(
                f"{path}: evaluating ONNX files needs asbunet.export, which this installation lacks; "
                "evaluate the .pt checkpoint instead"
            ) from None
    if spec in bundled_models():
        return Segmenter.from_pretrained(spec, size, threads)
    if spec in list_models():
        warnings.warn(
            f"{spec!r} has no bundled weights: evaluating it with random weights (seed 0); give a .pt "
            "checkpoint to evaluate a trained model",
            RuntimeWarning,
            stacklevel=2,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = create_model(spec)
        return Segmenter(TorchRunner(net, threads), size or 256, f"{spec} (random weights)")
    if path.exists():
        raise ValueError(
            f"{path}: unsupported model file; give a .pt checkpoint, a .safetensors file, an .onnx file or a model name"
        )
    raise ValueError(f"unknown model {spec!r}: not a file and not a model name; {names}")


def predict_probability(segmenter: Segmenter, image: np.ndarray, resize: str = "keep") -> np.ndarray:
    """Person probability `(H, W)` at the image's own size.

    Args:
        segmenter: the model, with its `input_size`.
        image: RGB uint8 `(H, W, 3)`.
        resize: "keep" (long side `input_size`, aspect ratio kept, as `Segmenter.predict`) or "square" (the whole
            image squeezed to `input_size x input_size`).
    """
    if resize == "keep":
        return segmenter.predict(image)
    if resize != "square":
        raise ValueError(f"unknown resize mode {resize!r}; valid: {', '.join(RESIZE_MODES)}")
    rgb, s = to_rgb(image), segmenter.input_size
    interp = cv2.INTER_AREA if max(rgb.shape[:2]) > s else cv2.INTER_LINEAR
    x = normalize(cv2.resize(rgb, (s, s), interpolation=interp))[None]  # (1, 3, s, s)
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


def worst(results: list[ImageResult], k: int, band: IgnoreBand) -> list[ImageResult]:
    """The `k` lowest ignore-band scores (ties: lower IoU first, then file order)."""

    def key(r: ImageResult) -> tuple[float, float, int]:
        s = r.stats.scores(band)
        return s["ignore_band_iou"], s["iou"], r.index

    return sorted(results, key=key)[:k]


def dataset_slug(path: str | Path, taken: set[str]) -> str:
    """Folder name for a data set's files: `ccp_test` for `.../ccp/test`, `ccp_samples` for `.../ccp_samples`."""
    p = Path(path).resolve()
    name = p.stem if p.suffix.lower() == ".json" else p.name
    if name.lower() in SPLIT_NAMES and p.parent.name:
        name = f"{p.parent.name}_{name}"
    slug, n = name, 2
    while slug in taken:
        slug, n = f"{name}_{n}", n + 1
    taken.add(slug)
    return slug


def default_output(model: str | Path) -> Path:
    """`evaluation/<model>`: `evaluation/person_best` for `runs/person/best.pt`, `evaluation/asbunet` for a name."""
    p = Path(model)
    name = f"{p.parent.name}_{p.stem}" if p.suffix and p.parent.name else p.stem or str(model)
    return Path("evaluation") / name


def evaluate_model(
    model: str | Path,
    datasets: list[str | Path],
    output: str | Path,
    size: int | None = None,
    settings: Settings | None = None,
    gallery: int = 8,
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Evaluates `model` on each data set, prints a table per data set and writes the files of the module docstring.

    Args:
        model: bundled model name, `.pt` checkpoint, `.onnx` file or registry model name (see `load_segmenter`).
        datasets: folders with `images/` and `masks/`, or COCO `.json` files.
        output: folder for the results (created).
        size: network input size (long side, or side with `resize="square"`); None for the model's own.
        settings: threshold, resize mode and metric parameters.
        gallery: number of worst images drawn per data set; 0 for none.
        threads: PyTorch CPU threads; None leaves the default.
        progress: show a progress bar.

    Returns:
        The summary written to `summary.json`.
    """
    settings = settings or Settings()
    if gallery < 0:
        raise ValueError(f"gallery must be >= 0 images, got {gallery}")
    if not datasets:
        raise ValueError("give at least one data set (a folder with images/ and masks/, or a COCO .json file)")
    sources = [open_source(d) for d in datasets]  # fail on a missing data set before loading the model
    segmenter = load_segmenter(model, size, threads)
    settings = settings.for_segmenter(segmenter)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": segmenter.name,
        "settings": {
            "input_size": segmenter.input_size,
            "threshold": settings.threshold,
            "resize": settings.resize,
            "ignore_band": asdict(settings.band),
            "boundary_dilation_ratio": settings.boundary_ratio,
        },
        "datasets": {},
    }
    taken: set[str] = set()
    for path, source in zip(datasets, sources, strict=True):
        slug = dataset_slug(path, taken)
        folder = out / slug
        folder.mkdir(exist_ok=True)
        results = evaluate_source(segmenter, source, settings, slug, progress)
        write_csv(results, folder / "per_image.csv", settings.band)
        entry = {
            "path": str(path),
            "images": len(results),
            **summarize([r.stats for r in results], settings.band),
            "per_image_csv": f"{slug}/per_image.csv",
            "gallery": None,
        }
        if gallery:
            write_gallery(segmenter, source, worst(results, gallery, settings.band), folder / "gallery.png", settings)
            entry["gallery"] = f"{slug}/gallery.png"
        summary["datasets"][slug] = entry
        print(format_table(slug, entry, markdown=False), flush=True)
    atomic.write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic.write_text(out / "results.md", format_markdown(summary))
    print(f"wrote {out / 'results.md'}, {out / 'summary.json'} and per-data-set files under {out}", flush=True)
    return summary


# ------------------------------------------------------------------------------------------------ writing


def write_csv(results: list[ImageResult], path: Path, band: IgnoreBand) -> None:
    """Per-image CSV: full-precision scores and the counts that `asbunet.metrics.summarize` pools."""
    fields = ["image", "height", "width", *METRICS, *(f for f in COUNT_FIELDS if f not in METRICS)]
    with atomic.open_atomic(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in results:
            writer.writerow(r.row(band))


def format_table(name: str, entry: dict, markdown: bool) -> str:
    """One data set's metrics, mean over images and pooled over pixels, as aligned text or Markdown."""
    rows = [(LABELS[k], f"{entry['mean'][k]:.4f}", f"{entry['pooled'][k]:.4f}") for k in METRICS]
    head = ("metric", "mean over images", "pooled over pixels")
    if markdown:
        lines = [f"| {' | '.join(head)} |", "|---|---:|---:|", *(f"| {' | '.join(r)} |" for r in rows)]
        return "\n".join(lines) + "\n"
    w = max(len(r[0]) for r in rows)
    lines = [f"{name}: {entry['images']} images ({entry['path']})", f"  {head[0]:<{w}}  {head[1]:>16}  {head[2]:>18}"]
    lines += [f"  {a:<{w}}  {b:>16}  {c:>18}" for a, b, c in rows]
    return "\n".join(lines)


def format_markdown(summary: dict) -> str:
    """`results.md`: settings, one summary row per data set, then each data set's full table."""
    s, band = summary["settings"], summary["settings"]["ignore_band"]
    lines = [
        f"# Evaluation of {summary['model']}",
        "",
        f"Input size {s['input_size']} ({s['resize']}), threshold {s['threshold']}, labels compared at full "
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
    for slug, e in summary["datasets"].items():
        values = " | ".join(f"{e['mean'][k]:.4f}" for k in SUMMARY_COLUMNS)
        lines.append(f"| {slug} | {e['images']} | {values} |")
    for slug, e in summary["datasets"].items():
        lines += ["", f"## {slug}", "", f"`{e['path']}`, {e['images']} images, per image: `{e['per_image_csv']}`", ""]
        lines.append(format_table(slug, e, markdown=True))
        if e["gallery"]:
            lines.append(f"![worst images of {slug}]({e['gallery']})")
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
