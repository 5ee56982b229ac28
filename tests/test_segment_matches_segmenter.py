"""What `asbunet segment` writes is what `Segmenter` computes: its mask files equal `Segmenter.mask` of the same images,
with each bundled model's own refinement and threshold, with `--no-refine` (bilinear) and with `--threshold`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from asbunet.cli import main
from asbunet.data.io import read_image
from asbunet.inference.postprocess import logits_to_probability
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import bundled_models

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "images"
IMAGES = sorted(SAMPLES.glob("*.jpg"))[:2]
CASES = {"the model's own": ([], {}), "--no-refine": (["--no-refine"], {"refine": False})}
CASES["--threshold 0.55"] = (["--threshold", "0.55"], {"threshold": 0.55})


def segment(argv: list[str]) -> int:
    try:
        return main(["segment", *argv]) or 0
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("model", bundled_models())
def test_segment_mask_files_equal_segmenter_mask(model, case, tmp_path):
    flags, settings = CASES[case]
    assert segment([*map(str, IMAGES), "--output", str(tmp_path), "--model", model, *flags]) == 0
    segmenter = Segmenter.from_pretrained(model, **settings)
    for path in IMAGES:
        written = cv2.imread(str(tmp_path / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        assert written is not None and set(np.unique(written)) <= {0, 255}
        expected = segmenter.mask(read_image(path))
        assert np.array_equal(written > 0, expected), f"{path.name}: {(expected != (written > 0)).sum()} pixels differ"


@pytest.mark.parametrize("model", bundled_models())
def test_no_refine_resizes_bilinearly_and_keeps_the_threshold(model):
    """`refine=False` (`segment --no-refine`) is the network's probability resized back bilinearly; a model that
    carries a refinement gives another probability with it."""
    own = Segmenter.from_pretrained(model)
    plain = Segmenter.from_pretrained(model, refine=False)
    assert plain.refine is None and plain.threshold == own.threshold and plain.runner is not None
    image = read_image(IMAGES[0])
    logits = plain._logits(image)
    bilinear = logits_to_probability(logits, *image.shape[:2])
    np.testing.assert_allclose(plain.predict(image), bilinear, atol=1e-6)
    if own.refine is not None:
        assert np.abs(own.predict(image) - bilinear).max() > 0.05
    assert plain.with_settings() is plain and own.with_settings(threshold=0.6).refine == own.refine
