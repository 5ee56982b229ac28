"""Model files from the `mediapipe` wheel on PyPI (Apache-2.0): the peers of `asbunet bench` and `asbunet evaluate`,
and the teachers of `asbunet teacher-labels`. Never used by `segment` or `Segmenter`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

from asbunet import atomic

MEDIAPIPE_VERSION = "0.10.21"


def extract_from_wheel(
    members: Iterable[str], folder: str | Path, cache: str | Path | None = None, version: str = MEDIAPIPE_VERSION
) -> list[Path]:
    """Downloads the mediapipe wheel (`pip download --no-deps`) into `cache` (default `folder`) unless it is there,
    and writes each of `members` (paths inside the wheel) into `folder` under its own file name."""
    folder = Path(folder)
    cache = folder if cache is None else Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob(f"mediapipe-{version}-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", f"mediapipe=={version}", "-d", str(cache)]
        print("fetching:", " ".join(cmd), flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(cache.glob(f"mediapipe-{version}-*.whl"))
        if done.returncode != 0 or not wheels:
            raise OSError(f"pip download of mediapipe=={version} into {cache} failed: {done.stderr.strip()[-500:]}")
    written = []
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for member in members:
            written.append(folder / Path(member).name)
            atomic.write_bytes(written[-1], wheel.read(member))
    return written
