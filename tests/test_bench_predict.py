"""`asbunet bench predict`: a whole `Segmenter.predict` call timed per model and thread count, beside MediaPipe."""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from asbunet import Segmenter
from asbunet.bench.predict import default_models, make_frame, mediapipe_predict
from asbunet.cli import main
from asbunet.data.io import read_image
from asbunet.metrics import iou

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_frame_is_made_at_the_asked_size(tmp_path):
    assert make_frame(None, (64, 36)).shape == (36, 64, 3)
    assert np.array_equal(make_frame(None, (64, 36)), make_frame(None, (64, 36)))  # seeded


def test_default_models_are_every_bundled_runtime_then_mediapipe():
    models = default_models()
    assert models[:3] == ["asbunet_person", "asbunet_person:onnx-int8", "asbunet_person:onnx"]
    assert "asbunet_person_fast:torch" in models and "asbunet_person_fast" in models
    assert models[-2:] == ["mediapipe_general", "mediapipe_landscape"]


def test_cli_times_each_model_per_thread_count_against_mediapipe_landscape(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", "predict", "--model", "asbunet_person:onnx-int8", "mediapipe_landscape", "--runs", "2"]
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
    auto = Segmenter.from_pretrained("asbunet_person_fast").name  # what `runtime="auto"` runs here, printed
    assert report["auto"]["asbunet_person_fast"] == auto and f"`asbunet_person_fast` runs as {auto}." in table
    assert rows[("asbunet_person:onnx-int8", 1)]["runs_on"] == "asbunet_person (onnxruntime int8)"


def test_cli_refuses_a_bad_frame_size(tmp_path, capsys):
    assert main(["bench", "predict", "--frame", "640", "--output", str(tmp_path)]) == 2
    assert "--frame takes WxH such as 640x360, got '640'" in capsys.readouterr().err


def test_mediapipe_is_timed_as_its_own_pipeline_runs_it():
    segmenter = Segmenter.from_pretrained("mediapipe_landscape", threads=1)
    frame = cv2.resize(read_image(SAMPLES / "images" / sorted(os.listdir(SAMPLES / "images"))[0]), (320, 180))
    own = mediapipe_predict(segmenter.runner, frame)
    assert own.shape == (180, 320) and own.dtype == np.float32 and 0 <= own.min() and own.max() <= 1
    # the same network as behind `Segmenter` (which resizes its logits back instead of its probability)
    assert iou(own >= 0.5, segmenter.predict(frame) >= 0.5) > 0.97
    assert np.abs(own - segmenter.predict(frame)).mean() < 0.02
