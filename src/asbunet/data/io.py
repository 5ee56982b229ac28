"""Reading images and person masks, with errors that name the file and the problem.

Every image and mask is measured from its file header before it is decoded: one of more than `MAX_PIXELS` pixels
(width x height) is refused, so that a small file declaring a huge image (a decompression bomb: 30000x30000 pixels
compress to under 1 MB as a PNG, and decode to 2.7 GB) cannot exhaust the memory. `MAX_PIXELS` works like Pillow's
`PIL.Image.MAX_IMAGE_PIXELS`: set it to accept larger images, or to `None` to turn the check off. Pillow's own
check (twice its `MAX_IMAGE_PIXELS`) also applies; `pixel_limit(n)` sets both within a block, and
`asbunet segment --max-pixels N` uses it for one run.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")

MAX_PIXELS: int | None = 89_478_485  # Pillow's default MAX_IMAGE_PIXELS: about 9500x9500, 0.25 GB as RGB


class DataError(ValueError):
    """A file of a dataset or an input cannot be used; the message names the file and the problem."""


def check_pixels(source: str | Path, width: int, height: int, max_pixels: int | None = None) -> None:
    """Raises `DataError` naming `source` when `width x height` exceeds `max_pixels` (default `MAX_PIXELS`)."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if limit is not None and width * height > limit:
        _refuse(source, f"{width}x{height} is {width * height:,} pixels", limit)


def _refuse(source: str | Path, size: str, limit: int) -> NoReturn:
    raise DataError(
        f"{source}: {size}, more than the limit of {limit:,}; refused before decoding (raise the limit with "
        "--max-pixels or asbunet.data.io.pixel_limit if the file is trusted)"
    )


def header_size(
    source: str | Path, data: bytes | None = None, max_pixels: int | None = None, kind: str = "image"
) -> tuple[int, int]:
    """`(width, height)` of an image read from its header only, checked against the pixel limit.

    Args:
        source: the image file, named in errors.
        data: the file's bytes when already read (else the file is opened).
        max_pixels: the limit (default `MAX_PIXELS`).
        kind: what the file is, for messages ("image", "mask image").

    Raises:
        DataError: the header is unreadable or declares more pixels than the limit.
    """
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit here is ours
            with Image.open(io.BytesIO(data) if data is not None else source) as im:
                width, height = im.size
    except Image.DecompressionBombError as err:  # beyond Pillow's own hard limit, twice its MAX_IMAGE_PIXELS
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(found[1]):,} pixels" if found else "the image is too large"
        pillow = 2 * Image.MAX_IMAGE_PIXELS
        _refuse(source, size, pillow if limit is None else min(limit, pillow))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as err:
        detail = pillow_problem(err)
        detail = f"corrupt, truncated or unsupported format{f': {detail}' if detail else ''}"
        raise DataError(f"{source}: not a readable {kind} ({detail})") from None
    check_pixels(source, width, height, limit)
    return width, height


def pillow_problem(err: BaseException) -> str:
    """What a Pillow error says about an image, in words: "" when it only says the format is not recognised; no
    object reprs (`<_io.BytesIO object at 0x...>`), error numbers or file names."""
    if isinstance(err, UnidentifiedImageError):
        return ""
    text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return re.sub(r"\s*(<[^<>]* at 0x[0-9a-fA-F]+>|\[Errno -?\d+\]|'[^']*'$)", "", text).strip(" :")


@contextlib.contextmanager
def pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Sets `MAX_PIXELS` (and raises Pillow's own limit to match) within the block; `None` turns the check off."""
    global MAX_PIXELS
    saved, saved_pillow = MAX_PIXELS, Image.MAX_IMAGE_PIXELS
    MAX_PIXELS = max_pixels
    if max_pixels is None:
        Image.MAX_IMAGE_PIXELS = None
    elif saved_pillow is not None and 2 * saved_pillow < max_pixels:
        Image.MAX_IMAGE_PIXELS = (max_pixels + 1) // 2
    try:
        yield
    finally:
        MAX_PIXELS, Image.MAX_IMAGE_PIXELS = saved, saved_pillow


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Reads an image as RGB uint8 `(H, W, 3)`; grayscale is replicated and alpha dropped.

    Args:
        max_pixels: largest width x height accepted, checked from the header before decoding (default
            `MAX_PIXELS`).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from None
    return decode_image(raw, path, max_pixels)


def decode_image(raw: bytes, source: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Decodes the bytes of an image file as `read_image` does (RGB uint8 `(H, W, 3)`, the pixel limit checked from
    the header first); errors name `source`, the file or URI the bytes came from."""
    if not raw:
        raise DataError(f"{source}: file is empty")
    header_size(source, raw, max_pixels)
    image = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{source}: not a readable image (corrupt, truncated or unsupported format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Reads a person mask as uint8 `(H, W)` with values {0, 1}.

    Accepted encodings: 0/255 or 0/1 grayscale (thresholded at half of the value range), palette PNGs (index 0 is
    background, any other index is person), RGBA alpha mattes (alpha thresholded at half), RGB (luma at half).

    Args:
        max_pixels: largest width x height accepted, checked from the header before decoding (default
            `MAX_PIXELS`).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mask file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: mask file is empty")
    header_size(path, None, max_pixels, "mask image")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                return (np.asarray(im) != 0).astype(np.uint8)
            if mode in ("RGBA", "LA", "PA"):
                return (np.asarray(im.getchannel("A")) > 127).astype(np.uint8)
            array = np.asarray(im.convert("L") if mode not in ("L", "1", "I", "I;16") else im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as err:
        detail = pillow_problem(err) or "corrupt, truncated or unsupported format"
        raise DataError(f"{path}: not a readable mask image ({detail})") from None
    if array.dtype == bool:
        return array.astype(np.uint8)
    top = 1 if array.max() <= 1 else (255 if array.max() <= 255 else 65535)
    return (array > top / 2).astype(np.uint8)


def check_pair(image: np.ndarray, mask: np.ndarray, image_path: Path, mask_path: Path) -> None:
    """Raises `DataError` when a mask does not match its image or holds no pixel at all."""
    if image.shape[:2] != mask.shape[:2]:
        raise DataError(
            f"{mask_path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from its image "
            f"{image_path} ({image.shape[1]}x{image.shape[0]})"
        )


def resize_long_side(image: np.ndarray, long_side: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Resizes so that the longer side equals `long_side`, keeping the aspect ratio."""
    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=interpolation)


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder (not recursive), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
