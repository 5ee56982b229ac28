"""Video files through PyAV: H.264 with the input's audio, transparent video, variable frame rates kept."""

from fractions import Fraction

import av
import numpy as np
import pytest

from asbunet import Segmenter
from asbunet.data.io import DataError
from asbunet.frames.options import FrameOptions
from asbunet.segment.media import VideoReader, VideoWriter
from asbunet.segment.options import SegmentOptions
from asbunet.segment.video import segment_video_file


def make_clip(path, times_ms, size=(64, 48), audio_codec="aac"):
    """A clip of grey frames shown at `times_ms` (milliseconds) with a 440 Hz tone as long as the video."""
    out = av.open(str(path), "w")
    video = out.add_stream("libx264", rate=25)
    video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
    video.time_base = video.codec_context.time_base = Fraction(1, 1000)
    audio = out.add_stream(audio_codec, rate=16000)
    audio.layout = "mono"
    for i, t in enumerate(times_ms):
        frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 10 * i, np.uint8), format="rgb24")
        frame.pts, frame.time_base = t, Fraction(1, 1000)
        out.mux(video.encode(frame))
    out.mux(video.encode(None))
    samples = 16 * (times_ms[-1] + 40)
    tone = (0.3 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 16000)).astype(np.float32)
    for k in range(0, samples, 1024):
        frame = av.AudioFrame.from_ndarray(tone[None, k : k + 1024], format="flt", layout="mono")
        frame.sample_rate = 16000
        out.mux(audio.encode(frame))
    out.mux(audio.encode(None))
    out.close()
    return path


def transcode(src, dst, alpha=False):
    """Reads `src` and writes its frames (with alpha 128 when `alpha`) and audio to `dst`; returns the frame times."""
    times = []
    with (
        VideoReader(src) as reader,
        VideoWriter(
            dst, reader.width, reader.height, reader.time_base, reader.rate, alpha=alpha, audio=reader.audio
        ) as writer,
    ):
        for frame in reader:
            image = np.dstack([frame.rgb, np.full(frame.rgb.shape[:2], 128, np.uint8)]) if alpha else frame.rgb
            writer.write(image, frame.pts)
            writer.write_audio(reader.take_audio())
            times.append(frame.time)
        writer.write_audio(reader.take_audio())
    return times


def streams(path):
    with av.open(str(path)) as c:
        return {s.type: s.codec_context.name for s in c.streams}, [float(f.time) for f in c.decode(video=0)]


def test_h264_output_keeps_the_audio_and_the_timing(tmp_path):
    src = make_clip(tmp_path / "in.mp4", [40 * i for i in range(12)])
    times = transcode(src, tmp_path / "out.mp4")
    codecs, out_times = streams(tmp_path / "out.mp4")
    assert codecs == {"video": "h264", "audio": "aac"}
    assert np.allclose(out_times, times, atol=2e-3) and len(times) == 12


def test_variable_frame_rate_is_kept(tmp_path):
    times_ms = [0, 100, 120, 220, 240, 500, 520]
    src = make_clip(tmp_path / "vfr.mp4", times_ms)
    transcode(src, tmp_path / "out.mp4")
    _, out_times = streams(tmp_path / "out.mp4")
    assert np.allclose(out_times, np.array(times_ms) / 1000, atol=2e-3)


def test_audio_the_container_cannot_take_is_reencoded(tmp_path):
    src = make_clip(tmp_path / "pcm.mov", [40 * i for i in range(6)], audio_codec="pcm_s16le")
    transcode(src, tmp_path / "out.mp4")
    codecs, _ = streams(tmp_path / "out.mp4")
    assert codecs == {"video": "h264", "audio": "aac"}


@pytest.mark.parametrize("suffix, codec, audio", [(".webm", "vp9", "opus"), (".mov", "prores", "aac")])
def test_transparent_video_keeps_the_alpha_channel(tmp_path, suffix, codec, audio):
    src = make_clip(tmp_path / "in.mp4", [40 * i for i in range(6)])
    transcode(src, tmp_path / f"cut{suffix}", alpha=True)
    codecs, _ = streams(tmp_path / f"cut{suffix}")
    assert codecs == {"video": codec, "audio": audio}
    with av.open(str(tmp_path / f"cut{suffix}")) as c:
        decoder = av.CodecContext.create("libvpx-vp9", "r") if codec == "vp9" else c.streams.video[0].codec_context
        frame = next(f for p in c.demux(video=0) for f in decoder.decode(p))
    assert "a" in frame.format.name.replace("yuv", "")  # yuva...
    assert abs(frame.to_ndarray(format="rgba")[..., 3].mean() - 128) < 3


def test_odd_sizes_are_padded_for_h264(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4", 33, 21) as writer:
        for i in range(3):
            writer.write(np.zeros((21, 33, 3), np.uint8), i * 33)
    with av.open(str(tmp_path / "odd.mp4")) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (34, 22)


def test_alpha_in_mp4_and_unknown_suffixes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="transparency"):
        VideoWriter(tmp_path / "cut.mp4", 32, 32, alpha=True)
    with pytest.raises(ValueError, match=".avi"):
        VideoWriter(tmp_path / "cut.avi", 32, 32)


def test_unreadable_files_are_named(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(DataError, match="bad.mp4"):
        VideoReader(bad)
    with pytest.raises(DataError, match="missing.mp4"):
        VideoReader(tmp_path / "missing.mp4")


def test_segment_writes_h264_with_the_audio_and_timing_and_a_transparent_cutout(tmp_path):
    segmenter = Segmenter(lambda batch: batch.mean(axis=1, keepdims=True).astype(np.float32), input_size=32)
    times_ms = [0, 100, 120, 220, 240, 500, 520, 560]  # a variable frame rate
    clip = make_clip(tmp_path / "talk.mp4", times_ms)
    options = SegmentOptions(save=("effect", "mask", "cutout"), frame=FrameOptions(smooth=0.5))
    result = segment_video_file(segmenter, clip, tmp_path / "out", options, progress=False)
    assert [p.name for p in result.outputs] == ["talk_blur.mp4", "talk_mask.mp4", "talk_cutout.webm"]
    for path in result.outputs[:2]:
        codecs, out_times = streams(path)
        assert codecs == {"video": "h264", "audio": "aac"}
        assert np.allclose(out_times, np.array(times_ms) / 1000, atol=2e-3)
    codecs, out_times = streams(result.outputs[2])
    assert codecs == {"video": "vp9", "audio": "opus"} and len(out_times) == len(times_ms)
    with av.open(str(result.outputs[2])) as c:
        assert c.streams.video[0].metadata.get("alpha_mode") == "1"
    assert not list((tmp_path / "out").glob("*partial*"))
