"""Frames per second of the whole video pipeline (`asbunet bench video`): decode, network, resizing the probability
back (the model's refinement or bilinear), temporal smoothing, background effect and H.264 encode, on a 720p clip, for
every bundled model and MediaPipe landscape in the same pipeline, the same run.

Each model segments the clip through `asbunet.segment.video.segment_video` (what `asbunet segment` runs: decoding and
encoding on threads of their own, beside the network), several times round-robin; the figure is the median of the
runs' frames per second. A separate sequential pass times each stage alone, to show where a frame's time goes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from asbunet import atomic
from asbunet.bench.machine import describe_isa_of, describe_machine, machine_info
from asbunet.bench.outputs import segmenter_for
from asbunet.data.io import IMAGE_SUFFIXES, DataError, read_image
from asbunet.frames.render import render
from asbunet.frames.stream import VideoSegmenter
from asbunet.inference.peers import DEFAULT_PEERS_DIR
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import bundled_models
from asbunet.segment.media import VideoReader, VideoWriter
from asbunet.segment.options import SegmentOptions
from asbunet.segment.video import segment_video

CLIP_SIZE = (1280, 720)
PEER = "mediapipe_landscape"


@dataclass
class PipelineConfig:
    """What `asbunet bench video` measures.

    Args:
        frames: folder of images the clip is made from (in name order, looped to `clip_frames`), or None to use `clip`.
        clip: an existing video to run (its own size); made from `frames` when None.
        models: model specs (bundled names with a runtime as `name:runtime`, files, the MediaPipe peers);
            None: every bundled model on its default runtime, then `mediapipe_landscape`.
        runs: timed runs of the whole clip per model (round-robin), after one warm-up run each.
        threads: intra-op threads of the network's runtime (the decoder and encoder threads come on top).
    """

    frames: str | None = None
    clip: str | None = None
    clip_frames: int = 150
    models: list[str] | None = None
    runs: int = 3
    threads: int = 2
    peers: str = str(DEFAULT_PEERS_DIR)
    output: str = "out/bench_video"


@dataclass
class PipelineResult:
    model: str
    fps_runs: list[float]
    stages_ms: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return float(np.median(self.fps_runs))


def make_clip(frames_dir: str | Path, path: Path, count: int, size: tuple[int, int] = CLIP_SIZE) -> Path:
    """An H.264 clip of `count` frames at `size` (30 frames/s) from the images of `frames_dir`, looped in name order."""
    images = sorted(p for p in Path(frames_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"{frames_dir}: holds no image to make the clip from")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = atomic.partial_path(path)
    with VideoWriter(partial, *size, Fraction(1, 30), Fraction(30)) as writer:
        for i in range(count):
            rgb = cv2.resize(read_image(images[i % len(images)]), size, interpolation=cv2.INTER_LINEAR)
            writer.write(rgb, i)
    atomic.commit(partial, path)
    return path


def default_models() -> list[str]:
    return [*bundled_models(), PEER]


def stage_times(segmenter: Segmenter, clip: Path, options: SegmentOptions, frames: int = 30) -> dict[str, float]:
    """Median milliseconds per frame of each stage, run one after the other on one thread of control: `network` runs
    the model on the frame resized to its input, `resize` brings its probability back to the frame's size (the
    model's refinement, or bilinearly: `Segmenter.probability`)."""
    video = VideoSegmenter(segmenter, options.frame)
    times: dict[str, list[float]] = {k: [] for k in ("decode", "network", "resize", "smooth", "effect", "encode")}
    with (
        VideoReader(clip) as reader,
        VideoWriter(
            atomic.temporary_path(clip.with_name("stages.mp4")),
            reader.width,
            reader.height,
            reader.time_base,
            reader.rate,
        ) as writer,
    ):
        frames_iter = iter(reader)
        for _ in range(frames):
            t0 = time.perf_counter()
            frame = next(frames_iter, None)
            if frame is None:
                break
            t1 = time.perf_counter()
            small = segmenter._network_image(frame.rgb)
            logits = segmenter._run_network([small])[0, 0]  # (h, w)
            t2 = time.perf_counter()
            prob = segmenter._probability(frame.rgb, small, logits)
            t3 = time.perf_counter()
            prob = video.smoother(prob, frame.rgb)
            t4 = time.perf_counter()
            out = render("effect", frame.rgb, prob, video.options, video.threshold)
            t5 = time.perf_counter()
            writer.write(out, frame.pts)
            t6 = time.perf_counter()
            for key, a, b in zip(times, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6), strict=True):
                times[key].append(1e3 * (b - a))
    writer.path.unlink(missing_ok=True)
    return {k: float(np.median(v[3:] or v)) for k, v in times.items()}  # the first frames warm up


