"""Only the main person: the connected person region that is largest and nearest the centre, the rest dropped.

For a call with people passing behind the speaker: `asbunet segment --main-person`, `VideoSegmenter(main_person=True)`.
"""

from __future__ import annotations

import cv2
import numpy as np

from asbunet.inference.postprocess import binarize


def main_person_region(mask: np.ndarray, centre_weight: float = 0.5) -> np.ndarray:
    """The connected region (8-neighbourhood) of `mask` (H, W) bool with the best score, as a bool mask.

    A region scores its area times `1 - centre_weight * d`, where `d` is the distance of its centroid from the image
    centre over half the image diagonal (0 at the centre, 1 in a corner): of two people of the same size, the one in
    the middle is kept; a much larger one at the side still wins. An empty mask stays empty.
    """
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:  # background and at most one region
        return mask.astype(bool)
    h, w = mask.shape
    centre, half_diagonal = np.array([(w - 1) / 2, (h - 1) / 2]), 0.5 * np.hypot(w, h)
    distance = np.linalg.norm(centroids[1:] - centre, axis=1) / half_diagonal  # (count - 1,)
    score = stats[1:, cv2.CC_STAT_AREA] * (1.0 - centre_weight * np.clip(distance, 0.0, 1.0))
    return labels == 1 + int(np.argmax(score))


def keep_main_person(probability: np.ndarray, threshold: float, margin: int = 0) -> np.ndarray:
    """`probability` (H, W) with every person region but the main one set to 0.

    The main region is taken from the mask at `threshold` (the model's rule, `>=`) and grown by `margin` pixels, so
    that the soft edge around it (hair, the blur of an effect) is kept.
    """
    keep = main_person_region(binarize(probability, threshold))
    if margin > 0 and keep.any():
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
        keep = cv2.dilate(keep.astype(np.uint8), kernel).astype(bool)
    return np.where(keep, probability, 0.0).astype(probability.dtype, copy=False)
