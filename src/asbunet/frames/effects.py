"""Image effects at output resolution: mask and probability images, overlay, cut-out, background blur/replace.

Compositing only: how the probability reaches the image's size (bilinearly, or along the image's edges with the
model's own refinement) is the model's business (`asbunet.inference.refine`, applied by `Segmenter.predict`).

Every effect takes an RGB uint8 image `(H, W, 3)` and an alpha `(H, W)` float32 in [0, 1] and composites
`out = alpha * image + (1 - alpha) * background`. The alpha is `asbunet.frames.matte.matte` of the probability: 1
inside the person, 0 outside, soft only at the edge, so that no background the model is half sure of shows through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from asbunet.data.io import IMAGE_SUFFIXES, DataError, read_image
from asbunet.inference.postprocess import binarize
from asbunet.inference.scratch import scratch

Color = tuple[int, int, int]

COLORS: dict[str, Color] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "orange": (255, 165, 0),
    "purple": (128, 0, 128),
    "pink": (255, 192, 203),
    "navy": (0, 0, 128),
    "teal": (0, 128, 128),
    "chromakey": (0, 177, 64),
}


# ---------------------------------------------------------------------------------------------------------------
# Masks and compositing
# ---------------------------------------------------------------------------------------------------------------


def mask_image(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary mask uint8 `(H, W)`: 255 where `binarize(prob, threshold)` (`prob >= threshold`), 0 elsewhere."""
    return np.where(binarize(prob, threshold), np.uint8(255), np.uint8(0))


def probability_image(prob: np.ndarray) -> np.ndarray:
    """Probability as uint8 `(H, W)`: 0..255 for 0..1."""
    return np.round(np.clip(prob, 0.0, 1.0) * 255).astype(np.uint8)


