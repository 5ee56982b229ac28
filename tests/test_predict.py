"""`Segmenter`: the bundled model, any input size, grayscale and RGBA inputs, batches, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asbunet import Segmenter
from asbunet.data.io import read_image, read_mask
from asbunet.predict import bundled_models

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return Segmenter.from_pretrained(threads=2)


def test_bundled_model_is_shipped():
    assert "asbunet_person" in bundled_models()


def test_bundled_model_segments_the_sample_photos(segmenter):
    ious = []
    for path in sorted((SAMPLES / "images").glob("*.jpg")):
        pred = segmenter.predict(read_image(path)) > 0.5
        label = read_mask(SAMPLES / "masks" / f"{path.stem}.png").astype(bool)
        ious.append((pred & label).sum() / (pred | label).sum())
    assert len(ious) == 8
    assert np.mean(ious) > 0.8  # about 0.87 for the shipped weights; random weights score far lower


@pytest.mark.parametrize("size", [(97, 131), (131, 97), (64, 64), (17, 300)])
def test_any_size_gives_a_probability_map_of_that_size(segmenter, size):
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    prob = segmenter.predict(image)
    assert prob.shape == size and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0


def test_grayscale_and_rgba_are_converted(segmenter):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (61, 83), dtype=np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    expected = segmenter.predict(rgb)
    np.testing.assert_allclose(segmenter.predict(gray), expected, atol=1e-6)
    np.testing.assert_allclose(segmenter.predict(gray[..., None]), expected, atol=1e-6)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (61, 83, 1), dtype=np.uint8)], axis=2)
    np.testing.assert_allclose(segmenter.predict(rgba), expected, atol=1e-6)


def test_predict_batch_matches_predict(segmenter):
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(90, 120, 3), (90, 120, 3), (120, 90, 3), (50, 50)]]
    for batched, image in zip(segmenter.predict_batch(images), images, strict=True):
        np.testing.assert_allclose(batched, segmenter.predict(image), atol=1e-4)


def test_bad_inputs_raise_clear_errors(segmenter, tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        segmenter.predict(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        segmenter.predict(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="no bundled model"):
        Segmenter.from_pretrained("no_such_model")
    with pytest.raises(FileNotFoundError, match="not found"):
        Segmenter.from_pretrained(tmp_path / "missing.pt")
