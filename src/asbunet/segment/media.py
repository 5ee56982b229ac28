"""Video files through FFmpeg (PyAV): frames in with their timestamps, H.264 or transparent video out, audio kept.

- `VideoReader` decodes a file's first video stream to RGB frames, each with its presentation timestamp, so that a
  variable-frame-rate input keeps its timing; the audio packets met on the way are kept for the writers.
- `VideoWriter` encodes by the file's suffix: `.mp4` H.264 (yuv420p, plays in every browser), `.webm` VP9 (with an
  alpha channel for cut-outs), `.mov` ProRes 4444 (with alpha, for editors). Audio is copied packet by packet when
  the container takes its codec, else re-encoded (AAC in `.mp4`/`.mov`, Opus in `.webm`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from asbunet.data.io import DataError, check_pixels

DEFAULT_RATE = Fraction(30)

# suffix -> (video codec, pixel format without alpha, pixel format with alpha, codec options)
VIDEO_FORMATS: dict[str, tuple[str, str, str | None, dict[str, str]]] = {
    ".mp4": ("libx264", "yuv420p", None, {"crf": "20", "preset": "veryfast"}),
    ".webm": ("libvpx-vp9", "yuv420p", "yuva420p", {"crf": "32", "b": "0", "deadline": "realtime", "cpu-used": "8"}),
    ".mov": ("prores_ks", "yuv422p10le", "yuva444p10le", {"profile": "4444"}),
}
# audio codecs each container takes as they are; others are re-encoded to the second entry
AUDIO_COPY: dict[str, tuple[frozenset[str], str]] = {
    ".mp4": (frozenset({"aac", "mp3", "alac", "ac3", "opus"}), "aac"),
    ".webm": (frozenset({"opus", "vorbis"}), "libopus"),
    ".mov": (frozenset({"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le"}), "aac"),
}
CONTAINERS = {".mp4": "mp4", ".webm": "webm", ".mov": "mov"}  # FFmpeg's muxer of each suffix
ALPHA_SUFFIXES = tuple(s for s, fmt in VIDEO_FORMATS.items() if fmt[2] is not None)


def describe(err: BaseException) -> str:
    """What an FFmpeg (or system) error says about a file, in words: no error number, no file name."""
    if isinstance(err, av.error.InvalidDataError):
        return "its data is invalid: the file is corrupt, truncated or not a video"
    if isinstance(err, UnicodeDecodeError):
        return "its metadata is not valid text"
    text = (getattr(err, "strerror", None) or str(err) or type(err).__name__).strip()
    return text[0].lower() + text[1:]


@dataclass(frozen=True)
class Frame:
    """One decoded frame: `rgb` (H, W, 3) uint8, `pts` in the stream's `time_base`, `time` in seconds."""

    rgb: np.ndarray
    pts: int
    time: float


