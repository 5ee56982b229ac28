"""What a floor on the fast model's layer widths costs: `asbunet_035` as trained (every scaled width at least 8
channels) against the same model with at least 16 (`min_channels=16`), exported like the bundled models.

    PYTHONPATH=src python experiments/fast_model/width_floor.py     # writes out/width_floor/*.onnx
    asbunet bench-predict --image ../shared/data/davis_person/lucia/images/lucia_00000.jpg --threads 1 \\
        --models out/width_floor/asbunet_035_min8_int8.onnx out/width_floor/asbunet_035_min8.onnx \\
        out/width_floor/asbunet_035_min16_int8.onnx out/width_floor/asbunet_035_min16.onnx mediapipe_landscape

Width 0.35 leaves many squeeze convolutions with 8 filters, and the int8 export pads convolutions to 16 filters
(`asbunet.export.rewrites`): the thinnest layers cost the time of 16 filters whatever their width. Latency does not
depend on the weights, so both models carry seeded random weights; the int8 files are calibrated on real photos as
`asbunet export` does. The files run at input size 320 (176x320 for a 640x360 frame), the fast model's size.
"""

from __future__ import annotations

from pathlib import Path

import torch

from asbunet.export.calibration import load_images
from asbunet.export.onnx import export_onnx
from asbunet.export.quantize import quantize_int8
from asbunet.inference.runners import INPUT_SIZE_KEY, THRESHOLD_KEY
from asbunet.models import create_model
from asbunet.models.asbunet import ASBUNetConfig

OUT = Path("out/width_floor")
CALIBRATION = ["../shared/data/pfcn_portrait/train/images", "../shared/data/ccp/train/images"]
INPUT_SIZE = 320


def main() -> None:
    images = [im for folder in CALIBRATION for im in load_images(folder, 16)]
    for floor in (ASBUNetConfig.min_channels, 16):
        torch.manual_seed(0)
        model = create_model("asbunet_035", min_channels=floor)
        params = sum(p.numel() for p in model.parameters())
        path = OUT / f"asbunet_035_min{floor}.onnx"
        meta = {THRESHOLD_KEY: "0.5", INPUT_SIZE_KEY: str(INPUT_SIZE)}
        export_onnx(model, path, dynamic=True, images=images, input_size=INPUT_SIZE, metadata=meta)
        result = quantize_int8(path, path.with_name(f"{path.stem}_int8.onnx"), images, input_size=INPUT_SIZE)
        print(f"min_channels {floor}: {params:,} parameters; {path}; {result.summary()}", flush=True)


if __name__ == "__main__":
    main()
