"""Outputs appear whole or not at all, with the usual file mode: `asbunet.atomic` and the writers that use it."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from asbunet import atomic
from asbunet.inference.segmenter import Segmenter
from asbunet.segment.files import segment_files
from asbunet.train.checkpoint import atomic_save

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield 0o640
    os.umask(previous)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_atomic_writes_replace_whole_files_with_the_umask_mode(tmp_path, umask_027):
    target = tmp_path / "out.json"
    atomic.write_text(target, "old")
    assert target.read_text() == "old" and mode(target) == umask_027
    with pytest.raises(RuntimeError), atomic.open_atomic(target, "w") as f:
        f.write("half of a new")
        raise RuntimeError("the writer fails")
    assert target.read_text() == "old"  # the previous content stays
    with atomic.replacing(tmp_path / "plot.png") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and not tmp.exists()
        tmp.write_bytes(b"png")
    assert (tmp_path / "plot.png").read_bytes() == b"png" and mode(tmp_path / "plot.png") == umask_027
    with pytest.raises(OSError, match="produced no file"), atomic.replacing(tmp_path / "none.bin"):
        pass
    with pytest.raises(ValueError, match="whole files"), atomic.open_atomic(target, "a"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "plot.png"]  # no temporary file left
    partials = {atomic.partial_path(tmp_path / "talk_blur.mp4").name for _ in range(3)}  # unique to the process
    assert len(partials) == 3 and all(
        re.fullmatch(rf"talk_blur\.{os.getpid()}-[0-9a-f]{{8}}\.partial\.mp4", n) for n in partials
    )


def test_checkpoints_and_segment_outputs_get_the_umask_mode(tmp_path, umask_027):
    atomic_save({"format": "x", "weights": [1, 2]}, tmp_path / "ckpt" / "last.pt")
    assert mode(tmp_path / "ckpt" / "last.pt") == umask_027
    image = np.zeros((32, 32, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "photo.png"), image)
    report = segment_files(
        Segmenter(lambda b: b.mean(axis=1, keepdims=True), 32), [tmp_path / "photo.png"], tmp_path / "out", None, False
    )
    assert [mode(p) for p in report.written] == [umask_027]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["photo.png"]


def test_checkpoint_is_unchanged_when_saving_fails(tmp_path):
    path = tmp_path / "last.pt"
    atomic_save({"format": "x", "epoch": 1}, path)
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.save raises
        atomic_save({"format": "x", "epoch": 2, "bad": lambda: None}, path)  # a lambda cannot be pickled
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def write_clip(path: Path, frames: int, size: tuple[int, int] = (128, 96)) -> Path:
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (width, height))
    for t in range(frames):
        frame = np.full((height, width, 3), 40, np.uint8)
        frame[20:70, (2 * t) % 100 : (2 * t) % 100 + 28] = 220
        writer.write(frame)
    writer.release()
    return path


def frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.isOpened() and capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.mark.slow
def test_killed_video_leaves_no_unreadable_file_under_a_final_name(tmp_path, checkpoint):
    """kill -9 at a random moment while a video is written, then SIGTERM: no final name ever holds a broken file;
    SIGTERM leaves the partial files closed and playable."""
    frames = 100
    clip = write_clip(tmp_path / "talk.mp4", frames)
    rng = random.Random()

    def run(out: Path, sig: int, delay: float, grown: int = 0) -> None:
        argv = ["segment", str(clip), "--output", str(out), "--model", str(checkpoint), "--save", "effect,mask"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "asbunet.cli", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
        )
        try:
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                partial = next(out.glob("talk_blur.*.partial.mp4"), None) if out.is_dir() else None
                if partial is not None and partial.is_file() and partial.stat().st_size >= grown:
                    break
                time.sleep(0.005)
            time.sleep(delay)
            proc.send_signal(sig)
        finally:
            proc.wait(timeout=60)

    delay = rng.uniform(0, 1.0)  # after the first output file appears; the run takes a few seconds more
    run(tmp_path / "kill", signal.SIGKILL, delay)
    for path in (tmp_path / "kill").glob("*.mp4"):
        if not path.name.endswith(".partial.mp4"):
            assert frame_count(path) == frames, f"{path} is incomplete (killed after {delay:.2f} s)"

    out = tmp_path / "term"
    run(out, signal.SIGTERM, 0.0, grown=1000)  # a few frames in
    names = sorted(re.sub(r"\.\d+-[0-9a-f]+\.partial", ".partial", p.name) for p in out.iterdir())
    if names != ["talk_blur.mp4", "talk_mask.mp4"]:  # not finished before the signal
        assert names == ["talk_blur.partial.mp4", "talk_mask.partial.mp4"]
        assert 0 < frame_count(next(out.glob("talk_blur.*.partial.mp4"))) <= frames
