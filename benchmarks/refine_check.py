"""Person IoU of a model with its own refinement against bilinear resizing, and the choice of a refinement.

The network runs once per image; its logits are resized back to the image's size by each setting
(`Segmenter.probability`): bilinearly, with the refinement the model carries (`asbunet.inference.refine`), and with
`--sweep` with colour guided filters of several radii, regularizations and subsample factors. Each setting is scored
by its mean IoU over the images at the model's threshold and at its own best threshold of
`asbunet.train.calibrate.THRESHOLDS` (masks at the labels' full resolution).

    # choosing: the held-out validation photos of the run that trained the model, never a test set
    python benchmarks/refine_check.py --model asbunet_person --validation --sweep
    # what a consumer that resizes bilinearly (the web page) loses, on a test set
    python benchmarks/refine_check.py --model asbunet_person_fast ../shared/data/pfcn_portrait/test

`--validation` rebuilds the split from the training config stored with a bundled model or `.safetensors` file
(`asbunet.export.bundled.run_split`): run it from the repository root with the data at hand.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asbunet import Segmenter
from asbunet.data.sources import open_source
from asbunet.export.bundled import run_split, safetensors_metadata
from asbunet.inference.postprocess import binarize
from asbunet.inference.refine import GuidedRefine
from asbunet.inference.weights import DEFAULT_MODEL, bundled_models, bundled_path
from asbunet.metrics import iou
from asbunet.train.calibrate import THRESHOLDS

RADII, EPSILONS, SUBSAMPLES = (2, 3, 4, 6), (1e-4, 3e-4, 1e-3), (2, 4)


def validation_samples(model: str) -> list[tuple]:
    """`(source, index)` of the held-out validation photos of the run that trained `model` (a bundled name or a
    `.safetensors` file written by `asbunet bundle`)."""
    path = bundled_path(model) if model in bundled_models() else Path(model)
    if path.suffix != ".safetensors":
        raise ValueError(f"{model}: --validation needs a bundled model or a .safetensors file that carries its config")
    return run_split(safetensors_metadata(path))[1]


def candidates(segmenter: Segmenter, sweep: bool) -> dict[str, GuidedRefine | None]:
    """The settings to score: bilinear, the model's own refinement, and with `sweep` the guided-filter grid."""
    found: dict[str, GuidedRefine | None] = {"bilinear": None}
    if segmenter.refine is not None:
        found[f"{segmenter.refine.to_text()} (the model's)"] = segmenter.refine
    if sweep:
        for s, r, e in itertools.product(SUBSAMPLES, RADII, EPSILONS):
            refine = GuidedRefine(r, e, s)
            if refine != segmenter.refine:
                found[refine.to_text()] = refine
    return found


def cost(refine: GuidedRefine | None) -> tuple[int, int, int]:
    """Orders settings by their cost per frame: bilinear first, then fewer pixels to fit on, then smaller windows."""
    return (0, 0, 0) if refine is None else (1, -refine.subsample, refine.radius)


def score(segmenter: Segmenter, samples: list[tuple], settings: dict) -> dict[str, np.ndarray]:
    """`{setting: (N, T) IoU per image and threshold of THRESHOLDS}`."""
    s = segmenter
    resizers = {
        name: Segmenter(s.runner, s.input_size, s.name, s.threshold, s.fixed_size, r) for name, r in settings.items()
    }
    out = {name: np.zeros((len(samples), len(THRESHOLDS))) for name in settings}
    for i, (source, index) in enumerate(tqdm(samples, unit="img", file=sys.stderr)):
        image, label = source.load(index)
        small = segmenter._network_image(image)
        logits = segmenter._run_network([small])[0, 0]  # (h, w), once for every setting
        target = label.astype(bool)
        for name, resizer in resizers.items():
            probability = resizer._probability(image, small, logits)
            out[name][i] = [iou(binarize(probability, t), target) for t in THRESHOLDS]
    return out


def report(segmenter: Segmenter, what: str, scores: dict, settings: dict, tolerance: float) -> list[str]:
    """The markdown table: per setting, mean IoU at the model's threshold and at its own best threshold."""
    model_t = THRESHOLDS.index(min(THRESHOLDS, key=lambda t: abs(t - segmenter.threshold)))
    rows = []
    for name, values in scores.items():
        means = values.mean(axis=0)  # (T,)
        best = int(np.argmax(means))
        rows.append((name, means[model_t], THRESHOLDS[best], means[best]))
    lines = [
        f"{segmenter.name} at input {segmenter.input_size}, {what}, {len(next(iter(scores.values())))} images; mean "
        f"IoU at the model's threshold {THRESHOLDS[model_t]:g} and at each setting's best threshold of "
        f"{THRESHOLDS[0]:g}-{THRESHOLDS[-1]:g}.",
        "",
        f"| resizing back | IoU at {THRESHOLDS[model_t]:g} | best threshold | IoU at best |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {at:.4f} | {t:g} | {best:.4f} |" for name, at, t, best in rows]
    top = max(rows, key=lambda r: r[3])
    near = [r for r in rows if r[3] >= top[3] - tolerance]
    cheapest = min(near, key=lambda r: cost(settings[r[0]]))
    lines += [
        "",
        f"Best: {top[0]} ({top[3]:.4f} at {top[2]:g}); the cheapest within {tolerance:g} of it: {cheapest[0]} "
        f"({cheapest[3]:.4f} at {cheapest[2]:g}).",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("datasets", nargs="*", help="labelled data sets (folders with images/ and masks/)")
    parser.add_argument("--model", default=None, help="bundled name, .safetensors, .pt or .onnx (default: bundled)")
    parser.add_argument("--runtime", choices=["onnx", "onnx-int8", "torch"], help="how a bundled model runs")
    parser.add_argument("--validation", action="store_true", help="score the model's own validation photos")
    parser.add_argument("--sweep", action="store_true", help="also score a grid of guided filters")
    parser.add_argument("--step", type=int, default=1, help="use every STEP-th image")
    parser.add_argument("--tolerance", type=float, default=0.001, help="the cheapest setting within this of the best")
    parser.add_argument("--output", help="also write the tables to this markdown file")
    args = parser.parse_args()
    if args.validation == bool(args.datasets):
        parser.error("give data sets or --validation, not both")
    segmenter = Segmenter.from_pretrained(args.model, threads=2, runtime=args.runtime)
    settings = candidates(segmenter, args.sweep)
    if args.validation:
        groups = {"the validation photos of its training run": validation_samples(args.model or DEFAULT_MODEL)}
    else:
        groups = {f"`{d}`": [(s, i) for s in [open_source(d)] for i in range(len(s))] for d in args.datasets}
    command = " ".join(["python", "benchmarks/refine_check.py", *sys.argv[1:]])
    lines = [f"`{command}`", ""]
    for what, samples in groups.items():
        samples = samples[:: args.step]
        lines += [*report(segmenter, what, score(segmenter, samples, settings), settings, args.tolerance), ""]
    text = "\n".join(lines)
    print(text)
    if args.output:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
