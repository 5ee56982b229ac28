"""Temporal stability of video masks: smoothers of the per-frame person probability.

A per-frame model flickers: pixels near the threshold change state from one frame to the next although nothing moved.
The plain exponential moving average (`EMA`, what `asbunet segment` has used) halves that flicker but lags behind a
moving person, because it blends the current probability with where the person *was*. The other smoothers here keep
its stability where nothing moves and let motion through:

    frame_by_frame   no smoothing
    ema              `s_t = m s_{t-1} + (1 - m) p_t`
    confidence       EMA whose past weight fades where the new probability differs from the state by `delta` or more
    motion           EMA whose past weight fades where the input image changed (grey-level difference over `tau`)
    flow             the state is warped by the optical flow (DIS, at low resolution) from the previous frame to the
                     current one before the (optionally confidence-gated) EMA: the past follows the person
    hold             EMA that only slows falls: a rising probability passes at once, so it never loses a person
                     pixel the bare threshold keeps (optionally motion-gated like `motion`)
    hysteresis       a pixel changes state only when its probability crosses the threshold by a margin: symmetric,
                     asymmetric (`margin_on=0`: turns person at the threshold, background only below threshold -
                     `margin_off`, so it never loses a person), or the reverse; optionally motion-gated (no memory
                     where the image changed)

Every smoother is a small stateful object with one interface, `smoother(prob, frame_rgb) -> prob` on `(H, W)` float32
probabilities (and the frame as RGB uint8 `(H, W, 3)`, which `motion` and `flow` need and the others ignore), plus
`reset()` between videos; `create_smoother(name, **params)` builds one by name. They work on plain numpy arrays so the
video pipeline calls one on the model's probability (`Segmenter.predict`, refined or bilinear) of each frame.

Their steadiness is measured by `asbunet.frames.flicker`: the share of pixels whose predicted mask changes between
consecutive frames where the label does not change, mean over frame pairs.
`experiments/temporal/study.py` chose the default smoother and its parameters on synthetic clips built from the
training data and reports it on davis_person.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from asbunet.inference.postprocess import binarize, check_threshold
from asbunet.inference.scratch import scratch

# ---------------------------------------------------------------------------------------------------------------
# Smoothers
# ---------------------------------------------------------------------------------------------------------------


def _check_prob(prob: np.ndarray) -> np.ndarray:
    if prob.ndim != 2:
        raise ValueError(f"probability must be (H, W), got shape {prob.shape}")
    return prob.astype(np.float32, copy=False)


def _check_frame(frame: np.ndarray | None, shape: tuple[int, int], who: str) -> np.ndarray:
    if frame is None:
        raise ValueError(f"the {who} smoother needs the RGB frame: call it as smoother(prob, frame_rgb)")
    if frame.shape[:2] != shape:
        raise ValueError(f"frame {frame.shape[:2]} and probability {shape} sizes differ")
    return frame


def _check_momentum(momentum: float) -> float:
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"smoothing momentum must be in [0, 1) (0 = off), got {momentum}")
    return float(momentum)


def _small_gray(frame: np.ndarray, width: int) -> np.ndarray:
    """Grey levels (uint8) of an RGB frame resized to `width` pixels wide (never enlarged)."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    h, w = gray.shape
    if w > width:
        gray = cv2.resize(gray, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return gray


def _blend(prob: np.ndarray, past: np.ndarray, weight, state: np.ndarray) -> np.ndarray:
    """`prob + weight * (past - prob)` as float32, written into `state` (free to be overwritten; `past` may be it)
    where every operand is float32, so that no full-size temporary is made per frame."""
    weights_32 = np.asarray(weight).dtype == np.float32 or isinstance(weight, float)
    if not (weights_32 and past.dtype == state.dtype == np.float32 and state.shape == prob.shape):
        return (prob + weight * (past - prob)).astype(np.float32, copy=False)
    step = np.subtract(past, prob, out=scratch("smooth.step", prob.shape))
    np.multiply(step, weight, out=step)
    return np.add(prob, step, out=state)


class FrameByFrame:
    """No smoothing: returns each probability unchanged (the reference every smoother is measured against)."""

    def reset(self) -> None:
        pass

    def __call__(self, prob: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        return _check_prob(prob).copy()


class EMA:
    """Exponential moving average: `s_t = m * s_{t-1} + (1 - m) * p_t`, `s_0 = p_0` (the old video smoothing).

    Args:
        momentum: weight `m` of the past in [0, 1); a still frame's response to a change reaches `1 - m**k` of its
            size after `k` frames, and so does a moving person's mask: it lags.
    """

    def __init__(self, momentum: float = 0.6):
        self.momentum = _check_momentum(momentum)
        self.state: np.ndarray | None = None

    def reset(self) -> None:
        self.state = None

    def _past_weight(self, prob: np.ndarray, frame: np.ndarray | None) -> np.ndarray | float:
        return self.momentum

    def _past(self, prob: np.ndarray, frame: np.ndarray | None) -> np.ndarray:
        return self.state

    def __call__(self, prob: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        prob = _check_prob(prob)
        if self.state is None or self.state.shape != prob.shape:
            self.state = prob.copy()
            self._start(prob, frame)
            return self.state.copy()
        past = self._past(prob, frame)
        weight = self._past_weight(prob, frame) if self.momentum else 0.0
        self.state = _blend(prob, past, weight, self.state)  # m * past + (1 - m) * prob
        return self.state.copy()

    def _start(self, prob: np.ndarray, frame: np.ndarray | None) -> None:
        pass


class ConfidenceGatedEMA(EMA):
    """EMA that lets large changes through: the past's weight is `m * (1 - min(1, |p_t - s_{t-1}| / delta))`.

    A pixel whose probability barely moves (noise around a steady value) is averaged as by `EMA`; one that jumps by
    `delta` or more (a person arriving or leaving) takes the new value at once.

    Args:
        momentum: the past's weight where the probability did not change.
        delta: change of probability at which the past is ignored, in (0, 1].
    """

    def __init__(self, momentum: float = 0.6, delta: float = 0.3):
        super().__init__(momentum)
        if not 0.0 < delta <= 1.0:
            raise ValueError(f"delta must be in (0, 1], got {delta}")
        self.delta = float(delta)

    def _gate(self, prob: np.ndarray, past: np.ndarray) -> np.ndarray:
        """The past's weight per pixel; a plane of this thread, worked out in place (`asbunet.inference.scratch`)."""
        trust = np.subtract(prob, past, out=scratch("smooth.weight", prob.shape))
        np.multiply(np.abs(trust, out=trust), np.float32(1.0 / self.delta), out=trust)
        np.subtract(1.0, trust, out=trust)
        return np.multiply(np.clip(trust, 0.0, 1.0, out=trust), np.float32(self.momentum), out=trust)

    def _past_weight(self, prob: np.ndarray, frame: np.ndarray | None) -> np.ndarray:
        return self._gate(prob, self.state)


class MotionGate:
    """Where the image stayed still: `1 - min(1, |I_t - I_{t-1}| / tau)` per pixel, in [0, 1] (1 = unchanged).

    The grey-level difference is taken at `width` pixels wide after a 5x5 Gaussian blur (sensor noise stays under
    `tau`), then dilated by one low-resolution pixel so the gate covers a moving edge's both sides, and resized to the
    frame. The first frame after `reset` has no past and returns None.

    Args:
        tau: grey-level difference (0..255) at which the pixel counts as changed.
        width: width of the difference image.
    """

    def __init__(self, tau: float = 20.0, width: int = 160):
        if tau <= 0:
            raise ValueError(f"tau must be > 0 grey levels, got {tau}")
        self.tau, self.width = float(tau), int(width)
        self.gray: np.ndarray | None = None

    def reset(self) -> None:
        self.gray = None

    def __call__(self, frame: np.ndarray, shape: tuple[int, int], who: str) -> np.ndarray | None:
        gray = cv2.GaussianBlur(_small_gray(_check_frame(frame, shape, who), self.width).astype(np.float32), (5, 5), 0)
        past, self.gray = self.gray, gray
        if past is None or past.shape != gray.shape:
            return None
        change = cv2.dilate(np.abs(gray - past), np.ones((3, 3), np.uint8))
        still = np.clip(1.0 - change * np.float32(1.0 / self.tau), 0.0, 1.0)
        return cv2.resize(still, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


class MotionGatedEMA(EMA):
    """EMA whose past weight fades where the input image changed: `m * (1 - min(1, |I_t - I_{t-1}| / tau))`
    (`MotionGate`).

    Args:
        momentum: the past's weight where the image did not change.
        tau: grey-level difference (0..255) at which the past is ignored.
        width: width of the difference image.
    """

    def __init__(self, momentum: float = 0.6, tau: float = 20.0, width: int = 160):
        super().__init__(momentum)
        self.gate = MotionGate(tau, width)

    def reset(self) -> None:
        super().reset()
        self.gate.reset()

    def _start(self, prob: np.ndarray, frame: np.ndarray | None) -> None:
        self.gate.reset()
        self.gate(frame, prob.shape, "motion")

    def _past_weight(self, prob: np.ndarray, frame: np.ndarray | None) -> np.ndarray:
        return self.gate(frame, prob.shape, "motion") * np.float32(self.momentum)


class HoldEMA(EMA):
    """EMA that only slows a falling probability: `s_t = max(p_t, m_t * s_{t-1} + (1 - m_t) * p_t)`.

    A rising probability passes at once, so the output is never below the frame's own probability: a pixel the bare
    threshold marks person stays person (no person is lost, nothing lags on a person's leading edge); a pixel whose
    probability dips for a frame or two is held. With `tau`, the past's weight `m_t` also fades where the image
    changed (`MotionGate`), so a person's trailing edge is not held where the background shows again.

    Args:
        momentum: the past's weight on a falling probability (where the image did not change).
        tau: grey-level difference at which the past is ignored, or None: no motion gate.
        width: width of the motion gate's difference image.
    """

    def __init__(self, momentum: float = 0.6, tau: float | None = None, width: int = 160):
        super().__init__(momentum)
        self.gate = None if tau is None else MotionGate(tau, width)

    def reset(self) -> None:
        super().reset()
        if self.gate is not None:
            self.gate.reset()

    def _start(self, prob: np.ndarray, frame: np.ndarray | None) -> None:
        if self.gate is not None:
            self.gate.reset()
            self.gate(frame, prob.shape, "hold")

    def _past_weight(self, prob: np.ndarray, frame: np.ndarray | None) -> np.ndarray | float:
        if self.gate is None:
            return self.momentum
        return self.gate(frame, prob.shape, "hold") * np.float32(self.momentum)

    def __call__(self, prob: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        prob = _check_prob(prob)
        out = super().__call__(prob, frame)
        np.maximum(out, prob, out=out)
        self.state = out.copy()
        return out


class FlowWarpEMA(ConfidenceGatedEMA):
    """EMA of the current probability with the previous state warped along the optical flow.

    The flow from the current frame to the previous one is computed by OpenCV's DIS optical flow (preset ultrafast)
    on grey levels `width` pixels wide and upsampled; the state is resampled at `x + flow(x)`, so the past follows the
    person instead of lagging behind. Where the flow is wrong (occlusions, fast limbs), `delta` gates the past out as
    in `ConfidenceGatedEMA`; `delta=None` blends everywhere.

    Args:
        momentum: the past's weight.
        delta: change of probability at which the warped past is ignored, or None.
        width: width of the flow computation.
    """

    def __init__(self, momentum: float = 0.6, delta: float | None = None, width: int = 160):
        super().__init__(momentum, 1.0 if delta is None else delta)
        self.gated = delta is not None
        self.width = int(width)
        self.gray: np.ndarray | None = None
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self._grid: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        super().reset()
        self.gray = None

    def _start(self, prob: np.ndarray, frame: np.ndarray | None) -> None:
        self.gray = _small_gray(_check_frame(frame, prob.shape, "flow"), self.width)

    def _past(self, prob: np.ndarray, frame: np.ndarray | None) -> np.ndarray:
        gray = _small_gray(_check_frame(frame, prob.shape, "flow"), self.width)
        flow = self.dis.calc(gray, self.gray, None)  # (h, w, 2): current pixel x sits at x + flow in the previous
        self.gray = gray
        h, w = prob.shape
        sy, sx = h / gray.shape[0], w / gray.shape[1]
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
        if self._grid is None or self._grid[0].shape != (h, w):
            self._grid = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        map_x = self._grid[0] + flow[..., 0] * np.float32(sx)
        map_y = self._grid[1] + flow[..., 1] * np.float32(sy)
        return cv2.remap(self.state, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def __call__(self, prob: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        prob = _check_prob(prob)
        if self.state is None or self.state.shape != prob.shape:
            return super().__call__(prob, frame)
        past = self._past(prob, frame)
        weight = self._gate(prob, past) if self.gated else np.float32(self.momentum)
        self.state = _blend(prob, past, weight, self.state)
        return self.state.copy()


class Hysteresis:
    """A pixel changes state only when its probability crosses the threshold by a margin (a Schmitt trigger per pixel).

    A background pixel turns person at `threshold + margin_on`, a person pixel turns background below
    `threshold - margin_off`. Symmetric (`margin` alone sets both): round 1's choice; a pixel must reach
    `threshold + margin` to appear, so a person the model is only dimly sure of drops out. Asymmetric
    (`margin_on=0`): a pixel turns person at the bare threshold and is held until it falls below
    `threshold - margin_off`, so the mask holds every pixel the bare threshold holds (nothing is lost). Reverse
    (`margin_off=0`): held background, for a model that flickers false positives.

    With `tau`, the memory applies only where the image stayed still (`MotionGate` at or above 0.5); where the image
    changed, the bare threshold decides (no trail behind a moving person).

    The output is the probability, nudged where the hysteresis keeps a state that the bare threshold would change:
    to `threshold + 0.5 * margin_off` where a person pixel stays person, to `threshold - 0.5 * margin_on` where a
    background pixel stays background (each at most halfway to 1 or 0); so `output >= threshold` is the hysteresis
    mask and the output stays a probability for the effects. The first frame is thresholded as is.

    Args:
        threshold: the mask threshold the output will be compared with (the model's).
        margin: both margins, where `margin_on` or `margin_off` is not given.
        margin_on: how far above the threshold a background pixel must rise to turn person.
        margin_off: how far below the threshold a person pixel must fall to turn background.
        tau: grey-level difference at which the motion gate drops the memory, or None: memory everywhere.
        width: width of the motion gate's difference image.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        margin: float = 0.1,
        margin_on: float | None = None,
        margin_off: float | None = None,
        tau: float | None = None,
        width: int = 160,
    ):
        threshold = check_threshold(threshold)
        margin_on = margin if margin_on is None else margin_on
        margin_off = margin if margin_off is None else margin_off
        if not 0.0 <= margin_on < 1.0 - threshold:
            raise ValueError(f"margin_on must be in [0, {1 - threshold:g}) (1 - threshold), got {margin_on}")
        if not 0.0 <= margin_off < threshold:
            raise ValueError(f"margin_off must be in [0, {threshold:g}) (the threshold), got {margin_off}")
        self.threshold, self.margin_on, self.margin_off = float(threshold), float(margin_on), float(margin_off)
        self.gate = None if tau is None else MotionGate(tau, width)
        self.mask: np.ndarray | None = None

    def reset(self) -> None:
        self.mask = None
        if self.gate is not None:
            self.gate.reset()

    def __call__(self, prob: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        prob = _check_prob(prob)
        bare = binarize(prob, self.threshold)
        still = None if self.gate is None else self.gate(frame, prob.shape, "hysteresis")
        if self.mask is None or self.mask.shape != prob.shape:
            self.mask = bare
            return prob.copy()
        mask = np.where(
            self.mask, binarize(prob, self.threshold - self.margin_off), binarize(prob, self.threshold + self.margin_on)
        )
        if still is not None:
            mask = np.where(still >= 0.5, mask, bare)
        out = prob.copy()
        t = self.threshold
        hi = np.float32(t + 0.5 * min(self.margin_off, 1.0 - t))
        lo = np.float32(t - 0.5 * min(self.margin_on, t))
        out[mask & ~bare] = hi
        out[~mask & bare] = lo
        self.mask = mask
        return out


class Chain:
    """Smoothers applied one after the other (e.g. a motion-gated EMA, then hysteresis), each with the frame."""

    def __init__(self, *smoothers):
        if not smoothers:
            raise ValueError("a chain needs at least one smoother")
        self.smoothers = smoothers

    def reset(self) -> None:
        for smoother in self.smoothers:
            smoother.reset()

    def __call__(self, prob: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        for smoother in self.smoothers:
            prob = smoother(prob, frame)
        return prob


# name -> class; `create_smoother` builds them
SMOOTHERS = {
    "frame_by_frame": FrameByFrame,
    "ema": EMA,
    "confidence": ConfidenceGatedEMA,
    "motion": MotionGatedEMA,
    "hold": HoldEMA,
    "flow": FlowWarpEMA,
    "hysteresis": Hysteresis,
}
OLD_SMOOTHER = ("ema", {"momentum": 0.6})  # what `asbunet segment` smoothed with before
# chosen by experiments/temporal/study.py (round 4) on synthetic clips by the per-clip rule of its README
# (experiments/temporal/grid.md); on every davis_person sequence it keeps frame-by-frame IoU and flickers less than
# MediaPipe landscape frame by frame (experiments/temporal/davis_person.md)
DEFAULT_SMOOTHER = ("confidence", {"momentum": 0.85, "delta": 0.6})


def create_smoother(name: str, **params):
    """A smoother by name (`SMOOTHERS`) with its parameters, e.g. `create_smoother("flow", momentum=0.5)`.

    Names joined by `+` build a `Chain`, and each parameter is then prefixed by its smoother's name:
    `create_smoother("motion+hysteresis", **{"motion.tau": 20.0, "hysteresis.threshold": 0.7})`.

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or a parameter the smoother does not take.
    """
    if "+" in name:
        names = name.split("+")
        unknown = [k for k in params if k.split(".", 1)[0] not in names or "." not in k]
        if unknown:
            raise ValueError(f"smoother {name!r}: parameters must be prefixed by one of {names}, got {unknown}")
        return Chain(
            *(
                create_smoother(n, **{k.split(".", 1)[1]: v for k, v in params.items() if k.split(".", 1)[0] == n})
                for n in names
            )
        )
    if name not in SMOOTHERS:
        raise ValueError(f"unknown smoother {name!r}; choose from: {', '.join(SMOOTHERS)}")
    try:
        return SMOOTHERS[name](**params)
    except TypeError as e:
        raise ValueError(f"smoother {name!r}: {e}") from None


def smoother_for(name: str = DEFAULT_SMOOTHER[0], momentum: float | None = None, threshold: float = 0.5):
    """The smoother of the video pipeline: `name` with its chosen parameters (`DEFAULT_SMOOTHER` for
    "confidence", `OLD_SMOOTHER` for "ema"), `momentum` (the past's weight) replacing theirs when given; a momentum
    of 0 or "frame_by_frame" turns smoothing off. `threshold` is the model's, used only by `hysteresis`."""
    if momentum == 0 or name == "frame_by_frame":
        return FrameByFrame()
    params = {DEFAULT_SMOOTHER[0]: DEFAULT_SMOOTHER[1], OLD_SMOOTHER[0]: OLD_SMOOTHER[1]}.get(name, {})
    params = dict(params) if momentum is None else {**params, "momentum": momentum}
    return create_smoother(name, **with_threshold(name, params, threshold))


def with_threshold(name: str, params: dict, threshold: float) -> dict:
    """`params` plus the mask threshold for a `hysteresis` smoother (alone or in a chain) that does not set one."""
    if name == "hysteresis":
        return {"threshold": threshold, **params}
    if "hysteresis" in name.split("+"):
        return {"hysteresis.threshold": threshold, **params}
    return params


def smooth_sequence(
    probs: Sequence[np.ndarray], frames: Sequence[np.ndarray] | None, smoother, post=None
) -> list[np.ndarray]:
    """Runs a fresh `smoother` (reset first) over a sequence of probabilities; `post(prob, i)` is applied after it
    (e.g. only the main person). Frames may be None for smoothers that do not use them."""
    smoother.reset()
    out = []
    for i, prob in enumerate(probs):
        p = smoother(prob, None if frames is None else frames[i])
        out.append(p if post is None else post(p, i))
    return out
