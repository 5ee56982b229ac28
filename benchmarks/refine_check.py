"""Person IoU of the bundled model with and without the guided-filter refinement of `asbunet segment`.

Every third image of each test split, at the model's threshold, labels at full resolution:

    python benchmarks/refine_check.py ../shared/data/pfcn_portrait/test ../shared/data/ccp/test
"""

from __future__ import annotations

import argparse

import numpy as np

from asbunet import Segmenter
from asbunet.data.sources import open_source
from asbunet.segment.effects import default_radius, refine_probability


def iou(prob: np.ndarray, label: np.ndarray, threshold: float) -> float:
    pred = prob > threshold
    return float((pred & label).sum() / max((pred | label).sum(), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--model", default=None, help="bundled name, checkpoint or ONNX file (default: bundled)")
    parser.add_argument("--step", type=int, default=3, help="use every STEP-th image")
    args = parser.parse_args()
    segmenter = Segmenter.from_pretrained(args.model, threads=2)
    for dataset in args.datasets:
        source = open_source(dataset)
        plain, refined = [], []
        for i in range(0, len(source), args.step):
            image, label = source.load(i)
            prob = segmenter.predict(image)
            plain.append(iou(prob, label.astype(bool), segmenter.threshold))
            radius = default_radius(*prob.shape, segmenter.input_size)  # as `asbunet segment` chooses it
            refined.append(iou(refine_probability(image, prob, radius), label.astype(bool), segmenter.threshold))
        print(f"{dataset}: {len(plain)} images, IoU {np.mean(plain):.4f} plain, {np.mean(refined):.4f} refined")


if __name__ == "__main__":
    main()
