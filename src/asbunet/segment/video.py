"""Video and camera segmentation: frames in through `cv2.VideoCapture`, effects out through `cv2.VideoWriter`.

Each frame's probability is smoothed over time by an exponential moving average (`TemporalSmoother`) to stop the
flicker of a per-frame model, then refined at the frame's own resolution with the guided filter
(`asbunet.segment.effects.refine_probability`). Outputs are `.mp4` files (MPEG-4 Part 2, fourcc `mp4v`) with the input's
frame rate and size, one per requested output kind (`mask`, `prob`, `overlay`, `effect`).

Each output is written as `<name>.partial.mp4` and renamed to `<name>.mp4` once the video is complete, so a final
name never holds a file that players cannot open: after an error the partial files are removed; after Ctrl+C (or
SIGTERM from the command line) on a file they are closed and kept, playable, under the partial name (unless no frame
was written yet); a camera stopped by Ctrl+C ends its recordings normally.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from asbunet import atomic
from asbunet.data.io import DataError, check_pixels
from asbunet.inference.segmenter import Segmenter
from asbunet.segment.options import SegmentOptions, output_names, resolve_options, video_outputs
from asbunet.segment.render import postprocess, prepare_output_dir, render

FOURCC = "mp4v"
DEFAULT_FPS = 30.0


class TemporalSmoother:
    """Exponential moving average of probability maps: `s_t = m * s_{t-1} + (1 - m) * p_t`, `s_0 = p_0`.

    Args:
        momentum: weight `m` of the past in [0, 1); 0 turns smoothing off. A still frame's response to a change
            reaches `1 - m**k` of its size after `k` frames (m = 0.6: 64% after 2 frames, 92% after 5).
    """

    def __init__(self, momentum: float):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"smoothing momentum must be in [0, 1) (0 = off), got {momentum}")
        self.momentum = float(momentum)
        self.state: np.ndarray | None = None

    def reset(self) -> None:
        self.state = None

    def __call__(self, prob: np.ndarray) -> np.ndarray:
        if self.momentum == 0.0 or self.state is None or self.state.shape != prob.shape:
            self.state = prob.astype(np.float32, copy=True)
        else:
            self.state *= np.float32(self.momentum)
            self.state += np.float32(1.0 - self.momentum) * prob
        return self.state.copy()


@dataclass
class VideoResult:
    """What a video or camera run did: frames processed, wall time, files written."""

    source: str
    frames: int
    seconds: float
    outputs: list[Path] = field(default_factory=list)
    interrupted: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        stop = " (interrupted)" if self.interrupted else ""
        written = ", ".join(str(p) for p in self.outputs)
        return (
            f"{self.source}: {self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} frames/s){stop} -> {written}"
        )


def _fps(capture: cv2.VideoCapture) -> float:
    fps = capture.get(cv2.CAP_PROP_FPS)
    return fps if fps and math.isfinite(fps) and 0 < fps <= 1000 else DEFAULT_FPS


def open_video(path: str | Path) -> cv2.VideoCapture:
    """Opens a video file for reading; `DataError` names the file when it is missing or cannot be decoded."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video file not found")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise DataError(f"{path}: not a readable video (corrupt, truncated or unsupported codec)")
    return capture


def open_camera(index: int) -> cv2.VideoCapture:
    """Opens camera `index` (0 is the first); `DataError` when none opens or it delivers no frame."""
    capture = cv2.VideoCapture(int(index))
    if not capture.isOpened():
        capture.release()
        raise DataError(f"camera {index}: could not be opened (no camera at this index, no permission, or in use)")
    return capture


def _open_writer(path: Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), fps, (width, height), True)
    if not writer.isOpened():
        writer.release()
        raise OSError(f"{path}: could not open a video writer ({FOURCC}, {width}x{height} at {fps:g} frames/s)")
    return writer


def _to_bgr(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR if frame.ndim == 2 else cv2.COLOR_RGB2BGR)


