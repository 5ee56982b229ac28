"""Photos for the int8 calibration and the real-image checks: read from folders, files or arrays, spread evenly over
each folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asbunet.data.io import list_images, read_image

# Fewer calibration photos give activation ranges fitted to those few photos (min/max calibration: one unusual photo
# more or less moves a range); below this count `quantize_int8` warns.
MIN_CALIBRATION_IMAGES = 32


def load_images(source: str | Path | Sequence, count: int | None = None) -> list[np.ndarray]:
    """RGB uint8 images from a folder, a list of files or a list of arrays (the first `count` of them)."""
    if isinstance(source, (str, Path)):
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder not found: {folder}; give a folder of .jpg/.png images")
        paths = list_images(folder)
        if not paths:
            raise ValueError(f"{folder}: no images found (expected .jpg, .png, ... files)")
        source = paths
    items = list(source)[:count] if count is not None else list(source)
    return [item if isinstance(item, np.ndarray) else read_image(item) for item in items]


def spread(items: Sequence, count: int | None) -> list:
    """`count` items evenly spaced over `items` (all of them when `count` is None or not smaller)."""
    items = list(items)
    if count is None or count >= len(items):
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, max(count, 0)).round()]


def calibration_files(folders: str | Path | Sequence[str | Path], count: int | None = MIN_CALIBRATION_IMAGES) -> list:
    """`count` image files for int8 calibration, shared equally by one or several folders and evenly spaced in each
    (a folder's first files are often one session or one photographer)."""
    folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
    files = []
    for k, folder in enumerate(folders):
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder not found: {folder}; give a folder of .jpg/.png images")
        share = None if count is None else count // len(folders) + (k < count % len(folders))
        files += spread(list_images(folder), share)
    if not files:
        raise ValueError(f"no images found in {', '.join(map(str, folders))} (expected .jpg, .png, ... files)")
    return files
