"""Frames from your own code, one at a time: `VideoSegmenter` keeps the temporal state between them.

    from asbunet import Segmenter, VideoSegmenter

    video = VideoSegmenter(Segmenter.from_pretrained(), background="blur")
    for frame in frames:                      # (H, W, 3) uint8 RGB, e.g. from a capture loop or a WebRTC track
        result = video.process(frame)
        show(result.effect)                   # or result.mask, result.probability, result.render("cutout")

`asbunet segment` runs its videos and cameras through the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from asbunet.inference.postprocess import binarize
from asbunet.inference.preprocess import to_rgb
from asbunet.inference.segmenter import Segmenter
from asbunet.segment import effects
from asbunet.segment.options import SegmentOptions, resolve_options
from asbunet.segment.render import postprocess, render


class TemporalSmoother:
    """Exponential moving average of probability maps: `s_t = m * s_{t-1} + (1 - m) * p_t`, `s_0 = p_0`.

    Args:
        momentum: weight `m` of the past in [0, 1); 0 turns smoothing off. A still frame's response to a change
            reaches `1 - m**k` of its size after `k` frames (m = 0.6: 64% after 2 frames, 92% after 5).
    """

    def __init__(self, momentum: float):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"smoothing momentum must be in [0, 1) (0 = off), got {momentum}")
        self.momentum = float(momentum)
        self.state: np.ndarray | None = None

    def reset(self) -> None:
        self.state = None

    def __call__(self, prob: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        if self.momentum == 0.0 or self.state is None or self.state.shape != prob.shape:
            self.state = prob.astype(np.float32, copy=True)
        else:
            self.state *= np.float32(self.momentum)
            self.state += np.float32(1.0 - self.momentum) * prob
        return self.state.copy()


@dataclass(frozen=True)
class FrameResult:
    """One processed frame: the frame `image` (H, W, 3) RGB and its person `probability` (H, W) float32, after
    smoothing and refinement; the outputs are rendered when asked for."""

    image: np.ndarray
    probability: np.ndarray
    options: SegmentOptions

    @cached_property
    def mask(self) -> np.ndarray:
        """Person mask (H, W) bool: probability at or above the threshold."""
        return binarize(self.probability, self.options.threshold)

    @cached_property
    def effect(self) -> np.ndarray:
        """The frame with the background effect applied, (H, W, 3) uint8 RGB."""
        return render("effect", self.image, self.probability, self.options)

    def render(self, kind: str) -> np.ndarray:
        """One output kind (`asbunet.segment.options.OUTPUTS`) as a uint8 array."""
        return self.effect if kind == "effect" else render(kind, self.image, self.probability, self.options)


class VideoSegmenter:
    """Segments the frames of one stream in order, holding what the next frame needs from the previous ones.

    Args:
        segmenter: the model (default: the bundled one, `Segmenter.from_pretrained()`).
        options: post-processing and effect (`SegmentOptions`: `smooth`, `main_person`, `refine`, `threshold`,
            `effect`); the keyword arguments below override its fields.
        background: `"blur"`, a colour (`"#00ff00"`, `"green"`) or an image path (`asbunet.segment.effects`).
        **overrides: fields of `SegmentOptions` (e.g. `smooth=0`, `main_person=True`).
    """

    def __init__(
        self,
        segmenter: Segmenter | None = None,
        options: SegmentOptions | None = None,
        background: str | effects.Effect | None = None,
        **overrides,
    ):
        self.segmenter = segmenter if segmenter is not None else Segmenter.from_pretrained()
        options = options or SegmentOptions()
        if background is not None:
            overrides["effect"] = effects.parse_background(background) if isinstance(background, str) else background
        self.options = resolve_options(replace(options, **overrides), self.segmenter)
        self.smoother = TemporalSmoother(self.options.smooth)
        self.frames = 0

    def process(self, frame: np.ndarray) -> FrameResult:
        """Segments the next frame of the stream: (H, W, 3) uint8 RGB (grey and RGBA are converted)."""
        rgb = to_rgb(frame)
        if self.smoother.state is not None and self.smoother.state.shape != rgb.shape[:2]:
            self.reset()  # a new frame size starts a new stream
        probability = postprocess(self.segmenter, rgb, self.options, self.smoother)
        self.frames += 1
        return FrameResult(rgb, probability, self.options)

    def reset(self) -> None:
        """Forgets the previous frames (a cut, a new stream)."""
        self.smoother.reset()
