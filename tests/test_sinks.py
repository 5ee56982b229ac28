"""Frame sinks: the virtual camera adapter, the preview window's GUI check, recordings stamped with capture time."""

import sys
import types

import av
import cv2
import numpy as np
import pytest

from asbunet import Segmenter
from asbunet.cli import main
from asbunet.data.io import DataError
from asbunet.frames import effects
from asbunet.frames.options import FrameOptions
from asbunet.frames.stream import VideoSegmenter
from asbunet.segment import devices, sinks, video
from asbunet.segment.options import SegmentOptions


class FakeCamera:
    """Stands in for `pyvirtualcam.Camera`: records what the sink sends."""

    opened: list = []

    def __init__(self, width, height, fps, fmt=None, device=None):
        if device == "/dev/missing":
            raise RuntimeError("'v4l2loopback' backend: No v4l2 loopback device found")
        self.width, self.height, self.fps, self.fmt, self.device = width, height, fps, fmt, device or "/dev/video9"
        self.frames, self.closed = [], False
        FakeCamera.opened.append(self)

    def send(self, frame):
        assert frame.shape == (self.height, self.width, 3) and frame.dtype == np.uint8 and frame.flags.c_contiguous
        self.frames.append(frame.copy())

    def close(self):
        self.closed = True


@pytest.fixture
def fake_pyvirtualcam(monkeypatch):
    module = types.SimpleNamespace(Camera=FakeCamera, PixelFormat=types.SimpleNamespace(RGB="RGB"))
    monkeypatch.setitem(sys.modules, "pyvirtualcam", module)
    FakeCamera.opened = []
    return module


def video_devices(root, monkeypatch, cameras=(), loopbacks=()):
    """A Linux `/dev` and `/sys/class/video4linux` under `root` with `/dev/video<N>` for each camera and v4l2loopback
    device number; sysfs links the loopbacks under `devices/virtual`, as the kernel does, and the cameras under USB."""
    dev, sysfs = root / "dev", root / "sys" / "class" / "video4linux"
    dev.mkdir(parents=True)
    sysfs.mkdir(parents=True)
    for n, bus in [*((n, "pci0000:00/usb1/1-1") for n in cameras), *((n, "virtual") for n in loopbacks)]:
        (dev / f"video{n}").touch()
        target = root / "sys" / "devices" / bus / "video4linux" / f"video{n}"
        target.mkdir(parents=True)
        (sysfs / f"video{n}").symlink_to(target)
    monkeypatch.setattr(devices, "DEV", dev)
    monkeypatch.setattr(devices, "SYSFS", sysfs)
    monkeypatch.setattr(devices, "is_linux", lambda: True)
    return dev


def test_virtual_camera_sink_sends_rgb_frames_in_the_announced_format(fake_pyvirtualcam):
    sink = sinks.VirtualCameraSink(64, 48, 30.0)
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    sink.send(frame[:, ::-1])  # a non-contiguous view is made contiguous
    sink.close()
    camera = FakeCamera.opened[0]
    assert (camera.width, camera.height, camera.fps, camera.fmt) == (64, 48, 30.0, "RGB")
    assert np.array_equal(camera.frames[0], frame[:, ::-1]) and camera.closed and sink.device == "/dev/video9"


def test_missing_virtual_device_says_how_to_create_one(fake_pyvirtualcam):
    with pytest.raises(sinks.SinkError, match="modprobe v4l2loopback"):
        sinks.VirtualCameraSink(64, 48, 30.0, device="/dev/missing")


