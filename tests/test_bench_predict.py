"""`asbunet bench-predict`: a whole `Segmenter.predict` call timed per model and thread count, beside MediaPipe."""

import json

import numpy as np
import pytest

from asbunet.bench.predict import default_models, make_frame
from asbunet.cli import main


def test_frame_is_made_at_the_asked_size(tmp_path):
    assert make_frame(None, (64, 36)).shape == (36, 64, 3)
    assert np.array_equal(make_frame(None, (64, 36)), make_frame(None, (64, 36)))  # seeded


def test_default_models_are_every_bundled_runtime_then_mediapipe():
    models = default_models()
    assert models[:3] == ["asbunet_person:onnx-int8", "asbunet_person:onnx", "asbunet_person:torch"]
    assert models[-2:] == ["mediapipe_general", "mediapipe_landscape"]


def test_cli_times_each_model_per_thread_count_against_mediapipe_landscape(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench-predict", "--models", "asbunet_person:onnx-int8", "mediapipe_landscape", "--runs", "2"]
    assert main([*args, "--warmup", "1", "--threads", "1", "2", "--frame", "160x90", "--output", str(out)]) in (0, None)
    report = json.loads((out / "predict.json").read_text())
    rows = {(r["model"], r["threads"]): r for r in report["rows"]}
    assert set(rows) == {(m, t) for m in ("asbunet_person:onnx-int8", "mediapipe_landscape") for t in (1, 2)}
    assert rows[("mediapipe_landscape", 1)]["vs_reference"] == pytest.approx(1.0)
    assert rows[("mediapipe_landscape", 1)]["network_input"] == "144x256"
    # 16:9 at a long side of 384, sides a multiple of 16
    assert rows[("asbunet_person:onnx-int8", 1)]["network_input"] == "224x384"
    assert all(r["median_ms"] > 0 for r in rows.values())
    table = (out / "predict.md").read_text()
    assert "Instruction sets" in table and "vs mediapipe_landscape" in table and "160x90" in capsys.readouterr().out


def test_cli_refuses_a_bad_frame_size(tmp_path, capsys):
    assert main(["bench-predict", "--frame", "640", "--output", str(tmp_path)]) == 2
    assert "--frame takes WxH such as 640x360, got '640'" in capsys.readouterr().err
