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
from asbunet.inference.scratch import scratch


def edge_band(height: int, width: int) -> int:
    """Width in pixels of the soft band on either side of the edge: 1/160 of the long side, from 3 to 8 px.

    About twice the ramp that bilinear upsampling leaves at the edge (832 px from a 384 network input: 2 px).
    """
    return int(min(8, max(3, round(max(height, width) / 160))))


def stretch(prob: np.ndarray, threshold: float) -> np.ndarray:
    """The probability remapped piecewise linearly so that 0, `threshold` and 1 go to 0, 0.5 and 1 (float32):
    `p / t / 2` below the threshold, `0.5 + (p - t) / (1 - t) / 2` from it on; a new array, worked out in place."""
    t = float(np.clip(threshold, 1e-6, 1.0 - 1e-6))
    out = np.empty(np.shape(prob), np.float32)
    np.clip(prob, 0.0, 1.0, out=out, casting="same_kind")
    below = np.less(out, np.float32(t), out=scratch("matte.below", out.shape, np.bool_))
    low = np.multiply(out, np.float32(0.5 / t), out=scratch("matte.low", out.shape))
    np.subtract(out, np.float32(t), out=out)
    np.multiply(out, np.float32(0.5 / (1 - t)), out=out)
    np.add(out, np.float32(0.5), out=out)
    np.copyto(out, low, where=below)
    return out


def signed_distance(mask: np.ndarray, out: np.ndarray | None = None, limit: float | None = None) -> np.ndarray:
    """Distance in pixels of each pixel to the other side of a bool mask's edge: positive inside, negative outside
    (written into `out` when given).

    A mask pixel next to the background is at 1, a background pixel next to the mask at -1; a mask that is all
    person (or all background) gives large values of one sign everywhere. With `limit`, only distances up to `limit`
    are exact: the distance transforms run on the box around the edge pixels widened by `limit / 0.955 + 2` (0.955:
    the shortest step of the 3x3 chamfer), and every pixel outside that box, farther than `limit` from the edge, gets
    `limit` + 1 with its sign.
    """
    mask = np.asarray(mask, dtype=bool)
    out = np.empty(mask.shape, np.float32) if out is None else out
    box = (0, 0, mask.shape[1], mask.shape[0]) if limit is None else _edge_box(mask, int(np.ceil(limit / 0.955)) + 2)
    if box is None:  # no edge: all person or all background
        out[...] = np.float32(-1 - (limit or 0)) if not mask.any() else np.float32(1 + (limit or 0))
        return out
    x, y, w, h = box
    if (w, h) != (mask.shape[1], mask.shape[0]):  # farther than `limit` from the edge outside the box
        np.multiply(mask, np.float32(2 * (limit + 1)), out=out)
        np.subtract(out, np.float32(limit + 1), out=out)
    part = mask[y : y + h, x : x + w]
    person, background = part.view(np.uint8), np.logical_not(part).view(np.uint8)  # 1 where set
    inside = scratch("matte.inside", part.shape)  # (h, w), 0 outside the mask
    outside = scratch("matte.outside", part.shape)  # (h, w), 0 inside
    cv2.distanceTransform(np.ascontiguousarray(person), cv2.DIST_L2, cv2.DIST_MASK_3, dst=inside)
    cv2.distanceTransform(background, cv2.DIST_L2, cv2.DIST_MASK_3, dst=outside)
    np.subtract(inside, outside, out=out[y : y + h, x : x + w])
    return out


def _edge_box(mask: np.ndarray, margin: int) -> tuple[int, int, int, int] | None:
    """`(x, y, w, h)` of the pixels that have a neighbour across the mask's edge, widened by `margin` and cut to the
    image; None when there are none. A pixel's nearest pixel across the edge lies in this box, and so does the
    shortest 3x3 chamfer path to it, so the distance transforms on the box are those of the whole image there."""
    person = mask.view(np.uint8)
    edge = cv2.compare(cv2.dilate(person, None), cv2.erode(person, None), cv2.CMP_NE)  # 255 at the edge's pixels
    x, y, w, h = cv2.boundingRect(edge)
    if w == 0:
        return None
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(mask.shape[1], x + w + margin), min(mask.shape[0], y + h + margin)
    return x0, y0, x1 - x0, y1 - y0


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
    alpha = stretch(prob, threshold)
    s = signed_distance(mask, out=scratch("matte.distance", mask.shape), limit=band)
    half, ramp = np.float32(band / 2), scratch("matte.ramp", mask.shape)
    np.subtract(s, half, out=ramp)  # lower(s), below which the alpha does not go
    np.divide(ramp, half, out=ramp)
    np.maximum(alpha, np.clip(ramp, 0.0, 1.0, out=ramp), out=alpha)
    np.add(s, np.float32(band), out=ramp)  # upper(s), above which it does not go
    np.divide(ramp, half, out=ramp)
    return np.minimum(alpha, np.clip(ramp, 0.0, 1.0, out=ramp), out=alpha)
