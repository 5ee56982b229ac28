"""One threshold range everywhere: (0, 1), both ends excluded (`asbunet.inference.postprocess.check_threshold`).
Every command and API that takes a threshold refuses the same values with the same message, before writing anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asbunet.cli import main
from asbunet.frames.stream import VideoSegmenter
from asbunet.frames.temporal import Hysteresis
from asbunet.inference.postprocess import binarize, check_threshold
from asbunet.inference.segmenter import Segmenter
from asbunet.train.bundle import bundle_checkpoint

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
MESSAGE = r"threshold must be in \(0, 1\), both ends excluded"


def flat_runner(batch: np.ndarray) -> np.ndarray:
    return np.zeros((batch.shape[0], 1, *batch.shape[2:]), np.float32)


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5, -0.1, float("nan"), "0.5", None])
def test_check_threshold_refuses_the_ends_and_what_is_not_a_number(value):
    with pytest.raises(ValueError, match=MESSAGE):
        check_threshold(value)


def test_values_inside_pass_as_floats():
    assert check_threshold(np.float32(0.25)) == 0.25 and isinstance(check_threshold(np.float32(0.25)), float)
    assert binarize(np.array([0.3, 0.7]), 0.7).tolist() == [False, True]


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_every_api_refuses_the_same_ends(value, checkpoint, tmp_path):
    segmenter = Segmenter(flat_runner, 32)
    for build in (
        lambda: Segmenter(flat_runner, 32, threshold=value),
        lambda: segmenter.with_settings(threshold=value),
        lambda: VideoSegmenter(segmenter, threshold=value),
        lambda: Hysteresis(threshold=value),
        lambda: binarize(np.zeros(3), value),
        lambda: bundle_checkpoint(checkpoint, tmp_path / "b.safetensors", threshold=value),
    ):
        with pytest.raises(ValueError, match=MESSAGE):
            build()


@pytest.mark.parametrize("value", ["0", "1"])
def test_every_command_refuses_the_same_ends(value, checkpoint, tmp_path, capsys):
    model = str(checkpoint)
    commands = {
        "segment": ["segment", str(SAMPLES / "images" / "0001.jpg"), "--output", str(tmp_path / "s"), "--model", model],
        "evaluate": ["evaluate", str(SAMPLES), "--model", model, "--output", str(tmp_path / "e"), "--gallery", "0"],
        "bundle": ["bundle", model, "--output", str(tmp_path / "b.safetensors")],
    }
    for name, argv in commands.items():
        assert main([*argv, "--threshold", value]) == 2, name
        err = capsys.readouterr().err
        assert f"asbunet {name}: error:" in err and "threshold must be in (0, 1), both ends excluded" in err, err
    assert not (tmp_path / "s").exists() and not (tmp_path / "b.safetensors").exists()
