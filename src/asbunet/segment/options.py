"""What `asbunet segment` writes for each input and how it post-processes the probability over time: `SegmentOptions`,
the output kinds and their file names. The threshold and the refinement are the model's (`Segmenter`), not options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asbunet.data.io import VIDEO_SUFFIXES
from asbunet.segment import effects, temporal

OUTPUTS = ("mask", "prob", "overlay", "cutout", "effect")


IMAGE_DEFAULT = ("mask",)


VIDEO_DEFAULT = ("effect",)


@dataclass(frozen=True)
class SegmentOptions:
    """What to write and how to post-process.

    Args:
        save: outputs among `OUTPUTS`; `None` writes `mask` for images (plus `effect` when an effect is given)
            and `effect` for videos.
        effect: the background effect of the `effect` output (`asbunet.segment.effects.parse_background`); `None` means
            `BlurBackground()`.
        smoother: video only: how the probability is smoothed over time (`asbunet.segment.temporal.SMOOTHERS`);
            the default "confidence" averages where the probability barely changes and lets large changes through.
        smooth: video only: the smoother's weight of the past frames in [0, 1); None = its chosen value
            (`temporal.DEFAULT_SMOOTHER` for "confidence", `temporal.OLD_SMOOTHER` for "ema"), 0 = off.
        max_frames: video only: stop after this many frames (`None` = all; a camera runs until interrupted).
        main_person: keep only the main person (`asbunet.segment.regions`): the largest connected person region,
            favouring the centre; everyone else is treated as background.
    """

    save: tuple[str, ...] | None = None
    effect: effects.Effect | None = None
    smoother: str = temporal.DEFAULT_SMOOTHER[0]
    smooth: float | None = None
    max_frames: int | None = None
    main_person: bool = False

    def __post_init__(self):
        if self.save is not None:
            unknown = [s for s in self.save if s not in OUTPUTS]
            if unknown or not self.save:
                raise ValueError(f"unknown output {', '.join(unknown) or '(empty)'}; choose from: {', '.join(OUTPUTS)}")
        if self.smooth is not None and not 0.0 <= self.smooth < 1.0:
            raise ValueError(f"smooth must be in [0, 1) (0 = off), got {self.smooth}")
        unknown = [n for n in self.smoother.split("+") if n not in temporal.SMOOTHERS]
        if unknown:
            raise ValueError(f"unknown smoother {self.smoother!r}; choose from: {', '.join(temporal.SMOOTHERS)}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")

    @property
    def background(self) -> effects.Effect:
        """The effect of the `effect` output."""
        return effects.BlurBackground() if self.effect is None else self.effect

    def outputs_for(self, is_video: bool) -> tuple[str, ...]:
        """Output kinds written for an image or a video."""
        if self.save is not None:
            return self.save
        if is_video:
            return VIDEO_DEFAULT
        return IMAGE_DEFAULT if self.effect is None else (*IMAGE_DEFAULT, "effect")


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
