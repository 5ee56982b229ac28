"""Latency of the public API (`asbunet bench predict`): one `Segmenter.predict` call on a video frame, from the RGB
frame to the person probability at the frame's size, for each bundled model on each runtime, and MediaPipe Selfie
Segmentation's own whole predict, the same run.

A call is what a user's code pays per frame: resize (area interpolation when shrinking) and normalize, the network,
and the probability back at the frame's size (the logits resized and the sigmoid, or the model's guided refinement).
MediaPipe is timed as its own pipeline runs it (`mediapipe_predict`): the frame resized to the model's fixed size with
area interpolation (144x256 for landscape, 256x256 for general), RGB scaled to [0, 1], the network, the probability
resized back bilinearly; none of the conversions that let it run behind `Segmenter`. Each thread count is a group of
its own, timed round-robin (pass i of every model, then pass i + 1) after warm-up passes; the figures are medians,
with the ratio to MediaPipe landscape in the same group.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import cv2
import numpy as np

from asbunet.bench.machine import describe_isa_of, describe_machine, machine_info
from asbunet.bench.outputs import segmenter_for
from asbunet.bench.timing import time_round_robin
from asbunet.data.io import read_image
from asbunet.inference.auto import this_cpu_kind
from asbunet.inference.runners import TfliteRunner
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import bundled_models

PEERS = ("mediapipe_general", "mediapipe_landscape")
REFERENCE = "mediapipe_landscape"
RUNTIMES = ("onnx-int8", "onnx", "openvino-int8", "openvino", "openvino-bf16", "torch")


@dataclass
class PredictBenchConfig:
    """What `asbunet bench predict` measures.

    Args:
        models: specs `name[:runtime]` (bundled names, files, the MediaPipe peers; a bundled name alone runs on its
            default, `runtime="auto"`); None: every bundled model on its default and on each runtime of `RUNTIMES`
            (the OpenVINO ones where openvino is installed), then both peers.
        image: the frame's picture (resized to `frame`); None: a seeded noise picture.
        frame: `(width, height)` of the frame a call gets.
    """

    models: list[str] | None = None
    image: str | None = None
    frame: tuple[int, int] = (640, 360)
    threads: list[int] = field(default_factory=lambda: [1, 2])
    runs: int = 100
    warmup: int = 10


def default_models() -> list[str]:
    openvino = importlib.util.find_spec("openvino") is not None
    runtimes = [r for r in RUNTIMES if openvino or not r.startswith("openvino")]
    return [spec for name in bundled_models() for spec in [name, *(f"{name}:{r}" for r in runtimes)]] + list(PEERS)


def make_frame(image: str | None, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 `(height, width, 3)`: `image` resized to `size` `(width, height)`, or seeded noise."""
    if image is None:
        return np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return cv2.resize(read_image(image), size, interpolation=cv2.INTER_AREA)


def mediapipe_predict(runner: TfliteRunner, frame: np.ndarray) -> np.ndarray:
    """MediaPipe's whole predict call on an RGB uint8 frame `(H, W, 3)`: resize to the model's size with area
    interpolation, RGB / 255, the network (NHWC, probability out), the probability `(H, W)` resized back bilinearly."""
    h, w = runner.size
    small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)  # (h, w, 3)
    probability = runner.invoke((small.astype(np.float32) * np.float32(1 / 255))[None])  # (1, h, w, 1)
    return cv2.resize(probability[0, ..., 0], (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_LINEAR)


def predict_call(spec: str, segmenter, frame: np.ndarray):
    """The timed call of one spec: `mediapipe_predict` for the MediaPipe models, `Segmenter.predict` for the rest."""
    if spec in PEERS:
        return lambda: mediapipe_predict(segmenter.runner, frame)
    return lambda: segmenter.predict(frame, warn=False)


def run_predict_bench(cfg: PredictBenchConfig) -> dict:
    """Times `predict` for every spec and thread count; returns the machine, the frame and one row per spec and
    thread count (median, p95 and the ratio to MediaPipe landscape when it is among the specs)."""
    specs = cfg.models or default_models()
    frame = make_frame(cfg.image, cfg.frame)
    rows = []
    for threads in cfg.threads:
        # loaded per group: PyTorch's threads are global
        segmenters = {spec: segmenter_for(spec, threads) for spec in specs}
        calls = {spec: predict_call(spec, seg, frame) for spec, seg in segmenters.items()}
        timings = time_round_robin(calls, cfg.runs, cfg.warmup)
        reference = timings.get(REFERENCE)
        for spec, timing in timings.items():
            seg = segmenters[spec]
            h, w = seg._network_input(frame).shape[1:]
            rows.append(
                {
                    "model": spec,
                    "runs_on": seg.name,
                    "threads": threads,
                    "network_input": f"{h}x{w}",
                    "median_ms": timing.median_ms,
                    "p95_ms": timing.p95_ms,
                    "vs_reference": timing.median_ms / reference.median_ms if reference else None,
                }
            )
    return {
        "machine": machine_info(),
        "frame": {"width": cfg.frame[0], "height": cfg.frame[1], "image": cfg.image or "seeded noise"},
        "runs": cfg.runs,
        "warmup": cfg.warmup,
        "reference": REFERENCE if REFERENCE in specs else None,
        "cpu_kind": this_cpu_kind(),
        "auto": {name: Segmenter.from_pretrained(name, threads=1).name for name in bundled_models()},
        "rows": rows,
    }


def report_markdown(report: dict) -> str:
    """The table of `run_predict_bench`'s report, with the machine and its instruction sets."""
    machine, frame = report["machine"], report["frame"]
    ref = report["reference"]
    lines = [
        f"`Segmenter.predict` on a {frame['width']}x{frame['height']} RGB frame ({frame['image']}): resize and "
        "normalize, network, probability back at the frame's size; MediaPipe's own pipeline for its models (resize "
        "with area interpolation, RGB / 255, network, probability resized back). Median and 95th percentile of "
        f"{report['runs']} calls per model after {report['warmup']} warm-up calls, models round-robin within each "
        "thread count" + (f"; ratio to `{ref}` in the same group." if ref else "."),
        "",
        f"Machine: {describe_machine(machine)}",
        f"Instruction sets: {describe_isa_of(machine)}",
        "",
        *(
            f'`runtime="auto"` on this CPU (kind {report.get("cpu_kind", "?")}): `{spec}` runs as {runs_on}.'
            for spec, runs_on in report.get("auto", {}).items()
        ),
        "",
        "| model | runs on | threads | network input | median ms | p95 ms |" + (f" vs {ref} |" if ref else ""),
        "|---|---|---:|---|---:|---:|" + ("---:|" if ref else ""),
    ]
    for r in report["rows"]:
        ratio = f" {r['vs_reference']:.2f}x |" if ref else ""
        lines.append(
            f"| `{r['model']}` | {r.get('runs_on', '')} | {r['threads']} | {r['network_input']} | "
            f"{r['median_ms']:.2f} | {r['p95_ms']:.2f} |" + ratio
        )
    return "\n".join(lines) + "\n"