def run_pipeline_bench(cfg: PipelineConfig) -> dict:
    """Runs the benchmark; returns the machine, the clip and each model's result."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.clip is not None:
        clip = Path(cfg.clip)
    elif cfg.frames is not None:
        clip = make_clip(cfg.frames, out / "clip_720p.mp4", cfg.clip_frames)
    else:
        raise ValueError("give --frames DIR (images to make a 720p clip from) or --clip VIDEO")
    with VideoReader(clip) as reader:
        size, count = (reader.width, reader.height), sum(1 for _ in reader)
    specs = cfg.models or default_models()
    segmenters = {spec: segmenter_for(spec, cfg.threads) for spec in specs}
    options = SegmentOptions(save=("effect",))
    results = {spec: PipelineResult(spec, []) for spec in specs}
    target = out / "pipeline_blur.mp4"
    for run in range(cfg.runs + 1):  # run 0 warms up
        for spec, segmenter in segmenters.items():
            result = segment_video(segmenter, clip, [target], options, progress=False)
            if run:
                results[spec].fps_runs.append(result.fps)
    target.unlink(missing_ok=True)
    for spec, segmenter in segmenters.items():
        results[spec].stages_ms = stage_times(segmenter, clip, options)
    return {
        "machine": machine_info(),
        "clip": {"path": str(clip), "width": size[0], "height": size[1], "frames": count},
        "threads": cfg.threads,
        "runs": cfg.runs,
        "results": [
            {
                "model": r.model,
                "runs_on": segmenters[r.model].name,
                "fps": r.fps,
                "fps_runs": r.fps_runs,
                "stages_ms": r.stages_ms,
            }
            for r in results.values()
        ],
    }


def report_markdown(report: dict) -> str:
    """The table of `run_pipeline_bench`'s report, with the machine and its instruction sets."""
    machine, clip = report["machine"], report["clip"]
    stages = list(report["results"][0]["stages_ms"])
    lines = [
        f"Whole video pipeline on a {clip['width']}x{clip['height']} clip of {clip['frames']} frames "
        f"(`{clip['path']}`): decode, network ({report['threads']} threads), resizing the probability back (the "
        "model's own refinement, or bilinear), temporal smoothing, background blur, H.264 encode, decoding and "
        "encoding on threads of their own. Frames per second: "
        f"median of {report['runs']} runs of the whole clip, models round-robin. Stage columns: median milliseconds "
        "per frame of each stage alone, run one after the other.",
        "",
        f"Machine: {describe_machine(machine)}",
        f"Instruction sets: {describe_isa_of(machine)}",
        "",
        "| model | runs on | frames/s | " + " | ".join(f"{s} ms" for s in stages) + " |",
        "|---|---|---:|" + "---:|" * len(stages),
    ]
    for r in report["results"]:
        cells = " | ".join(f"{r['stages_ms'][s]:.1f}" for s in stages)
        lines.append(f"| `{r['model']}` | {r.get('runs_on', '')} | {r['fps']:.1f} | {cells} |")
    return "\n".join(lines) + "\n"
