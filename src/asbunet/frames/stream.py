"""Frames from your own code, one at a time: `VideoSegmenter` keeps the temporal state between them.

    from asbunet import Segmenter, VideoSegmenter

    video = VideoSegmenter(Segmenter.from_pretrained(), background="blur")
    for frame in frames:                      # (H, W, 3) uint8 RGB, e.g. from a capture loop or a WebRTC track
        result = video.process(frame)
        show(result.effect)                   # or result.mask, result.alpha, result.render("cutout")

`asbunet segment` runs its videos and cameras through the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from asbunet.frames import effects, matte, temporal
from asbunet.frames.options import FrameOptions
from asbunet.frames.render import postprocess, render
from asbunet.inference.postprocess import binarize
from asbunet.inference.preprocess import to_rgb
from asbunet.inference.segmenter import Segmenter


@dataclass(frozen=True)
class FrameResult:
    """One processed frame: the frame `image` (H, W, 3) RGB and its person `probability` (H, W) float32 (the model's,
    smoothed over time), with the `threshold` of its mask; the outputs are rendered when asked for."""

    image: np.ndarray
    probability: np.ndarray
    options: FrameOptions
    threshold: float

    @cached_property
    def mask(self) -> np.ndarray:
        """Person mask (H, W) bool: probability at or above the threshold."""
        return binarize(self.probability, self.threshold)

    @cached_property
    def alpha(self) -> np.ndarray:
        """The compositing alpha (H, W) float32: 1 inside the person, 0 outside, soft only at the edge
        (`asbunet.frames.matte`)."""
        return matte.matte(self.probability, self.threshold)

    @cached_property
    def effect(self) -> np.ndarray:
        """The frame with the background effect applied, (H, W, 3) uint8 RGB."""
        return render("effect", self.image, self.probability, self.options, self.threshold, self.alpha)

    def render(self, kind: str) -> np.ndarray:
        """One output kind (`asbunet.frames.render.OUTPUTS`) as a uint8 array."""
        if kind == "effect":
            return self.effect
        alpha = self.alpha if kind == "cutout" else None
        return render(kind, self.image, self.probability, self.options, self.threshold, alpha)


class VideoSegmenter:
    """Segments the frames of one stream in order, holding what the next frame needs from the previous ones.

    Args:
        segmenter: the model (default: the bundled one, `Segmenter.from_pretrained()`).
        options: post-processing and effect (`FrameOptions`: `smoother`, `smooth`, `main_person`, `effect`); the
            keyword arguments below override its fields.
        background: `"blur"`, a colour (`"#00ff00"`, `"green"`) or an image path (`asbunet.frames.effects`).
        threshold: the mask threshold of the frames, in (0, 1); None: the segmenter's (the model's own).
        refine: False resizes the probability back bilinearly even where the model carries a refinement.
        **overrides: fields of `FrameOptions` (e.g. `smooth=0`, `main_person=True`).
    """

    def __init__(
        self,
        segmenter: Segmenter | None = None,
        options: FrameOptions | None = None,
        background: str | effects.Effect | None = None,
        threshold: float | None = None,
        refine: bool = True,
        **overrides,
    ):
        segmenter = segmenter if segmenter is not None else Segmenter.from_pretrained()
        self.segmenter = segmenter.with_settings(threshold, refine)  # the frames' threshold, resolved once
        options = options or FrameOptions()
        if not isinstance(options, FrameOptions):
            raise TypeError(
                f"options must be FrameOptions (of SegmentOptions: its .frame), got {type(options).__name__}"
            )
        if background is not None:
            overrides["effect"] = effects.parse_background(background) if isinstance(background, str) else background
        self.options = replace(options, **overrides)
        self.smoother = temporal.smoother_for(self.options.smoother, self.options.smooth, self.threshold)
        self.shape: tuple[int, int] | None = None

    def process(self, frame: np.ndarray) -> FrameResult:
        """Segments the next frame of the stream: (H, W, 3) uint8 RGB (grey and RGBA are converted)."""
        rgb = to_rgb(frame)
        if self.shape is not None and self.shape != rgb.shape[:2]:
            self.reset()  # a new frame size starts a new stream
        self.shape = rgb.shape[:2]
        probability = postprocess(self.segmenter, rgb, self.options, self.smoother)
        return FrameResult(rgb, probability, self.options, self.threshold)

    @property
    def threshold(self) -> float:
        """The mask threshold of the frames (the segmenter's, or the one given)."""
        return self.segmenter.threshold

    def reset(self) -> None:
        """Forgets the previous frames (a cut, a new stream)."""
        self.smoother.reset()
