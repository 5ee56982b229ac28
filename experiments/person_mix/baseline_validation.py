"""The shipped models and MediaPipe on the long run's validation data, scored by kind as the run scores itself every
epoch (`asbunet.train.mixture.score_kinds`), each model as it ships (its own input size, threshold and refinement):
the line the run's curves have to cross before a checkpoint is worth evaluating. A run's `.pt` checkpoint runs at
its `val_size` and threshold 0.5, as its curves do. Nothing here is an evaluation set.

    python experiments/person_mix/baseline_validation.py configs/person_mix.yaml \
        --output experiments/person_mix/baseline_validation.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asbunet.inference.postprocess import binarize
from asbunet.inference.segmenter import Segmenter
from asbunet.train.config import load_config
from asbunet.train.mixture import mixture_validation, score_kinds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from validation import emit  # noqa: E402  (experiments/validation.py)

MODELS = ("asbunet_person", "asbunet_person_fast", "mediapipe_general", "mediapipe_landscape")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the run's config (its mixture and val_size)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="model specs (default: %(default)s)")
    parser.add_argument("--output", help="also write the table here")
    args = parser.parse_args()
    cfg = load_config(args.config)
    pool, kinds = mixture_validation(cfg)
    counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
    lines = [
        f"Validation of `{args.config}` by kind ({', '.join(f'{k} {n}' for k, n in counts.items())} samples), "
        "each model at its own input size, threshold and refinement; person-free: 1 - share called person.",
        "",
        "| model | " + " | ".join(counts) + " | mean of kinds | pooled IoU |",
        "|---|" + "---:|" * (len(counts) + 2),
    ]
    for spec in args.models:
        checkpoint = spec.endswith(".pt")
        segmenter = Segmenter.from_pretrained(spec, input_size=cfg.val_size if checkpoint else None)
        threshold = 0.5 if checkpoint else segmenter.threshold
        preds = [binarize(segmenter.predict(image, warn=False), threshold) for image in pool.images]  # (H, W) each
        scores, pooled = score_kinds(preds, pool.masks, kinds)
        mean = sum(scores.values()) / len(scores)
        cells = " | ".join(f"{scores[k]:.3f}" for k in counts)
        lines.append(f"| `{spec}` ({segmenter.name}, threshold {threshold:g}) | {cells} | {mean:.3f} | {pooled:.3f} |")
    emit(lines, args.output)


if __name__ == "__main__":
    main()
