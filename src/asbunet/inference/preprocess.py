"""Mapping images of any size and aspect ratio to the network's input.

An image is resized, keeping its aspect ratio, so that its long side equals `input_size` and its short side is
rounded to a multiple of 16 (the output stride): a 16:9 video frame at `input_size=256` runs at 144x256, a 3:4
portrait at 256x192. No letterbox padding is needed because every model is fully convolutional. A model with a fixed
input size (an ONNX or TFLite file exported at one size, the MediaPipe peers) gets the whole image resized to that
size instead (`prepare_at`). Nothing here imports PyTorch.
"""

from __future__ import annotations

import cv2
import numpy as np

SIZE_MULTIPLE = 16
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


_SCALE = [np.float32(1 / (255.0 * s)) for s in IMAGENET_STD]  # (x / 255 - mean) / std = x * scale + offset
_OFFSET = [np.float32(-m / s) for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]


def normalize(image: np.ndarray) -> np.ndarray:
    """RGB uint8 `(H, W, 3)` -> normalized float32 `(3, H, W)` (the preprocessing every model expects):
    `(x / 255 - mean) / std` per channel, written plane by plane."""
    out = np.empty((3, *image.shape[:2]), np.float32)  # (3, H, W)
    for c, plane in enumerate(cv2.split(image)):
        np.multiply(plane, _SCALE[c], out=out[c])
        out[c] += _OFFSET[c]
    return out


def network_size(height: int, width: int, input_size: int) -> tuple[int, int]:
    """Network input `(h, w)` for an image `(height, width)`: long side `input_size`, short side a multiple of 16."""
    scale = input_size / max(height, width)
    h = max(SIZE_MULTIPLE, int(round(height * scale / SIZE_MULTIPLE)) * SIZE_MULTIPLE)
    w = max(SIZE_MULTIPLE, int(round(width * scale / SIZE_MULTIPLE)) * SIZE_MULTIPLE)
    return (input_size, w) if height >= width else (h, input_size)


def check_input_size(size: int) -> int:
    """`size` if it is a positive multiple of 16 (the output stride), else a `ValueError` suggesting the nearest."""
    if size < SIZE_MULTIPLE or size % SIZE_MULTIPLE:
        below = max(SIZE_MULTIPLE, size // SIZE_MULTIPLE * SIZE_MULTIPLE)
        raise ValueError(
            f"size must be a positive multiple of {SIZE_MULTIPLE} (the models' output stride), got "
            f"{size}; try {below} or {below + SIZE_MULTIPLE}"
        )
    return size


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Accepts RGB `(H, W, 3)`, RGBA `(H, W, 4)` (alpha dropped) or grayscale `(H, W)`/`(H, W, 1)` uint8 arrays."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}; scale floats to 0..255 and cast first")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[..., :3])
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected an image shaped (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")


def input_warning(image: np.ndarray) -> str | None:
    """Why the probability map of `image` means little, or None.

    An image under `SIZE_MULTIPLE` (16) pixels on a side is smaller than one cell of the network's output stride, and
    an image of a single colour holds nothing to segment. The network still runs on both, but its output then
    reflects where people usually are in training images, not the image: the bundled model calls a 1x1 image about
    98% person, a uniform black one 82%.
    """
    h, w = image.shape[:2]
    if min(h, w) < SIZE_MULTIPLE:
        return (
            f"{w}x{h} image is under {SIZE_MULTIPLE} pixels on a side, too small to segment: the probability map "
            "says little about it"
        )
    if not cv2.meanStdDev(image)[1].any():  # no channel varies
        return f"{w}x{h} image is a single colour, with nothing to segment: the probability map says little about it"
    return None


def resize_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 `(H, W, 3)` -> RGB uint8 `(h, w, 3)` at exactly `size = (h, w)`: area interpolation where the image
    shrinks, bilinear where it grows.

    OpenCV's area interpolation is several times faster by an integer factor than by any other. A shrink by a factor
    just above an integer `k` (at most 10% above: video frames to the network's multiples of 16) averages `k x k`
    blocks first, then resizes the rest of the way bilinearly (a 640x360 frame to 320x176: 2x2 blocks to 320x180,
    then 320x176); any other shrink is one area resize.
    """
    h, w = size
    height, width = image.shape[:2]
    if height <= h and width <= w:
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    k = min(height // h, width // w) if height >= h and width >= w else 1
    if k > 1 and not height % k and not width % k and height // k < 1.1 * h and width // k < 1.1 * w:
        blocks = cv2.resize(image, (width // k, height // k), interpolation=cv2.INTER_AREA)  # k x k block means
        return cv2.resize(blocks, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def prepare_at(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 `(H, W, 3)` -> normalized float32 `(3, h, w)` at exactly `size = (h, w)` (`resize_to`)."""
    return normalize(resize_to(image, size))


def prepare(image: np.ndarray, input_size: int) -> np.ndarray:
    """RGB uint8 `(H, W, 3)` -> normalized float32 `(3, h, w)` at the network size (`network_size`)."""
    return prepare_at(image, network_size(image.shape[0], image.shape[1], input_size))
