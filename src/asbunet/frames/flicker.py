"""Flicker of a mask sequence: how much a video's mask changes from frame to frame where the person did not.

`flicker(masks, labels)` is the share of pixels whose predicted mask changes between consecutive frames where the
label does not change, mean over frame pairs (lower is steadier); without labels, the share of all pixels that change.
`asbunet evaluate --video` reports it for frame sequences; `asbunet.frames.temporal` holds the smoothers that lower it.
"""

from __future__ import annotations

import numpy as np


def _mask_sequence(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"{name} must be a sequence of (H, W) masks, shape (T, H, W), got shape {x.shape}")
    return x.astype(bool, copy=False)


def flicker_pairs(masks, labels=None) -> np.ndarray:
    """Per consecutive frame pair, the share of pixels whose mask changes where the label does not.

    Args:
        masks: predicted masks `(T, H, W)` (bool, or 0/1) or a sequence of `(H, W)` masks.
        labels: label masks of the same shape, or None: every pixel counts (a video without labels).

    Returns:
        `(T - 1,)` float64; NaN for a pair where the label changes everywhere.
    """
    m = _mask_sequence(masks, "masks")
    changed = m[1:] != m[:-1]  # (T-1, H, W)
    if labels is None:
        return changed.mean(axis=(1, 2), dtype=np.float64)
    y = _mask_sequence(labels, "labels")
    if y.shape != m.shape:
        raise ValueError(f"masks {m.shape} and labels {y.shape} shapes differ")
    steady = y[1:] == y[:-1]
    count = steady.sum(axis=(1, 2), dtype=np.int64)
    flips = (changed & steady).sum(axis=(1, 2), dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, flips / np.maximum(count, 1), np.nan)


def flicker(masks, labels=None) -> float:
    """Flicker of a mask sequence: `flicker_pairs` averaged over the frame pairs (NaN for fewer than two frames)."""
    pairs = flicker_pairs(masks, labels)
    pairs = pairs[np.isfinite(pairs)]
    return float(pairs.mean()) if len(pairs) else float("nan")
