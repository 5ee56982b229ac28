"""Choosing a model's mask threshold, and optionally its input size, on its validation split (`asbunet bundle`).

A network trained with a class-weighted BCE (Section IV-B, `pos_weight` = background/person ratio) is pushed towards
the person class, so its probabilities are not calibrated at 0.5: the threshold that gives the best mean person IoU
on held-out images is usually higher. It is chosen on the training run's validation split, never on a test set, and
stored with the bundled weights (`Segmenter.threshold`).

The input size is chosen the same way when several are offered: auto cropping (Section IV-A) zooms in during
training, so a model often does best when run at a larger size than the canvases it was trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from asbunet.data.mixture import IGNORE
from asbunet.inference.postprocess import binarize, check_threshold
from asbunet.inference.preprocess import SIZE_MULTIPLE
from asbunet.inference.refine import GuidedRefine
from asbunet.inference.runners import Runner
from asbunet.inference.segmenter import Segmenter
from asbunet.metrics import iou

THRESHOLDS = tuple(round(0.3 + 0.05 * i, 2) for i in range(13))  # 0.30, 0.35, ..., 0.90


def validation_kind(name: str, mask) -> str:
    """ "frames" (a person-free frame: empty mask), "scenes" (a composite: its name starts with "scene ") or
    "photos", for one validation sample of `asbunet.train.engine.load_data`."""
    if not np.asarray(mask).any():
        return "frames"
    return "scenes" if name.startswith("scene ") else "photos"


def split_kinds(pool, indices, selection: str = "kinds") -> list[str] | None:
    """`validation_kind` of every sample `pool[indices]` (a `SamplePool`), as `selection_score` takes them for the
    config's `selection`; None for "images" (the mean over images needs none)."""
    if selection == "images":
        return None
    return [validation_kind(str(pool.names[i]), pool.masks[i]) for i in indices]


def selection_score(per_image, kinds: Sequence[str] | None = None) -> float | np.ndarray:
    """The split's score from per-image `selection_iou` values `(N,)` or `(N, T)` (one column per threshold).

    `kinds` None: the mean over images. Otherwise one kind per image (`validation_kind`): the mean over kinds of
    each kind's mean, so that held-out photos, composites and person-free frames count alike whatever their
    numbers in the split (the number of composites is a config setting, `data.val_scenes`)."""
    values = np.asarray(per_image, dtype=float)  # (N,) or (N, T)
    if kinds is None:
        return values.mean(axis=0)
    kinds = np.asarray(list(kinds))
    if kinds.shape != values.shape[:1]:
        raise ValueError(f"need one kind per image: {kinds.size} kinds for {values.shape[0]} images")
    return np.mean([values[kinds == k].mean(axis=0) for k in np.unique(kinds)], axis=0)


def selection_iou(pred, target, reduction: str = "mean") -> float | np.ndarray:
    """Person IoU where the label `(H, W)` or `(B, H, W)` shows a person; where it shows none, the share of pixels
    left background.

    The score `asbunet train` keeps its best checkpoint by and `asbunet bundle` chooses the threshold by. IoU on a
    person-free label is all or nothing (one false pixel scores 0, as many as a wholly false frame), so a few
    person-free frames would swing a mean over images more than every photo; the share of false pixels grows with
    the error instead. `reduction`: "mean" over images or "none" (per image)."""
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    per_image = np.atleast_1d(iou(pred, target, reduction="none"))  # (B,), checks the masks
    p = np.asarray(pred).astype(bool).reshape(per_image.size, -1)  # (B, H*W)
    y = np.asarray(target).astype(bool).reshape(per_image.size, -1)
    per_image = np.where(y.any(axis=1), per_image, 1 - p.mean(axis=1))
    return per_image if reduction == "none" else float(per_image.mean())


def threshold_sweep(
    segmenter: Segmenter,
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    thresholds: Sequence[float] = THRESHOLDS,
    progress: Callable | None = None,
    kinds: Sequence[str] | None = None,
) -> dict[float, float]:
    """Mean person IoU over `images` of the mask `binarize(probability, t)` (`probability >= t`), for every `t` in
    `thresholds`; person-free images score the share of pixels left background (`selection_iou`), and `kinds`
    (one per image) averages kind by kind (`selection_score`)."""
    if len(images) != len(masks) or not images:
        raise ValueError(f"need as many masks as images, and at least one; got {len(images)} and {len(masks)}")
    keys = [check_threshold(t) for t in thresholds]
    if not keys:
        raise ValueError("give at least one threshold to sweep")
    ious = np.zeros((len(images), len(keys)))  # (N, T)
    items = range(len(images)) if progress is None else progress(range(len(images)))
    for i in items:
        prob = segmenter.predict(images[i])  # (H, W)
        target = masks[i] == 1  # (H, W); IGNORE pixels (`asbunet.data.mixture`) are neither person nor background
        pred = np.stack([binarize(prob, t) for t in keys]) & (masks[i] != IGNORE)  # (T, H, W)
        ious[i] = selection_iou(pred, np.broadcast_to(target, pred.shape), reduction="none")
    return dict(zip(keys, selection_score(ious, kinds).tolist(), strict=True))


def best_threshold(sweep: dict[float, float]) -> float:
    """The threshold with the highest mean IoU; ties go to the one closest to 0.5."""
    return max(sweep, key=lambda t: (round(sweep[t], 6), -abs(t - 0.5)))


def size_threshold_sweep(
    runner: Runner,
    input_sizes: Sequence[int],
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    thresholds: Sequence[float] = THRESHOLDS,
    progress: Callable | None = None,
    refine: GuidedRefine | None = None,
    kinds: Sequence[str] | None = None,
) -> dict[int, dict[float, float]]:
    """`threshold_sweep` of `runner` at every long side in `input_sizes`: `{input_size: {threshold: mean IoU}}`, the
    probability resized back with `refine` where given (`Segmenter`)."""
    sizes = [int(s) for s in input_sizes]
    if not sizes or any(s < SIZE_MULTIPLE or s % SIZE_MULTIPLE for s in sizes):
        raise ValueError(
            f"input sizes must be multiples of {SIZE_MULTIPLE} (the output stride), got {list(input_sizes)}"
        )
    return {
        s: threshold_sweep(Segmenter(runner, s, refine=refine), images, masks, thresholds, progress, kinds)
        for s in sizes
    }


def best_setting(sweeps: dict[int, dict[float, float]]) -> tuple[int, float]:
    """The `(input_size, threshold)` with the highest mean IoU; ties go to the smaller (faster) size."""
    size = max(sweeps, key=lambda s: (round(max(sweeps[s].values()), 6), -s))
    return size, best_threshold(sweeps[size])
