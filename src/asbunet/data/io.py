"""Reading images and person masks, with errors that name the file and the problem."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


class DataError(ValueError):
    """A file of a dataset or an input cannot be used; the message names the file and the problem."""


def read_image(path: str | Path) -> np.ndarray:
    """Reads an image as RGB uint8 `(H, W, 3)`; grayscale is replicated and alpha dropped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise DataError(f"{path}: file is empty")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: not a readable image (corrupt, truncated or unsupported format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str | Path) -> np.ndarray:
    """Reads a person mask as uint8 `(H, W)` with values {0, 1}.

    Accepted encodings: 0/255 or 0/1 grayscale (thresholded at half of the value range), palette PNGs (index 0 is
    background, any other index is person), RGBA alpha mattes (alpha thresholded at half), RGB (luma at half).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mask file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: mask file is empty")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                return (np.asarray(im) != 0).astype(np.uint8)
            if mode in ("RGBA", "LA", "PA"):
                return (np.asarray(im.getchannel("A")) > 127).astype(np.uint8)
            array = np.asarray(im.convert("L") if mode not in ("L", "1", "I", "I;16") else im)
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"{path}: not a readable mask image ({err})") from None
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
