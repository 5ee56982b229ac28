"""The mask threshold: chosen on the validation split at bundling, carried by the bundled file, the ONNX export and
`Segmenter`, and used by `segment` and `evaluate` unless one is given; the input size chosen the same way;
fine-tuning from bundled weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import tiny_config, write_folder_dataset
from safetensors.torch import save_file

from asbunet import Segmenter
from asbunet.cli import main
from asbunet.evaluate.run import evaluate_model
from asbunet.frames.stream import VideoSegmenter
from asbunet.inference.refine import GuidedRefine
from asbunet.inference.weights import load_checkpoint, load_model, read_safetensors
from asbunet.metrics import iou
from asbunet.train.bundle import bundle_checkpoint
from asbunet.train.calibrate import (
    THRESHOLDS,
    best_setting,
    best_threshold,
    selection_iou,
    selection_score,
    size_threshold_sweep,
    threshold_sweep,
    validation_kind,
)
from asbunet.train.config import TrainConfig
from asbunet.train.engine import train


def ramp_runner(batch: np.ndarray) -> np.ndarray:
    """Logits rising from left to right: probability ~0.05 at the left edge, ~0.95 at the right."""
    _, _, h, w = batch.shape
    logits = np.linspace(-3, 3, w, dtype=np.float32)[None, None, None, :]  # (1, 1, 1, w)
    return np.broadcast_to(logits, (batch.shape[0], 1, h, w)).copy()


def test_sweep_finds_the_threshold_that_matches_the_labels():
    segmenter = Segmenter(ramp_runner, input_size=64)
    image = np.zeros((32, 64, 3), np.uint8)
    prob = segmenter.predict(image)
    for cut in (0.3, 0.5, 0.75):
        label = (prob > cut).astype(np.uint8)  # the person is where the probability exceeds `cut`
        sweep = threshold_sweep(segmenter, [image, image], [label, label])
        assert list(sweep) == list(THRESHOLDS)
        assert best_threshold(sweep) == pytest.approx(cut)
        assert sweep[best_threshold(sweep)] == pytest.approx(1.0)
        assert all(v < 1.0 for t, v in sweep.items() if abs(t - cut) > 0.01)


def test_sweep_scores_person_free_images_by_their_false_pixels():
    segmenter = Segmenter(ramp_runner, input_size=64)
    image, empty = np.zeros((32, 64, 3), np.uint8), np.zeros((32, 64), np.uint8)
    prob = segmenter.predict(image)
    sweep = threshold_sweep(segmenter, [image], [empty])
    for t, score in sweep.items():
        assert score == pytest.approx(1 - (prob >= t).mean())  # not 0 for every threshold that leaves a pixel on


def square(size: int, top_left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[top_left : top_left + side, top_left : top_left + side] = 1
    return mask


def test_selection_iou_is_iou_on_people_and_the_background_share_on_person_free_labels():
    empty, person = np.zeros((32, 32), np.uint8), square(32, 8, 16)
    one_pixel = np.zeros((32, 32), np.uint8)
    one_pixel[0, 0] = 1
    pred = square(32, 8, 12)
    assert selection_iou(pred, person) == pytest.approx(iou(pred, person))
    assert selection_iou(empty, empty) == 1.0
    assert iou(one_pixel, empty) == 0.0  # one false pixel: as wrong as a wholly false frame
    assert selection_iou(one_pixel, empty) == pytest.approx(1 - 1 / 1024)
    assert selection_iou(square(32, 0, 16), empty) == pytest.approx(0.75)
    batch = selection_iou(np.stack([pred, one_pixel]), np.stack([person, empty]), reduction="none")
    assert batch.shape == (2,) and batch == pytest.approx([iou(pred, person), 1 - 1 / 1024])
    assert selection_iou(np.stack([pred, one_pixel]), np.stack([person, empty])) == pytest.approx(batch.mean())
    with pytest.raises(ValueError, match="reduction"):
        selection_iou(pred, person, reduction="pooled")


def test_selection_score_by_kinds_counts_each_kind_alike_whatever_its_number():
    per_image = np.array([0.9, 0.8, 0.7, 0.1])  # three photos, one composite
    kinds = ["photos", "photos", "photos", "scenes"]
    assert selection_score(per_image) == pytest.approx(0.625)
    assert selection_score(per_image, kinds) == pytest.approx((0.8 + 0.1) / 2)
    columns = np.stack([per_image, per_image[::-1]], axis=1)  # (N, T): one column per threshold
    assert selection_score(columns, kinds) == pytest.approx([(0.8 + 0.1) / 2, (0.1 + 0.8 + 0.7) / 6 + 0.9 / 2])
    with pytest.raises(ValueError, match="one kind per image"):
        selection_score(per_image, kinds[:3])


def test_validation_kind_tells_photos_composites_and_person_free_frames_apart():
    person, empty = square(8, 2, 4), np.zeros((8, 8), np.uint8)
    assert validation_kind("ccp/train/0001.png", person) == "photos"
    assert validation_kind("scene 3 (frame_0001.jpg)", person) == "scenes"
    assert validation_kind("frame_0001.jpg", empty) == "frames"


def test_sweep_by_kinds_averages_each_kinds_mean():
    segmenter = Segmenter(ramp_runner, input_size=64)
    image = np.zeros((32, 64, 3), np.uint8)
    prob = segmenter.predict(image)
    labels = [(prob > cut).astype(np.uint8) for cut in (0.35, 0.4, 0.45)] + [np.zeros_like(prob, np.uint8)]
    kinds = ["photos", "photos", "photos", "frames"]
    sweep = threshold_sweep(segmenter, [image] * 4, labels, kinds=kinds)
    alone = [threshold_sweep(segmenter, [image], [label]) for label in labels]
    for t, score in sweep.items():
        assert score == pytest.approx((np.mean([a[t] for a in alone[:3]]) + alone[3][t]) / 2)
    assert best_threshold(sweep) > best_threshold(threshold_sweep(segmenter, [image] * 4, labels))


def test_ties_go_to_the_threshold_closest_to_one_half():
    assert best_threshold({0.3: 0.9, 0.45: 0.95, 0.6: 0.95, 0.7: 0.8}) == 0.45
    assert best_threshold({0.5: 0.9, 0.55: 0.9}) == 0.5


def test_sweep_errors():
    segmenter = Segmenter(ramp_runner, input_size=64)
    image, label = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match="as many masks"):
        threshold_sweep(segmenter, [image], [])
    for wrong in (1.5, 0.0, 1.0):  # one range everywhere: (0, 1), both ends excluded
        with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\)"):
            threshold_sweep(segmenter, [image], [label], thresholds=[0.5, wrong])
    with pytest.raises(ValueError, match="at least one threshold"):
        threshold_sweep(segmenter, [image], [label], thresholds=[])
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\)"):
        Segmenter(ramp_runner, threshold=2.0)


def sharp_at_64_runner(batch: np.ndarray) -> np.ndarray:
    """Person everywhere when the long side is 64, nowhere at any other size: the best size is 64."""
    n, _, h, w = batch.shape
    return np.full((n, 1, h, w), 5.0 if max(h, w) == 64 else -5.0, np.float32)


def test_size_sweep_finds_the_input_size_that_matches_the_labels():
    image, label = np.zeros((48, 40, 3), np.uint8), np.ones((48, 40), np.uint8)
    sweeps = size_threshold_sweep(sharp_at_64_runner, [32, 64, 96], [image], [label])
    assert list(sweeps) == [32, 64, 96] and list(sweeps[64]) == list(THRESHOLDS)
    assert all(v == pytest.approx(1.0) for v in sweeps[64].values())
    assert all(v == 0.0 for size in (32, 96) for v in sweeps[size].values())
    assert best_setting(sweeps) == (64, 0.5)
    with pytest.raises(ValueError, match="multiples of 16"):
        size_threshold_sweep(sharp_at_64_runner, [64, 100], [image], [label])


def test_setting_ties_go_to_the_smaller_input_size():
    sweeps = {320: {0.5: 0.9, 0.6: 0.93}, 256: {0.5: 0.93, 0.6: 0.92}, 384: {0.5: 0.91}}
    assert best_setting(sweeps) == (256, 0.5)
    sweeps[384] = {0.5: 0.94}
    assert best_setting(sweeps) == (384, 0.5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[TrainConfig, object]:
    """A one-epoch asbunet_025 run on a synthetic dataset: (its config, its output folder)."""
    root = tmp_path_factory.mktemp("calibrate")
    data = write_folder_dataset(root / "data", n=8, size=(56, 48))
    cfg = TrainConfig(**tiny_config(data, root / "run", model="asbunet_025", epochs=1))
    train(cfg)
    return cfg, root / "run"


def test_bundle_stores_the_threshold_chosen_on_the_validation_split(trained, tmp_path):
    _, run = trained
    out = tmp_path / "tiny.safetensors"
    meta = bundle_checkpoint(run / "best.pt", out)
    calibration = json.loads(meta["threshold_calibration"])
    assert calibration["images"] == 2  # 25% of 8
    sweep = {float(t): v for t, v in calibration["sweep"].items()}
    assert float(meta["threshold"]) == best_threshold(sweep) == calibration["threshold"]

    state, stored = read_safetensors(out)
    assert stored["threshold"] == meta["threshold"] and stored["architecture"] == "asbunet_025"
    segmenter = Segmenter.from_pretrained(out)
    assert segmenter.threshold == float(meta["threshold"]) and segmenter.input_size == 64
    image = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(segmenter.mask(image), segmenter.predict(image) >= segmenter.threshold)
    reference = Segmenter.from_pretrained(run / "best.pt")  # the same weights, threshold 0.5
    assert reference.threshold == 0.5
    np.testing.assert_allclose(segmenter.predict(image), reference.predict(image), atol=1e-6)


def test_bundle_scores_the_split_as_the_run_chose_its_checkpoint(trained, tmp_path):
    _, run = trained
    ckpt = load_checkpoint(run / "best.pt")
    ckpt["config"]["selection"] = "kinds"
    torch.save(ckpt, tmp_path / "kinds.pt")
    by_kinds = json.loads(bundle_checkpoint(tmp_path / "kinds.pt", tmp_path / "k.safetensors")["threshold_calibration"])
    by_images = json.loads(bundle_checkpoint(run / "best.pt", tmp_path / "i.safetensors")["threshold_calibration"])
    assert by_kinds["selection"] == "kinds" and by_images["selection"] == "images"
    assert by_kinds["sweep"] == pytest.approx(by_images["sweep"])  # one kind (photos): the same mean
    with pytest.raises(ValueError, match="selection"):
        TrainConfig(**{**ckpt["config"], "selection": "pixels"})


def test_bundle_with_a_threshold_by_hand_needs_no_data(trained, tmp_path):
    cfg, run = trained
    ckpt = load_checkpoint(run / "best.pt")
    ckpt["config"]["data"]["train"] = [str(tmp_path / "gone")]
    torch.save(ckpt, tmp_path / "moved.pt")
    with pytest.raises(ValueError, match="--threshold"):
        bundle_checkpoint(tmp_path / "moved.pt", tmp_path / "a.safetensors")
    meta = bundle_checkpoint(tmp_path / "moved.pt", tmp_path / "b.safetensors", threshold=0.65)
    assert meta["threshold"] == "0.65" and json.loads(meta["threshold_calibration"])["by"] == "hand"
    with pytest.raises(ValueError, match="threshold must be"):
        bundle_checkpoint(run / "best.pt", tmp_path / "c.safetensors", threshold=1.5)


def test_bundle_chooses_the_input_size_on_the_validation_split(trained, tmp_path):
    _, run = trained
    meta = bundle_checkpoint(run / "best.pt", tmp_path / "sized.safetensors", input_sizes=[48, 32])
    calibration = json.loads(meta["threshold_calibration"])
    sweeps = {int(size): {float(t): v for t, v in sweep.items()} for size, sweep in calibration["sweeps"].items()}
    assert sorted(sweeps) == [32, 48]
    assert (int(meta["input_size"]), float(meta["threshold"])) == best_setting(sweeps)
    assert Segmenter.from_pretrained(tmp_path / "sized.safetensors").input_size == int(meta["input_size"])

    by_hand = bundle_checkpoint(run / "best.pt", tmp_path / "t.safetensors", threshold=0.6, input_sizes=[48, 32])
    assert by_hand["threshold"] == "0.6"
    assert all(list(s) == ["0.6"] for s in json.loads(by_hand["threshold_calibration"])["sweeps"].values())
    fixed = bundle_checkpoint(run / "best.pt", tmp_path / "f.safetensors", threshold=0.6, input_sizes=[96])
    assert fixed["input_size"] == "96" and json.loads(fixed["threshold_calibration"])["by"] == "hand"


def test_segment_and_evaluate_use_the_model_threshold_unless_given(trained, tmp_path):
    cfg, run = trained
    bundle_checkpoint(run / "best.pt", tmp_path / "m.safetensors", threshold=0.7)
    segmenter = Segmenter.from_pretrained(tmp_path / "m.safetensors")
    assert segmenter.threshold == 0.7 and VideoSegmenter(segmenter).threshold == 0.7
    assert Segmenter.from_pretrained(tmp_path / "m.safetensors", threshold=0.4).threshold == 0.4
    assert VideoSegmenter(segmenter, threshold=0.4).threshold == 0.4 and segmenter.threshold == 0.7
    data = cfg.data.train[0]
    summary = evaluate_model(tmp_path / "m.safetensors", [data], tmp_path / "eval", gallery=0, progress=False)
    assert summary["settings"]["threshold"] == 0.7
    given = evaluate_model(
        tmp_path / "m.safetensors", [data], tmp_path / "eval4", gallery=0, progress=False, threshold=0.4
    )
    assert given["settings"]["threshold"] == 0.4


def test_fine_tuning_starts_from_the_given_weights(trained, tmp_path):
    cfg, run = trained
    loaded = load_model(run / "best.pt")
    assert (loaded.architecture, loaded.options) == ("asbunet_025", {})
    start = loaded.module.state_dict()
    bundle_checkpoint(run / "best.pt", tmp_path / "start.safetensors", threshold=0.5)
    assert load_model(tmp_path / "start.safetensors").architecture == "asbunet_025"

    # lr 0: the weights stay those of the start (only BatchNorm running statistics move)
    values = {**cfg.to_dict(), "output": str(tmp_path / "ft"), "lr": 0.0, "weight_decay": 0.0}
    train(TrainConfig(**{**values, "init_from": str(tmp_path / "start.safetensors")}))
    tuned = load_checkpoint(tmp_path / "ft" / "last.pt")["state_dict"]
    convs = [k for k in start if k.endswith(".weight") and start[k].ndim == 4]
    assert convs and all(torch.equal(tuned[k], start[k]) for k in convs)

    values["output"] = str(tmp_path / "refused")  # a new folder: ft holds a run now
    with pytest.raises(ValueError, match="holds asbunet_025 weights, but the config trains asbunet"):
        train(TrainConfig(**{**values, "model": "asbunet", "init_from": str(run / "best.pt")}))
    with pytest.raises(ValueError, match="no bundled model"):
        train(TrainConfig(**{**values, "init_from": "no_such_model"}))


@pytest.mark.slow
def test_onnx_export_carries_the_threshold_and_input_size(trained, tmp_path, ccp_samples):
    from asbunet.cli import main

    _, run = trained
    bundle_checkpoint(run / "best.pt", tmp_path / "m.safetensors", threshold=0.7)
    args = ["export", str(tmp_path / "m.safetensors"), "--output", str(tmp_path / "m.onnx"), "--size", "64", "64"]
    args += ["--int8", "--calibration", str(ccp_samples / "images"), "--calibration-count", "2"]
    assert main(args) == 0
    for name in ("m.onnx", "m_int8.onnx"):
        assert Segmenter.from_pretrained(tmp_path / name).threshold == 0.7, name

    # a dynamic-size export runs at the input size the bundled model was given
    bundle_checkpoint(run / "best.pt", tmp_path / "s.safetensors", threshold=0.7, input_sizes=[96])
    assert main(["export", str(tmp_path / "s.safetensors"), "--output", str(tmp_path / "s.onnx"), "--dynamic"]) == 0
    assert Segmenter.from_pretrained(tmp_path / "s.onnx").input_size == 96


def test_bundle_stores_a_refine_setting_that_every_runtime_applies(trained, tmp_path):
    _, run = trained
    refine = GuidedRefine(radius=2, eps=1e-3, subsample=1)
    out = tmp_path / "refined.safetensors"
    meta = bundle_checkpoint(run / "best.pt", out, refine=refine)
    assert meta["refine"] == refine.to_text()
    assert load_model(out).refine == refine and Segmenter.from_pretrained(out).refine == refine
    assert load_model(run / "best.pt").refine is None
    assert main(["export", str(out), "--dynamic", "--output", str(tmp_path / "refined.onnx")]) in (0, None)
    onnx = Segmenter.from_pretrained(tmp_path / "refined.onnx")
    assert onnx.refine == refine and onnx.threshold == float(meta["threshold"])
    image = np.random.default_rng(3).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    np.testing.assert_allclose(onnx.predict(image), Segmenter.from_pretrained(out).predict(image), atol=1e-4)

    state, stored = read_safetensors(out)
    save_file(state, str(tmp_path / "bad.safetensors"), metadata={**stored, "refine": "guided:radius=x"})
    with pytest.raises(ValueError, match="bad.safetensors.*guided:radius=R"):
        load_model(tmp_path / "bad.safetensors")
