"""Weight interpolation between the shipped model and the scene-trained stages, chosen on validation data only.

    PYTHONPATH=src python experiments/soup/soup.py                 # validation table of every candidate
    PYTHONPATH=src python experiments/soup/soup.py --write NAME    # write candidate NAME as a bundled safetensors file

Stages 4, 4b and 4c (`experiments/person_scenes/configs/person_scenes{,_b,_c}.yaml`) start from the shipped weights and
are better on scenes unlike the photo sets but worse on the portraits (`experiments/person_scenes/README.md`). All of
them share one trajectory from the shipped weights, so their weights can be averaged (model soups, Wortsman et al. 2022)
or interpolated with the starting point (WiSE-FT, Wortsman et al. 2022: theta = (1 - alpha) theta_shipped + alpha
theta_scenes), which trades in-distribution accuracy against robustness without training.

Every candidate is scored on the validation data of the scene stages
(`experiments/person_scenes/configs/person_scenes_c.yaml`, as `asbunet.train.engine.load_data` builds it; no stage
trained on it): the held-out photos of pfcn_portrait/train and ccp/train (IoU, mean over images), people of those photos
composited over the held-out person-free DAVIS frames (IoU), and those frames alone (share of pixels called person).
Input size 384, threshold 0.5 for all, as training validation scores. The rule, fixed before the table: keep the
candidates whose photo IoU is at least the shipped model's minus 0.002 (the portraits must not fall); among them take
the best scene IoU. Writes `validation.md`, `validation.csv`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from asbunet.inference.postprocess import binarize
from asbunet.inference.runners import TorchRunner
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import bundled_path
from asbunet.metrics import iou
from asbunet.models import create_model

sys.path.insert(0, str(Path(__file__).parent.parent))
from validation import validation_parts  # noqa: E402

HERE = Path(__file__).parent
STAGES = {
    "shipped": bundled_path("asbunet_person"),
    "4": Path("out/weights/asbunet_person_scenes.safetensors"),
    "4b": Path("out/weights/asbunet_person_scenes_b.safetensors"),
    "4c": Path("out/weights/asbunet_person_scenes_c.safetensors"),
}  # the stages' weights are in git history: experiments/person_scenes/README.md says how to restore them here
INPUT_SIZE, THRESHOLD, PHOTO_SLACK = 384, 0.5, 0.002


def candidates() -> dict[str, dict[str, float]]:
    """Name -> {stage: weight}; weights sum to 1."""
    out: dict[str, dict[str, float]] = {name: {name: 1.0} for name in STAGES}
    for stage in ("4b", "4c"):
        for alpha in (0.3, 0.5, 0.7):
            out[f"shipped+{stage} a={alpha}"] = {"shipped": 1 - alpha, stage: alpha}
    out["soup 4,4b,4c"] = {"4": 1 / 3, "4b": 1 / 3, "4c": 1 / 3}
    out["soup shipped,4b,4c"] = {"shipped": 1 / 3, "4b": 1 / 3, "4c": 1 / 3}
    out["soup all"] = {name: 1 / 4 for name in STAGES}
    return out


def mix(states: dict[str, dict[str, torch.Tensor]], weights: dict[str, float]) -> dict[str, torch.Tensor]:
    """Weighted average of the state dicts (BatchNorm statistics too; integer counters from the first)."""
    first = states[next(iter(weights))]
    out = {}
    for key, tensor in first.items():
        if tensor.is_floating_point():
            out[key] = sum(w * states[name][key].float() for name, w in weights.items()).to(tensor.dtype)
        else:
            out[key] = tensor.clone()
    return out


def score(state: dict[str, torch.Tensor], parts) -> dict[str, float]:
    model = create_model("asbunet")
    model.load_state_dict(state)
    segmenter = Segmenter(TorchRunner(model.eval()), INPUT_SIZE)
    photos, scenes, frames = parts

    def mean_iou(items):
        return float(np.mean([iou(binarize(segmenter.predict(im), THRESHOLD)[None], m[None]) for im, m in items]))

    share = float(np.mean([binarize(segmenter.predict(im), THRESHOLD).mean() for im, _ in frames]))
    return {"photos_iou": mean_iou(photos), "scenes_iou": mean_iou(scenes), "frames_person_share": share}


def choose(rows: list[dict]) -> str:
    shipped = next(r for r in rows if r["candidate"] == "shipped")
    kept = [r for r in rows if r["photos_iou"] >= shipped["photos_iou"] - PHOTO_SLACK]
    return max(kept, key=lambda r: r["scenes_iou"])["candidate"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", metavar="NAME", help="write this candidate's weights as a bundled model")
    parser.add_argument("--output", default="out/soup/asbunet_person_soup.safetensors")
    args = parser.parse_args()
    states = {name: load_file(str(path)) for name, path in STAGES.items()}
    if args.write:
        weights = candidates()[args.write]
        with safe_open(str(STAGES["shipped"]), "pt") as f:
            meta = dict(f.metadata())
        meta["soup"] = json.dumps(weights)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in mix(states, weights).items()}, args.output, metadata=meta)
        print(f"wrote {args.output}")
        return
    torch.set_num_threads(1)
    parts = validation_parts("experiments/person_scenes/configs/person_scenes_c.yaml")
    print(f"validation: {len(parts[0])} photos, {len(parts[1])} scenes, {len(parts[2])} person-free frames")
    rows = []
    for name, weights in candidates().items():
        rows.append({"candidate": name, **score(mix(states, weights), parts)})
        print(json.dumps(rows[-1]), flush=True)
    chosen = choose(rows)
    with open(HERE / "validation.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"Validation of the scene stages ({len(parts[0])} held-out photos, {len(parts[1])} composited scenes, "
        f"{len(parts[2])} person-free frames), input {INPUT_SIZE}, threshold {THRESHOLD}: "
        "`PYTHONPATH=src python experiments/soup/soup.py`.",
        "",
        "| candidate | photos IoU | scenes IoU | person-free share |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        mark = " (chosen)" if r["candidate"] == chosen else ""
        scores = f"{r['photos_iou']:.4f} | {r['scenes_iou']:.4f} | {r['frames_person_share']:.4f}"
        lines.append(f"| {r['candidate']}{mark} | {scores} |")
    (HERE / "validation.md").write_text("\n".join(lines) + "\n")
    print(f"chosen: {chosen}")


if __name__ == "__main__":
    main()
