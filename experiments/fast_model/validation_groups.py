"""The fast model's validation split, group by group, at every mask threshold of the bundle's sweep.

    PYTHONPATH=src python experiments/fast_model/validation_groups.py WEIGHTS [WEIGHTS ...] [--refine TEXT]
        [--output FILE.md]

`asbunet bundle` chooses the threshold, and `asbunet train` its best checkpoint, by one mean over the run's whole
validation split: held-out photos of pfcn_portrait/train and ccp/train, validation people composited over held-out
person-free DAVIS frames, and those frames alone. This prints that mean split into its groups (pfcn_portrait,
ccp, composites, person-free frames), for each threshold, scored both ways: person IoU (`asbunet.metrics.iou`: all
or nothing on a person-free frame) and `selection_iou` (a person-free frame scores the share of pixels left
background), the latter averaged over images and kind by kind (`selection_score`, `TrainConfig.selection`).
Every checkpoint is run at input 320 in PyTorch with `--refine`, as the bundle runs it. No evaluation set is read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from asbunet.inference.postprocess import binarize
from asbunet.inference.refine import GuidedRefine
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import load_model
from asbunet.metrics import iou
from asbunet.train.calibrate import THRESHOLDS, best_threshold, selection_iou, selection_score, split_kinds
from asbunet.train.config import load_config
from asbunet.train.engine import load_data

sys.path.insert(0, str(Path(__file__).parent.parent))
from validation import emit, validation_kind  # noqa: E402

# the split of every fast-model chunk from the tenth on (same data and seed)
CONFIG = "experiments/fast_model/configs/person_fast_j.yaml"


def group_of(name: str, mask: np.ndarray) -> str:
    """`validation_kind`, with the photos split by data set."""
    kind = validation_kind(name, mask)
    if kind == "photos":
        return "pfcn_portrait" if "pfcn_portrait" in name else "ccp"
    return {"frames": "person-free frames", "scenes": "composites"}[kind]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("weights", nargs="+", help=".pt checkpoints or .safetensors bundles of the fast model")
    parser.add_argument("--refine", default="guided:radius=2,eps=0.0001,subsample=4", help="resizing back")
    parser.add_argument("--output", help="write the tables here (markdown)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    _, _, pool, indices = load_data(load_config(CONFIG))
    groups = [group_of(str(pool.names[i]), pool.masks[i]) for i in indices]
    kinds = split_kinds(pool, indices)
    names = sorted(set(groups), key=["pfcn_portrait", "ccp", "composites", "person-free frames"].index)
    lines = [
        f"Validation split of `{CONFIG}` ({len(indices)} images: "
        + ", ".join(f"{groups.count(g)} {g}" for g in names)
        + f"), input 320, `{args.refine}`: `PYTHONPATH=src python experiments/fast_model/validation_groups.py "
        + " ".join(args.weights)
        + f" --refine {args.refine}`. Mean per group at each threshold; the last three columns are the scores of the "
        "whole split that can choose checkpoints and thresholds: the mean over images of person IoU (all or nothing "
        "on a person-free frame) and of `selection_iou` (a person-free frame scores the share of pixels left "
        "background), and the mean over the three kinds (photos, composites, person-free frames) of each kind's "
        "mean `selection_iou` (`selection: kinds`).",
    ]
    for weights in args.weights:
        segmenter = Segmenter.from_loaded(load_model(weights, runtime="torch"), 320)
        segmenter.refine = GuidedRefine.from_text(args.refine)
        plain = np.zeros((len(indices), len(THRESHOLDS)))  # (N, T)
        selection = np.zeros_like(plain)
        for row, i in enumerate(tqdm(indices, desc=Path(weights).name, unit="img")):
            probability = segmenter.predict(pool.images[i], warn=False)
            pred = np.stack([binarize(probability, t) for t in THRESHOLDS])  # (T, H, W)
            target = np.broadcast_to(pool.masks[i].astype(bool), pred.shape)
            plain[row] = iou(pred, target, reduction="none")
            selection[row] = selection_iou(pred, target, reduction="none")
        member = np.array(groups)
        lines += [
            "",
            f"`{weights}`",
            "",
            "| threshold | " + " | ".join(names) + " | person-free frames, IoU | whole split, IoU | whole split, "
            "`selection_iou` | whole split, by kinds |",
            "|---:|" + "---:|" * (len(names) + 4),
        ]
        by_kinds = selection_score(selection, kinds)  # (T,)
        for j, t in enumerate(THRESHOLDS):
            cells = [selection[member == g, j].mean() for g in names]
            cells += [plain[member == "person-free frames", j].mean(), plain[:, j].mean(), selection[:, j].mean()]
            cells.append(by_kinds[j])
            lines.append(f"| {t:g} | " + " | ".join(f"{c:.4f}" for c in cells) + " |")
        by_iou, by_selection, by_kind = (
            dict(zip(THRESHOLDS, s.tolist(), strict=True)) for s in (plain.mean(0), selection.mean(0), by_kinds)
        )
        lines.append(
            f"\nBest threshold by IoU {best_threshold(by_iou):g} ({max(by_iou.values()):.4f}), by `selection_iou` "
            f"{best_threshold(by_selection):g} ({max(by_selection.values()):.4f}), by kinds "
            f"{best_threshold(by_kind):g} ({max(by_kind.values()):.4f})."
        )
    emit(lines, args.output)


if __name__ == "__main__":
    main()
