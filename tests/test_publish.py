"""Concurrent runs, full disks, writer errors and odd folder entries: nothing wrong under a final name, every input's
outputs all there or none, summaries that match the disk, nothing skipped in silence, messages in words."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import tiny_onnx

from asbunet import atomic, publish
from asbunet.cli import main
from asbunet.data.io import DataError
from asbunet.inference.segmenter import Segmenter
from asbunet.segment.files import Report, collect_inputs, failure_message, segment_files
from asbunet.segment.media import VideoReader, VideoWriter
from asbunet.segment.options import SegmentOptions

REPO = Path(__file__).resolve().parents[1]
VIDEO_OUTPUTS = SegmentOptions(save=("mask", "effect"))


def brightness_runner(batch: np.ndarray) -> np.ndarray:
    return (batch.mean(axis=1, keepdims=True) * 8.0).astype(np.float32)  # (B, 1, h, w)


@pytest.fixture
def segmenter() -> Segmenter:
    return Segmenter(brightness_runner, 32)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    path.write_bytes(tiny_onnx())
    return path


def noise_clip(path: Path, frames: int, seed: int = 0, faststart: bool = False, size=(64, 48)) -> Path:
    """An H.264 clip of random frames (so that it does not compress to nothing); `faststart`: index at the front."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if faststart:
        import av

        with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
            for i in range(frames):
                frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (size[1], size[0], 3), np.uint8), "rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        return path
    with VideoWriter(path, *size, Fraction(1, 25), Fraction(25)) as writer:
        for i in range(frames):
            writer.write(rng.integers(0, 255, (size[1], size[0], 3), np.uint8), i)
    return path


def photo(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (48, 64, 3), np.uint8))
    return path


def frame_count(path: Path) -> int:
    with VideoReader(path) as reader:
        return sum(1 for _ in reader)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def assert_no_leftovers(folder: Path) -> None:
    """No temporary, partial or lock file: only final names."""
    left = [n for n in names(folder) if n.startswith(".") or ".partial." in n or n.endswith(".lock")]
    assert not left, f"left behind in {folder}: {left}"


# ---------------------------------------------------------------------------------------------------------------
# Claiming and publishing
# ---------------------------------------------------------------------------------------------------------------


def test_a_group_is_published_whole_replacing_earlier_outputs_or_not_at_all(tmp_path, monkeypatch):
    a, b = tmp_path / "x.png", tmp_path / "x_prob.png"
    for content in (b"first", b"second"):  # the second run replaces the first run's outputs
        with publish.claimed([a, b]) as group:
            for path in (a, b):
                tmp = group.temporary(path)
                assert tmp.parent == tmp_path and tmp.name.startswith(f".{path.stem}.{os.getpid()}-")
                tmp.write_bytes(content)
        assert a.read_bytes() == b.read_bytes() == content
    assert names(tmp_path) == ["x.png", "x_prob.png"]

    with pytest.raises(RuntimeError), publish.claimed([a, b]) as group:  # fails before publishing: untouched
        group.temporary(a).write_bytes(b"third")
        raise RuntimeError("the encoder fails")
    assert a.read_bytes() == b"second" and names(tmp_path) == ["x.png", "x_prob.png"]

    real, calls = os.replace, []

    def second_rename_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(publish.os, "replace", second_rename_fails)
    with pytest.raises(OSError, match=r"x_prob.png: could not be renamed into place \(No space left on device\)"):
        with publish.claimed([a, b]) as group:
            for path in (a, b):
                group.temporary(path).write_bytes(b"fourth")
    # the file this run renamed already is removed with the rest; the one it could not replace keeps the earlier
    # run's content
    assert names(tmp_path) == ["x_prob.png"] and b.read_bytes() == b"second"
    monkeypatch.undo()
    b.unlink()
    with pytest.raises(OSError, match="x.png: the writer produced no file"), publish.claimed([a]):
        pass
    assert names(tmp_path) == []


