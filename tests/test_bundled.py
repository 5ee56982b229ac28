"""The bundled models' ONNX files: they match the shipped weights, int8 keeps fp32's masks on this CPU, onnxruntime is
the default runtime and the predict path never imports PyTorch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from asbunet.cli import main
from asbunet.data.io import read_image
from asbunet.export.bundled import check_bundled_onnx
from asbunet.export.calibration import load_images
from asbunet.export.quantize import INT8_WEIGHT_LIMIT
from asbunet.inference import weights as weights_module
from asbunet.inference.cpu import cpu_isa, describe_isa
from asbunet.inference.runners import HEAD_STRIDE_KEY, INT8_CHECK_KEY, INT8_DEFAULT_KEY, OnnxRunner
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import DEFAULT_MODEL, bundled_models, bundled_onnx_paths, bundled_path

REPO = Path(__file__).resolve().parents[1]
FIX = "the bundled ONNX files are stale: run `asbunet export --bundled` from the repository root and commit them"


@pytest.fixture(scope="module", params=bundled_models())
def runtimes(request) -> dict:
    """The fp32 and int8 ONNX segmenters of each bundled model, and its name under "name"."""
    name = request.param
    return {"name": name} | {r: Segmenter.from_pretrained(name, runtime=r, threads=2) for r in ("onnx", "onnx-int8")}


def test_bundled_onnx_files_match_the_shipped_weights():
    """Fails when the safetensors weights change without `asbunet export --bundled` writing the ONNX files again."""
    problems = check_bundled_onnx()
    assert not problems, f"{FIX}:\n" + "\n".join(problems)
    assert main(["export", "--bundled", "--check"]) == 0


@pytest.mark.parametrize("name", bundled_models())
def test_int8_weights_keep_to_7_bits(name):
    """Weights within +-64 cannot saturate the 16-bit pair sums of u8 x s8 on AVX2 without VNNI (255 x 64 x 2 =
    32640 < 32767): the integer results are the same on every x86 CPU."""
    model = onnx.load(str(bundled_onnx_paths(name)[1]))
    weights = [numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(weights) >= 40  # every convolution's weights
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= INT8_WEIGHT_LIMIT
    zero_points = [
        numpy_helper.to_array(t)
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.UINT8 and t.name.endswith("zero_point")
    ]
    assert zero_points, "activations are uint8"


def test_int8_masks_match_fp32_on_real_photos(runtimes, ccp_samples, shared_data):
    """On whatever CPU runs this: int8 masks against fp32 masks on 8 street photos and 4 portraits (test sets)."""
    images = load_images(ccp_samples / "images")
    images += load_images(shared_data / "pfcn_portrait" / "test" / "images", count=4)
    ious = []
    for image in images:
        fp32, int8 = runtimes["onnx"].mask(image), runtimes["onnx-int8"].mask(image)
        ious.append(np.logical_and(fp32, int8).sum() / max(1, np.logical_or(fp32, int8).sum()))
    where = describe_isa(cpu_isa())
    assert np.mean(ious) >= 0.99 and min(ious) >= 0.95, f"mask IoU int8 vs fp32 {np.round(ious, 4)} on {where}"


@pytest.mark.parametrize("name", bundled_models())
def test_default_runtime_is_the_one_the_export_chose(name):
    fp32, int8 = bundled_onnx_paths(name)
    meta = OnnxRunner(int8).metadata
    check = json.loads(meta[INT8_CHECK_KEY])
    assert check["images"] > 100 and check["iou_fp32"] > 0.85  # the run's validation split
    chosen = int8 if meta[INT8_DEFAULT_KEY] == "true" else fp32
    assert meta[INT8_DEFAULT_KEY] == ("true" if check["iou_int8"] >= check["iou_fp32"] - 0.003 else "false")
    segmenter = Segmenter.from_pretrained(name)
    assert segmenter.runner.path == chosen
    assert segmenter.threshold == float(weights_module.read_safetensors(bundled_path(name))[1]["threshold"])


def test_onnx_fp32_predicts_like_torch(runtimes):
    image = read_image(REPO / "samples" / "images" / sorted(p.name for p in (REPO / "samples" / "images").iterdir())[0])
    torch_seg = Segmenter.from_pretrained(runtimes["name"], runtime="torch", threads=2)
    onnx_seg = runtimes["onnx"]
    assert torch_seg.input_size == onnx_seg.input_size and torch_seg.threshold == onnx_seg.threshold
    a, b = torch_seg.predict(image), onnx_seg.predict(image)
    if onnx_seg.runner.metadata.get(HEAD_STRIDE_KEY) == "true":  # logits resized once instead of twice
        assert (
            np.abs(a - b).mean() < 0.01
            and np.logical_and(a >= 0.5, b >= 0.5).sum() > 0.97 * np.logical_or(a >= 0.5, b >= 0.5).sum()
        )
    else:
        assert np.abs(a - b).max() < 1e-3


def test_runtime_choices_and_contradictions(tmp_path):
    with pytest.raises(ValueError, match="runtime must be one of auto, onnx, onnx-int8, openvino, .*, torch"):
        Segmenter.from_pretrained(runtime="tflite")
    with pytest.raises(ValueError, match="runs on onnxruntime, not runtime 'torch'"):
        Segmenter.from_pretrained(bundled_onnx_paths(DEFAULT_MODEL)[0], runtime="torch")
    with pytest.raises(ValueError, match="export it with `asbunet export`"):
        Segmenter.from_pretrained(tmp_path / "m.pt", runtime="onnx")


def test_predict_on_the_default_runtime_never_imports_torch():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from asbunet import Segmenter\n"
        "segmenter = Segmenter.from_pretrained()\n"
        "image = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)\n"
        "assert segmenter.predict(image).shape == (360, 640)\n"
        "assert segmenter.mask(image).shape == (360, 640)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"PyTorch imported: {done.stdout[:500]}"


def test_segment_and_evaluate_take_a_runtime(tmp_path, ccp_samples, capsys):
    from asbunet.evaluate.run import evaluate_model

    photos = sorted((ccp_samples / "images").iterdir())[:2]
    assert main(["segment", str(photos[0]), "--output", str(tmp_path / "out"), "--runtime", "onnx"]) == 0
    assert (tmp_path / "out" / f"{photos[0].stem}.png").is_file()
    data = tmp_path / "two"  # two labelled photos keep the evaluations short
    for kind, suffix in (("images", ".jpg"), ("masks", ".png")):
        (data / kind).mkdir(parents=True)
        for photo in photos:
            shutil.copy(ccp_samples / kind / f"{photo.stem}{suffix}", data / kind)
    quiet = {"gallery": 0, "progress": False}
    summary = evaluate_model(DEFAULT_MODEL, [data], tmp_path / "torch", runtime="torch", **quiet)
    assert summary["model"] == DEFAULT_MODEL and summary["datasets"]  # PyTorch, as asked
    summary = evaluate_model(DEFAULT_MODEL, [data], tmp_path / "default", **quiet)
    assert summary["model"] == Segmenter.from_pretrained().name  # e.g. "asbunet_person (onnxruntime int8)"
    capsys.readouterr()


@pytest.fixture
def stale_weights(tmp_path, monkeypatch) -> Path:
    """A copy of the weights folder whose safetensors file holds other weights than its ONNX files."""
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "weights"
    shutil.copytree(weights_module.WEIGHTS_DIR, folder)
    weights = folder / f"{DEFAULT_MODEL}.safetensors"
    state = load_file(str(weights))
    meta = weights_module.read_safetensors(weights)[1]
    first = sorted(state)[0]
    state[first] = state[first] + np.float32(1e-3)
    save_file(state, str(weights), metadata=meta)
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", folder)
    return folder


def test_stale_onnx_files_are_found_and_refused(stale_weights, capsys):
    assert check_bundled_onnx() == [
        f"{path}: asbunet.weights_sha256 differ from {DEFAULT_MODEL}.safetensors"
        for path in bundled_onnx_paths(DEFAULT_MODEL)
    ]
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--bundled", "--check"])
    assert exit_.value.code == 1 and "run `asbunet export --bundled asbunet_person`" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not exported from the shipped weights.*asbunet export --bundled"):
        Segmenter.from_pretrained()
    assert Segmenter.from_pretrained(runtime="torch").runner is not None  # the weights themselves still load
    (stale_weights / f"{DEFAULT_MODEL}.int8.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="asbunet export --bundled asbunet_person"):
        Segmenter.from_pretrained(runtime="onnx-int8")
