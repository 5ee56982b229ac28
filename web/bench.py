"""Frames per second of the webcam page in headless Chromium, for each bundled model and for MediaPipe's web package.

Each page runs on Chromium's fake camera playing a still DAVIS frame (854x480, `davis_person/lucia`), with smoothing
off and the blurred background, as a user sees it; after `--warmup` frames the next `--frames` frames are timed and
the medians reported: fps = 1000 / median interval between finished frames, with the median time of the network call
(onnxruntime-web's `session.run`; for MediaPipe, `send` until its results arrive, which includes its WebGL pre- and
post-processing). For scale, the same frame then runs through `Segmenter.logits` on onnxruntime in Python, with
as many threads as the page used, so that a busy machine shows in both. The CPU, its instruction sets, the core count
and the load average are printed with the figures.

    python web/bench.py                 # after `make web` (or `python web/serve.py --setup-only`)
    python web/bench.py --no-mediapipe --frames 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
from pathlib import Path

import cv2
import harness
import numpy as np
import serve

REPO = Path(__file__).resolve().parents[1]
FRAME = REPO.parent / "shared" / "data" / "davis_person" / "lucia" / "images" / "lucia_00000.jpg"
MEDIAPIPE = [
    ("mediapipe-general", "MediaPipe selfie segmentation, general (256x256)", "general"),
    ("mediapipe-landscape", "MediaPipe selfie segmentation, landscape (144x256)", "landscape"),
]


def cpu_description() -> tuple[str, list[str]]:
    """The CPU's model name and the x86 instruction sets among AVX2, AVX-512F, AVX-512 VNNI, AMX that it has."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    name = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = sorted(set(re.findall(r"\b(avx2|avx512f|avx512_vnni|amx_tile)\b", text)))
    return (name[1] if name else platform.processor() or platform.machine()), flags


def measure(page, url: str, warmup: int, frames: int) -> dict:
    """Median fps and network time of `frames` frames after `warmup` frames of the page at `url`."""
    page.goto(url)
    harness.wait_frames(page, warmup + frames, timeout=60 + 5 * (warmup + frames))
    history = page.evaluate("() => window.asbunet.stats.history")[warmup : warmup + frames + 1]
    ends = [f["end"] for f in history]
    intervals = np.diff(ends)
    return {
        "fps": 1000.0 / float(np.median(intervals)),
        "network_ms": statistics.median(f["networkMs"] for f in history[1:]),
        "frame_ms": statistics.median(f["frameMs"] for f in history[1:]),
        "frames": len(intervals),
        "threads": page.evaluate("() => window.asbunet.threads ?? null"),
    }


def native(rgb: np.ndarray, warmup: int, frames: int, threads: int) -> list[dict]:
    """`Segmenter.logits` (resize, normalization, network) of the same frame on onnxruntime in Python, per model."""
    import time

    from asbunet import Segmenter

    rows = []
    for runtime, precision in (("onnx", "fp32"), ("onnx-int8", "int8")):
        segmenter = Segmenter.from_pretrained(runtime=runtime, threads=threads)
        times = []
        for i in range(warmup + frames):
            start = time.perf_counter()
            segmenter._logits(rgb)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
        label = f"onnxruntime {precision} in Python, same frame ({threads} threads; network and its input only)"
        rows.append({"id": f"native-{precision}", "label": label, "network_ms": statistics.median(times)})
        print(f"{label}: {rows[-1]['network_ms']:.1f} ms", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--warmup", type=int, default=5, help="frames run before timing (default 5)")
    parser.add_argument("--frames", type=int, default=30, help="frames timed per model (default 30)")
    parser.add_argument("--no-mediapipe", action="store_true", help="only the bundled models")
    parser.add_argument("--output", type=Path, default=REPO / "out" / "web" / "bench.json", help="results as JSON")
    args = parser.parse_args(argv)
    if not FRAME.is_file():
        print(f"error: {FRAME} not found (the shared data beside the repository)", file=sys.stderr)
        return 1
    serve.setup(quiet=True)
    manifest = json.loads((serve.MODELS / "models.json").read_text())
    rgb = np.ascontiguousarray(cv2.imread(str(FRAME), cv2.IMREAD_COLOR)[..., ::-1])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    clip = harness.write_y4m(rgb, args.output.parent / "bench_clip.y4m")
    runs = [(m["id"], f"ASBU-Net {m['label']}", f"?model={m['id']}&smooth=0") for m in manifest["models"]]
    if not args.no_mediapipe:
        runs += [(key, label, f"mediapipe.html?model={name}") for key, label, name in MEDIAPIPE]
    cpu, isa = cpu_description()
    load = os.getloadavg()[0]
    results = []
    with harness.browser(clip) as (page, url):
        version = page.context.browser.version
        for key, label, query in runs:
            try:
                result = measure(page, url + query, args.warmup, args.frames)
            except (RuntimeError, TimeoutError) as err:
                result = {"error": str(err)}
            results.append({"id": key, "label": label, **result})
            print(f"{label}: {json.dumps(result)}", flush=True)
    threads = next((r["threads"] for r in results if r.get("threads")), 1)
    results += native(rgb, args.warmup, args.frames, threads)
    machine = {
        "cpu": cpu,
        "instruction_sets": isa,
        "cores": os.cpu_count(),
        "load_average_1min_at_start": load,
        "chromium": version,
        "onnxruntime_web": manifest["onnxruntime_web"],
        "camera": f"{rgb.shape[1]}x{rgb.shape[0]}",
        "warmup": args.warmup,
        "frames": args.frames,
    }
    args.output.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
    print(
        f"\nheadless Chromium {version}, {cpu} ({os.cpu_count()} cores; {', '.join(isa) or 'no AVX2'}), "
        f"load average {load:.1f} at start; camera {machine['camera']}, median of {args.frames} frames after "
        f"{args.warmup}\n"
    )
    print("| model | fps | network call (ms) | whole frame (ms) |")
    print("|---|---:|---:|---:|")
    for r in results:
        if "error" in r:
            print(f"| {r['label']} | did not run: {r['error']} | | |")
        elif "fps" not in r:
            print(f"| {r['label']} | | {r['network_ms']:.0f} | |")
        else:
            print(f"| {r['label']} | {r['fps']:.1f} | {r['network_ms']:.0f} | {r['frame_ms']:.0f} |")
    print(f"\nwritten: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