CLAIM = """
import sys, time
from pathlib import Path
from asbunet.publish import OutputBusyError, claimed
try:
    with claimed([Path(sys.argv[1])]) as group:
        group.temporary(Path(sys.argv[1])).write_text("child")
        print("claimed", flush=True)
        time.sleep(float(sys.argv[2]))
except OutputBusyError as err:
    print(err)
    sys.exit(3)
"""


def test_a_claimed_name_is_refused_to_another_process_until_released(tmp_path):
    target = tmp_path / "clip_blur.mp4"
    child = [sys.executable, "-c", CLAIM, str(target)]
    with publish.claimed([target]) as group:
        group.temporary(target).write_text("parent")
        busy = subprocess.run([*child, "0"], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert busy.returncode == 3, busy.stderr
        who = f"another asbunet run (process {os.getpid()})"
        assert busy.stdout.strip() == f"{target} is being written by {who} at the same time"
    assert target.read_text() == "parent"
    assert subprocess.run([*child, "0"], capture_output=True, timeout=60, cwd=REPO).returncode == 0
    assert target.read_text() == "child"

    holder = subprocess.Popen([*child, "60"], stdout=subprocess.PIPE, text=True, cwd=REPO)  # killed while it holds
    try:
        assert holder.stdout.readline().strip() == "claimed"
        with pytest.raises(publish.OutputBusyError, match=f"process {holder.pid}"), publish.claimed([target]):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    finally:
        holder.kill()
        holder.stdout.close()
    with publish.claimed([target]) as group:  # the kernel released its lock; its empty lock file is reused
        group.temporary(target).write_text("after the kill")
    assert target.read_text() == "after the kill"
    assert [n for n in names(tmp_path) if n.endswith(".lock")] == []


RUNS = """
import contextlib, io, json, sys, time
from pathlib import Path
from asbunet import publish
from asbunet.cli import main

me, other, sync, plan = sys.argv[1], sys.argv[2], Path(sys.argv[3]), json.loads(sys.argv[4])
current = [0]
claim = publish.OutputGroup.claim


def held(group):  # the run that claims first holds its claim until the other run of the round has ended
    claim(group)
    deadline = time.monotonic() + 30
    while not (sync / f"done-{current[0]}-{other}").exists() and time.monotonic() < deadline:
        time.sleep(0.002)


publish.OutputGroup.claim = held
for number, argv in enumerate(plan):
    current[0] = number
    while not (sync / f"go-{number}").exists():
        time.sleep(0.002)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
    result = {"code": code, "out": out.getvalue(), "err": err.getvalue()}
    (sync / f"result-{number}-{me}.json").write_text(json.dumps(result))
    (sync / f"done-{number}-{me}").touch()
"""


@pytest.mark.slow
def test_two_runs_into_one_folder_one_publishes_and_the_other_names_the_clash(tmp_path, onnx_model):
    """Two `asbunet segment` processes write `clip.mp4`'s outputs into one folder at once, for 10 rounds with two
    different videos of that name and 10 with the same video: each round exactly one run publishes (its own, complete
    video under the final names, replacing the earlier round's) and the other exits 2 naming the clash."""
    sources = {"A": noise_clip(tmp_path / "dA" / "clip.mp4", 12, 1), "B": noise_clip(tmp_path / "dB" / "clip.mp4", 16)}
    frames = {str(sources["A"]): 12, str(sources["B"]): 16}
    out, sync = tmp_path / "out", tmp_path / "sync"
    sync.mkdir()
    rounds = 10

    def argv(source: Path) -> list[str]:
        return ["segment", str(source), "--output", str(out), "--model", str(onnx_model), "--save", "mask,effect"]

    plans = {
        "A": [argv(sources["A"])] * rounds + [argv(sources["A"])] * rounds,
        "B": [argv(sources["B"])] * rounds + [argv(sources["A"])] * rounds,  # then the same input twice
    }
    procs = {
        me: subprocess.Popen(
            [sys.executable, "-c", RUNS, me, other, str(sync), json.dumps(plans[me])],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me, other in (("A", "B"), ("B", "A"))
    }
    try:
        for number in range(2 * rounds):
            (sync / f"go-{number}").touch()
            deadline = time.monotonic() + 60
            results = {}
            while len(results) < 2:
                for me, proc in procs.items():
                    path = sync / f"result-{number}-{me}.json"
                    if me not in results and path.is_file() and (sync / f"done-{number}-{me}").exists():
                        results[me] = json.loads(path.read_text())
                    assert proc.poll() is None or me in results, proc.stderr.read()[-3000:]
                assert time.monotonic() < deadline, f"round {number}: no result"
                time.sleep(0.005)
            winners = [me for me, r in results.items() if r["code"] == 0]
            assert len(winners) == 1, f"round {number}: {results}"
            (winner,) = winners
            (loser,) = set(results) - {winner}
            source = plans[winner][number][1]
            lost = results[loser]
            assert lost["code"] == 2 and "Traceback" not in lost["err"], lost
            who = f"another asbunet run (process {procs[winner].pid})"
            assert f"{out / 'clip_mask.mp4'} is being written by {who} at the same time" in lost["err"], lost["err"]
            assert lost["out"].strip() == f"0 written; 1 failed: {plans[loser][number][1]}"
            assert results[winner]["out"].strip() == "1 written (2 files)"
            assert names(out) == ["clip_blur.mp4", "clip_mask.mp4"]  # nothing else: no partial, temporary or lock file
            for name in names(out):
                assert frame_count(out / name) == frames[source], f"round {number}: {name} is not {source}'s video"
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()
            proc.stderr.close()


# ---------------------------------------------------------------------------------------------------------------
# Full disks and writer errors
# ---------------------------------------------------------------------------------------------------------------


def test_a_photo_whose_third_output_hits_a_full_disk_keeps_none(tmp_path, segmenter, monkeypatch):
    folder = tmp_path / "in"
    for i in range(3):
        photo(folder / f"p{i}.jpg", i)
    real, calls = atomic.write_bytes, []

    def disk_full_once(path, data, sync=False):
        calls.append(path)
        if len(calls) == 6:  # p1's third output: half written, then the disk is full
            Path(path).write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data, sync)

    monkeypatch.setattr(atomic, "write_bytes", disk_full_once)
    out = tmp_path / "out"
    options = SegmentOptions(save=("mask", "prob", "overlay"))
    report = segment_files(segmenter, [folder], out, options, False, lambda line: None)
    assert [p.name for p, _ in report.failed] == ["p1.jpg"]
    disk_full = f"{out / 'p1_overlay.jpg'}: could not write (No space left on device)"
    assert report.failed[0][1] == f"{folder / 'p1.jpg'}: {disk_full}"
    assert names(out) == sorted(f"p{i}{s}" for i in (0, 2) for s in (".png", "_prob.png", "_overlay.jpg"))
    assert report.summary() == f"2 written (6 files); 1 failed: {folder / 'p1.jpg'}"
    assert sorted(report.written) == sorted(out / n for n in names(out))  # the summary counts what is on disk


def fail_opening_the_second_writer(monkeypatch):
    real, opened = VideoWriter.__init__, []

    def init(self, path, *args, **kwargs):
        opened.append(path)
        if len(opened) == 2:
            Path(path).write_bytes(b"\x00" * 100)  # as if FFmpeg had started the file
            raise OSError(f"{path}: could not create the file (no space left on device)")
        real(self, path, *args, **kwargs)

    monkeypatch.setattr(VideoWriter, "__init__", init)
    return "could not create the file (no space left on device)"


def fail_writing_frame_5(monkeypatch):
    real = VideoWriter.write

    def write(self, image, pts):
        if self.frames == 5:
            raise OSError(f"{self.path}: could not write a frame (no space left on device)")
        real(self, image, pts)

    monkeypatch.setattr(VideoWriter, "write", write)
    return "could not write a frame (no space left on device)"


def fail_closing(monkeypatch):
    real = VideoWriter.close

    def close(self):
        real(self)  # the file is complete on disk, then the encoder reports the disk full
        raise OSError(f"{self.path}: could not finish the file (no space left on device)")

    monkeypatch.setattr(VideoWriter, "close", close)
    return "could not finish the file (no space left on device)"


def fail_the_second_rename(monkeypatch):
    real, calls = os.replace, []

    def replace(src, dst):
        calls.extend([dst] if Path(dst).name.startswith("clip") else [])
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(publish.os, "replace", replace)
    return "could not be renamed into place (Input/output error)"


@pytest.mark.parametrize(
    "inject", [fail_opening_the_second_writer, fail_writing_frame_5, fail_closing, fail_the_second_rename]
)
def test_every_video_writer_error_removes_this_runs_files(tmp_path, segmenter, monkeypatch, inject):
    clip = noise_clip(tmp_path / "in" / "clip.mp4", 12)
    still = photo(tmp_path / "in" / "still.jpg")
    problem = inject(monkeypatch)
    out = tmp_path / "out"
    report = segment_files(segmenter, [clip, still], out, VIDEO_OUTPUTS, False, lambda line: None)
    assert [p for p, _ in report.failed] == [clip]
    message = report.failed[0][1]
    assert message.startswith(f"{clip}: {out / 'clip_'}") and message.endswith(problem), message
    assert ".partial" not in message and "Errno" not in message
    assert names(out) == ["still.png", "still_blur.jpg"]  # the video left nothing, the photo beside it is written
    assert report.summary() == f"1 written (2 files); 1 failed: {clip}"


def test_decoding_ahead_stops_when_the_encoder_fails_with_every_frame_decoded():
    """The decoder thread has put the last frames and waits to put the end while the consumer stops on an error: it
    must not wait forever (the encoder error of a short video hung the run here)."""
    import threading

    from asbunet.segment.video import prefetch

    def consume() -> None:
        frames = prefetch(iter(range(3)), size=2)
        next(frames)
        time.sleep(0.3)  # the producer has put frames 1 and 2 and waits to put the end
        frames.close()  # the consumer stops, as on an encoder error

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "prefetch hung after its consumer stopped"


def test_ctrl_c_keeps_closed_partial_videos_unless_closing_fails(tmp_path, segmenter, monkeypatch):
    from asbunet.frames import stream

    clip = noise_clip(tmp_path / "clip.mp4", 12)
    real, seen = stream.VideoSegmenter.process, []

    def interrupted(self, rgb):  # Ctrl+C while the fourth frame is segmented
        seen.append(1)
        if len(seen) % 4 == 0:
            raise KeyboardInterrupt
        return real(self, rgb)

    monkeypatch.setattr(stream.VideoSegmenter, "process", interrupted)
    out = tmp_path / "kept"
    with pytest.raises(KeyboardInterrupt):
        segment_files(segmenter, [clip], out, VIDEO_OUTPUTS, False, lambda line: None)
    kept = names(out)
    assert [re.sub(r"\.\d+-[0-9a-f]{8}\.partial", ".partial", n) for n in kept] == [
        "clip_blur.partial.mp4",
        "clip_mask.partial.mp4",
    ]
    assert all(frame_count(out / n) == 3 for n in kept)  # closed: playable up to the last frame written

    fail_closing(monkeypatch)
    out = tmp_path / "removed"
    with pytest.raises(KeyboardInterrupt):
        segment_files(segmenter, [clip], out, VIDEO_OUTPUTS, False, lambda line: None)
    assert names(out) == []


def tmpfs_available(folder: Path) -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    probe = ["unshare", "--user", "--map-root-user", "--mount", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs"]
    return subprocess.run([*probe, str(folder)], capture_output=True, timeout=30).returncode == 0


FULL_DISK = """
import contextlib, io, json, subprocess, sys
from pathlib import Path
from asbunet.cli import main

inputs, model, base = sys.argv[1], sys.argv[2], Path(sys.argv[3])
SAVE = "mask,prob,overlay,effect"
results = []
for size in sys.argv[4:]:
    out, copy = base / f"tmpfs-{size}", base / f"copy-{size}"
    out.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(out)], check=True)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(["segment", inputs, "--output", str(out), "--model", model, "--save", SAVE])
        except SystemExit as stop:
            code = stop.code
    subprocess.run(["cp", "-a", str(out), str(copy)], check=True)
    subprocess.run(["umount", str(out)], check=True)  # fails while a file on it is still open
    results.append({"size": size, "code": code, "out": stdout.getvalue(), "err": stderr.getvalue()})
print(json.dumps(results))
"""


@pytest.mark.slow
def test_a_full_tmpfs_leaves_whole_inputs_only_and_a_summary_that_matches(tmp_path, onnx_model):
    """`segment` of 4 photos (4 outputs each) and a 60-frame video into tmpfs file systems too small for them, the
    disk filling up at different points (photo outputs, video frames, closing the videos): each input has all its
    outputs or none, every file under a final name is whole, no partial file is left, and the summary and the exit
    status say what is on disk."""
    if not tmpfs_available(tmp_path / "probe"):
        pytest.skip("mounting a tmpfs needs `unshare --user --mount` (user namespaces) on this machine")
    folder = tmp_path / "in"
    for i in range(4):
        photo(folder / f"p{i}.jpg", i)
    noise_clip(folder / "clip.mp4", 60, size=(128, 96))
    sizes = ["16k", "48k", "100k", "300k", "650k"]  # everything written needs about 720 kB
    child = [sys.executable, "-c", FULL_DISK, str(folder), str(onnx_model), str(tmp_path), *sizes]
    namespace = ["unshare", "--user", "--map-root-user", "--mount"]
    done = subprocess.run([*namespace, *child], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = {f"p{i}.jpg": [f"p{i}{s}" for s in (".png", "_prob.png", "_overlay.jpg", "_blur.jpg")] for i in range(4)}
    outputs["clip.mp4"] = [f"clip{s}.mp4" for s in ("_mask", "_prob", "_overlay", "_blur")]
    video_failed = 0
    for result in json.loads(done.stdout):
        copy = tmp_path / f"copy-{result['size']}"
        on_disk = names(copy)
        assert_no_leftovers(copy)
        whole = [name for name, files in outputs.items() if set(files) <= set(on_disk)]
        assert sorted(on_disk) == sorted(f for name in whole for f in outputs[name]), result  # all or none
        failed = sorted(set(outputs) - set(whole))
        for name in on_disk:
            if name.endswith(".mp4"):
                assert frame_count(copy / name) == 60
            else:
                assert cv2.imread(str(copy / name)) is not None, name
        summary = f"{len(whole)} written" + (f" ({len(on_disk)} files)" if on_disk else "")
        if failed:
            summary += f"; {len(failed)} failed: " + ", ".join(str(folder / n) for n in outputs if n in failed)
        assert result["out"].strip() == summary
        assert result["code"] == (0 if not failed else 1 if whole else 2)
        assert "Traceback" not in result["err"] and "Errno" not in result["err"]
        video_failed += "clip.mp4" in failed
    assert video_failed >= 3  # the video failed at several sizes, some after every photo was written


# ---------------------------------------------------------------------------------------------------------------
# What was not segmented, and why
# ---------------------------------------------------------------------------------------------------------------


def test_truncated_video_with_its_index_in_front_fails_naming_both_counts(tmp_path, segmenter):
    whole = noise_clip(tmp_path / "whole" / "clip.mp4", 30, faststart=True)
    cut = tmp_path / "cut" / "clip.mp4"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    lines: list[str] = []
    report = segment_files(segmenter, [cut], tmp_path / "out", VIDEO_OUTPUTS, False, lines.append)
    ((failed, message),) = report.failed
    decoded = frame_count(cut)
    assert failed == cut and 0 < decoded < 30
    assert message == (
        f"{cut}: only {decoded} of the 30 frames its header declares could be decoded (the file is truncated or "
        "damaged); no output was kept"
    )
    assert lines == [f"failed: {message}"] and names(tmp_path / "out") == []
    report = segment_files(segmenter, [whole], tmp_path / "out", VIDEO_OUTPUTS, False, lines.append)
    assert report.processed == 1 and not report.failed and frame_count(tmp_path / "out" / "clip_mask.mp4") == 30


def test_folder_entries_not_segmented_are_named_with_the_reason(tmp_path, segmenter):
    folder = tmp_path / "in"
    photo(folder / "good.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop2.jpg")
    (folder / "loop2.jpg").symlink_to(folder / "loop.jpg")
    (folder / "dangling.png").symlink_to(tmp_path / "gone.png")
    os.mkfifo(folder / "fifo.jpg")
    (folder / "x.jpg").mkdir()
    (folder / "notes.txt").write_text("not an image")
    (folder / "README").write_text("no extension")
    lines: list[str] = []
    report = segment_files(segmenter, [folder], tmp_path / "out", None, False, lines.append)
    reasons = {
        "README": "no extension",
        "dangling.png": f"dangling symlink to {tmp_path / 'gone.png'}",
        "fifo.jpg": "a FIFO, not a regular file",
        "loop.jpg": "symlink loop",
        "loop2.jpg": "symlink loop",
        "notes.txt": "unsupported extension .txt",
        "x.jpg": "a folder, not a regular file",
    }
    assert report.skipped == [(folder / name, reason) for name, reason in reasons.items()]
    assert lines[:7] == [f"skipped: {folder / name}: {reason}" for name, reason in reasons.items()]
    assert report.summary() == "1 written (1 file); 7 skipped: " + ", ".join(
        f"{folder / name} ({reason})" for name, reason in reasons.items()
    )
    assert names(tmp_path / "out") == ["good.png"]
    for name, problem in [("fifo.jpg", "a FIFO, not a regular file"), ("dangling.png", "dangling symlink")]:
        with pytest.raises(DataError, match=f"{name}: {problem}"):
            collect_inputs([folder / name])
    skipped: list = []
    assert collect_inputs([str(folder / "*.jpg")], skipped) == [folder / "good.jpg"]
    assert [p.name for p, _ in skipped] == ["fifo.jpg", "loop.jpg", "loop2.jpg", "x.jpg"]


def test_summaries_read_naturally(tmp_path, capsys):
    assert Report().summary() == "0 written"
    report = Report(written=[Path("a.png")], processed=1, failed=[(Path("clip.mp4"), "clip.mp4: broken")])
    assert report.summary() == "1 written (1 file); 1 failed: clip.mp4"
    report = Report(written=[Path("a.png"), Path("b.png")], processed=2, skipped=[(Path("x.txt"), "unsupported")])
    assert report.summary() == "2 written (2 files); 1 skipped: x.txt (unsupported)"

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    model = tmp_path / "tiny.onnx"
    model.write_bytes(tiny_onnx())
    with pytest.raises(SystemExit) as stop:
        main(["segment", str(clip), "--output", str(tmp_path / "out"), "--model", str(model)])
    captured = capsys.readouterr()
    assert stop.value.code == 2 and captured.out == f"0 written; 1 failed: {clip}\n"
    assert "(0 files)" not in captured.out


def test_messages_say_what_is_wrong_in_words(tmp_path, segmenter):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"garbage" * 10)
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 40)
    (folder / "c.mp4").write_bytes(b"garbage" * 100)
    report = segment_files(segmenter, [folder], tmp_path / "out", None, False, lambda line: None)
    messages = dict((p.name, m) for p, m in report.failed)
    assert messages["a.jpg"] == f"{folder / 'a.jpg'}: not a readable image (corrupt, truncated or unsupported format)"
    assert messages["b.png"].startswith(f"{folder / 'b.png'}: not a readable image (corrupt, truncated")
    assert messages["c.mp4"] == (
        f"{folder / 'c.mp4'}: not a readable video (its data is invalid: the file is corrupt, truncated or not a video)"
    )
    for message in messages.values():
        assert not re.search(r"0x[0-9a-f]+|<_io|Errno|\d{6,}", message), message
    path = Path("in/x.jpg")
    disk_full = failure_message(path, OSError(errno.ENOSPC, "No space left on device", "out/x.png"))
    assert disk_full == "in/x.jpg: no space left on device (out/x.png)"
    assert failure_message(path, RuntimeError("boom")) == "in/x.jpg: RuntimeError: boom"
