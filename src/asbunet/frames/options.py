"""How frames are post-processed and composited: `FrameOptions`, the settings of `VideoSegmenter` and of every frame
`asbunet segment` writes. The threshold and the refinement are the model's (`Segmenter`), not options."""

from __future__ import annotations

from dataclasses import dataclass

from asbunet.frames import effects, temporal


@dataclass(frozen=True)
class FrameOptions:
    """Post-processing over time and the background effect.

    Args:
        effect: the background effect of the `effect` output (`asbunet.frames.effects.parse_background`); `None` means
            `BlurBackground()`.
        smoother: how the probability is smoothed over time (`asbunet.frames.temporal.SMOOTHERS`); the default
            "confidence" averages where the probability barely changes and lets large changes through.
        smooth: the smoother's weight of the past frames in [0, 1); None = its chosen value
            (`temporal.DEFAULT_SMOOTHER` for "confidence", `temporal.OLD_SMOOTHER` for "ema"), 0 = off.
        main_person: keep only the main person (`asbunet.frames.regions`): the largest connected person region,
            favouring the centre; everyone else is treated as background.
    """

    effect: effects.Effect | None = None
    smoother: str = temporal.DEFAULT_SMOOTHER[0]
    smooth: float | None = None
    main_person: bool = False

    def __post_init__(self):
        if self.smooth is not None and not 0.0 <= self.smooth < 1.0:
            raise ValueError(f"smooth must be in [0, 1) (0 = off), got {self.smooth}")
        unknown = [n for n in self.smoother.split("+") if n not in temporal.SMOOTHERS]
        if unknown:
            raise ValueError(f"unknown smoother {self.smoother!r}; choose from: {', '.join(temporal.SMOOTHERS)}")

    @property
    def background(self) -> effects.Effect:
        """The effect of the `effect` output."""
        return effects.BlurBackground() if self.effect is None else self.effect
