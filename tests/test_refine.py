"""`GuidedRefine`: the probability resized back along the image's edges, its stored setting, and the normalization
and input check on the predict path."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from asbunet.inference.postprocess import logits_to_probability
from asbunet.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD, input_warning, normalize, resize_to
from asbunet.inference.refine import GuidedRefine
from asbunet.inference.runners import TorchRunner
from asbunet.inference.segmenter import Segmenter
from asbunet.metrics import iou
from asbunet.models import create_model


def disk_scene(height: int = 360, width: int = 640) -> tuple[np.ndarray, np.ndarray]:
    """A textured RGB frame with a person-coloured ellipse, and the ellipse's mask."""
    rng = np.random.default_rng(0)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = (40, 90, 160)
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, height // 2), (width // 7, height // 3), 20, 0, 360, 1, -1)
    image[mask.astype(bool)] = (215, 170, 140)
    image = np.clip(image.astype(np.int16) + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)
    return image, mask.astype(bool)


def test_guided_refine_follows_the_image_edges_better_than_bilinear():
    image, mask = disk_scene()
    small = cv2.resize(image, (320, 176), interpolation=cv2.INTER_AREA)
    # a network-size probability that knows where the person is but spills over its outline and blurs it
    low = cv2.resize(mask.astype(np.float32), (320, 176), interpolation=cv2.INTER_AREA)
    coarse = cv2.GaussianBlur(cv2.dilate(low, np.ones((5, 5), np.uint8)), (0, 0), 2)
    logits = np.log(np.clip(coarse, 1e-4, 1 - 1e-4) / np.clip(1 - coarse, 1e-4, 1))
    bilinear = logits_to_probability(logits, *mask.shape)
    refined = GuidedRefine(radius=4, eps=1e-4, subsample=2)(image, small, coarse)
    assert refined.shape == mask.shape and refined.dtype == np.float32
    assert 0.0 <= refined.min() and refined.max() <= 1.0
    assert iou(refined >= 0.5, mask) > iou(bilinear >= 0.5, mask) + 0.01
    assert iou(refined >= 0.5, mask) > 0.98, (iou(refined >= 0.5, mask), iou(bilinear >= 0.5, mask))


@pytest.mark.parametrize("shape", [(360, 640, 3), (37, 23, 3), (16, 16, 3)])
def test_guided_refine_gives_a_probability_map_of_the_image_size(shape):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    small = cv2.resize(image, (16, 16), interpolation=cv2.INTER_AREA)
    probability = GuidedRefine()(image, small, rng.random((16, 16), dtype=np.float32))
    assert probability.shape == shape[:2] and np.isfinite(probability).all()
    assert 0.0 <= probability.min() and probability.max() <= 1.0


def test_refine_setting_round_trips_as_text_and_bad_settings_are_refused():
    setting = GuidedRefine(radius=4, eps=1e-4, subsample=2)
    assert setting.to_text() == "guided:radius=4,eps=0.0001,subsample=2"
    assert GuidedRefine.from_text(setting.to_text()) == setting
    for text in ("bilateral:radius=4", "guided:radius=4,eps=x,subsample=2", "guided:radius=4"):
        with pytest.raises(ValueError, match="guided:radius=R,eps=E,subsample=S|not a number"):
            GuidedRefine.from_text(text)
    for bad in ({"radius": 0}, {"eps": 0.0}, {"subsample": 0}, {"radius": 2.5}):
        with pytest.raises(ValueError, match="guided refine"):
            GuidedRefine(**bad)


def test_segmenter_applies_its_refine_setting():
    image, _ = disk_scene(90, 160)
    model = create_model("asbunet_025").eval()
    plain = Segmenter(TorchRunner(model), 64)
    refined = Segmenter(TorchRunner(model), 64, refine=GuidedRefine(radius=2, eps=1e-3, subsample=1))
    a, b = plain.predict(image), refined.predict(image)
    assert a.shape == b.shape == image.shape[:2] and not np.allclose(a, b)
    small = refined._network_image(image)
    np.testing.assert_allclose(b, refined.refine(image, small, 1 / (1 + np.exp(-refined._logits(image)))), atol=1e-5)
    batch = refined.predict_batch([image, image[:45]])
    np.testing.assert_allclose(batch[0], b, atol=1e-5)
    assert batch[1].shape == (45, 160)


def test_normalize_is_the_imagenet_normalization_in_channel_planes():
    image = np.random.default_rng(2).integers(0, 256, (17, 29, 3), dtype=np.uint8)
    mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
    expected = ((image.astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1)
    out = normalize(image)
    assert out.shape == (3, 17, 29) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_single_colour_check_sees_one_differing_pixel_in_a_large_image():
    image = np.full((1200, 1600, 3), 200, np.uint8)
    assert "single colour" in input_warning(image)
    image[1199, 1599, 1] = 201
    assert input_warning(image) is None


@pytest.mark.parametrize(
    ("frame", "size"),
    [((360, 640), (176, 320)), ((1080, 1920), (176, 320)), ((720, 1280), (240, 432)), ((359, 641), (176, 320))],
)
def test_resize_to_shrinks_like_area_interpolation(frame, size):
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 256, (*frame, 3), dtype=np.uint8), (0, 0), 2)  # some structure
    area = cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA).astype(np.float32)
    out = resize_to(image, size)
    assert out.shape == (*size, 3) and out.dtype == np.uint8
    assert np.abs(out - area).mean() < 2.0  # close to one area resize (one bilinear resize: 3.0 from 1920x1080)


def test_resize_to_is_exactly_area_interpolation_but_just_above_an_integer_factor_and_grows_bilinearly():
    image = np.random.default_rng(4).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    for size in [(180, 320), (240, 432), (300, 400)]:  # an integer factor, factors far from integers
        np.testing.assert_array_equal(
            resize_to(image, size), cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA)
        )
    np.testing.assert_array_equal(resize_to(image, (400, 700)), cv2.resize(image, (700, 400)))
