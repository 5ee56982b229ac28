"""Where live frames go: a frame sink takes each processed RGB frame (`send`) and is closed at the end (`close`).

The camera loop of `asbunet segment --camera N` writes to any number of sinks through this one interface:
`VirtualCameraSink` (a thin adapter over pyvirtualcam: v4l2loopback on Linux, the OBS virtual camera on Windows and
macOS), `PreviewSink` (an OpenCV window, where OpenCV has a GUI build) and `RecordingSink` (a video file, frames
stamped with the time they were captured, so that the recording plays at the speed it was lived).
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from asbunet.extras import install_hint
from asbunet.segment import devices
from asbunet.segment.media import VideoWriter

V4L2LOOPBACK_HELP = (
    "on Linux create one with: sudo apt install v4l2loopback-dkms && "
    'sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label="asbunet"; '
    "on Windows and macOS install OBS Studio and start its virtual camera once (docs/segment.md, Virtual camera)"
)


class FrameSink(Protocol):
    """Receives processed frames, (H, W, 3) uint8 RGB, one per captured frame."""

    def send(self, frame: np.ndarray) -> None: ...

    def close(self) -> None: ...


class SinkError(OSError):
    """A sink cannot be opened; the message says which and how to fix it."""


def import_pyvirtualcam():
    """The pyvirtualcam module, or a `SinkError` saying how to install it."""
    try:
        import pyvirtualcam
    except ImportError:
        raise SinkError(f"--virtual-camera needs pyvirtualcam: {install_hint('camera')}") from None
    return pyvirtualcam


def check_virtual_camera(device: str | None = None) -> None:
    """Raises `SinkError` with what exists and the set-up advice when no virtual camera can be opened: pyvirtualcam
    missing, and (on Linux) no v4l2loopback device or no `device`, all named at once. Run before the camera opens."""
    problems = []
    try:
        import_pyvirtualcam()
    except SinkError as err:
        problems.append(str(err))
    name = "--virtual-camera" if device is None else f"--virtual-camera {device}"
    if devices.is_linux():
        existing = devices.video_devices()
        loopbacks = devices.loopback_devices() if existing else []  # None: sysfs cannot tell
        if device is not None and device not in existing:
            problems.append(f"{name}: no such device; {devices.describe()}; {V4L2LOOPBACK_HELP}")
        elif device is None and loopbacks == []:
            problems.append(f"{name}: no v4l2loopback device; {devices.describe()}; {V4L2LOOPBACK_HELP}")
        elif device is not None and loopbacks is not None and device not in loopbacks:
            problems.append(f"{name}: not a v4l2loopback device; {devices.describe()}; {V4L2LOOPBACK_HELP}")
    if problems:
        raise SinkError("; and ".join(problems))


class VirtualCameraSink:
    """A virtual camera that video-call applications can select, fed through pyvirtualcam.

    Args:
        width, height, fps: the format announced to the applications (the camera's own).
        device: the device to write to (e.g. `/dev/video10`); None lets pyvirtualcam pick the first free one.
    """

    def __init__(self, width: int, height: int, fps: float, device: str | None = None):
        pyvirtualcam = import_pyvirtualcam()
        try:
            self.camera = pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.RGB, device=device)
        except RuntimeError as err:
            where = f"; {devices.describe()}" if devices.is_linux() else ""
            raise SinkError(f"no virtual camera device could be opened ({err}){where}; {V4L2LOOPBACK_HELP}") from None
        self.device = self.camera.device

    def send(self, frame: np.ndarray) -> None:
        self.camera.send(np.ascontiguousarray(frame))

    def close(self) -> None:
        self.camera.close()


def has_gui() -> bool:
    """Whether this OpenCV build can open windows (the `opencv-python-headless` wheel cannot)."""
    try:
        cv2.namedWindow("asbunet-probe", cv2.WINDOW_AUTOSIZE)
        cv2.destroyWindow("asbunet-probe")
    except cv2.error:
        return False
    return True


class PreviewSink:
    """An OpenCV window showing the frames with the frames per second written in a corner; `q` or Esc stops."""

    def __init__(self, title: str = "asbunet"):
        if not has_gui():
            raise SinkError(
                "--preview needs an OpenCV build with a GUI: pip install opencv-python (in place of "
                "opencv-python-headless); the virtual camera and recordings work without it"
            )
        self.title = title
        self.fps = 0.0
        self.stopped = False

    def send(self, frame: np.ndarray) -> None:
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        cv2.putText(bgr, f"{self.fps:.1f} fps", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        cv2.imshow(self.title, bgr)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stopped = True

    def close(self) -> None:
        cv2.destroyWindow(self.title)


class RecordingSink:
    """A video file of the frames, each stamped with the wall-clock time it was sent (milliseconds from the first)."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float, alpha: bool = False):
        self.writer = VideoWriter(path, width, height, Fraction(1, 1000), Fraction(fps).limit_denominator(1001), alpha)
        self.start: float | None = None

    def send(self, frame: np.ndarray) -> None:
        now = time.perf_counter()
        self.start = now if self.start is None else self.start
        self.writer.write(frame, round(1000 * (now - self.start)))

    def close(self) -> None:
        self.writer.close()
