"""A greedy soup of fast-model checkpoints of one trajectory, chosen on the validation split only.

    PYTHONPATH=src python experiments/fast_model/soup.py CKPT [CKPT ...] [--refine TEXT] [--output SOUP.pt]
        [--report FILE.md]

Checkpoints fine-tuned one after the other from the same weights can be averaged (model soups, Wortsman et al.
2022). The greedy recipe of that paper: order the checkpoints by their own validation score, start from the best, and
keep each next one in the average only if the average scores higher with it. The score is the one `asbunet bundle`
chooses the threshold by: `selection_iou` over the run's whole validation split (photos, composites, person-free
frames) at the best threshold, input 320, probability resized back with `--refine`. The soup is written as an
`asbunet train` checkpoint (the first checkpoint's config and metadata, the averaged weights), for `asbunet bundle`.
No evaluation set is read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from asbunet.atomic import replacing
from asbunet.inference.refine import GuidedRefine
from asbunet.inference.runners import TorchRunner
from asbunet.inference.weights import model_from_checkpoint
from asbunet.train.calibrate import best_threshold, size_threshold_sweep
from asbunet.train.config import TrainConfig
from asbunet.train.engine import load_data

sys.path.insert(0, str(Path(__file__).parent.parent))
from validation import emit  # noqa: E402


def average(states: list[dict]) -> dict:
    """The element-wise mean of state dicts of one architecture (integer buffers: the first one's)."""
    return {
        k: torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v
        for k, v in states[0].items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoints", nargs="+", help=".pt checkpoints of `asbunet train`, one architecture")
    parser.add_argument("--refine", default="guided:radius=2,eps=0.0001,subsample=4", help="resizing back")
    parser.add_argument("--output", help="write the soup here as a .pt checkpoint")
    parser.add_argument("--report", help="write the table here (markdown)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    ckpts = {path: torch.load(path, map_location="cpu", weights_only=True) for path in args.checkpoints}
    first = next(iter(ckpts.values()))
    _, _, pool, indices = load_data(TrainConfig(**first["config"]))
    images, masks = [pool.images[i] for i in indices], [pool.masks[i] for i in indices]
    refine = GuidedRefine.from_text(args.refine)

    def score(state: dict) -> tuple[float, float]:
        model = model_from_checkpoint({**first, "state_dict": state})
        sweep = size_threshold_sweep(TorchRunner(model), [320], images, masks, refine=refine, progress=tqdm)[320]
        best = best_threshold(sweep)
        return sweep[best], best

    own = {path: score(c["state_dict"]) for path, c in ckpts.items()}
    order = sorted(own, key=lambda p: -own[p][0])
    kept, best = [order[0]], own[order[0]]
    lines = [
        f"Greedy soup on the validation split of `{first['config']['output']}`'s config ({len(indices)} images), "
        f"input 320, `{args.refine}`: `PYTHONPATH=src python experiments/fast_model/soup.py "
        + " ".join(args.checkpoints)
        + "`. Score: `selection_iou` over the whole split at the best threshold.",
        "",
        "| candidate | score | threshold | kept |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| {p} alone | {own[p][0]:.4f} | {own[p][1]:g} | |" for p in order]
    for path in order[1:]:
        trial = score(average([ckpts[p]["state_dict"] for p in [*kept, path]]))
        keep = trial[0] > best[0]
        lines.append(f"| average of {', '.join([*kept, path])} | {trial[0]:.4f} | {trial[1]:g} | {keep} |")
        if keep:
            kept, best = [*kept, path], trial
    lines += ["", f"Soup: {', '.join(kept)} ({best[0]:.4f} at threshold {best[1]:g})."]
    emit(lines, args.report)
    if args.output:
        soup = {**first, "state_dict": average([ckpts[p]["state_dict"] for p in kept]), "optimizer": {}}
        soup["scheduler"], soup["soup"] = {}, list(kept)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        with replacing(Path(args.output)) as tmp:
            torch.save(soup, tmp)


if __name__ == "__main__":
    main()
