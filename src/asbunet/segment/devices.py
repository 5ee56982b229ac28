"""Which video devices this machine has (Linux: `/dev/video*`, v4l2loopback's among them), so that a camera or a
virtual camera that cannot be opened is reported with what exists and how to set it up, before anything is opened.

v4l2loopback registers its devices without a parent, so sysfs shows them under `/sys/devices/virtual/video4linux`;
a camera's device sits under its USB or PCI bus. On other systems (and where sysfs is not mounted) nothing is
known in advance and the checks let OpenCV and pyvirtualcam decide.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from asbunet.data.io import DataError

DEV = Path("/dev")
SYSFS = Path("/sys/class/video4linux")
CAMERA_HELP = (
    "connect a camera and check that `ls /dev/video*` lists it (in a container, pass it in with "
    "--device /dev/video0; in a virtual machine or WSL, attach the USB camera to the guest)"
)


def is_linux() -> bool:
    return sys.platform.startswith("linux")


def video_devices() -> list[str]:
    """The `/dev/videoN` device paths, in number order (empty where there are none, or not on Linux)."""
    if not is_linux() or not DEV.is_dir():
        return []
    found = [p for p in DEV.glob("video*") if re.fullmatch(r"video\d+", p.name)]
    return [str(DEV / p.name) for p in sorted(found, key=lambda p: int(p.name[5:]))]


def loopback_devices() -> list[str] | None:
    """The `/dev/videoN` paths that v4l2loopback made, or None where sysfs cannot tell (not Linux, not mounted)."""
    if not is_linux() or not SYSFS.is_dir():
        return None
    names = {Path(d).name for d in video_devices()}
    virtual = [p for p in SYSFS.iterdir() if p.name in names and "virtual" in p.resolve().parts]
    return [str(DEV / p.name) for p in sorted(virtual, key=lambda p: int(p.name[5:]))]


def describe() -> str:
    """What exists, in words: `no /dev/video* device at all`, or the devices with v4l2loopback's marked."""
    devices = video_devices()
    if not devices:
        return "this machine has no /dev/video* device at all"
    loopbacks = loopback_devices() or []
    return "the video devices here are " + ", ".join(f"{d} (v4l2loopback)" if d in loopbacks else d for d in devices)


def check_camera(index: int) -> None:
    """Raises `DataError` naming what exists when camera `index` (`/dev/video<index>` on Linux) is sure not to open.

    Elsewhere, or when the device exists, nothing is checked: OpenCV then opens it or says it could not.
    """
    if not is_linux() or not DEV.is_dir():
        return
    devices = video_devices()
    if not devices:
        raise DataError(f"camera {index}: no camera found: {describe()}; {CAMERA_HELP}")
    if f"{DEV / f'video{index}'}" not in devices:
        raise DataError(
            f"camera {index}: there is no {DEV / f'video{index}'}; {describe()}: give --camera the number of one"
        )
