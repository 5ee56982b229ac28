"""The validation data of the scene-trained models, split into its three kinds, and the report writer, for the
experiment scripts."""

from __future__ import annotations

from pathlib import Path

from asbunet.train.config import load_config
from asbunet.train.engine import load_data


def validation_parts(config: str) -> tuple[list, list, list]:
    """(photos, scenes, frames) of the validation data `asbunet.train.engine.load_data` builds for `config`: lists of
    (RGB image, bool mask); held-out photos, validation people composited over held-out person-free frames, and those
    frames (all-zero masks)."""
    _, _, pool, idx = load_data(load_config(config))
    photos, scenes, frames = [], [], []
    for i in idx:
        item = (pool.images[i], pool.masks[i].astype(bool))
        if not item[1].any():
            frames.append(item)
        elif str(pool.names[i]).startswith("scene "):
            scenes.append(item)
        else:
            photos.append(item)
    return photos, scenes, frames


def emit(lines: list[str], output: str | None) -> None:
    """Prints a markdown report and writes it to `output` when one is given."""
    text = "\n".join(lines) + "\n"
    print(text)
    if output:
        Path(output).write_text(text)
