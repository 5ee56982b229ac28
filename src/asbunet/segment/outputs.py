"""Where `asbunet segment` writes: the output folder, checked before the first file, and image files written
atomically. What each output holds is rendered by `asbunet.frames.render`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from asbunet import atomic


def prepare_output_dir(output: str | Path) -> Path:
    """Creates the output folder if needed and checks that files can be written into it."""
    output = Path(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=output, prefix=".asbunet-write-test")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OSError(f"{output}: output folder cannot be written ({err.strerror or err})") from None
    return output


def write_image(path: Path, array: np.ndarray) -> None:
    """Writes a gray, RGB or RGBA uint8 array (PNG or JPEG by suffix), atomically; errors name the path."""
    if array.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR
        array = cv2.cvtColor(array, code)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(path.suffix, array, params)
    if not ok:
        raise OSError(f"{path}: could not encode the image")
    try:
        atomic.write_bytes(path, data.tobytes())
    except OSError as err:
        raise OSError(f"{path}: could not write ({err.strerror or err})") from None
