"""From network logits to a probability map and a mask: the sigmoid, resizing back, and the one threshold rule.

The logits are resized back to the image's own size before the sigmoid. A pixel is person when its probability is
**at or above** the threshold (`binarize`): the rule that chooses a model's threshold on its validation split
(`asbunet.train.calibrate`), scores it (`asbunet.metrics`), trains it and applies it (`Segmenter.mask`, the
`mask` output of `asbunet segment`) is this one, everywhere. A threshold lies strictly between 0 and 1
(`check_threshold`, the one range check, wherever a threshold enters: a model's metadata, `Segmenter`, `binarize`,
`asbunet bundle`, the calibration's sweep, the hysteresis smoother); at 0 every pixel would be person, at 1 only
saturated ones.
"""

from __future__ import annotations

import cv2
import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logits -> probabilities float32, clipped at +-30 so that no overflow warning is raised; one new array, every
    step in place in it."""
    out = np.empty(np.shape(x), np.float32)
    np.clip(x, -30, 30, out=out, casting="same_kind")
    np.negative(out, out=out)
    np.exp(out, out=out)
    out += 1
    np.reciprocal(out, out=out)
    return out


def logits_to_probability(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """Network logits `(h, w)` -> person probability `(height, width)` float32 in [0, 1]."""
    logits = cv2.resize(logits.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return sigmoid(logits)


def check_threshold(threshold: float) -> float:
    """`threshold` as a float if it is a number in (0, 1), both ends excluded, else a `ValueError`."""
    if not isinstance(threshold, (int, float, np.number)) or not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), both ends excluded, got {threshold!r}")
    return float(threshold)


def binarize(probability: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Person mask (bool, same shape): `probability >= threshold`, for one map or a batch of them."""
    return np.asarray(probability) >= check_threshold(threshold)
