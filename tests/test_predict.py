"""`Segmenter`: the bundled model, any input size, grayscale and RGBA inputs, batches, errors."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from asbunet import Segmenter
from asbunet.data.io import read_image, read_mask
from asbunet.inference.preprocess import input_warning
from asbunet.inference.segmenter import ImageWarning
from asbunet.inference.weights import bundled_models
from asbunet.segment.files import segment_files
from asbunet.train.checkpoint import FORMAT

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


@pytest.mark.parametrize("shape", [(1, 1, 3), (8, 40, 3), (64, 48, 3)], ids=["1x1", "8x40", "uniform"])
def test_tiny_or_single_colour_images_are_segmented_with_a_warning(segmenter, shape, tmp_path):
    image = np.full(shape, 90, np.uint8)
    if shape[0] == 8:
        image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)  # textured but too small
    expected = "too small to segment" if min(shape[:2]) < 16 else "single colour"
    with pytest.warns(ImageWarning, match=expected):
        prob = segmenter.predict(image)
    assert prob.shape == shape[:2]
    with pytest.warns(ImageWarning, match=expected):
        segmenter.mask(image)
    assert input_warning(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)) is None
    path = tmp_path / "pixel.png"
    cv2.imwrite(str(path), image)
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # segment reports it in its own log, not as a Python warning
        report = segment_files(segmenter, [path], tmp_path / "out", progress=False, log=lines.append)
    assert report.processed == 1 and not report.failed
    assert [p for p, _ in report.warnings] == [path] and lines == [f"warning: {path}: {report.warnings[0][1]}"]


def test_unsafe_checkpoint_is_refused_without_pytorchs_unsafe_advice(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo this must never run",))

    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "model": "asbunet", "payload": Payload()}, path)
    with pytest.raises(ValueError) as refused:
        Segmenter.from_pretrained(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: refused: the file holds a Python object") and "system" in message
    assert "weights_only" not in message and "trusted" not in message
    (tmp_path / "junk.pt").write_bytes(b"\x80\x02junk" * 20)
    with pytest.raises(ValueError, match=r"junk\.pt: not a readable checkpoint") as refused:
        Segmenter.from_pretrained(tmp_path / "junk.pt")
    assert "weights_only" not in str(refused.value)


def test_safetensors_of_an_unknown_architecture_names_the_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "mystery.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"architecture": "resnet9000"})
    with pytest.raises(ValueError, match=r"mystery\.safetensors: unknown model 'resnet9000'.*asbunet"):
        Segmenter.from_pretrained(path)
    save_file({"w": torch.zeros(2)}, str(path), metadata={"architecture": "asbunet_025"})
    with pytest.raises(ValueError, match=r"mystery\.safetensors: its weights do not fit the asbunet_025 model"):
        Segmenter.from_pretrained(path)
