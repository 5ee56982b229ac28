"""Helpers shared by the test modules: tiny synthetic data sets and training configs small enough for a busy CPU."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml


def synthetic_pair(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured RGB background with one bright elliptic 'person' and its 0/1 mask."""
    image = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    center = (int(rng.integers(width // 3, 2 * width // 3)), int(rng.integers(height // 3, 2 * height // 3)))
    axes = (max(2, width // 5), max(2, height // 3))
    cv2.ellipse(mask, center, axes, 0, 0, 360, 1, -1)
    image[mask.astype(bool)] = rng.integers(150, 255, 3, dtype=np.uint8)
    return image, mask


def write_folder_dataset(root: Path, n: int = 6, size: tuple[int, int] = (48, 40), seed: int = 0) -> Path:
    """Writes `n` JPEG images and 0/255 PNG masks as `root/images/NNNN.jpg`, `root/masks/NNNN.png`."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image, mask = synthetic_pair(rng, *size)
        cv2.imwrite(str(root / "images" / f"{i:04d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "masks" / f"{i:04d}.png"), mask * 255)
    return root


def tiny_config(data: Path, output: Path, **values) -> dict:
    """A run small enough for a busy 2-core CPU: 64x64 canvases, batch 2, one thread, no loader workers."""
    cfg = dict(
        model="asbunet",
        data={"train": [str(data)], "val_fraction": 0.25, "max_side": 128},
        shapes=[[64, 64], [48, 64]],
        val_size=64,
        batch_size=2,
        epochs=2,
        optimizer="adamw",
        lr=3e-3,
        weight_decay=1e-4,
        schedule="cosine",
        pos_weight="auto",
        augment={"composite": 0.5},
        workers=0,
        threads=1,
        seed=0,
        output=str(output),
    )
    cfg.update(values)
    return cfg


def write_config(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def tiny_onnx() -> bytes:
    """A valid segmentation ONNX model (one 1x1 convolution: (B, 3, H, W) -> logits (B, 1, H, W)) with metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.full((1, 3, 1, 1), 0.5, np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(1, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", 1, "H", "W"])],
        [weight, bias],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    for key, value in (("asbunet.input_size", "32"), ("asbunet.threshold", "0.5")):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
