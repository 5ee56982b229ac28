"""Accuracy against latency of the candidate live-call models: which width and input size the fast model runs at.

    PYTHONPATH=src python experiments/fast_model/tradeoff.py --part accuracy   # any time (slow under load)
    PYTHONPATH=src python experiments/fast_model/tradeoff.py --part latency    # on an idle machine
    PYTHONPATH=src python experiments/fast_model/tradeoff.py --part plot

Accuracy: the validation data of the scene-trained models (`experiments/person_scenes/configs/person_scenes_c.yaml` and
`experiments/fast_model/configs/person_fast.yaml` build the same split: held-out photos of pfcn_portrait/train and
ccp/train, people of those photos composited over held-out person-free DAVIS frames, and those frames), IoU mean over
images at threshold 0.5 for the held-out photos and the composited scenes. No evaluation set is used. Latency: a whole
`Segmenter.predict` call on a 640x360 frame (`asbunet.bench.predict`: resize, network, resize back, sigmoid), one
thread, median of round-robin calls, the machine's instruction sets printed. Candidates: the fast model (`asbunet_035`,
both chunks: `experiments/fast_model/configs/person_fast.yaml`, `experiments/fast_model/configs/person_fast_b.yaml`) and
the shipped model at several input sizes on onnxruntime fp32 and int8, and MediaPipe Selfie Segmentation at its own
sizes. Width 0.5 and 0.25 are timed with random weights (latency does not depend on the weights) to show where they
would fall. Writes `accuracy.json`, `latency.json`, `tradeoff.md`, `tradeoff.png`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from asbunet.bench.machine import describe_isa_of, machine_info
from asbunet.bench.predict import make_frame
from asbunet.bench.timing import time_round_robin
from asbunet.inference.postprocess import binarize
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import load_model
from asbunet.metrics import iou

sys.path.insert(0, str(Path(__file__).parent.parent))
from validation import validation_parts  # noqa: E402

HERE = Path(__file__).parent
# The first two chunks' bundled weights, in git history: experiments/fast_model/README.md says how to restore them here.
FAST = "out/weights/asbunet_person_fast.safetensors"
FAST_B = "out/weights/asbunet_person_fast_b.safetensors"
FRAME = (640, 360)


def candidates(fast: str) -> dict[str, tuple[str, str | None, int | None]]:
    """Label -> (model spec, runtime, input size)."""
    out = {}
    out["asbunet_035 fast, 256"] = (fast, None, 256)
    for size in (256, 320):
        out[f"asbunet_035 fast_b, {size}"] = (FAST_B, None, size)
    for size in (256, 320, 384):
        out[f"asbunet shipped int8, {size}"] = ("asbunet_person", "onnx-int8", size)
        out[f"asbunet shipped fp32, {size}"] = ("asbunet_person", "onnx", size)
    out["MediaPipe landscape"] = ("mediapipe_landscape", None, None)
    out["MediaPipe general"] = ("mediapipe_general", None, None)
    return out


def segmenter(spec: str, runtime: str | None, size: int | None, threads: int = 1) -> Segmenter:
    return Segmenter.from_loaded(load_model(spec, runtime, threads), size)


def part_accuracy(fast: str) -> None:
    photos, scenes, _ = validation_parts("experiments/person_scenes/configs/person_scenes_c.yaml")
    results = {}
    for label, (spec, runtime, size) in candidates(fast).items():
        if runtime == "onnx-int8":
            continue  # int8 within 0.3 points of fp32 (its export check); scored as fp32
        seg = segmenter(spec, runtime, size, threads=2)

        def mean_iou(items, seg=seg):
            return float(np.mean([iou(binarize(seg.predict(im, warn=False), 0.5)[None], m[None]) for im, m in items]))

        results[label] = {"photos_iou": mean_iou(photos), "scenes_iou": mean_iou(scenes)}
        print(label, results[label], flush=True)
    (HERE / "accuracy.json").write_text(json.dumps(results, indent=2) + "\n")


def part_latency(fast: str, runs: int) -> None:
    frame = make_frame(None, FRAME)
    segs = {label: segmenter(*c) for label, c in candidates(fast).items()}
    for width in ("asbunet_050", "asbunet_025"):
        for size in (192, 256):
            segs[f"{width} random weights, {size}"] = segmenter(width, None, size)
    calls = {label: (lambda s=s: s.predict(frame, warn=False)) for label, s in segs.items()}
    timings = time_round_robin(calls, runs, warmup=10)
    machine = machine_info()
    report = {
        "machine": machine,
        "isa": describe_isa_of(machine),
        "frame": list(FRAME),
        "median_ms": {k: t.median_ms for k, t in timings.items()},
    }
    print(json.dumps(report, indent=2))
    (HERE / "latency.json").write_text(json.dumps(report, indent=2) + "\n")


def part_plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = json.loads((HERE / "accuracy.json").read_text())
    lat = json.loads((HERE / "latency.json").read_text())
    ref = lat["median_ms"]["MediaPipe landscape"]
    rows = [
        "Validation accuracy (IoU, threshold 0.5) against a whole `predict` on a 640x360 frame (one thread, median), "
        f"{lat['isa']}. `PYTHONPATH=src python experiments/fast_model/tradeoff.py --part accuracy|latency|plot`. "
        "The `asbunet_035` and random-weight rows run on PyTorch fp32 (safetensors weights; the fast model's own "
        "ONNX files are timed in `benchmarks/avx2/predict.md`), the shipped rows on onnxruntime; int8 rows show the "
        "fp32 accuracy (int8 is within 0.02 IoU points of it, `benchmarks/avx2/README.md`).",
        "",
        "| candidate | predict ms | vs MediaPipe landscape | photos IoU | scenes IoU |",
        "|---|---:|---:|---:|---:|",
    ]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for label, ms in lat["median_ms"].items():
        key = label.replace(" int8", " fp32")
        scores = acc.get(key)
        cells = f"{scores['photos_iou']:.4f} | {scores['scenes_iou']:.4f}" if scores else "| "
        rows.append(f"| {label} | {ms:.2f} | {ms / ref:.2f}x | {cells} |")
        if scores:
            for ax, metric in zip(axes, ("photos_iou", "scenes_iou"), strict=True):
                ax.scatter(ms, scores[metric], s=18)
                ax.annotate(label, (ms, scores[metric]), fontsize=6, xytext=(3, 2), textcoords="offset points")
    for ax, title in zip(axes, ("held-out photos", "composited scenes"), strict=True):
        ax.axvline(2 * ref, color="grey", ls="--", lw=0.8)
        ax.set(xscale="log", xlabel="predict on 640x360, ms (1 thread)", ylabel="IoU", title=title)
    fig.suptitle(f"dashed: 2x MediaPipe landscape ({lat['isa']})", fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "tradeoff.png", dpi=130)
    (HERE / "tradeoff.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=("accuracy", "latency", "plot"), required=True)
    parser.add_argument("--fast", default=FAST, help="the fast model's checkpoint or bundled file")
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    {"accuracy": lambda: part_accuracy(args.fast), "latency": lambda: part_latency(args.fast, args.runs)}.get(
        args.part, part_plot
    )()


if __name__ == "__main__":
    main()
