"""What depthwise-separable ASB layers buy the fast model: `asbunet_035_s4_subpixel` at wider widths with every 3x3
convolution depthwise-separable (`ASBUNetConfig.separable`), exported like the bundled fast model (fp32, head
stride, input size 320, the tenth chunk's guided refinement), to time beside it.

    PYTHONPATH=src python experiments/fast_model/separable_latency.py     # writes out/separable/*.onnx
    asbunet export experiments/fast_model/asbunet_person_fast_j_cheap.safetensors --dynamic --head-stride \\
        --output out/separable/asbunet_person_fast_j_cheap_head.onnx
    asbunet bench-predict --image ../shared/data/davis_person/lucia/images/lucia_00000.jpg --threads 1 \\
        --runs 100 --warmup 10 --models out/separable/*.onnx mediapipe_landscape --output out/bench_separable

Latency does not depend on the weights, so the candidates carry seeded random weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from asbunet.export.calibration import load_images
from asbunet.export.onnx import export_onnx
from asbunet.inference.runners import INPUT_SIZE_KEY, REFINE_KEY, THRESHOLD_KEY
from asbunet.models import create_model

OUT = Path("out/separable")
IMAGES = "../shared/data/ccp/train/images"
INPUT_SIZE = 320
REFINE = "guided:radius=2,eps=0.0001,subsample=4"  # the tenth chunk's (asbunet_person_fast_j_cheap.safetensors)
WIDTHS = (0.5, 0.75, 1.0)


def main() -> None:
    images = load_images(IMAGES, 4)
    meta = {THRESHOLD_KEY: "0.5", INPUT_SIZE_KEY: str(INPUT_SIZE), REFINE_KEY: REFINE}
    for width in WIDTHS:
        torch.manual_seed(0)
        model = create_model("asbunet_035_s4_subpixel", width_mult=width, separable=True)
        params = sum(p.numel() for p in model.parameters())
        path = OUT / f"separable_{round(width * 100):03d}.onnx"
        export_onnx(model, path, dynamic=True, images=images, input_size=INPUT_SIZE, metadata=meta, head_stride=True)
        print(f"separable width {width}: {params:,} parameters; {path}", flush=True)


if __name__ == "__main__":
    main()
