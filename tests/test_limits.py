"""Inputs that must not take the run down: decompression bombs, pixel limits, failures isolated per file."""

from __future__ import annotations

import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from asbunet.data import io
from asbunet.data.io import DataError, pixel_limit, read_image, read_mask
from asbunet.inference.segmenter import Segmenter
from asbunet.segment.files import segment_files
from asbunet.segment.options import SegmentOptions

REPO = Path(__file__).resolve().parents[1]


def bomb_png(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A valid 1-bit grayscale PNG of `width x height` black pixels: about 110 kB on disk for 30000x30000, 2.7 GB
    once decoded to RGB. Written row by row, so making it takes no memory."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter type 0, then the packed pixels
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png")


@pytest.fixture
def no_large_decode(monkeypatch):
    """Fails the test instead of decoding more than 10 megapixels (so that a broken check cannot eat the memory)."""
    real = cv2.imdecode

    def guarded(data, flags):
        if data.size > 64 and data[:8].tobytes() == b"\x89PNG\r\n\x1a\n":
            width, height = struct.unpack(">II", data[16:24].tobytes())
            assert width * height <= 10_000_000, f"decoding {width}x{height}: the pixel limit was not applied"
        return real(data, flags)

    monkeypatch.setattr(cv2, "imdecode", guarded)


def brightness_runner(batch: np.ndarray) -> np.ndarray:
    return (batch.mean(axis=1, keepdims=True) * 8.0).astype(np.float32)  # (B, 1, h, w)


def write_photo(path: Path, height: int = 48, width: int = 64) -> Path:
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


def test_bomb_is_refused_from_its_header(bomb, no_large_decode):
    assert bomb.stat().st_size < 1_000_000
    for read in (read_image, read_mask):
        with pytest.raises(DataError, match=r"bomb\.png: 900,000,000 pixels, more than the limit of 89,478,485"):
            read(bomb)


def test_pixel_limit_is_configurable(tmp_path, no_large_decode):
    photo = write_photo(tmp_path / "photo.png", 30, 40)
    with pytest.raises(DataError, match=r"photo\.png: 40x30 is 1,200 pixels, more than the limit of 1,000"):
        read_image(photo, max_pixels=1000)
    with pixel_limit(1000):
        assert io.MAX_PIXELS == 1000
        with pytest.raises(DataError, match="more than the limit of 1,000"):
            read_mask(photo)
    assert io.MAX_PIXELS == 89_478_485
    assert read_image(photo, max_pixels=1200).shape == (30, 40, 3)
    bomb = bomb_png(tmp_path / "wide.png", 3000, 3000)
    with pixel_limit(None):  # no limit: decodes (9 megapixels here)
        assert read_mask(bomb).shape == (3000, 3000)


def test_segment_skips_the_bomb_and_writes_the_photo_beside_it(tmp_path, bomb, no_large_decode):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bomb.png").symlink_to(bomb)
    write_photo(folder / "photo.jpg")
    report = segment_files(Segmenter(brightness_runner, 64), [folder], tmp_path / "out", progress=False, log=print)
    assert report.processed == 1 and [p.name for p in report.written] == ["photo.png"]
    assert [p.name for p, _ in report.failed] == ["bomb.png"] and "more than the limit" in report.failed[0][1]


def test_any_failure_of_one_input_is_reported_and_the_rest_processed(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_photo(folder / name)
    segmenter = Segmenter(brightness_runner, 64)
    real = segmenter.predict

    def flaky(image, warn=True):
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError()
        if len(calls) == 2:
            raise RuntimeError("something unexpected")
        return real(image, warn)

    calls: list[int] = []
    monkeypatch.setattr(segmenter, "predict", flaky)
    report = segment_files(segmenter, [folder], tmp_path / "out", progress=False, log=lambda line: None)
    assert report.processed == 1 and [p.name for p in report.written] == ["c.png"]
    assert report.failed[0][1] == f"{folder / 'a.jpg'}: out of memory while segmenting it"
    assert report.failed[1][1] == f"{folder / 'b.jpg'}: RuntimeError: something unexpected"


def test_video_frames_over_the_limit_are_refused(tmp_path):
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for _ in range(3):
        writer.write(np.full((48, 64, 3), 128, np.uint8))
    writer.release()
    photo = write_photo(tmp_path / "photo.jpg", 32, 32)
    with pixel_limit(2000):
        report = segment_files(
            Segmenter(brightness_runner, 64), [clip, photo], tmp_path / "out", SegmentOptions(), False, print
        )
    assert [p.name for p in report.written] == ["photo.png"]
    assert report.failed == [
        (
            clip,
            f"{clip}: 64x48 is 3,072 pixels, more than the limit of 2,000; refused before decoding (raise the limit "
            "with --max-pixels or asbunet.data.io.pixel_limit if the file is trusted)",
        )
    ]
    assert not list((tmp_path / "out").glob("clip*"))


@pytest.mark.slow
def test_cli_bomb_beside_a_photo_stays_small_and_exits_1(tmp_path, bomb, checkpoint):
    """The command line on the bomb and a photo: the bomb is named and refused, the photo written, exit status 1,
    peak memory under 2 GB. The child's data size is capped at 3 GB, so a missing check fails instead of swapping."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bomb.png").symlink_to(bomb)
    write_photo(folder / "photo.jpg", 480, 640)
    out = tmp_path / "out"

    def cap_memory():
        resource.setrlimit(resource.RLIMIT_DATA, (3 << 30, 3 << 30))

    code = (
        "import resource, sys\nfrom asbunet.cli import main\ntry:\n    code = main(sys.argv[1:])\n"
        "except SystemExit as stop:\n    code = stop.code\n"
        "print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(code)"
    )
    argv = [str(folder), "--output", str(out), "--model", str(checkpoint)]
    proc = subprocess.run(
        [sys.executable, "-c", code, "segment", *argv],
        capture_output=True,
        text=True,
        preexec_fn=cap_memory,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "bomb.png: 900,000,000 pixels, more than the limit" in proc.stderr
    assert f"asbunet segment: failed: {folder / 'bomb.png'}" in proc.stderr
    assert "Traceback" not in proc.stderr and f"1 written (1 file); 1 failed: {folder / 'bomb.png'}" in proc.stdout
    assert [p.name for p in out.iterdir()] == ["photo.png"]
    peak = int(proc.stdout.split("maxrss_kb")[1].split()[0]) * 1024
    assert peak < 2 << 30, f"peak memory {peak / 2**30:.2f} GB"


def test_cli_max_pixels_option(tmp_path, checkpoint, capsys):
    from asbunet.cli import main

    big, small = write_photo(tmp_path / "big.jpg", 32, 32), write_photo(tmp_path / "small.jpg", 16, 16)
    argv = ["segment", str(big), str(small), "--output", str(tmp_path / "o"), "--model", str(checkpoint)]
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--max-pixels", "1000"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "big.jpg: 32x32 is 1,024 pixels, more than the limit of 1,000" in err and "small.jpg" not in err
    assert io.MAX_PIXELS == 89_478_485  # the option holds for the one run only
    assert main(argv) == 0
    assert main([*argv, "--max-pixels", "0"]) == 2 and "--max-pixels must be at least 1" in capsys.readouterr().err