def test_missing_pyvirtualcam_says_how_to_install_it_from_a_checkout_or_a_wheel(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # import fails
    for check in (lambda: sinks.VirtualCameraSink(64, 48, 30.0), sinks.check_virtual_camera):
        with pytest.raises(
            sinks.SinkError,
            match=r'pip install -e "\.\[camera\]" \(from a checkout\) or pip install "asbunet-.*\.whl\[camera\]"',
        ):
            check()


def test_devices_say_what_exists(tmp_path, monkeypatch):
    video_devices(tmp_path, monkeypatch, cameras=[0, 1], loopbacks=[10])
    assert devices.video_devices() == [str(tmp_path / "dev" / f"video{n}") for n in (0, 1, 10)]
    assert devices.loopback_devices() == [str(tmp_path / "dev" / "video10")]
    assert devices.describe().endswith("video1, " + str(tmp_path / "dev" / "video10") + " (v4l2loopback)")
    devices.check_camera(1)
    with pytest.raises(DataError, match=r"camera 3: there is no .*/dev/video3; the video devices here are"):
        devices.check_camera(3)


def test_no_camera_at_all_says_so(tmp_path, monkeypatch):
    video_devices(tmp_path, monkeypatch)
    with pytest.raises(DataError, match=r"camera 0: no camera found: this machine has no /dev/video\* device at all"):
        devices.check_camera(0)
    monkeypatch.setattr(devices, "is_linux", lambda: False)  # elsewhere OpenCV decides
    devices.check_camera(0)
    assert devices.loopback_devices() is None


@pytest.mark.parametrize(
    "cameras, loopbacks, device, message",
    [
        ((), (), None, r"no v4l2loopback device; this machine has no /dev/video\* device at all; on Linux create one"),
        ((0,), (), None, r"no v4l2loopback device; the video devices here are .*video0; on Linux create one"),
        ((0,), (10,), "/dev/video11", r"--virtual-camera /dev/video11: no such device; the video devices here are"),
        ((0,), (10,), "video0", r"not a v4l2loopback device; .*video10 \(v4l2loopback\)"),
    ],
    ids=["nothing", "camera-only", "missing-device", "a-camera-given"],
)
def test_virtual_camera_check_says_what_exists_and_how_to_set_it_up(
    tmp_path, monkeypatch, fake_pyvirtualcam, cameras, loopbacks, device, message
):
    dev = video_devices(tmp_path, monkeypatch, cameras, loopbacks)
    device = str(dev / device) if device == "video0" else device
    with pytest.raises(sinks.SinkError, match=message) as caught:
        sinks.check_virtual_camera(device)
    assert "modprobe v4l2loopback" in str(caught.value)


def test_virtual_camera_check_passes_with_a_loopback_device(tmp_path, monkeypatch, fake_pyvirtualcam):
    dev = video_devices(tmp_path, monkeypatch, cameras=[0], loopbacks=[10])
    sinks.check_virtual_camera()
    sinks.check_virtual_camera(str(dev / "video10"))


def test_cli_virtual_camera_without_any_device_gives_the_v4l2loopback_advice_before_the_camera(
    tmp_path, monkeypatch, fake_pyvirtualcam, capsys
):
    """No /dev/video* at all: the virtual camera is checked first, so the advice is v4l2loopback's, not a camera's."""
    video_devices(tmp_path, monkeypatch)
    opened = []
    monkeypatch.setattr(video, "open_camera", lambda index: opened.append(index))
    assert main(["segment", "--camera", "0", "--virtual-camera"]) == 2
    err = capsys.readouterr().err
    assert "no /dev/video* device at all" in err and "modprobe v4l2loopback" in err and "camera 0" not in err
    assert opened == [] and FakeCamera.opened == []
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # both missing: both said at once
    assert main(["segment", "--camera", "0", "--virtual-camera"]) == 2
    err = capsys.readouterr().err
    assert err.count("asbunet segment: error: --virtual-camera needs pyvirtualcam: pip install") == 1
    assert "; and --virtual-camera: no v4l2loopback device; this machine has no /dev/video* device at all" in err
    assert main(["segment", "--camera", "0", "--output", str(tmp_path / "out")]) == 2  # a camera alone
    assert "camera 0: no camera found: this machine has no /dev/video* device at all" in capsys.readouterr().err


def test_preview_without_a_gui_build_says_what_to_install(monkeypatch):
    monkeypatch.setattr(sinks, "has_gui", lambda: False)
    with pytest.raises(sinks.SinkError, match="opencv-python"):
        sinks.PreviewSink()


def test_recording_is_stamped_with_the_time_frames_were_sent(tmp_path, monkeypatch):
    clock = iter([10.0, 10.05, 10.30, 10.35])
    monkeypatch.setattr(sinks.time, "perf_counter", lambda: next(clock))
    sink = sinks.RecordingSink(tmp_path / "rec.mp4", 32, 24, 20.0)
    for _ in range(4):
        sink.send(np.zeros((24, 32, 3), np.uint8))
    sink.close()
    with av.open(str(tmp_path / "rec.mp4")) as c:
        times = [float(f.time) for f in c.decode(video=0)]
    assert np.allclose(times, [0.0, 0.05, 0.30, 0.35], atol=2e-3)


def grey_clip(path, frames=6, size=(64, 48)):
    """A clip of a bright square moving over a dark background, written by OpenCV (as a camera delivers frames)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, size)
    for t in range(frames):
        frame = np.full((size[1], size[0], 3), 30, np.uint8)
        frame[12:36, 8 + 3 * t : 32 + 3 * t] = 230
        writer.write(frame)
    writer.release()
    return path


def brightness_segmenter():
    return Segmenter(lambda batch: (8 * batch.mean(axis=1, keepdims=True)).astype(np.float32), input_size=32)


def test_camera_to_virtual_camera_runs_the_frame_api_path(tmp_path, monkeypatch, fake_pyvirtualcam):
    """The camera loop, fed by a clip in place of the device, sends VideoSegmenter's effect frames to the virtual
    camera, in the camera's format, and records nothing unless asked."""
    clip = grey_clip(tmp_path / "cam.avi")
    monkeypatch.setattr(video, "open_camera", lambda index: cv2.VideoCapture(str(clip)))
    segmenter = brightness_segmenter()
    options = SegmentOptions(frame=FrameOptions(effect=effects.ColorBackground((0, 255, 0)), smooth=0.5))
    result = video.segment_camera(segmenter, 0, None, options, progress=False, virtual_camera=True)
    camera = FakeCamera.opened[0]
    assert result.frames == 6 and result.outputs == [] and camera.closed
    assert (camera.width, camera.height, camera.fps) == (64, 48, 15.0)
    reference = VideoSegmenter(segmenter, options.frame)
    capture = cv2.VideoCapture(str(clip))
    for sent in camera.frames:
        expected = reference.process(cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB)).effect
        assert np.array_equal(sent, expected)


