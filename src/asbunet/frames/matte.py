"""The alpha that cut-outs and background effects composite with: 1 inside the person, 0 outside, soft only at the edge.

The probability map is soft everywhere: a court or a wall the model is 20% sure of would show through any new
background as a ghost if the probability were the alpha. `matte` keeps the probability only in a narrow band around
the edge of the thresholded mask, where it carries the edge's detail (hair, the snap of the model's refinement to
image edges), and clamps it to 1 deeper inside and to 0 further out. With the signed distance `s` of a pixel to the mask
edge (positive inside), the alpha is the probability clamped between two ramps:

    lower(s) = clip((s - band/2) / (band/2), 0, 1)     # 0 up to band/2 inside, 1 from band inside
    upper(s) = clip((s + band) / (band/2), 0, 1)       # 0 from band outside, 1 from band/2 outside
    alpha    = clip(stretch(p), lower(s), upper(s))

so the alpha is continuous (no seam where the band ends) and exactly 0 or 1 more than `band` pixels from the edge.
`stretch` maps the threshold to 0.5, linearly on either side, so that the alpha's half-way line is the mask's edge.
"""

from __future__ import annotations

import cv2
import numpy as np

from asbunet.inference.postprocess import binarize


def edge_band(height: int, width: int) -> int:
    """Width in pixels of the soft band on either side of the edge: 1/160 of the long side, from 3 to 8 px.

    About twice the ramp that bilinear upsampling leaves at the edge (832 px from a 384 network input: 2 px).
    """
    return int(min(8, max(3, round(max(height, width) / 160))))


def stretch(prob: np.ndarray, threshold: float) -> np.ndarray:
    """The probability remapped piecewise linearly so that 0, `threshold` and 1 go to 0, 0.5 and 1 (float32)."""
    t = float(np.clip(threshold, 1e-6, 1.0 - 1e-6))
    p = np.clip(prob, 0.0, 1.0).astype(np.float32)
    return np.where(p < t, p * np.float32(0.5 / t), np.float32(0.5) + (p - np.float32(t)) * np.float32(0.5 / (1 - t)))


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Distance in pixels of each pixel to the other side of a bool mask's edge: positive inside, negative outside.

    A mask pixel next to the background is at 1, a background pixel next to the mask at -1; a mask that is all
    person (or all background) gives large values of one sign everywhere.
    """
    person = mask.astype(np.uint8)
    inside = cv2.distanceTransform(person, cv2.DIST_L2, cv2.DIST_MASK_3)  # (H, W), 0 outside the mask
    outside = cv2.distanceTransform(1 - person, cv2.DIST_L2, cv2.DIST_MASK_3)  # (H, W), 0 inside
    return inside - outside


def matte(prob: np.ndarray, threshold: float = 0.5, band: float | None = None) -> np.ndarray:
    """Compositing alpha `(H, W)` float32 in [0, 1] from a person probability `(H, W)`.

    Args:
        prob: the (refined) person probability.
        threshold: the mask threshold (the model's, `Segmenter.threshold`): pixels at or above it are person.
        band: the soft band's width in pixels on either side of the edge; default `edge_band` of the size. 0 gives
            the binary mask.
    """
    if prob.ndim != 2:
        raise ValueError(f"probability must be (H, W), got shape {prob.shape}")
    mask = binarize(prob, threshold)
    band = edge_band(*prob.shape) if band is None else float(band)
    if band < 0:
        raise ValueError(f"band must be >= 0 pixels, got {band}")
    if band == 0:
        return mask.astype(np.float32)
    s = signed_distance(mask)
    half = np.float32(band / 2)
    lower = np.clip((s - half) / half, 0.0, 1.0)
    upper = np.clip((s + np.float32(band)) / half, 0.0, 1.0)
    return np.clip(stretch(prob, threshold), lower, upper).astype(np.float32, copy=False)
