"""From one image or video frame to its outputs: the probability (the model's, `Segmenter.predict`, then temporal
smoothing and the main person) and the array of each output kind at the model's threshold, written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from asbunet import atomic
from asbunet.inference.segmenter import Segmenter
from asbunet.segment import effects, matte, regions
from asbunet.segment.options import OUTPUTS, SegmentOptions


def prepare_output_dir(output: str | Path) -> Path:
    """Creates the output folder if needed and checks that files can be written into it."""
    output = Path(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=output, prefix=".asbunet-write-test")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OSError(f"{output}: output folder cannot be written ({err.strerror or err})") from None
    return output


def postprocess(
    segmenter: Segmenter,
    image: np.ndarray,
    options: SegmentOptions,
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
    options: SegmentOptions,
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


def write_image(path: Path, array: np.ndarray) -> None:
    """Writes a gray, RGB or RGBA uint8 array (PNG or JPEG by suffix), atomically; errors name the path."""
    if array.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR
        array = cv2.cvtColor(array, code)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(path.suffix, array, params)
    if not ok:
        raise OSError(f"{path}: could not encode the image")
    try:
        atomic.write_bytes(path, data.tobytes())
    except OSError as err:
        raise OSError(f"{path}: could not write ({err.strerror or err})") from None
