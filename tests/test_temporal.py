"""Temporal smoothers and the flicker metric (`asbunet.frames.temporal`) on small synthetic sequences."""

from __future__ import annotations

import numpy as np
import pytest

from asbunet.frames import temporal
from asbunet.frames.flicker import flicker, flicker_pairs
from asbunet.metrics import iou

H, W, T = 64, 128, 24


def textured_background(rng: np.random.Generator) -> np.ndarray:
    return (rng.random((H, W, 3)) * 80 + 40).astype(np.uint8)


def moving_square(speed: int = 3, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A bright textured square crossing a still textured background from left to right: frames `(T, H, W, 3)`,
    labels `(T, H, W)`."""
    rng = np.random.default_rng(0)
    background = textured_background(rng)
    texture = (rng.random((size, size, 3)) * 60 + 180).astype(np.uint8)
    frames, labels = [], []
    for t in range(T):
        x = 2 + speed * t
        assert x + size <= W
        frame, label = background.copy(), np.zeros((H, W), bool)
        frame[16 : 16 + size, x : x + size] = texture
        label[16 : 16 + size, x : x + size] = True
        frames.append(frame)
        labels.append(label)
    return np.stack(frames), np.stack(labels)


def noisy_probabilities(labels: np.ndarray, noise: float, seed: int = 1) -> list[np.ndarray]:
    """A per-frame 'model': 0.3 outside, 0.7 inside, plus independent noise per frame (flicker around 0.5)."""
    rng = np.random.default_rng(seed)
    return [
        np.clip(0.3 + 0.4 * y + rng.normal(0, noise, y.shape), 0, 1).astype(np.float32) for y in labels.astype(float)
    ]


def run(smoother, probs, frames, threshold=0.5) -> np.ndarray:
    return np.stack([p >= threshold for p in temporal.smooth_sequence(probs, frames, smoother)])


def test_flicker_counts_changes_where_label_is_steady():
    labels = np.zeros((3, 4, 4), bool)
    labels[1:, 0, 0] = True  # the label changes at one pixel between frames 0 and 1
    masks = labels.copy()
    masks[1, 3, 3] = True  # one spurious pixel in frame 1: changes 0->1 and 1->2
    pairs = flicker_pairs(masks, labels)
    np.testing.assert_allclose(pairs, [1 / 15, 1 / 16])
    assert flicker(masks, labels) == pytest.approx((1 / 15 + 1 / 16) / 2)
    assert flicker(labels, labels) == 0.0
    # without labels every pixel counts, the label's own change included
    np.testing.assert_allclose(flicker_pairs(masks), [2 / 16, 1 / 16])


def test_flicker_rejects_bad_shapes():
    with pytest.raises(ValueError, match="T, H, W"):
        flicker(np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="shapes differ"):
        flicker(np.zeros((2, 4, 4), bool), np.zeros((2, 4, 5), bool))
    assert np.isnan(flicker(np.zeros((1, 4, 4), bool)))


def test_ema_matches_definition():
    ema = temporal.EMA(0.6)
    a, b = np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)
    np.testing.assert_allclose(ema(a), 0.0)
    np.testing.assert_allclose(ema(b), 0.4)
    np.testing.assert_allclose(ema(b), 0.64)
    ema.reset()
    np.testing.assert_allclose(ema(b), 1.0)


@pytest.mark.parametrize("name", list(temporal.SMOOTHERS))
def test_every_smoother_keeps_shape_range_and_resets(name):
    frames, labels = moving_square()
    probs = noisy_probabilities(labels, 0.1)
    smoother = temporal.create_smoother(name)
    first = [smoother(p, f) for p, f in zip(probs[:5], frames[:5], strict=True)]
    for out in first:
        assert out.shape == (H, W) and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
    again = temporal.smooth_sequence(probs[:5], frames[:5], smoother)  # resets first
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)
    assert probs[0] is not first[0]  # never hands back the caller's array


def test_static_noisy_scene_flickers_less():
    """Nothing moves, the model's output is noisy: every smoother but frame-by-frame cuts the flicker."""
    rng = np.random.default_rng(3)
    background = textured_background(rng)
    frames = np.stack(
        [np.clip(background + rng.normal(0, 2, background.shape), 0, 255).astype(np.uint8) for _ in range(T)]
    )
    labels = np.zeros((T, H, W), bool)
    labels[:, 10:40, 20:44] = True
    probs = noisy_probabilities(labels, 0.12)
    base = flicker(run(temporal.FrameByFrame(), probs, frames), labels)
    assert base > 0.02
    for name in ("ema", "confidence", "motion", "flow", "hysteresis"):
        smoothed = flicker(run(temporal.create_smoother(name), probs, frames), labels)
        assert smoothed < 0.7 * base, name


def test_moving_square_flow_keeps_up_while_ema_lags():
    frames, labels = moving_square(speed=4)
    probs = noisy_probabilities(labels, 0.05)
    scores = {}
    for name, smoother in {
        "frame_by_frame": temporal.FrameByFrame(),
        "ema": temporal.EMA(0.8),
        "flow": temporal.FlowWarpEMA(0.8, width=W),
        "motion": temporal.MotionGatedEMA(0.8, tau=10.0, width=W),
        "confidence": temporal.ConfidenceGatedEMA(0.8, delta=0.2),
    }.items():
        scores[name] = float(iou(run(smoother, probs, frames), labels))
    assert scores["ema"] < scores["frame_by_frame"] - 0.1  # the moving average lags behind the square
    assert scores["flow"] > scores["frame_by_frame"] - 0.03
    assert scores["motion"] > scores["frame_by_frame"] - 0.03
    assert scores["confidence"] > scores["frame_by_frame"] - 0.03


def test_confidence_gate_lets_a_jump_through():
    smoother = temporal.ConfidenceGatedEMA(0.9, delta=0.3)
    smoother(np.zeros((2, 2), np.float32))
    np.testing.assert_allclose(smoother(np.full((2, 2), 0.9, np.float32)), 0.9)  # a jump of 0.9 >= delta
    smoother.reset()
    smoother(np.zeros((2, 2), np.float32))
    np.testing.assert_allclose(smoother(np.full((2, 2), 0.15, np.float32)), 0.15 * (1 - 0.9 * 0.5))


def test_hysteresis_holds_state_inside_the_band():
    smoother = temporal.Hysteresis(threshold=0.7, margin=0.1)
    seq = [0.75, 0.65, 0.55, 0.75, 0.78, 0.85]  # person, stays, leaves (< 0.6), stays out (< 0.8), comes back
    states = [smoother(np.full((1, 1), p, np.float32))[0, 0] >= 0.7 for p in seq]
    assert states == [True, True, False, False, False, True]


def test_create_smoother_errors_list_choices():
    with pytest.raises(ValueError, match="choose from: frame_by_frame, ema"):
        temporal.create_smoother("median")
    with pytest.raises(ValueError, match="smoother 'ema'"):
        temporal.create_smoother("ema", delta=0.2)
    with pytest.raises(ValueError, match="momentum"):
        temporal.EMA(1.0)
    with pytest.raises(ValueError, match="needs the RGB frame"):
        smoother = temporal.FlowWarpEMA()
        smoother(np.zeros((4, 4), np.float32))
        smoother(np.zeros((4, 4), np.float32))


def test_default_smoother_is_a_smoother():
    smoother = temporal.smoother_for(threshold=0.7)
    parts = smoother.smoothers if isinstance(smoother, temporal.Chain) else (smoother,)
    names = temporal.DEFAULT_SMOOTHER[0].split("+")
    assert [type(p) for p in parts] == [temporal.SMOOTHERS[n] for n in names]
    assert all(p.threshold == 0.7 for p in parts if isinstance(p, temporal.Hysteresis))


def test_chain_runs_smoothers_in_order():
    chain = temporal.create_smoother("ema+hysteresis", **{"ema.momentum": 0.5, "hysteresis.threshold": 0.5})
    assert isinstance(chain, temporal.Chain)
    ema, hyst = chain.smoothers
    assert ema.momentum == 0.5 and hyst.threshold == 0.5
    probs = [np.full((2, 2), p, np.float32) for p in (0.0, 1.0, 0.0)]
    out = temporal.smooth_sequence(probs, None, chain)
    # the average reaches 0.5, short of 0.5 + margin 0.1: hysteresis keeps background (0.5 - margin / 2)
    np.testing.assert_allclose([o[0, 0] for o in out], [0.0, 0.45, 0.25])
    with pytest.raises(ValueError, match="prefixed"):
        temporal.create_smoother("ema+hysteresis", momentum=0.5)
    params = temporal.with_threshold("motion+hysteresis", {"motion.tau": 20.0}, 0.7)
    assert params == {"hysteresis.threshold": 0.7, "motion.tau": 20.0}


def dim_person(seed: int = 5) -> list[np.ndarray]:
    """A person the model is only dimly sure of, arriving at frame 4: 0.75 +- 0.04 inside a square, 0.1 +- 0.04
    outside."""
    rng = np.random.default_rng(seed)
    label = np.zeros((H, W))
    label[10:40, 20:44] = 1.0
    return [
        np.clip(0.1 + 0.65 * label * (t >= 4) + rng.normal(0, 0.04, label.shape), 0, 1).astype(np.float32)
        for t in range(T)
    ]


def test_asymmetric_hysteresis_never_loses_a_dim_person():
    probs = dim_person()
    inside = np.zeros((H, W), bool)
    inside[10:40, 20:44] = True
    keep = temporal.Hysteresis(threshold=0.7, margin_on=0.0, margin_off=0.3)
    symmetric = temporal.Hysteresis(threshold=0.7, margin=0.2)  # round 1: a pixel must reach 0.9 to turn person
    for smoother in (keep, temporal.Hysteresis(threshold=0.7, margin_on=0.0, margin_off=0.3, tau=20.0)):
        masks = run(smoother, probs, None if smoother.gate is None else np.zeros((T, H, W, 3), np.uint8), 0.7)
        bare = np.stack([p >= 0.7 for p in probs])
        assert (masks >= bare).all()  # every pixel the bare threshold keeps
        assert masks[-1][inside].mean() > 0.99  # and the whole dim person once it has appeared
    assert run(symmetric, probs, None, 0.7)[-1][inside].mean() < 0.5


def test_asymmetric_hysteresis_holds_a_dip_and_the_reverse_holds_background():
    keep = temporal.Hysteresis(threshold=0.7, margin_on=0.0, margin_off=0.3)
    seq = [0.65, 0.72, 0.5, 0.45, 0.35, 0.72]  # out (< 0.7), in at the threshold, held down to 0.4, out, back at once
    assert [keep(np.full((1, 1), p, np.float32))[0, 0] >= 0.7 for p in seq] == [False, True, True, True, False, True]
    reverse = temporal.Hysteresis(threshold=0.7, margin_on=0.1, margin_off=0.0)
    seq = [0.2, 0.75, 0.79, 0.81, 0.69]  # a blip below 0.8 stays background; out again just under the threshold
    assert [reverse(np.full((1, 1), p, np.float32))[0, 0] >= 0.7 for p in seq] == [False, False, False, True, False]
    with pytest.raises(ValueError, match="margin_off"):
        temporal.Hysteresis(threshold=0.7, margin_on=0.0, margin_off=0.7)
    with pytest.raises(ValueError, match="margin_on"):
        temporal.Hysteresis(threshold=0.7, margin_on=0.35)


def test_motion_gated_hysteresis_has_no_memory_where_the_image_moved():
    still = np.zeros((H, W, 3), np.uint8)
    moved = still.copy()
    moved[:, : W // 2] = 200  # the left half changes between the frames, the right half does not
    smoother = temporal.Hysteresis(threshold=0.7, margin_on=0.0, margin_off=0.3, tau=20.0, width=W)
    smoother(np.full((H, W), 0.9, np.float32), still)
    out = smoother(np.full((H, W), 0.5, np.float32), moved) >= 0.7
    assert not out[:, : W // 2 - 4].any()  # moved: the bare threshold decides
    assert out[:, W // 2 + 4 :].all()  # still: held


def test_hold_ema_never_below_the_frame_and_holds_a_dip():
    hold = temporal.HoldEMA(momentum=0.7)
    rng = np.random.default_rng(2)
    for _ in range(6):
        p = rng.random((4, 4)).astype(np.float32)
        assert (hold(p) >= p).all()
    hold.reset()
    out = [hold(np.full((1, 1), p, np.float32))[0, 0] for p in (0.8, 0.5, 0.9)]
    np.testing.assert_allclose(out, [0.8, 0.5 + 0.7 * 0.3, 0.9], rtol=1e-6)  # the dip is held, the rise passes
    masks = run(temporal.HoldEMA(0.7, tau=20.0), dim_person(), np.zeros((T, H, W, 3), np.uint8), 0.7)
    assert (masks >= np.stack([p >= 0.7 for p in dim_person()])).all()


def test_evaluate_video_reports_flicker_and_smoothing_lowers_it(tmp_path, capsys):
    """`asbunet evaluate --video` scores a frame sequence's flicker; a smoother lowers it on a noisy still scene."""
    import cv2
    import onnx

    from asbunet.evaluate.run import evaluate_model
    from asbunet.evaluate.scoring import Settings

    rng = np.random.default_rng(3)
    (tmp_path / "seq" / "images").mkdir(parents=True)
    (tmp_path / "seq" / "masks").mkdir()
    for t in range(8):
        image = np.clip(rng.normal(120, 40, (48, 64, 3)), 0, 255).astype(np.uint8)  # noise: a flickering model
        image[8:40, 16:48] = 230
        label = np.zeros((48, 64), np.uint8)
        label[8:40, 16:48] = 255
        cv2.imwrite(str(tmp_path / "seq" / "images" / f"{t:05d}.jpg"), image)
        cv2.imwrite(str(tmp_path / "seq" / "masks" / f"{t:05d}.png"), label)
    model = tmp_path / "bright.onnx"  # a stand-in network: logit = 8 x mean of the normalized channels
    x = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, "h", "w"])
    y = onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 1, "h", "w"])
    mean = onnx.helper.make_node("ReduceMean", ["input", "axes"], ["m"], keepdims=1)
    scale = onnx.helper.make_node("Mul", ["m", "eight"], ["logits"])
    inits = [
        onnx.numpy_helper.from_array(np.array([1], np.int64), "axes"),
        onnx.numpy_helper.from_array(np.array(8.0, np.float32), "eight"),
    ]
    graph = onnx.helper.make_graph([mean, scale], "bright", [x], [y], inits)
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), model)
    figures = {}
    for smoother in ("frame_by_frame", "ema"):
        settings = Settings(video=True, smoother=smoother)
        summary = evaluate_model(
            str(model), [tmp_path / "seq"], tmp_path / smoother, settings=settings, gallery=0, threshold=0.5
        )
        figures[smoother] = summary["datasets"]["seq"]["flicker"]
    assert 0 < figures["ema"] < figures["frame_by_frame"]
    assert "flicker" in (tmp_path / "ema" / "seq" / "per_image.csv").read_text().splitlines()[0]