def composite(foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """`alpha * foreground + (1 - alpha) * background`, rounded to uint8.

    Args:
        foreground: uint8 `(H, W, 3)`.
        background: uint8 `(H, W, 3)`, or anything broadcastable to it (e.g. a colour `(3,)`).
        alpha: `(H, W)` float in [0, 1].
    """
    if foreground.dtype != np.uint8 or foreground.ndim != 3 or alpha.shape != foreground.shape[:2]:
        raise ValueError(
            f"expected a uint8 (H, W, C) foreground and an (H, W) alpha, got {foreground.dtype} "
            f"{foreground.shape} and {alpha.shape}"
        )
    if isinstance(background, np.ndarray) and background.dtype == np.uint8 and background.shape == foreground.shape:
        back = background
    else:
        back = scratch("composite.back", foreground.shape, np.uint8)
        back[...] = np.clip(np.round(np.asarray(background, dtype=np.float32)), 0, 255)
    a = np.clip(alpha, 0.0, 1.0, out=scratch("composite.alpha", alpha.shape), casting="same_kind")
    rest = np.subtract(np.float32(1.0), a, out=scratch("composite.rest", alpha.shape))
    return cv2.blendLinear(np.ascontiguousarray(foreground), np.ascontiguousarray(back), a, rest)  # weights sum to 1


def overlay(image: np.ndarray, prob: np.ndarray, color: Color = (0, 255, 0), opacity: float = 0.5) -> np.ndarray:
    """Image with the person tinted: `color` blended in with weight `opacity * prob`."""
    tint = np.empty_like(image)
    tint[...] = color
    return composite(tint, image, opacity * prob)


def cutout(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGBA uint8 `(H, W, 4)`: the image with `alpha` (from `matte`) as its alpha channel (background transparent)."""
    return np.dstack([image[..., :3], probability_image(alpha)])


def blur_background(image: np.ndarray, alpha: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """The person sharp over a strongly blurred background.

    The background is blurred with the person masked out and renormalized (a normalized convolution,
    `G * ((1 - alpha) I) / G * (1 - alpha)`), so the person's colours do not bleed into a halo around them. Large
    blurs run on a downscaled copy, which is indistinguishable after a Gaussian of that width and much faster.

    Args:
        alpha: the person's alpha (`matte`).
        sigma: Gaussian standard deviation in pixels; default 1/40 of the long side (16 px at 640).
    """
    h, w = alpha.shape
    sigma = max(h, w) / 40 if sigma is None else float(sigma)
    if sigma <= 0:
        return image.copy()
    factor = max(1.0, sigma / 4)
    small = (max(1, round(w / factor)), max(1, round(h / factor)))
    image_small = cv2.resize(image, small, interpolation=cv2.INTER_AREA).astype(np.float32)  # (h, w, 3)
    back = np.subtract(1.0, alpha, out=scratch("blur.back", (h, w)), casting="same_kind")  # (H, W)
    back_small = cv2.resize(np.clip(back, 0.0, 1.0, out=back), small, interpolation=cv2.INTER_AREA)
    s = sigma / factor
    num = cv2.GaussianBlur(image_small * back_small[..., None], (0, 0), s, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(back_small, (0, 0), s, borderType=cv2.BORDER_REFLECT)
    plain = cv2.GaussianBlur(image_small, (0, 0), s, borderType=cv2.BORDER_REFLECT)
    # Where the window holds almost no background (inside a large person), fall back to the plain blur.
    weight = np.clip(den / 0.05, 0.0, 1.0)[..., None]
    blurred = num / np.maximum(den, 1e-6)[..., None] * weight + plain * (1.0 - weight)
    full = scratch("blur.full", (h, w, blurred.shape[2]))  # (H, W, 3)
    cv2.resize(blurred, (w, h), dst=full, interpolation=cv2.INTER_LINEAR)
    background = scratch("blur.background", full.shape, np.uint8)
    np.copyto(background, np.clip(np.rint(full, out=full), 0, 255, out=full), casting="unsafe")  # whole numbers
    return composite(image, background, alpha)


def cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resizes `image` to cover `(height, width)` keeping its aspect ratio, then crops the centre."""
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (size[1] - height) // 2, (size[0] - width) // 2
    return np.ascontiguousarray(resized[top : top + height, left : left + width])


def replace_background(image: np.ndarray, alpha: np.ndarray, background: np.ndarray | Color) -> np.ndarray:
    """The person (`alpha`, from `matte`) over a new background: an RGB image (resized and centre-cropped to cover)
    or a colour."""
    if isinstance(background, np.ndarray) and background.ndim == 3:
        background = cover(background[..., :3], *alpha.shape)
    return composite(image, background, alpha)


def parse_color(text: str) -> Color:
    """`(r, g, b)` from a colour name (`COLORS`) or `#RRGGBB` / `#RGB` hex."""
    value = text.strip().lower()
    if value in COLORS:
        return COLORS[value]
    if re.fullmatch(r"#[0-9a-f]{6}", value):
        return tuple(int(value[k : k + 2], 16) for k in (1, 3, 5))
    if re.fullmatch(r"#[0-9a-f]{3}", value):
        return tuple(int(c * 2, 16) for c in value[1:])
    raise ValueError(f"{text!r} is not a colour; use #RRGGBB (e.g. #00b140) or one of: {', '.join(COLORS)}")


# ---------------------------------------------------------------------------------------------------------------
# Background effects
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlurBackground:
    """Blurred background (`blur_background`); `sigma=None` scales with the image."""

    sigma: float | None = None
    name: str = "blur"

    def __call__(self, image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        return blur_background(image, alpha, self.sigma)


@dataclass(frozen=True)
class ColorBackground:
    """Background replaced by a flat colour."""

    color: Color
    name: str = "background"

    def __call__(self, image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        return replace_background(image, alpha, self.color)


@dataclass(frozen=True, eq=False)
class ImageBackground:
    """Background replaced by an RGB image, resized and cropped to cover each frame (cached per frame size)."""

    image: np.ndarray
    name: str = "background"
    _covered: dict = field(default_factory=dict, repr=False)

    def __call__(self, image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        key = alpha.shape
        if key not in self._covered:
            self._covered.clear()
            self._covered[key] = cover(self.image, *key)
        return replace_background(image, alpha, self._covered[key])


Effect = BlurBackground | ColorBackground | ImageBackground


def parse_background(text: str) -> Effect:
    """The effect named on the command line: `blur`, an image file, or a colour (name or `#RRGGBB`).

    Raises:
        DataError: an image file that is missing or unreadable.
        ValueError: text that is none of the three.
    """
    if text.strip().lower() == "blur":
        return BlurBackground()
    path = Path(text)
    if path.suffix.lower() in IMAGE_SUFFIXES or path.exists():
        if path.is_dir():
            raise DataError(f"{path}: background must be an image file, not a folder")
        return ImageBackground(read_image(path))
    try:
        return ColorBackground(parse_color(text))
    except ValueError:
        raise ValueError(
            f"background {text!r} is not 'blur', an image file ({', '.join(IMAGE_SUFFIXES)}) or a colour "
            f"(#RRGGBB or one of: {', '.join(COLORS)})"
        ) from None
