"""`asbunet bench video`: the whole video pipeline timed per model, with the machine and its instruction sets."""

import json

import av
import cv2
import numpy as np
import pytest

from asbunet.bench.pipeline import make_clip
from asbunet.cli import main


@pytest.fixture
def frames_dir(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        image = np.full((48, 64, 3), 40, np.uint8)
        image[10:40, 10 + 5 * i : 30 + 5 * i] = 220
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), image)
    return folder


def test_clip_is_made_at_720p_and_looped(frames_dir, tmp_path):
    clip = make_clip(frames_dir, tmp_path / "clip.mp4", 7)
    with av.open(str(clip)) as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)
        assert sum(1 for _ in c.decode(video=0)) == 7


def test_cli_times_each_model_and_names_the_machine(frames_dir, tmp_path, checkpoint, capsys):
    clip = tmp_path / "small.mp4"
    make_clip(frames_dir, clip, 6, size=(128, 72))
    out = tmp_path / "bench"
    code = main(
        [
            "bench",
            "video",
            "--clip",
            str(clip),
            "--model",
            str(checkpoint),
            "mediapipe_landscape",
            "--runs",
            "1",
            "--threads",
            "1",
            "--output",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code in (0, None)
    report = json.loads((out / "pipeline.json").read_text())
    assert [r["model"] for r in report["results"]] == [str(checkpoint), "mediapipe_landscape"]
    assert all(r["fps"] > 0 and set(r["stages_ms"]) >= {"decode", "network", "encode"} for r in report["results"])
    assert report["clip"]["frames"] == 6 and "Instruction sets" in (out / "pipeline.md").read_text()
    assert "frames/s" in printed and not list(out.glob("*.mp4"))
