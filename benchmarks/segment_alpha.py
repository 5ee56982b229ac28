"""Renders docs/segment_alpha.png: cut-outs over magenta with the probability as alpha (the earlier behaviour) and with
the matte (`asbunet.frames.matte`), for a davis_person/tennis frame and a bundled sample photo, with the bundled model.

    python benchmarks/segment_alpha.py [--data ../shared/data] [--output docs/segment_alpha.png]

Prints, per image, the share of pixels fully transparent and with alpha 10..49 (of 255) under each alpha.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from asbunet import Segmenter
from asbunet.data.io import read_image
from asbunet.frames import effects
from asbunet.frames.matte import matte
from asbunet.frames.options import FrameOptions
from asbunet.frames.render import postprocess

REPO = Path(__file__).resolve().parents[1]
MAGENTA = (255, 0, 255)
HEIGHT = 270  # of each panel


def panels(segmenter: Segmenter, image: np.ndarray, name: str) -> list[np.ndarray]:
    """The image over magenta with the probability as alpha, then with the matte, each `HEIGHT` high, labelled."""
    prob = postprocess(segmenter, image, FrameOptions())
    out = []
    for label, alpha in (("probability as alpha", prob), ("matte", matte(prob, segmenter.threshold))):
        a8 = effects.probability_image(alpha)
        print(f"{name}, {label}: {(a8 == 0).mean():.1%} transparent, {((a8 >= 10) & (a8 <= 49)).mean():.1%} at 10-49")
        panel = effects.replace_background(image, alpha, MAGENTA)
        width = round(panel.shape[1] * HEIGHT / panel.shape[0])
        panel = cv2.resize(panel, (width, HEIGHT), interpolation=cv2.INTER_AREA)
        cv2.putText(panel, label, (6, HEIGHT - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        out.append(panel)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "segment_alpha.png")
    args = parser.parse_args()
    tennis = args.data / "davis_person" / "tennis" / "images" / "tennis_00029.jpg"
    if not tennis.is_file():
        raise SystemExit(f"{tennis}: not found; give the development data with --data")
    segmenter = Segmenter.from_pretrained()
    row = panels(segmenter, read_image(tennis), "tennis 00029")
    row += panels(segmenter, read_image(REPO / "samples" / "images" / "0001.jpg"), "sample 0001")
    gap = np.full((HEIGHT, 4, 3), 255, np.uint8)
    picture = np.hstack([p for panel in row for p in (panel, gap)][:-1])
    Image.fromarray(picture).quantize(colors=128, dither=Image.Dither.NONE).save(args.output, optimize=True)
    print(f"{args.output}: {picture.shape[1]}x{picture.shape[0]}, {args.output.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
