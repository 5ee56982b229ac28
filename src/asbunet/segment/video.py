"""Video files and cameras: frames through `VideoSegmenter`, out to video files, a virtual camera or a window.

A video file is decoded by FFmpeg on a thread of its own, segmented on the calling thread and encoded on a third
(`asbunet.segment.media`): decoding and encoding run beside the network. Each output keeps the input's timestamps
(variable frame rates included) and its audio; `mask`, `prob`, `overlay` and `effect` are H.264 `.mp4`, `cutout` a
VP9 `.webm` with an alpha channel.

A video file's outputs are claimed together (`asbunet.publish`: another run writing one of them at the same time
makes this one fail, naming it), each written as `<name>.<pid>-<random>.partial.<ext>` and renamed once the video is
complete, so a final name never holds a file that players cannot open. After any error (a frame that cannot be
decoded, fewer frames than the file declares, an encoder that fails, closing included, a full disk) every partial
file is removed; after Ctrl+C (or SIGTERM from the command line) on a file they are closed and kept, playable, under
the partial names (unless no frame was written yet or closing failed). A camera runs until `max_frames`, Ctrl+C or
`q` in its preview window, sending each processed frame to its sinks (`asbunet.segment.sinks`): recordings stamped
with the capture time, a virtual camera, a preview window.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from asbunet import atomic
from asbunet.data.io import DataError, check_pixels
from asbunet.frames.stream import VideoSegmenter
from asbunet.inference.segmenter import Segmenter
from asbunet.publish import claimed
from asbunet.segment.media import VideoReader, VideoWriter
from asbunet.segment.options import SegmentOptions, output_names, video_outputs
from asbunet.segment.outputs import prepare_output_dir
from asbunet.segment.sinks import FrameSink, PreviewSink, RecordingSink, VirtualCameraSink

QUEUE_SIZE = 4  # frames decoded ahead of the network, and rendered frames waiting for the encoder


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
        written = ", ".join(str(p) for p in self.outputs) or "no file"
        return (
            f"{self.source}: {self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} frames/s){stop} -> {written}"
        )


_DONE = object()


def prefetch(items: Iterable, size: int = QUEUE_SIZE) -> Iterator:
    """Iterates `items` on a background thread, `size` ahead; its exceptions are raised here, in order."""
    buffer: queue.Queue = queue.Queue(size)
    stop = threading.Event()

    def offer(entry: tuple) -> bool:
        """Puts `entry` once there is room; False when the consumer has stopped (it takes nothing more)."""
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((_DONE, None))
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
            offer((_DONE, err))

    thread = threading.Thread(target=produce, name="asbunet-decode", daemon=True)
    thread.start()
    try:
        while True:
            item, err = buffer.get()
            if err is not None:
                raise err
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()


class BackgroundEncoder:
    """Runs `VideoWriter.write`/`write_audio` calls on a thread of its own, `size` frames behind the caller; an
    encoder error is raised at the next call."""

    def __init__(self, writers: Sequence[VideoWriter], size: int = QUEUE_SIZE):
        self.writers = list(writers)
        self.jobs: queue.Queue = queue.Queue(size)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="asbunet-encode", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is not None:
                continue  # drain after a failure
            images, pts, audio = job
            try:
                for writer, image in zip(self.writers, images, strict=True):
                    if image is not None:
                        writer.write(image, pts)
                    writer.write_audio(audio)
            except BaseException as err:  # noqa: BLE001 - raised at the caller's next call
                self.error = err

    def put(self, images: Sequence[np.ndarray | None], pts: int, audio: list) -> None:
        if self.error is not None:
            raise self.error
        self.jobs.put((images, pts, audio))

    def close(self) -> None:
        """Waits for the queued frames, then finishes every file (also after an error); raises the first error of
        the encoding or of closing a file."""
        self.jobs.put(None)
        self.thread.join()
        for writer in self.writers:
            try:
                writer.close()
            except BaseException as err:  # noqa: BLE001 - every file is closed; the first error is raised below
                self.error = self.error or err
        if self.error is not None:
            raise self.error

    @classmethod
    def open(cls, paths: Sequence[Path], kinds: Sequence[str], reader: VideoReader) -> BackgroundEncoder:
        """Writers for `paths` (one per output kind) at the reader's size, timing and audio; on an error the files
        opened so far are closed before it is raised."""
        writers: list[VideoWriter] = []
        try:
            for kind, path in zip(kinds, paths, strict=True):
                size = (reader.width, reader.height)
                writers.append(VideoWriter(path, *size, reader.time_base, reader.rate, kind == "cutout", reader.audio))
        except BaseException:
            for writer in writers:
                with contextlib.suppress(Exception):
                    writer.close()
            raise
        return cls(writers)


def _with_audio(reader: VideoReader) -> Iterator[tuple]:
    """`(frame, audio packets read with it)`, then `(None, the audio after the last frame)`."""
    for frame in reader:
        yield frame, reader.take_audio()
    yield None, reader.take_audio()


def segment_video(
    segmenter: Segmenter,
    path: str | Path,
    targets: Sequence[Path],
    options: SegmentOptions | None = None,
    progress: bool = True,
) -> VideoResult:
    """Segments a video file into `targets`, one per output kind in `options` order (see
    `asbunet.segment.files.planned_outputs`).

    Raises:
        DataError: the file is missing, unreadable, too large, holds no decodable frame, or fewer frames than its
            header declares (truncated). OutputBusyError: another process is writing one of `targets`. OSError: an
            output cannot be written (every output of the video is removed then).
    """
    options = options or SegmentOptions()
    source = str(path)
    kinds = video_outputs(options, source)
    if len(targets) != len(kinds):
        raise ValueError(f"{source}: {len(targets)} output files given for {len(kinds)} outputs ({', '.join(kinds)})")
    video = VideoSegmenter(segmenter, options.frame)
    reader = VideoReader(path)
    total = reader.frames or None
    if options.max_frames is not None:
        total = options.max_frames if total is None else min(total, options.max_frames)
    frames, ended, closed, partials = 0, False, False, []
    bar = tqdm(total=total, desc=Path(source).name, unit="frame", disable=not progress, dynamic_ncols=True)
    start = time.perf_counter()
    try:
        with claimed(targets) as group:  # all the outputs, or none
            partials = [group.temporary(t, partial=True) for t in targets]
            encoder = BackgroundEncoder.open(partials, kinds, reader)
            try:
                frame = None
                for frame, audio in prefetch(_with_audio(reader)):
                    if frame is None or (options.max_frames is not None and frames >= options.max_frames):
                        break
                    if frame.rgb.shape[:2] != (reader.height, reader.width):
                        raise DataError(
                            f"{source}: frame {frames} is {frame.rgb.shape[1]}x{frame.rgb.shape[0]}, the stream is "
                            f"{reader.width}x{reader.height}; resizing streams are not supported"
                        )
                    result = video.process(frame.rgb)
                    encoder.put([result.render(kind) for kind in kinds], frame.pts, audio)
                    frames += 1
                    bar.update()
                if frame is None:  # the whole file: the audio after the last frame too
                    ended = True
                    encoder.put([None] * len(kinds), 0, audio)
            except KeyboardInterrupt:
                with contextlib.suppress(Exception):  # a file that cannot be closed is removed with the others
                    encoder.close()
                    closed = True
                if frames and closed:
                    group.keep()  # closed and playable under the partial names
                raise
            except BaseException:
                with contextlib.suppress(Exception):  # the first error says more than what closing then raises
                    encoder.close()
                raise
            encoder.close()  # an error here (a full disk) removes every file of the group
            if frames == 0:
                raise DataError(f"{source}: no frame could be read (empty, corrupt or unsupported video)")
            if ended and frames < reader.frames:
                raise DataError(
                    f"{source}: only {frames} of the {reader.frames} frames its header declares could be decoded "
                    "(the file is truncated or damaged); no output was kept"
                )
    except OSError as err:  # an output that could not be written: named by its final name (its partial one is gone)
        if type(err) is not OSError:
            raise
        text = str(err)
        for partial, target in zip(partials, targets, strict=False):
            text = text.replace(str(partial), str(target))
        raise OSError(text) from None
    finally:
        bar.close()
        reader.close()
    return VideoResult(source, frames, time.perf_counter() - start, list(targets))


def segment_video_file(
    segmenter: Segmenter,
    path: str | Path,
    output: str | Path,
    options: SegmentOptions | None = None,
    progress: bool = True,
) -> VideoResult:
    """Segments a video file into `output/<stem>_<kind>.<ext>` (e.g. `talk_blur.mp4`, `talk_cutout.webm`)."""
    options = options or SegmentOptions()
    path = Path(path)
    kinds = video_outputs(options, str(path))
    targets = [Path(output) / f"{path.stem}{output_names(k, options.frame.background, True)}" for k in kinds]
    if any(t.resolve() == path.resolve() for t in targets):
        raise ValueError(f"{path}: output would overwrite the input; choose another output folder")
    prepare_output_dir(output)
    return segment_video(segmenter, path, targets, options, progress)


def open_camera(index: int) -> cv2.VideoCapture:
    """Opens camera `index` (0 is the first); `DataError` when none opens."""
    capture = cv2.VideoCapture(int(index))
    if not capture.isOpened():
        capture.release()
        raise DataError(f"camera {index}: could not be opened (no camera at this index, no permission, or in use)")
    return capture


def camera_frames(capture: cv2.VideoCapture, source: str) -> Iterator[np.ndarray]:
    """RGB frames of an opened capture until it ends; the capture is released at the end."""
    try:
        while True:
            ok, bgr = capture.read()
            if not ok or bgr is None:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def run_live(
    video: VideoSegmenter,
    frames: Iterable[np.ndarray],
    sinks: dict[str, list[FrameSink]],
    source: str,
    max_frames: int | None = None,
    progress: bool = True,
) -> tuple[int, float, bool]:
    """Processes live frames as they come and sends each output kind to its sinks (`{"effect": [virtual camera,
    window], "mask": [recording]}`); stops at the end of `frames`, after `max_frames`, on Ctrl+C or when a preview
    window is closed. Returns (frames processed, seconds, interrupted)."""
    windows = [s for group in sinks.values() for s in group if isinstance(s, PreviewSink)]
    count, interrupted, rate = 0, False, 0.0
    bar = tqdm(desc=source, unit="frame", disable=not progress, dynamic_ncols=True)
    start = last = time.perf_counter()
    try:
        for frame in frames:
            check_pixels(source, frame.shape[1], frame.shape[0])
            result = video.process(frame)
            for kind, group in sinks.items():
                image = result.render(kind)
                for sink in group:
                    sink.send(image)
            count += 1
            now = time.perf_counter()
            rate = 0.9 * rate + 0.1 / max(now - last, 1e-6) if count > 1 else 1.0 / max(now - last, 1e-6)
            last = now
            for window in windows:
                window.fps = rate
            bar.update()
            bar.set_postfix(fps=f"{rate:.1f}")
            if (max_frames is not None and count >= max_frames) or any(w.stopped for w in windows):
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        for group in sinks.values():
            for sink in group:
                sink.close()
    return count, time.perf_counter() - start, interrupted


def segment_camera(
    segmenter: Segmenter,
    index: int,
    output: str | Path | None,
    options: SegmentOptions | None = None,
    progress: bool = True,
    virtual_camera: str | bool = False,
    preview: bool = False,
) -> VideoResult:
    """Segments camera `index` live until `max_frames`, Ctrl+C or `q` in the preview.

    Args:
        output: folder of the recordings `camera<index>_<kind>.<ext>` (the kinds of `options.save`; by default the
            effect, unless a virtual camera is the destination); None records nothing.
        virtual_camera: send the effect to a virtual camera (True: the first free device; a string: that device,
            e.g. `/dev/video10`).
        preview: show the effect in a window with the frames per second.

    Raises:
        DataError: no camera at `index`. SinkError: no virtual camera device, or no GUI for the preview.
    """
    options = options or SegmentOptions()
    source = f"camera {index}"
    kinds = video_outputs(options, source) if (options.save is not None or not virtual_camera) else ()
    capture = open_camera(index)
    sinks: dict[str, list[FrameSink]] = {}
    targets: list[Path] = []
    partials: list[Path] = []
    try:
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        check_pixels(source, width, height)
        fps = capture.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and 0 < fps <= 240 else 30.0
        if virtual_camera:
            device = virtual_camera if isinstance(virtual_camera, str) else None
            sinks.setdefault("effect", []).append(VirtualCameraSink(width, height, fps, device))
        if preview:
            sinks.setdefault("effect", []).append(PreviewSink(f"asbunet - {source}"))
        if kinds and output is not None:
            out = prepare_output_dir(output)
            for kind in kinds:
                target = out / f"camera{index}{output_names(kind, options.frame.background, True)}"
                targets.append(target)
                partials.append(atomic.partial_path(target))
                sinks.setdefault(kind, []).append(
                    RecordingSink(partials[-1], width, height, fps, alpha=kind == "cutout")
                )
    except BaseException:
        capture.release()
        for group in sinks.values():
            for sink in group:
                sink.close()
        raise
    video = VideoSegmenter(segmenter, options.frame)
    count, seconds, interrupted = run_live(
        video, camera_frames(capture, source), sinks, source, options.max_frames, progress
    )
    for partial, target in zip(partials, targets, strict=True):
        if count:
            atomic.commit(partial, target)
        else:
            partial.unlink(missing_ok=True)
    if count == 0:
        raise DataError(f"{source}: delivered no frame")
    return VideoResult(source, count, seconds, targets, interrupted)