class VideoReader:
    """Decodes the first video stream of `path` to RGB frames; `DataError` names the file when it cannot.

    Iterating yields `Frame`s in presentation order; audio packets read meanwhile wait in `take_audio()`.
    The frame size is checked against the pixel limit (`asbunet.data.io.MAX_PIXELS`) from the stream header, before
    any frame is decoded.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: video file not found")
        try:
            self.container = av.open(str(self.path))
        except (av.FFmpegError, UnicodeDecodeError) as err:
            raise DataError(f"{self.path}: not a readable video ({describe(err)})") from None
        if not self.container.streams.video:
            self.container.close()
            raise DataError(f"{self.path}: holds no video stream")
        self.video = self.container.streams.video[0]
        self.video.thread_type = "AUTO"  # FFmpeg decodes on its own threads, beside the network
        self.audio = self.container.streams.audio[0] if self.container.streams.audio else None
        try:
            check_pixels(self.path, self.width, self.height)
        except DataError:
            self.container.close()
            raise
        self._audio_packets: list[av.Packet] = []

    @property
    def width(self) -> int:
        return int(self.video.codec_context.width)

    @property
    def height(self) -> int:
        return int(self.video.codec_context.height)

    @property
    def rate(self) -> Fraction:
        """The average frame rate (frames per second), 30 when the header gives none."""
        rate = self.video.average_rate or self.video.guessed_rate
        return Fraction(rate) if rate and 0 < rate <= 1000 else DEFAULT_RATE

    @property
    def time_base(self) -> Fraction:
        return Fraction(self.video.time_base) if self.video.time_base else 1 / self.rate

    @property
    def frames(self) -> int:
        """Frame count from the header; 0 when unknown."""
        return int(self.video.frames or 0)

    def take_audio(self) -> list[av.Packet]:
        """The audio packets read since the last call, in file order."""
        packets, self._audio_packets = self._audio_packets, []
        return packets

    def __iter__(self) -> Iterator[Frame]:
        streams = [self.video] + ([self.audio] if self.audio is not None else [])
        step = max(1, round(1 / (self.rate * self.time_base)))  # pts per frame, for streams without timestamps
        index = 0
        try:
            for packet in self.container.demux(*streams):
                if packet.stream.type == "audio":
                    if packet.dts is not None:
                        self._audio_packets.append(packet)
                    continue
                for frame in packet.decode():
                    pts = frame.pts if frame.pts is not None else index * step
                    time = float(pts * self.time_base)
                    yield Frame(frame.to_ndarray(format="rgb24"), pts, time)
                    index += 1
        except av.FFmpegError as err:
            raise DataError(f"{self.path}: frame {index} could not be decoded ({describe(err)})") from None

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoWriter:
    """Encodes frames to `path`, the format chosen by its suffix (`VIDEO_FORMATS`).

    Args:
        width, height: the frames' size. 4:2:0 formats need even sizes: an odd one is padded by repeating the last
            row or column.
        time_base: unit of the timestamps given to `write` (the reader's `time_base` keeps the input's timing).
        rate: nominal frame rate (frames per second), a hint for the encoder and the container.
        alpha: frames are RGBA and the alpha channel is kept (`.webm` or `.mov` only).
        audio: an input audio stream whose packets `write_audio` will receive.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        time_base: Fraction = Fraction(1, 1000),
        rate: Fraction = DEFAULT_RATE,
        alpha: bool = False,
        audio: av.audio.stream.AudioStream | None = None,
    ):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_FORMATS:
            raise ValueError(f"{self.path}: video outputs are {', '.join(VIDEO_FORMATS)}, not {suffix or 'no suffix'}")
        codec, pix_fmt, alpha_fmt, options = VIDEO_FORMATS[suffix]
        if alpha and alpha_fmt is None:
            raise ValueError(f"{self.path}: {suffix} cannot hold transparency; use {' or '.join(ALPHA_SUFFIXES)}")
        self.alpha = alpha
        self.pix_fmt = alpha_fmt if alpha else pix_fmt
        even = self.pix_fmt.startswith(("yuv420", "yuva420"))
        self.width, self.height = (width + width % 2, height + height % 2) if even else (width, height)
        self.time_base = Fraction(time_base)
        self.broken = False  # a write failed: the file is unusable and closing only releases it
        with self._errors("create the file"):
            self._file = open(self.path, "wb")  # noqa: SIM115 - ours to close, whatever FFmpeg's muxer does
        try:
            self.container = av.open(self._file, "w", format=CONTAINERS[suffix])
        except BaseException:
            self._file.close()
            raise
        try:
            self.stream = self.container.add_stream(codec, rate=Fraction(rate).limit_denominator(1001 * 1000))
            self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, self.pix_fmt
            self.stream.time_base = self.time_base
            self.stream.codec_context.time_base = self.time_base
            self.stream.options = dict(options)
            self.stream.thread_type = "AUTO"
            self._audio_in, self._audio_out, self._decoder = None, None, None
            if audio is not None:
                self._add_audio(audio, suffix)
        except BaseException:
            self.broken = True
            self.close()
            raise
        self._last_pts: int | None = None
        self.frames = 0

    def _add_audio(self, audio: av.audio.stream.AudioStream, suffix: str) -> None:
        copyable, fallback = AUDIO_COPY[suffix]
        self._audio_in = audio
        if audio.codec_context.name in copyable:
            self._audio_out = self.container.add_stream_from_template(audio)
        else:  # re-encoded: decoded by a decoder of our own, so that several writers can share the input packets
            self._decoder = av.CodecContext.create(audio.codec_context.name, "r")
            self._decoder.extradata = audio.codec_context.extradata
            self._decoder.sample_rate = audio.codec_context.sample_rate
            self._decoder.layout = audio.codec_context.layout
            self._decoder.format = audio.codec_context.format
            rate = audio.codec_context.sample_rate or 48000
            self._audio_out = self.container.add_stream(fallback, rate=48000 if fallback == "libopus" else rate)
            self._audio_out.layout = "stereo" if audio.codec_context.channels >= 2 else "mono"

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encodes one frame: `image` (H, W, 3) RGB, (H, W, 4) RGBA for an alpha writer, or (H, W) grey, uint8;
        `pts` in `time_base` (a timestamp not after the previous one is moved just after it)."""
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        channels = 4 if self.alpha else 3
        if image.ndim != 3 or image.shape[2] != channels or image.dtype != np.uint8:
            raise ValueError(f"{self.path}: frames must be (H, W, {channels}) uint8, got {image.shape} {image.dtype}")
        pad_h, pad_w = self.height - image.shape[0], self.width - image.shape[1]
        if pad_h or pad_w:
            if pad_h not in (0, 1) or pad_w not in (0, 1):
                raise ValueError(
                    f"{self.path}: frame is {image.shape[1]}x{image.shape[0]}, the video is {self.width}x{self.height}"
                )
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        pts = int(pts)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgba" if self.alpha else "rgb24")
        frame.pts, frame.time_base = pts, self.time_base
        with self._errors("write a frame"):
            self.container.mux(self.stream.encode(frame))
        self.frames += 1

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """FFmpeg and system errors as an `OSError` naming the file, in words (a full disk: "no space left on
        device")."""
        try:
            yield
        except (av.FFmpegError, OSError) as err:
            self.broken = True
            raise OSError(f"{self.path}: could not {doing} ({describe(err)})") from None

    def write_audio(self, packets: list[av.Packet]) -> None:
        """Adds the input's audio packets (from `VideoReader.take_audio`), copied or re-encoded."""
        if self._audio_out is None:
            return
        with self._errors("write the audio"):
            for packet in packets:
                if self._decoder is None:
                    copy = av.Packet(bytes(packet))
                    copy.pts, copy.dts, copy.duration = packet.pts, packet.dts, packet.duration
                    copy.time_base, copy.is_keyframe = packet.time_base, packet.is_keyframe
                    copy.stream = self._audio_out
                    self.container.mux(copy)
                else:
                    data = av.Packet(bytes(packet))
                    data.pts, data.dts, data.time_base = packet.pts, packet.dts, packet.time_base
                    for frame in self._decoder.decode(data):
                        frame.pts = None  # the encoder counts samples; the audio starts with the video
                        self.container.mux(self._audio_out.encode(frame))

    def close(self) -> None:
        """Flushes the encoders and finishes the file; `OSError` naming the file when that fails (a full disk)."""
        try:
            if not self.broken:
                with self._errors("finish the file"):
                    if self.frames:
                        self.container.mux(self.stream.encode(None))
                    if self._decoder is not None:
                        for frame in self._decoder.decode(None):
                            frame.pts = None
                            self.container.mux(self._audio_out.encode(frame))
                        self.container.mux(self._audio_out.encode(None))
                    self.container.close()  # writes the trailer (the index of an .mp4)
                    self._file.close()
        finally:
            if self.broken:  # after a failed write the muxer must not be flushed (FFmpeg can crash): only released
                with contextlib.suppress(OSError, ValueError):
                    self._file.close()
                with contextlib.suppress(av.FFmpegError, OSError, ValueError):
                    self.container.close()  # writes nothing: its file is closed

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
