"""The gallery of the worst images (cf. Fig. 5): image | label | probability | errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from asbunet import atomic
from asbunet.data.sources import Source
from asbunet.evaluate.scoring import ImageResult, Settings, predict_probability
from asbunet.inference.postprocess import binarize
from asbunet.inference.segmenter import Segmenter
from asbunet.metrics import (
    false_detection_mask,
    ignore_band,
)

GALLERY_SIDE = 256  # long side of each gallery panel, pixels


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

    rows = max(1, len(chosen))
    aspect = max((r.height / r.width for r in chosen), default=1.0)  # panel height / width
    fig = Figure(figsize=(4 * 2.4, rows * (2.4 * min(aspect, 2.0) + 0.3) + 0.5), dpi=100)
    axes = fig.subplots(rows, 4, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for row, r in zip(axes, chosen, strict=False):
        image, label = source.load(r.index)
        prob = predict_probability(segmenter, image, settings.resize)
        pred, y = binarize(prob, segmenter.threshold), label.astype(bool)
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
