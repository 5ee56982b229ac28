"""The validation data of the scene-trained models, split into its three kinds, and the report writer, for the
experiment scripts."""

from __future__ import annotations

from pathlib import Path

from asbunet.train.calibrate import validation_kind
from asbunet.train.config import load_config
from asbunet.train.engine import load_data

__all__ = ["emit", "validation_kind", "validation_parts"]


def validation_parts(config: str) -> tuple[list, list, list]:
    """(photos, scenes, frames) of the validation data `asbunet.train.engine.load_data` builds for `config`: lists of
    (RGB image, bool mask); held-out photos, validation people composited over held-out person-free frames, and those
    frames (all-zero masks)."""
    _, _, pool, idx = load_data(load_config(config))
    parts: dict[str, list] = {"photos": [], "scenes": [], "frames": []}
    for i in idx:
        parts[validation_kind(str(pool.names[i]), pool.masks[i])].append((pool.images[i], pool.masks[i].astype(bool)))
    return parts["photos"], parts["scenes"], parts["frames"]


def emit(lines: list[str], output: str | None) -> None:
    """Prints a markdown report and writes it to `output` when one is given."""
    text = "\n".join(lines) + "\n"
    print(text)
    if output:
        Path(output).write_text(text)
