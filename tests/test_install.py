"""The light install: inference without PyTorch, and the wheel with both bundled models.

`pip install .` installs what `Segmenter`, `VideoSegmenter`, `segment` and `evaluate` need; torch is the `train` extra.
The slow test builds the wheel, installs it offline into a fresh virtual environment from the wheelhouse that
`make test`'s set-up fills (scripts/setup_tests.sh), and segments a sample photo and a short clip there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
WHEELHOUSE = REPO / ".cache" / "wheelhouse"
SAMPLE = REPO / "samples" / "images"


def run_python(code: str, python: str = sys.executable, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300, **kwargs)


def test_segmenter_and_segment_leave_torch_out(tmp_path):
    code = """
import sys
import numpy as np
from asbunet import Segmenter, VideoSegmenter
from asbunet.cli import main
seg = Segmenter.from_pretrained("asbunet_person_fast")
seg.mask(np.zeros((90, 160, 3), np.uint8))
VideoSegmenter(seg, background="blur").process(np.zeros((90, 160, 3), np.uint8))
assert main(["segment", sys.argv[1], "--output", sys.argv[2], "--model", "asbunet_person_fast"]) == 0
print(sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "torchvision", "albumentations", "yaml"}))
"""
    sample = sorted(SAMPLE.iterdir())[0]
    done = subprocess.run(
        [sys.executable, "-c", code, str(sample), str(tmp_path / "out")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_commands_of_the_train_extra_say_which_extra_without_it(tmp_path, capsys, monkeypatch):
    from asbunet.cli import main

    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` raises ModuleNotFoundError
    for name in [m for m in sys.modules if m.startswith("asbunet.train.") and m != "asbunet.train.command"]:
        monkeypatch.delitem(sys.modules, name)  # imported again, without yaml
    assert main(["train", "--config", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("asbunet train: this needs the 'train' extra (yaml is not installed)") and "\n" not in err


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The package's wheel, built here without build isolation (no download)."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return next(out.glob("asbunet-*.whl"))


@pytest.mark.slow
def test_the_wheel_holds_both_bundled_models_and_segments_offline_without_torch(wheel, tmp_path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in ("asbunet_person", "asbunet_person_fast"):
        for suffix in (".safetensors", ".onnx", ".int8.onnx"):
            assert f"asbunet/weights/{model}{suffix}" in names
    assert "asbunet/peers/selfie_segmentation.tflite" in names
    if not (WHEELHOUSE / ".requirements").is_file():
        message = f"no wheelhouse in {WHEELHOUSE}: run `make test-setup` (scripts/setup_tests.sh) to fill it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = [python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(WHEELHOUSE), str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert run_python("import torch", python).returncode != 0  # the light install has no PyTorch

    clip = tmp_path / "clip.mp4"
    write_clip(clip)
    photo = sorted(SAMPLE.iterdir())[0]
    asbunet = str(venv / "bin" / "asbunet")
    for source in (photo, clip):
        done = subprocess.run(
            [asbunet, "segment", str(source), "--output", str(tmp_path / "out"), "--save", "mask,effect"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert f"{photo.stem}.png" in written and any(n.startswith("clip") and n.endswith(".mp4") for n in written)
    version = subprocess.run([asbunet, "train", "--config", "x.yaml"], capture_output=True, text=True, cwd=tmp_path)
    assert version.returncode == 2 and "'train' extra" in version.stderr


def write_clip(path: Path, frames: int = 12) -> None:
    """A short H.264 clip of the sample photos (PyAV)."""
    import av
    import cv2

    photos = sorted(SAMPLE.iterdir())
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(frames):
            rgb = cv2.resize(cv2.imread(str(photos[i % len(photos)]))[..., ::-1], (320, 240))
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
