"""Effects, `asbunet segment` on images, folders and videos, temporal smoothing and the error behaviour."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from asbunet import create_model
from asbunet.cli import main
from asbunet.data.io import DataError
from asbunet.frames import effects
from asbunet.frames.options import FrameOptions
from asbunet.frames.stream import VideoSegmenter
from asbunet.inference.refine import GuidedRefine
from asbunet.inference.runners import TorchRunner
from asbunet.inference.segmenter import Segmenter
from asbunet.segment.files import collect_inputs, planned_outputs, segment_files
from asbunet.segment.options import SegmentOptions
from asbunet.segment.video import open_camera, segment_video_file

# ---------------------------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------------------------


def brightness_runner(batch: np.ndarray) -> np.ndarray:
    """A stand-in network: bright pixels are person (logit grows with the normalized intensity)."""
    return (batch.mean(axis=1, keepdims=True) * 8.0).astype(np.float32)  # (B, 1, h, w)


@pytest.fixture
def bright_segmenter() -> Segmenter:
    return Segmenter(brightness_runner, input_size=64, name="brightness")


@pytest.fixture(scope="module")
def random_segmenter() -> Segmenter:
    torch.manual_seed(0)
    return Segmenter(TorchRunner(create_model("asbunet_025"), threads=1), input_size=64)


def square_image(height: int = 48, width: int = 64) -> np.ndarray:
    """Black RGB image with a white square in the middle (the 'person' of `brightness_runner`)."""
    image = np.zeros((height, width, 3), np.uint8)
    image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 255
    return image


def write_rgb(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def image_folder(folder: Path, n: int = 3, corrupt: bool = True) -> Path:
    """`n` readable images of different sizes, a truncated JPEG (`bad.jpg`) and a text file that is ignored."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        image = square_image(40 + 8 * i, 56)
        image = np.clip(image.astype(int) + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
        write_rgb(folder / f"img{i}.jpg", image)
    if corrupt:
        data = cv2.imencode(".jpg", square_image())[1].tobytes()
        (folder / "bad.jpg").write_bytes(data[: len(data) // 3])
    (folder / "notes.txt").write_text("not an image")
    return folder


def write_clip(path: Path, frames: int = 10, size: tuple[int, int] = (64, 48), fps: float = 12.0) -> Path:
    """A small mp4v clip of a white square moving over a dark background."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for t in range(frames):
        frame = np.full((height, width, 3), 30, np.uint8)
        frame[12:36, 8 + 2 * t : 32 + 2 * t] = 230
        writer.write(frame)
    writer.release()
    return path


def video_info(path: Path) -> tuple[int, int, int, float]:
    """(decoded frames, width, height, fps) of a video file."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    frames, size = 0, (0, 0)
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames, size = frames + 1, (frame.shape[1], frame.shape[0])
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, size[0], size[1], fps


def run_cli(argv: list[str]) -> int:
    """Exit code of `asbunet ...`, whether returned by `main` or raised as SystemExit."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


# ---------------------------------------------------------------------------------------------------------------
# Compositing
# ---------------------------------------------------------------------------------------------------------------


def test_composite_math():
    fg, bg = np.full((2, 3, 3), 200, np.uint8), np.full((2, 3, 3), 100, np.uint8)
    alpha = np.array([[0.0, 0.25, 1.0], [0.5, 0.75, 1.5]], np.float32)  # 1.5 clips to 1
    out = effects.composite(fg, bg, alpha)
    np.testing.assert_array_equal(out[..., 0], [[100, 125, 200], [150, 175, 200]])
    np.testing.assert_array_equal(
        effects.composite(fg, (0, 40, 80), np.full((2, 3), 0.5, np.float32))[0, 0], [100, 120, 140]
    )
    with pytest.raises(ValueError, match="alpha"):
        effects.composite(fg, bg, alpha[:1])


def test_cutout_overlay_mask_and_probability_images():
    image = square_image(4, 4)
    prob = np.array([[0.0, 0.2, 0.49, 0.5], [0.51, 0.8, 1.0, 1.0]] * 2, np.float32)
    rgba = effects.cutout(image, prob)
    assert rgba.shape == (4, 4, 4)
    np.testing.assert_array_equal(rgba[..., :3], image)
    np.testing.assert_array_equal(rgba[0, :, 3], [0, 51, 125, 128])
    np.testing.assert_array_equal(effects.mask_image(prob)[0], [0, 0, 0, 255])
    np.testing.assert_array_equal(effects.mask_image(prob, 0.9)[1], [0, 0, 255, 255])
    np.testing.assert_array_equal(effects.probability_image(prob)[1], [130, 204, 255, 255])
    with pytest.raises(ValueError, match="threshold"):
        effects.mask_image(prob, 1.5)
    tinted = effects.overlay(image, prob, color=(0, 255, 0), opacity=0.5)
    np.testing.assert_array_equal(tinted[0, 0], image[0, 0])  # prob 0: unchanged
    np.testing.assert_allclose(tinted[1, 3], [0, 127.5, 0], atol=0.5)  # prob 1, black pixel: half green


def test_blur_background_keeps_person_and_has_no_halo():
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = 255  # bright person on a black background
    prob = np.zeros((64, 64), np.float32)
    prob[16:48, 16:48] = 1.0
    out = effects.blur_background(image, prob, sigma=8)
    np.testing.assert_array_equal(out[16:48, 16:48], 255)
    # The person is left out of the background blur: pixels just outside stay dark (a plain blur makes them grey).
    assert out[14, 32].max() < 10
    assert cv2.GaussianBlur(image, (0, 0), 8)[14, 32].max() > 60
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    checker = np.repeat(checker[..., None], 3, axis=2)
    blurred = effects.blur_background(checker, np.zeros((64, 64), np.float32))
    assert blurred.std() < 0.1 * checker.std()
    np.testing.assert_array_equal(effects.blur_background(checker, np.ones((64, 64), np.float32)), checker)


def test_cover_and_replace_background():
    background = np.zeros((10, 40, 3), np.uint8)
    background[:, 18:22] = 200  # a bright band in the centre
    covered = effects.cover(background, 30, 30)
    assert covered.shape == (30, 30, 3)
    assert covered[:, 15].min() == 200 and covered[:, 0].max() == 0  # columns 45..75 of a 120x30 resize
    image = np.full((30, 30, 3), 50, np.uint8)
    out = effects.replace_background(image, np.zeros((30, 30), np.float32), background)
    np.testing.assert_array_equal(out, covered)
    out = effects.replace_background(image, np.zeros((30, 30), np.float32), (1, 2, 3))
    assert (out == [1, 2, 3]).all()


def test_parse_color():
    assert effects.parse_color("white") == (255, 255, 255)
    assert effects.parse_color(" Grey ") == (128, 128, 128)
    assert effects.parse_color("#00B140") == (0, 177, 64)
    assert effects.parse_color("#f80") == (255, 136, 0)
    for bad in ("#12345", "#gg0000", "00ff00", "turquoiseish", ""):
        with pytest.raises(ValueError, match="#RRGGBB"):
            effects.parse_color(bad)


def test_parse_background(tmp_path):
    assert isinstance(effects.parse_background("blur"), effects.BlurBackground)
    assert effects.parse_background("#ff0000") == effects.ColorBackground((255, 0, 0))
    picture = write_rgb(tmp_path / "beach.png", square_image(20, 30))
    background = effects.parse_background(str(picture))
    assert isinstance(background, effects.ImageBackground) and background.image.shape == (20, 30, 3)
    assert background(square_image(), np.zeros((48, 64), np.float32)).shape == (48, 64, 3)
    with pytest.raises(DataError, match="nope.jpg: file not found"):
        effects.parse_background(str(tmp_path / "nope.jpg"))
    with pytest.raises(ValueError, match="not 'blur', an image file"):
        effects.parse_background("sparkly")


# ---------------------------------------------------------------------------------------------------------------
# Temporal smoothing
# ---------------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------------
# Images and folders
# ---------------------------------------------------------------------------------------------------------------


def test_segment_folder_writes_all_outputs_and_reports_the_corrupt_file(tmp_path, bright_segmenter):
    folder = image_folder(tmp_path / "in")
    out = tmp_path / "out"
    options = SegmentOptions(
        save=("mask", "prob", "overlay", "cutout", "effect"),
        frame=FrameOptions(effect=effects.ColorBackground((0, 0, 255))),
    )
    messages: list[str] = []
    report = segment_files(bright_segmenter, [folder], out, options, progress=False, log=messages.append)
    assert report.processed == 3 and len(report.written) == 15
    assert [p.name for p, _ in report.failed] == ["bad.jpg"]
    assert "bad.jpg: not a readable image" in report.failed[0][1] and f"failed: {report.failed[0][1]}" in messages
    assert report.skipped == [(folder / "notes.txt", "unsupported extension .txt")]
    for i in range(3):
        mask = cv2.imread(str(out / f"img{i}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (40 + 8 * i, 56) and set(np.unique(mask)) <= {0, 255}
        expected = square_image(40 + 8 * i, 56)[..., 0] > 127  # the brightness stand-in finds the square
        assert ((mask > 0) == expected).mean() > 0.95
        assert cv2.imread(str(out / f"img{i}_cutout.png"), cv2.IMREAD_UNCHANGED).shape[2] == 4
        for name in (f"img{i}_prob.png", f"img{i}_overlay.jpg", f"img{i}_background.jpg"):
            assert cv2.imread(str(out / name)) is not None, name
    assert not (out / "bad.png").exists()
    assert report.summary() == (
        f"3 written (15 files); 1 failed: {folder / 'bad.jpg'}; 1 skipped: {folder / 'notes.txt'} (unsupported "
        "extension .txt)"
    )


def test_the_models_refinement_snaps_the_upsampled_boundary_to_the_image_edge(tmp_path):
    """A 16-pixel network input upsampled 8x gives a boundary ramp 8 px wide; with the model's refinement it steps at
    the image edge, and without it (`--no-refine`) it stays the bilinear ramp."""
    refine = GuidedRefine(radius=2, eps=1e-4, subsample=1)
    segmenter = Segmenter(lambda batch: batch.mean(axis=1, keepdims=True), input_size=16, refine=refine)
    path = write_rgb(tmp_path / "in.png", square_image(96, 128))  # square edge between columns 31 and 32
    options = SegmentOptions(save=("prob",))
    refined = segment_files(segmenter, [path], tmp_path / "a", options, False)
    plain = segment_files(segmenter.with_settings(refine=False), [path], tmp_path / "b", options, False)
    a = cv2.imread(str(refined.written[0]), cv2.IMREAD_GRAYSCALE)[48].astype(int)
    b = cv2.imread(str(plain.written[0]), cv2.IMREAD_GRAYSCALE)[48].astype(int)
    assert b[32] - b[31] < 40 < 120 < a[32] - a[31]
    assert np.argmax(np.diff(a[16:48])) + 16 == 31


def test_default_outputs(tmp_path, bright_segmenter):
    path = write_rgb(tmp_path / "one.jpg", square_image())
    report = segment_files(bright_segmenter, [path], tmp_path / "o1", progress=False)
    assert [p.name for p in report.written] == ["one.png"]
    report = segment_files(
        bright_segmenter,
        [path],
        tmp_path / "o2",
        SegmentOptions(frame=FrameOptions(effect=effects.BlurBackground())),
        progress=False,
    )
    assert [p.name for p in report.written] == ["one.png", "one_blur.jpg"]


def test_collect_inputs_and_output_plan_errors(tmp_path):
    folder = image_folder(tmp_path / "in", corrupt=False)
    assert [p.name for p in collect_inputs([str(tmp_path / "in" / "*.jpg")])] == ["img0.jpg", "img1.jpg", "img2.jpg"]
    assert len(collect_inputs([folder, folder / "img0.jpg"])) == 3  # duplicates are dropped
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: folder holds no image or video"):
        collect_inputs([tmp_path / "empty"])
    with pytest.raises(DataError, match="missing.jpg: file or folder not found"):
        collect_inputs([tmp_path / "missing.jpg"])
    with pytest.raises(DataError, match="pattern matches no image"):
        collect_inputs([str(tmp_path / "*.png")])
    with pytest.raises(DataError, match="notes.txt: unsupported file type"):
        collect_inputs([folder / "notes.txt"])
    (tmp_path / "other").mkdir()
    write_rgb(tmp_path / "other" / "img0.png", square_image())
    with pytest.raises(ValueError, match="would both write"):
        planned_outputs(collect_inputs([folder, tmp_path / "other"]), tmp_path / "out", SegmentOptions())
    with pytest.raises(ValueError, match="would overwrite an input"):
        planned_outputs(collect_inputs([tmp_path / "other"]), tmp_path / "other", SegmentOptions())
    with pytest.raises(ValueError, match="choose from: mask, prob"):
        SegmentOptions(save=("mask", "sparkles"))


def test_the_frame_api_takes_frame_options_not_the_commands(bright_segmenter):
    """`VideoSegmenter` knows nothing of what `segment` saves or for how many frames: it takes `FrameOptions`, which
    `SegmentOptions` holds as `frame`."""
    options = SegmentOptions(save=("effect",), max_frames=3, frame=FrameOptions(smooth=0.5, main_person=True))
    video = VideoSegmenter(bright_segmenter, options.frame)
    assert video.options == FrameOptions(smooth=0.5, main_person=True) and not hasattr(video.options, "save")
    with pytest.raises(TypeError, match="its .frame"):
        VideoSegmenter(bright_segmenter, options)
    with pytest.raises(ValueError, match="smooth must be in"):
        FrameOptions(smooth=1.0)


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------


def test_cli_folder_with_a_corrupt_file(tmp_path, checkpoint, capsys):
    folder = image_folder(tmp_path / "in")
    out = tmp_path / "out"
    code = run_cli(
        [
            "segment",
            str(folder),
            "--output",
            str(out),
            "--model",
            str(checkpoint),
            "--save",
            "mask,overlay",
            "--background",
            "white",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert f"3 written (9 files); 1 failed: {folder / 'bad.jpg'}; 1 skipped" in captured.out
    assert "bad.jpg: not a readable image" in captured.err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"img{i}{s}" for i in range(3) for s in (".png", "_overlay.jpg", "_background.jpg")
    )


@pytest.mark.parametrize("case", ["missing", "empty_dir", "corrupt", "unwritable", "bad_save", "bad_color", "no_input"])
def test_cli_errors_name_the_path_and_exit_2(tmp_path, checkpoint, capsys, case):
    good = write_rgb(tmp_path / "good.jpg", square_image())
    out = tmp_path / "out"
    extra: list[str] = []
    inputs = [str(good)]
    if case == "missing":
        inputs, expected = [str(tmp_path / "ghost.jpg")], "ghost.jpg: file or folder not found"
    elif case == "empty_dir":
        (tmp_path / "empty").mkdir()
        inputs, expected = [str(tmp_path / "empty")], "empty: folder holds no image"
    elif case == "corrupt":
        (tmp_path / "broken.png").write_bytes(cv2.imencode(".png", square_image())[1].tobytes()[:60])
        inputs, expected = [str(tmp_path / "broken.png")], "broken.png: not a readable image"
    elif case == "unwritable":
        (tmp_path / "file").write_text("a file, not a folder")
        out, expected = tmp_path / "file" / "out", "output folder cannot be written"
    elif case == "bad_save":
        extra, expected = ["--save", "mask,glitter"], "choose from: mask, prob, overlay, cutout, effect"
    elif case == "bad_color":
        extra, expected = ["--background", "#12"], "background '#12' is not 'blur'"
    else:
        inputs, expected = [], "give INPUT files"
    code = run_cli(["segment", *inputs, "--output", str(out), "--model", str(checkpoint), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err
    assert "Traceback" not in err
    if case in ("missing", "empty_dir", "bad_save", "bad_color"):
        assert not out.exists() or not any(out.iterdir())


# ---------------------------------------------------------------------------------------------------------------
# Video and camera
# ---------------------------------------------------------------------------------------------------------------


def test_video_in_and_out_keeps_frames_size_and_fps(tmp_path, random_segmenter):
    clip = write_clip(tmp_path / "clip.mp4")
    assert video_info(clip)[:3] == (10, 64, 48)
    result = segment_video_file(
        random_segmenter,
        clip,
        tmp_path / "out",
        SegmentOptions(save=("effect", "mask"), frame=FrameOptions(smooth=0.5)),
        progress=False,
    )
    assert [p.name for p in result.outputs] == ["clip_blur.mp4", "clip_mask.mp4"]
    assert result.frames == 10 and result.fps > 0 and "10 frames" in result.summary()
    for path in result.outputs:
        frames, width, height, fps = video_info(path)
        assert (frames, width, height) == (10, 64, 48)
        assert fps == pytest.approx(12.0, abs=0.01)


def test_video_smoothing_steadies_the_mask(tmp_path):
    """A mask that flickers every other frame comes out steadier with smoothing on."""
    clip = tmp_path / "flicker.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 32))
    for t in range(8):
        writer.write(np.full((32, 32, 3), 230 if t % 2 else 20, np.uint8))
    writer.release()
    segmenter = Segmenter(brightness_runner, input_size=32)

    def flicker(smooth: float) -> float:
        result = segment_video_file(
            segmenter,
            clip,
            tmp_path / f"s{smooth}",
            SegmentOptions(save=("prob",), frame=FrameOptions(smoother="ema", smooth=smooth)),
            progress=False,
        )
        capture, values = cv2.VideoCapture(str(result.outputs[0])), []
        while (frame := capture.read()[1]) is not None:
            values.append(float(frame.mean()))
        capture.release()
        assert len(values) == 8
        return float(np.abs(np.diff(values[2:])).mean())

    assert flicker(0.8) < 0.5 * flicker(0.0)


def test_cli_video_with_max_frames(tmp_path, checkpoint, capsys):
    clip = write_clip(tmp_path / "talk.mp4")
    out = tmp_path / "out"
    code = run_cli(
        [
            "segment",
            str(clip),
            "--output",
            str(out),
            "--model",
            str(checkpoint),
            "--background",
            "green",
            "--max-frames",
            "4",
            "--momentum",
            "0",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "talk.mp4: 4 frames in" in captured.err and "frames/s" in captured.err
    assert video_info(out / "talk_background.mp4")[:3] == (4, 64, 48)


def test_unreadable_video_and_missing_camera(tmp_path, random_segmenter, capsys, checkpoint):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    with pytest.raises(DataError, match="broken.mp4: (not a readable video|no frame could be read)"):
        segment_video_file(random_segmenter, bad, tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="camera 97: could not be opened"):
        open_camera(97)
    code = run_cli(["segment", "--camera", "97", "--output", str(tmp_path / "cam"), "--model", str(checkpoint)])
    assert code == 2 and "camera 97" in capsys.readouterr().err
