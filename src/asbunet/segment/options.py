"""What `asbunet segment` writes for each input: `SegmentOptions` (the output kinds, how many frames, and the frames'
own `FrameOptions`) and the outputs' file names. The threshold and the refinement are the model's (`Segmenter`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from asbunet.data.io import VIDEO_SUFFIXES
from asbunet.frames import effects
from asbunet.frames.options import FrameOptions
from asbunet.frames.render import OUTPUTS

IMAGE_DEFAULT = ("mask",)


VIDEO_DEFAULT = ("effect",)


@dataclass(frozen=True)
class SegmentOptions:
    """What to write, and how its frames are post-processed.

    Args:
        save: outputs among `OUTPUTS`; `None` writes `mask` for images (plus `effect` when an effect is given)
            and `effect` for videos.
        max_frames: video only: stop after this many frames (`None` = all; a camera runs until interrupted).
        frame: smoothing over time, the main person and the background effect (`asbunet.frames.options`), as
            `VideoSegmenter` takes them.
    """

    save: tuple[str, ...] | None = None
    max_frames: int | None = None
    frame: FrameOptions = field(default_factory=FrameOptions)

    def __post_init__(self):
        if self.save is not None:
            unknown = [s for s in self.save if s not in OUTPUTS]
            if unknown or not self.save:
                raise ValueError(f"unknown output {', '.join(unknown) or '(empty)'}; choose from: {', '.join(OUTPUTS)}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")

    def outputs_for(self, is_video: bool) -> tuple[str, ...]:
        """Output kinds written for an image or a video."""
        if self.save is not None:
            return self.save
        if is_video:
            return VIDEO_DEFAULT
        return IMAGE_DEFAULT if self.frame.effect is None else (*IMAGE_DEFAULT, "effect")


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def video_outputs(options: SegmentOptions, source: str) -> tuple[str, ...]:
    """Output kinds of a video (all of `OUTPUTS`: a cut-out becomes a transparent `.webm`)."""
    del source  # every kind has a video form
    return options.outputs_for(True)


def output_names(kind: str, effect: effects.Effect, video: bool) -> str:
    """File name suffix of an output kind, e.g. `_overlay.jpg`, `.png`, `_blur.mp4`, `_cutout.webm`."""
    if video:
        if kind == "cutout":
            return "_cutout.webm"  # VP9 with an alpha channel
        tag = {"mask": "mask", "prob": "prob", "overlay": "overlay", "effect": effect.name}[kind]
        return f"_{tag}.mp4"
    return {
        "mask": ".png",
        "prob": "_prob.png",
        "overlay": "_overlay.jpg",
        "cutout": "_cutout.png",
        "effect": f"_{effect.name}.jpg",
    }[kind]