def run_capture(
    segmenter: Segmenter,
    capture: cv2.VideoCapture,
    source: str,
    targets: Sequence[Path],
    options: SegmentOptions,
    progress: bool = True,
    live: bool = False,
) -> VideoResult:
    """Segments the frames of an opened capture into one video per output kind (`targets`, in `options` order).

    Args:
        source: name of the capture, for messages.
        live: a camera: Ctrl+C ends the recording cleanly instead of propagating.

    Raises:
        DataError: when not a single frame can be read.
    """
    options = resolve_options(options, segmenter)
    kinds = video_outputs(options, source)
    if len(targets) != len(kinds):
        capture.release()
        raise ValueError(f"{source}: {len(targets)} output files given for {len(kinds)} outputs ({', '.join(kinds)})")
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    try:
        check_pixels(source, width, height)  # from the stream header, before any frame is decoded
    except DataError:
        capture.release()
        raise
    fps = _fps(capture)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not live else 0
    total = count if count > 0 else None
    if options.max_frames is not None:
        total = options.max_frames if total is None else min(total, options.max_frames)
    smoother = TemporalSmoother(options.smooth)
    partials = [atomic.partial_path(t) for t in targets]
    writers: list[cv2.VideoWriter] = []
    frames, interrupted, failed = 0, False, False
    bar = tqdm(total=total, desc=Path(source).name, unit="frame", disable=not progress, dynamic_ncols=True)
    start = time.perf_counter()
    try:
        while options.max_frames is None or frames < options.max_frames:
            ok, bgr = capture.read()
            if not ok or bgr is None:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if not writers:
                height, width = rgb.shape[:2]
                check_pixels(source, width, height)
                for partial in partials:
                    writers.append(_open_writer(partial, fps, width, height))
            elif rgb.shape[:2] != (height, width):
                raise DataError(
                    f"{source}: frame {frames} is {rgb.shape[1]}x{rgb.shape[0]}, the first frames "
                    f"were {width}x{height}; resizing streams are not supported"
                )
            prob = postprocess(segmenter, rgb, options, smoother)
            for kind, writer in zip(kinds, writers, strict=True):
                writer.write(_to_bgr(render(kind, rgb, prob, options)))
            frames += 1
            bar.update()
    except KeyboardInterrupt:
        if not live:
            raise  # the partial files are closed below and kept, playable
        interrupted = True
    except BaseException:
        failed = True
        raise
    finally:
        seconds = time.perf_counter() - start
        bar.close()
        for writer in writers:
            writer.release()
        capture.release()
        if failed or frames == 0:  # nothing worth keeping
            for partial in partials:
                partial.unlink(missing_ok=True)
    if frames == 0:
        raise DataError(f"{source}: no frame could be read (empty, corrupt or unsupported video)")
    for partial, target in zip(partials, targets, strict=True):
        atomic.commit(partial, target)
    return VideoResult(source, frames, seconds, list(targets), interrupted)


def segment_video(
    segmenter: Segmenter,
    path: str | Path,
    targets: Sequence[Path],
    options: SegmentOptions | None = None,
    progress: bool = True,
) -> VideoResult:
    """Segments a video file into `targets` (see `asbunet.segment.files.planned_outputs`)."""
    options = resolve_options(options, segmenter)
    video_outputs(options, str(path))
    return run_capture(segmenter, open_video(path), str(path), targets, options, progress)


def segment_video_file(
    segmenter: Segmenter,
    path: str | Path,
    output: str | Path,
    options: SegmentOptions | None = None,
    progress: bool = True,
) -> VideoResult:
    """Segments a video file into `output/<stem>_<kind>.mp4` (e.g. `talk_blur.mp4`)."""
    options = resolve_options(options, segmenter)
    path = Path(path)
    kinds = video_outputs(options, str(path))
    targets = [Path(output) / f"{path.stem}{output_names(k, options.background, True)}" for k in kinds]
    if any(t.resolve() == path.resolve() for t in targets):
        raise ValueError(f"{path}: output would overwrite the input; choose another output folder")
    prepare_output_dir(output)
    return segment_video(segmenter, path, targets, options, progress)


def segment_camera(
    segmenter: Segmenter, index: int, output: str | Path, options: SegmentOptions | None = None, progress: bool = True
) -> VideoResult:
    """Segments camera `index` live into `output/camera<index>_<kind>.mp4` until `max_frames` or Ctrl+C.

    The files are written at the camera's nominal frame rate; when processing is slower than the camera, frames
    are dropped by the camera driver and the recording plays faster than real time.
    """
    options = resolve_options(options, segmenter)
    kinds = video_outputs(options, f"camera {index}")
    out = prepare_output_dir(output)
    capture = open_camera(index)
    targets = [out / f"camera{index}{output_names(k, options.background, True)}" for k in kinds]
    return run_capture(segmenter, capture, f"camera {index}", targets, options, progress, live=True)
