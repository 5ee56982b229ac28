"""Builds a labelled 16:9 test set of video-call-like frames from the test splits (no training image is used).

Each frame (360x640) is a strip of two or three test photos side by side, each scaled to the frame height and
keeping its people in the label, onto which one more person cut out of another test photo is pasted at 30-90% of
the frame height (anchored to the frame's edge where the photo cut the person): smaller, off-centre and several
people, as a landscape webcam sees them. The frames are written as a folder with `images/`
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

from asbunet.data.augment import paste_person, resize_pair
from asbunet.data.dataset import SamplePool
from asbunet.data.sources import open_source

FRAME = (360, 640)  # (H, W), 16:9


def make_frames(pool: SamplePool, count: int, seed: int):
    """Yields `(image, mask)` landscape frames built from `pool`."""
    for k in range(count):
        rng = np.random.default_rng((seed, k))
        images, masks, width = [], [], 0
        while width < FRAME[1] * 1.2:
            i = int(rng.integers(len(pool)))
            scale = FRAME[0] / pool.images[i].shape[0]
            w = max(1, round(pool.images[i].shape[1] * scale))
            image, mask = resize_pair(pool.images[i], pool.masks[i], (FRAME[0], w))
            images.append(image)
            masks.append(mask)
            width += w
        x0 = int(rng.integers(0, width - FRAME[1] + 1))
        image = np.hstack(images)[:, x0 : x0 + FRAME[1]]
        mask = np.hstack(masks)[:, x0 : x0 + FRAME[1]]
        fg = int(rng.integers(len(pool)))
        while pool.masks[fg][:, 0].any() and pool.masks[fg][:, -1].any():  # wall-to-wall people would fill the frame
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
        cv2.imwrite(
            str(args.output / "images" / f"{k:04d}.jpg"),
            cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 92],
        )
        cv2.imwrite(str(args.output / "masks" / f"{k:04d}.png"), mask * 255)
    print(f"wrote {args.count} frames to {args.output}")


if __name__ == "__main__":
    main()
