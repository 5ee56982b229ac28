"""The compositing alpha keeps the background out: 1 inside the person, 0 outside, soft only in a band at the edge."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from asbunet import Segmenter, VideoSegmenter
from asbunet.data.io import read_image
from asbunet.frames import effects, matte
from asbunet.frames.options import FrameOptions
from asbunet.frames.render import postprocess, render

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "images"


def ghost_probability(size: int = 96, ghost: float = 0.3) -> np.ndarray:
    """A square person (probability 0.95) on a background the model is `ghost` sure of, a soft ramp at the edge."""
    prob = np.full((size, size), ghost, np.float32)
    prob[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 0.95
    return cv2.GaussianBlur(prob, (0, 0), 1.5)


def beyond(mask: np.ndarray, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixels more than `distance` px outside the bool mask, and more than `distance` px inside it."""
    s = matte.signed_distance(mask)
    return s < -distance, s > distance


def test_matte_is_binary_away_from_the_edge_and_the_probability_at_it():
    prob = ghost_probability()
    alpha = matte.matte(prob, 0.7, band=4)
    outside, inside = beyond(prob >= 0.7, 4)
    assert alpha.dtype == np.float32 and alpha.shape == prob.shape
    assert alpha[outside].max() == 0.0 and alpha[inside].min() == 1.0  # the 0.3 ghost is gone
    near = ~(outside | inside)
    assert ((alpha[near] > 0.05) & (alpha[near] < 0.95)).any()  # soft at the edge
    # Continuous: no seam where the band ends (neighbouring pixels differ by less than a band's ramp).
    assert np.abs(np.diff(alpha, axis=1)).max() <= 0.5 + 1e-6
    # The threshold maps to 0.5, so the alpha's half-way line is the mask's edge.
    assert matte.stretch(np.array([0.0, 0.35, 0.7, 0.85, 1.0]), 0.7) == pytest.approx([0, 0.25, 0.5, 0.75, 1])


def test_matte_edge_cases_and_errors():
    assert matte.matte(np.full((8, 9), 0.2, np.float32), 0.5).max() == 0.0
    assert matte.matte(np.full((8, 9), 0.8, np.float32), 0.5).min() == 1.0
    prob = ghost_probability(32)
    np.testing.assert_array_equal(matte.matte(prob, 0.6, band=0), (prob >= 0.6).astype(np.float32))
    assert [matte.edge_band(h, w) for h, w in ((48, 64), (832, 550), (720, 1280), (2160, 3840))] == [3, 5, 8, 8]
    with pytest.raises(ValueError, match="band"):
        matte.matte(prob, 0.5, band=-1)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        matte.matte(prob[None], 0.5)


@pytest.mark.parametrize("kind", ["cutout", "effect"])
@pytest.mark.parametrize(
    "effect", [effects.ColorBackground((255, 0, 255)), effects.BlurBackground()], ids=["colour", "blur"]
)
def test_outputs_composite_with_the_matte(kind, effect):
    """A background the model is 30% sure of shows nowhere in a cut-out or an effect: far from the person the
    cut-out is transparent, a colour background is the colour alone and a blurred one keeps none of the sharp
    background."""
    prob = ghost_probability()
    image = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)  # a sharp, busy background
    image[prob >= 0.7] = 200
    out = render(kind, image, prob, FrameOptions(effect=effect), 0.7)
    outside, inside = beyond(prob >= 0.7, 8)
    if kind == "cutout":
        assert out[..., 3][outside].max() == 0 and out[..., 3][inside].min() == 255
        return
    assert (out[inside] == 200).all()
    if isinstance(effect, effects.ColorBackground):
        assert (out[outside] == (255, 0, 255)).all()
    else:  # the sharp background's detail (its Laplacian) is gone, not 30% of it left
        detail = np.abs(cv2.Laplacian(out.astype(np.float32), cv2.CV_32F))[outside].mean()
        assert detail < 0.05 * np.abs(cv2.Laplacian(image.astype(np.float32), cv2.CV_32F))[outside].mean()


def alpha_beyond_10px(alpha: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean alpha over the pixels more than 10 px outside the mask, and over those more than 10 px inside."""
    outside, inside = beyond(mask, 10)
    return float(alpha[outside].mean()), float(alpha[inside].mean())


@pytest.fixture(scope="module")
def bundled() -> Segmenter:
    return Segmenter.from_pretrained()


def test_sample_photos_keep_the_background_out(bundled):
    """Cut-outs of every bundled sample photo against the model's own mask."""
    options = FrameOptions()
    for path in sorted(SAMPLES.glob("*.jpg")):
        image = read_image(path)
        rgba = render("cutout", image, postprocess(bundled, image, options), options, bundled.threshold)
        out, inside = alpha_beyond_10px(rgba[..., 3] / 255.0, bundled.mask(image))
        assert out <= 0.005 and inside >= 0.995, f"{path.name}: mean alpha {out:.4f} outside, {inside:.4f} inside"


def test_video_smoothing_does_not_bring_the_ghost_back(bundled):
    """A short clip (a sample photo panned and then held) through `VideoSegmenter` with its default smoothing."""
    photo = read_image(SAMPLES / "0234.jpg")
    photo = cv2.resize(photo, (photo.shape[1] // 2, photo.shape[0] // 2), interpolation=cv2.INTER_AREA)
    frames = [np.ascontiguousarray(np.roll(photo, 3 * min(t, 3), axis=1)) for t in range(6)]
    video = VideoSegmenter(bundled, background="blur")
    for t, frame in enumerate(frames):
        result = video.process(frame)
        out, inside = alpha_beyond_10px(result.render("cutout")[..., 3] / 255.0, bundled.mask(frame))
        assert out <= 0.005 and inside >= 0.995, f"frame {t}: mean alpha {out:.4f} outside, {inside:.4f} inside"
        assert np.array_equal(result.alpha, matte.matte(result.probability, bundled.threshold))


@pytest.mark.parametrize("seed", range(6))
def test_the_distance_near_the_edge_is_that_of_the_whole_image(seed):
    """With `limit`, the distance transforms run only on the box around the edge: every distance up to `limit` is the
    whole image's, and beyond it only the side (and being beyond) counts."""
    rng = np.random.default_rng(seed)
    h, w = rng.integers(8, 120, 2)
    prob = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), float(rng.uniform(1, 8)))
    mask = prob >= np.quantile(prob, rng.uniform(0.3, 0.97))
    full = matte.signed_distance(mask)
    for limit in (0.5, 3, 8, 40):
        near = matte.signed_distance(mask, limit=limit)
        within = np.abs(full) <= limit
        np.testing.assert_array_equal(near[within], full[within])
        assert (np.sign(near) == np.sign(full)).all() and (np.abs(near[~within]) > limit).all()
    for uniform in (np.zeros((5, 7), bool), np.ones((5, 7), bool)):
        assert (np.sign(matte.signed_distance(uniform, limit=4)) == (1 if uniform.all() else -1)).all()


def test_each_alpha_is_a_new_array_though_the_work_planes_are_reused():
    first = matte.matte(ghost_probability(), 0.7)
    kept = first.copy()
    second = matte.matte(ghost_probability(ghost=0.1)[::-1].copy(), 0.7)
    assert second is not first and not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, kept)
    image = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    one, two = effects.blur_background(image, first), effects.blur_background(image, second)
    assert not np.shares_memory(one, two) and not np.array_equal(one, two)
