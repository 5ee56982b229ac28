"""The Python examples of the README ("Use it") and of docs/segment.md run as written, on the bundled sample photos."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "images"


def python_blocks(markdown: str) -> list[str]:
    """The ```python fenced blocks of a Markdown text."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.M | re.S)


def section(markdown: str, title: str) -> str:
    """The text under the `## title` heading, up to the next heading of that level."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, flags=re.M | re.S)
    assert found, f"no section {title!r}"
    return found[1]


@pytest.fixture
def example_files(tmp_path, monkeypatch) -> Path:
    """The files the examples name, in the working directory: photo.jpg, beach.jpg, photos/ and a short talk.mp4."""

    def half(name: str, target: Path) -> None:  # the sample photos at half size, to keep the test short
        image = cv2.imread(str(SAMPLES / name))
        assert cv2.imwrite(str(target), cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2)))

    half("0001.jpg", tmp_path / "photo.jpg")
    half("0007.jpg", tmp_path / "beach.jpg")
    (tmp_path / "photos").mkdir()
    for name in ("0042.jpg", "0100.jpg"):
        half(name, tmp_path / "photos" / name)
    frame = cv2.resize(cv2.imread(str(SAMPLES / "0234.jpg")), (128, 192))
    writer = cv2.VideoWriter(str(tmp_path / "talk.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (128, 192))
    for t in range(4):
        writer.write(np.roll(frame, 4 * t, axis=1))
    writer.release()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "source",
    [("README.md", "Use it"), pytest.param(("docs/segment.md", None), marks=pytest.mark.slow)],
    ids=["README", "segment"],
)
def test_python_examples_run(source, example_files, capsys):
    path, title = source
    text = (REPO / path).read_text()
    blocks = python_blocks(section(text, title) if title else text)
    assert blocks, f"{path}: no Python example"
    for block in blocks:
        exec(compile(block, f"{path} example", "exec"), {"__name__": "__example__"})  # noqa: S102
    if path == "docs/segment.md":
        out = example_files / "out"
        names = {p.name for p in out.iterdir()}
        assert {"0042.png", "0042_background.jpg", "0042_cutout.png", "talk_mask.mp4", "talk_blur.mp4"} <= names
        assert "3 written (6 files)" in capsys.readouterr().out  # two photos and the video
