"""Validation scores of fast-model weights, and of averages of them (model soups), split into the three kinds of
validation data: which chunk's weights to keep, chosen without any evaluation set.

    PYTHONPATH=src python experiments/fast_model/checkpoints.py SPEC [SPEC ...] [--output FILE.md]

A SPEC is a bundled `.safetensors` file or `.pt` checkpoint of `asbunet_035`, or several joined by `+` (their weights
averaged, BatchNorm statistics too, as `experiments/soup/soup.py` does; all chunks share one trajectory, each starting
from the previous chunk's weights). Every SPEC runs on PyTorch at input size 320 (176x320 for a 16:9 frame, the size the
fast model runs at) on the validation data of `experiments/fast_model/configs/person_fast_e.yaml`
(`experiments/validation.py`: the held-out photos of pfcn_portrait/train and ccp/train, validation people composited
over held-out person-free DAVIS frames, and those frames). IoU is the mean over images at thresholds 0.5 and 0.6 (the
chunks' calibrated threshold).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from asbunet.inference.postprocess import binarize
from asbunet.inference.runners import TorchRunner
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import load_model
from asbunet.metrics import iou
from asbunet.models import create_model

sys.path.insert(0, str(Path(__file__).parent.parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "soup"))
from soup import mix  # noqa: E402
from validation import emit, validation_parts  # noqa: E402

CONFIG = "experiments/fast_model/configs/person_fast_e.yaml"
ARCHITECTURE, INPUT_SIZE, THRESHOLDS = "asbunet_035", 320, (0.5, 0.6)


def weights_of(spec: str) -> dict[str, torch.Tensor]:
    """The state dict of one SPEC (an average for `a+b+...`)."""
    paths = spec.split("+")
    states = {}
    for path in paths:
        loaded = load_model(path, runtime="torch")
        if loaded.architecture != ARCHITECTURE:
            raise SystemExit(f"{path}: architecture {loaded.architecture}, expected {ARCHITECTURE}")
        states[path] = loaded.module.state_dict()
    return mix(states, {path: 1 / len(paths) for path in paths})


def score(spec: str, parts) -> dict[str, float]:
    model = create_model(ARCHITECTURE)
    model.load_state_dict(weights_of(spec))
    segmenter = Segmenter(TorchRunner(model.eval()), INPUT_SIZE)
    photos, scenes, frames = parts
    probs = {
        kind: [segmenter.predict(im, warn=False) for im, _ in items]
        for kind, items in zip(("photos", "scenes", "frames"), parts, strict=True)
    }
    out = {}
    for t in THRESHOLDS:
        for kind, items in (("photos", photos), ("scenes", scenes)):
            out[f"{kind} IoU @{t}"] = float(
                np.mean([iou(binarize(p, t)[None], m[None]) for p, (_, m) in zip(probs[kind], items, strict=True)])
            )
        out[f"person-free share @{t}"] = float(np.mean([binarize(p, t).mean() for p in probs["frames"]]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--output", help="write the table here (markdown)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    parts = validation_parts(CONFIG)
    rows = {}
    for spec in args.specs:
        rows[spec] = score(spec, parts)
        print(spec, {k: round(v, 4) for k, v in rows[spec].items()}, flush=True)
    columns = list(next(iter(rows.values())))
    lines = [
        f"Validation of `{CONFIG}` ({len(parts[0])} held-out photos, {len(parts[1])} composited scenes, "
        f"{len(parts[2])} person-free frames), input {INPUT_SIZE}, PyTorch: "
        f"`PYTHONPATH=src python experiments/fast_model/checkpoints.py {' '.join(args.specs)}`.",
        "",
        "| weights | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    lines += [f"| `{spec}` | " + " | ".join(f"{v:.4f}" for v in r.values()) + " |" for spec, r in rows.items()]
    emit(lines, args.output)


if __name__ == "__main__":
    main()
