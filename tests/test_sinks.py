"""Frame sinks: the virtual camera adapter, the preview window's GUI check, recordings stamped with capture time."""

import sys
import types

import av
import numpy as np
import pytest

from asbunet.segment import sinks


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


def test_missing_pyvirtualcam_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # import fails
    with pytest.raises(sinks.SinkError, match=r"asbunet\[camera\]"):
        sinks.VirtualCameraSink(64, 48, 30.0)


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
