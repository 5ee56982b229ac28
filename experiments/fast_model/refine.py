"""Choosing the edge-aware resizing of the fast model (`asbunet.inference.refine.GuidedRefine`) on validation photos.

    PYTHONPATH=src python experiments/fast_model/refine.py WEIGHTS [--input-size N] [--subsample S ...] [--tolerance T]
        [--output FILE.md]

The fast model sees a 640x360 frame at 176x320 and a 3:4 portrait at 320x240; its probability is resized back to the
image's own size. This scores, on the held-out photos of `experiments/fast_model/configs/person_fast_f.yaml`
(pfcn_portrait/train and ccp/train, the split `asbunet train` holds out) read at their full size, the bilinear resizing
against colour guided filters of several radii and regularizations, each at several thresholds, and prints the setting
with the best mean IoU over the photos. No evaluation set is read. The network runs once per photo (PyTorch,
`--input-size`, 320 by default).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from asbunet.data.sources import open_source
from asbunet.inference.postprocess import binarize
from asbunet.inference.preprocess import normalize
from asbunet.inference.refine import GuidedRefine
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import load_model
from asbunet.metrics import iou
from asbunet.train.config import load_config
from asbunet.train.engine import load_data

sys.path.insert(0, str(Path(__file__).parent.parent))
from validation import emit  # noqa: E402

CONFIG = "experiments/fast_model/configs/person_fast_f.yaml"
THRESHOLDS = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65)
RADII, EPSILONS = (2, 3, 4, 6), (1e-4, 3e-4, 1e-3, 3e-3)


def held_out_photos(config: str) -> list[tuple[str, object, int]]:
    """`(set name, source, index)` of the photos `asbunet train` holds out for validation under `config`
    (`asbunet.train.engine.load_data`), to be read again at their full size."""
    cfg = load_config(config)
    _, _, pool, indices = load_data(cfg)
    where = {
        str(sample.image): (Path(spec).parent.name, source, i)
        for spec in cfg.data.train
        for source in [open_source(spec)]
        for i, sample in enumerate(source.samples)
    }
    return [where[str(pool.names[i])] for i in indices if str(pool.names[i]) in where]


def cost(refine: GuidedRefine | None) -> tuple[int, int, int]:
    """Orders settings by their cost per frame: bilinear first, then fewer pixels to fit on, then smaller windows."""
    return (0, 0, 0) if refine is None else (1, -refine.subsample, refine.radius)


def describe(refine: GuidedRefine | None) -> str:
    return refine.to_text() if refine else "bilinear"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("weights", help="the fast model: a .safetensors file of `asbunet bundle` or a .pt checkpoint")
    parser.add_argument("--input-size", type=int, default=320, help="long side of the network input (default 320)")
    parser.add_argument(
        "--subsample", type=int, nargs="+", default=[2], help="the filters' subsample factors to try (default 2)"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="also name the cheapest setting (bilinear, then the largest subsample, then the smallest radius) whose "
        "mean IoU is within this of the best (default 0: the best only)",
    )
    parser.add_argument("--output", help="write the table here (markdown)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    segmenter = Segmenter.from_loaded(load_model(args.weights, runtime="torch"), args.input_size)
    settings = {"bilinear": None} | {
        f"guided r={r} eps={e:g} subsample={s}": GuidedRefine(r, e, s)
        for s, r, e in itertools.product(args.subsample, RADII, EPSILONS)
    }
    scores: dict[tuple[str, float], dict[str, list[float]]] = {}
    for name, source, i in tqdm(held_out_photos(CONFIG), desc="validation photos", unit="img"):
        image, label = source.load(i)
        small = segmenter._network_image(image)
        logits = segmenter.runner(normalize(small)[None])[0, 0]  # (h, w)
        for setting, refine in settings.items():
            segmenter.refine = refine
            probability = segmenter._probability(image, small, logits)
            for t in THRESHOLDS:
                per_set = scores.setdefault((setting, t), {})
                per_set.setdefault(name, []).append(iou(binarize(probability, t), label.astype(bool)))
    rows = {key: {k: float(np.mean(v)) for k, v in per_set.items()} for key, per_set in scores.items()}
    for key, per_set in scores.items():
        rows[key]["all photos"] = float(np.mean([x for v in per_set.values() for x in v]))
    best = {s: max((t for (name, t) in rows if name == s), key=lambda t: rows[s, t]["all photos"]) for s in settings}
    columns = list(next(iter(rows.values())))
    chosen = max(settings, key=lambda s: rows[s, best[s]]["all photos"])
    count = sum(len(v) for v in next(iter(scores.values())).values())
    lines = [
        f"Held-out photos of `{CONFIG}` ({count}), full size, `{args.weights}` at input {args.input_size}, PyTorch: "
        f"`PYTHONPATH=src python experiments/fast_model/refine.py {args.weights} --input-size {args.input_size} "
        f"--subsample {' '.join(map(str, args.subsample))}"
        + (f" --tolerance {args.tolerance:g}`. " if args.tolerance > 0 else "`. ")
        + "Mean IoU at each setting's best "
        f"threshold of {', '.join(map(str, THRESHOLDS))}; guided filters fitted at 1/subsample of the network size.",
        "",
        "| resizing back | threshold | " + " | ".join(columns) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    for s in settings:
        lines.append(f"| {s} | {best[s]:g} | " + " | ".join(f"{rows[s, best[s]][c]:.4f}" for c in columns) + " |")
    lines += ["", f"Best: {chosen} (`{describe(settings[chosen])}`)."]
    if args.tolerance > 0:
        floor = rows[chosen, best[chosen]]["all photos"] - args.tolerance
        near = [s for s in settings if rows[s, best[s]]["all photos"] >= floor]
        cheapest = min(near, key=lambda s: cost(settings[s]))
        lines.append(f"Cheapest within {args.tolerance:g} of the best: {cheapest} (`{describe(settings[cheapest])}`).")
    emit(lines, args.output)


if __name__ == "__main__":
    main()