def test_cli_virtual_camera_with_a_recording_and_max_frames(tmp_path, monkeypatch, fake_pyvirtualcam, capsys):
    video_devices(tmp_path, monkeypatch, cameras=[0], loopbacks=[10])
    clip = grey_clip(tmp_path / "cam.avi")
    monkeypatch.setattr(video, "open_camera", lambda index: cv2.VideoCapture(str(clip)))
    monkeypatch.setattr(Segmenter, "from_pretrained", classmethod(lambda cls, *a, **k: brightness_segmenter()))
    out = tmp_path / "rec"
    argv = ["segment", "--camera", "0", "--virtual-camera", "--save", "effect", "--max-frames", "4"]
    assert main([*argv, "--output", str(out)]) in (0, None)
    assert len(FakeCamera.opened[0].frames) == 4
    assert [p.name for p in out.iterdir()] == ["camera0_blur.mp4"]
    with av.open(str(out / "camera0_blur.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264" and c.streams.video[0].frames == 4


def test_cli_virtual_camera_without_a_device_fails_cleanly(tmp_path, monkeypatch, fake_pyvirtualcam, capsys):
    video_devices(tmp_path, monkeypatch, cameras=[0])
    clip = grey_clip(tmp_path / "cam.avi")
    monkeypatch.setattr(video, "open_camera", lambda index: cv2.VideoCapture(str(clip)))
    monkeypatch.setattr(Segmenter, "from_pretrained", classmethod(lambda cls, *a, **k: brightness_segmenter()))
    assert main(["segment", "--camera", "0", "--virtual-camera", "/dev/missing"]) == 2
    err = capsys.readouterr().err
    assert "v4l2loopback" in err and "Traceback" not in err
