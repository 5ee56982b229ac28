"""The MediaPipe peers of the benchmark: fetched from the mediapipe wheel, found in a folder, their operator counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asbunet.inference.mediapipe_wheel import MEDIAPIPE_VERSION, extract_from_wheel
from asbunet.inference.peers import DEFAULT_PEERS_DIR, PEERS

WHEEL_CACHE = Path(".cache/peers")  # where `fetch_peers` keeps the downloaded mediapipe wheel


def fetch_peers(
    folder: str | Path = DEFAULT_PEERS_DIR, version: str = MEDIAPIPE_VERSION, cache: str | Path = WHEEL_CACHE
) -> dict[str, Path]:
    """Downloads the mediapipe wheel (`pip download --no-deps`) into `cache` and extracts the two .tflite files into
    `folder`."""
    extract_from_wheel(PEERS.values(), folder, cache, version)
    return find_peers(folder)


def find_peers(cache: str | Path) -> dict[str, Path]:
    """The MediaPipe .tflite files present in `cache`."""
    cache = Path(cache)
    return {name: cache / Path(member).name for name, member in PEERS.items() if (cache / Path(member).name).is_file()}


def tflite_stats(interpreter) -> tuple[int, int]:
    """(MACs, weights) of the convolutions and fully connected layers of a TFLite interpreter's graph."""
    shapes = {t["index"]: [int(d) for d in t["shape"]] for t in interpreter.get_tensor_details()}
    macs = weights = 0
    for op in interpreter._get_ops_details():  # the interpreter's only view of the graph's operators
        name, ins, outs = op["op_name"], [i for i in op["inputs"] if i >= 0], op["outputs"]
        if len(ins) < 2:
            continue
        x, w, y = shapes[ins[0]], shapes[ins[1]], shapes[outs[0]]
        if name == "CONV_2D":  # w (Co, kh, kw, Ci)
            macs += int(np.prod(y)) * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":  # w (1, kh, kw, C)
            macs += int(np.prod(y)) * w[1] * w[2]
        elif name in ("TRANSPOSE_CONV", "Convolution2DTransposeBias"):  # w (Co, kh, kw, Ci), per input pixel
            if name == "TRANSPOSE_CONV":
                x, w = shapes[ins[2]], shapes[ins[1]]
            macs += int(np.prod(x)) * w[0] * w[1] * w[2]
        elif name == "FULLY_CONNECTED":  # w (O, I)
            macs += int(np.prod(y)) * w[1]
        else:
            continue
        weights += int(np.prod(w)) + sum(int(np.prod(shapes[i])) for i in ins[2:3] if name != "TRANSPOSE_CONV")
    return macs, weights
