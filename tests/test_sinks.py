"""Frame sinks: the virtual camera adapter, the preview window's GUI check, recordings stamped with capture time."""

import sys
import types

import av
import cv2
import numpy as np
import pytest

from asbunet import Segmenter
from asbunet.cli import main
from asbunet.segment import effects, sinks, video
from asbunet.segment.options import SegmentOptions
from asbunet.segment.stream import VideoSegmenter


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
    options = SegmentOptions(effect=effects.ColorBackground((0, 255, 0)), smooth=0.5)
    result = video.segment_camera(segmenter, 0, None, options, progress=False, virtual_camera=True)
    camera = FakeCamera.opened[0]
    assert result.frames == 6 and result.outputs == [] and camera.closed
    assert (camera.width, camera.height, camera.fps) == (64, 48, 15.0)
    reference = VideoSegmenter(segmenter, options)
    capture = cv2.VideoCapture(str(clip))
    for sent in camera.frames:
        expected = reference.process(cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB)).effect
        assert np.array_equal(sent, expected)


def test_cli_virtual_camera_with_a_recording_and_max_frames(tmp_path, monkeypatch, fake_pyvirtualcam, capsys):
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
    clip = grey_clip(tmp_path / "cam.avi")
    monkeypatch.setattr(video, "open_camera", lambda index: cv2.VideoCapture(str(clip)))
    monkeypatch.setattr(Segmenter, "from_pretrained", classmethod(lambda cls, *a, **k: brightness_segmenter()))
    assert main(["segment", "--camera", "0", "--virtual-camera", "/dev/missing"]) == 2
    err = capsys.readouterr().err
    assert "v4l2loopback" in err and "Traceback" not in err
