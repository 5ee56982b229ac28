"""Builds a labelled 16:9 test set of video-call-like frames from the test splits (no training image is used).

Each frame (360x640) is a crop of one test photo, with its own people kept in the label, onto which one or two
people cut out of other test photos are pasted at 30-90% of the frame height, anywhere across the frame: smaller,
off-centre and several people, as a landscape webcam sees them. The frames are written as a folder with `images/`
and `masks/`, ready for `asbunet evaluate`. Deterministic for a given seed.

    python benchmarks/make_landscape_set.py ../shared/data/pfcn_portrait/test ../shared/data/ccp/test \
        --output out/landscape_test --count 200
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from asbunet.data.augment import auto_crop, paste_person
from asbunet.data.dataset import SamplePool
from asbunet.data.sources import open_source

FRAME = (360, 640)  # (H, W), 16:9


def make_frames(pool: SamplePool, count: int, seed: int):
    """Yields `(image, mask)` landscape frames built from `pool`."""
    for k in range(count):
        rng = np.random.default_rng((seed, k))
        bg = int(rng.integers(len(pool)))
        image, mask = auto_crop(pool.images[bg], pool.masks[bg], FRAME, rng, (0.5, 1.0))
        for _ in range(int(rng.integers(1, 3))):
            fg = int(rng.integers(len(pool)))
            image, mask = paste_person(image, mask, pool.images[fg], pool.masks[fg], rng, (0.3, 0.9))
        yield image, mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("datasets", nargs="+", help="test splits (folders with images/ and masks/)")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pool = SamplePool([open_source(d) for d in args.datasets], max_side=800)
    (args.output / "images").mkdir(parents=True, exist_ok=True)
    (args.output / "masks").mkdir(parents=True, exist_ok=True)
    frames = make_frames(pool, args.count, args.seed)
    for k, (image, mask) in enumerate(tqdm(frames, total=args.count, desc="frames")):
        cv2.imwrite(str(args.output / "images" / f"{k:04d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
        cv2.imwrite(str(args.output / "masks" / f"{k:04d}.png"), mask * 255)
    print(f"wrote {args.count} frames to {args.output}")


if __name__ == "__main__":
    main()
