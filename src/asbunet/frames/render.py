"""From one image or video frame to its outputs: the probability (the model's, `Segmenter.predict`, then temporal
smoothing and the main person) and the array of each output kind (`OUTPUTS`) at the model's threshold."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from asbunet.frames import effects, matte, regions
from asbunet.frames.options import FrameOptions
from asbunet.inference.segmenter import Segmenter

OUTPUTS = ("mask", "prob", "overlay", "cutout", "effect")


def postprocess(
    segmenter: Segmenter,
    image: np.ndarray,
    options: FrameOptions,
    smoother: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Probability `(H, W)` of an RGB image: the model's (`Segmenter.predict`: the network, resized back with the
    model's refinement or bilinearly), temporal smoothing (`smoother(prob, image)`, video only), only the main person
    (`options.main_person`, at `segmenter.threshold`)."""
    prob = segmenter.predict(image, warn=False)  # segment_image reports `input_warning` with the file name
    if smoother is not None:
        prob = smoother(prob, image)
    if options.main_person:
        prob = regions.keep_main_person(prob, segmenter.threshold, margin=max(2, min(prob.shape) // 60))
    return prob


def render(
    kind: str,
    image: np.ndarray,
    prob: np.ndarray,
    options: FrameOptions,
    threshold: float,
    alpha: np.ndarray | None = None,
) -> np.ndarray:
    """The array of one output kind: uint8 gray `(H, W)`, RGB `(H, W, 3)` or RGBA `(H, W, 4)`, at `threshold` (the
    segmenter's).

    `cutout` and `effect` composite with `alpha` (default `matte.matte(prob, threshold)`); `overlay` tints by the
    probability itself, to show it.
    """
    if kind == "mask":
        return effects.mask_image(prob, threshold)
    if kind == "prob":
        return effects.probability_image(prob)
    if kind == "overlay":
        return effects.overlay(image, prob)
    if kind not in ("cutout", "effect"):
        raise ValueError(f"unknown output {kind!r}; choose from: {', '.join(OUTPUTS)}")
    alpha = matte.matte(prob, threshold) if alpha is None else alpha
    return effects.cutout(image, alpha) if kind == "cutout" else options.background(image, alpha)
