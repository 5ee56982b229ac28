"""How one model is scored on one data set: the settings (resize mode, ignore band, smoother), the probability of an
image, the per-image results and the worst images. The threshold is the segmenter's (`Segmenter.threshold`: the
model's own, or the one `asbunet evaluate --threshold` gave it)."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from asbunet.data.io import DataError
from asbunet.data.sources import FolderSource, Source
from asbunet.frames.flicker import flicker_pairs
from asbunet.frames.temporal import smoother_for
from asbunet.inference.postprocess import binarize
from asbunet.inference.preprocess import resize_to, to_rgb
from asbunet.inference.segmenter import Segmenter
from asbunet.metrics import (
    BOUNDARY_DILATION_RATIO,
    IgnoreBand,
    ImageStats,
    image_stats,
)

RESIZE_MODES = ("keep", "square")


COUNT_FIELDS = tuple(ImageStats.__dataclass_fields__)


PERSON_FREE_LIMIT = 0.01  # a person-free frame with more than this share of pixels called person is counted


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
    small = resize_to(rgb, (s, s))
    return segmenter._probability(rgb, small, segmenter._run_network([small])[0, 0])


@dataclass(frozen=True)
class Settings:
    """How predictions are made and scored."""

    resize: str = "keep"
    band: IgnoreBand = IgnoreBand()
    boundary_ratio: float = BOUNDARY_DILATION_RATIO
    video: bool = False  # each data set is a frame sequence (name order): flicker is scored, `smoother` applies
    smoother: str = "frame_by_frame"  # `asbunet.frames.temporal` smoother run over a sequence's probabilities

    def __post_init__(self):
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {self.resize!r}; valid: {', '.join(RESIZE_MODES)}")

    def describe(self, segmenter: Segmenter) -> dict:
        """The settings a model was evaluated with, for `summary.json`."""
        fixed = segmenter.fixed_size
        return {
            "input_size": segmenter.input_size,
            "fixed_size": None if fixed is None else list(fixed),  # (H, W) every image is resized to
            "threshold": segmenter.threshold,
            "refine": segmenter.refine.to_text() if segmenter.refine is not None else None,
            "resize": "fixed" if fixed is not None else self.resize,
            "ignore_band": asdict(self.band),
            "boundary_dilation_ratio": self.boundary_ratio,
            "video": self.video,
            "smoother": self.smoother if self.video else None,
        }


@dataclass(frozen=True)
class ImageResult:
    """One evaluated image."""

    index: int
    image: str
    height: int
    width: int
    stats: ImageStats
    flicker: float | None = None  # video: share of pixels changed since the previous frame where the label did not

    def row(self, band: IgnoreBand) -> dict:
        """CSV row: name, size, every score, the flicker against the previous frame (video) and the raw counts."""
        return {
            "image": self.image,
            "height": self.height,
            "width": self.width,
            **self.stats.scores(band),
            "flicker": self.flicker,
            **self.stats.as_dict(),
        }


def evaluate_source(
    segmenter: Segmenter, source: Source, settings: Settings, desc: str = "", progress: bool = True
) -> list[ImageResult]:
    """Segments every image of `source` in order and scores it against its label; a video (`settings.video`) runs
    the frames through the smoother in order and scores each frame's flicker against the previous one."""
    smoother = smoother_for(settings.smoother, None, segmenter.threshold) if settings.video else None
    results, previous = [], None
    for i in tqdm(range(len(source)), desc=desc, unit="img", disable=not progress, file=sys.stderr):
        image, label = source.load(i)
        prob = predict_probability(segmenter, image, settings.resize)
        if smoother is not None:
            prob = smoother(prob, image)
        mask = binarize(prob, segmenter.threshold)
        stats = image_stats(mask, label, prob, settings.band, settings.boundary_ratio)
        change = None
        if settings.video and previous is not None:
            if previous[0].shape != mask.shape:
                raise DataError(f"{source.samples[i].image}: frame size differs from the previous frame's (--video)")
            change = float(flicker_pairs(np.stack([previous[0], mask]), np.stack([previous[1], label]))[0])
        previous = (mask, label > 0)
        results.append(ImageResult(i, source.samples[i].image.name, label.shape[0], label.shape[1], stats, change))
    return results


def sequence_flicker(results: list[ImageResult]) -> float:
    """Flicker of a video: the frames' flicker against their previous frame, mean over the frame pairs."""
    values = [r.flicker for r in results if r.flicker is not None and np.isfinite(r.flicker)]
    return float(np.mean(values)) if values else float("nan")


def is_person_free(source: Source) -> bool:
    """Whether a source is a list of person-free frames (all-zero labels): scored by the share called person."""
    return isinstance(source, FolderSource) and source.masks_dir is None


def worst(results: list[ImageResult], k: int, band: IgnoreBand) -> list[ImageResult]:
    """The `k` lowest ignore-band scores (ties: lower IoU first, then file order)."""

    def key(r: ImageResult) -> tuple[float, float, int]:
        s = r.stats.scores(band)
        return s["ignore_band_iou"], s["iou"], r.index

    return sorted(results, key=key)[:k]
