"""ONNX export against PyTorch, int8 quantization on real photos, the ONNX runner and Segmenter, `asbunet bench`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from asbunet import create_model
from asbunet.bench.accuracies import load_accuracies
from asbunet.bench.peers import tflite_stats
from asbunet.bench.report import widest_no_slower
from asbunet.cli import main
from asbunet.export.calibration import calibration_files, load_images
from asbunet.export.checks import agreement, random_batch
from asbunet.export.onnx import export_onnx
from asbunet.export.quantize import INT8_WEIGHT_LIMIT, CalibrationWarning, quantize_int8
from asbunet.export.rewrites import merge_parallel_convs
from asbunet.export.tflite import export_tflite
from asbunet.extras import install_hint
from asbunet.inference.cpu import cpu_isa, describe_isa
from asbunet.inference.peers import DEFAULT_PEERS_DIR
from asbunet.inference.preprocess import prepare, prepare_at
from asbunet.inference.refine import GuidedRefine
from asbunet.inference.runners import HEAD_STRIDE_KEY, OnnxRunner, TorchRunner
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import load_checkpoint, model_from_checkpoint
from asbunet.metrics import iou
from asbunet.train.config import TrainConfig
from asbunet.train.engine import train

REPO = Path(__file__).resolve().parents[1]
PEERS = DEFAULT_PEERS_DIR
# The tests calibrate tiny models on a few photos on purpose; the warning about it is tested once, below.
pytestmark = pytest.mark.filterwarnings("ignore::asbunet.export.quantize.CalibrationWarning")

# int8 tolerance on real photos: the person masks (logit > 0) of the int8 and the fp32 model overlap this much
# (measured: about 0.97 on the calibration photos and 0.98 on held-out portraits for the tiny model below).
INT8_MASK_IOU = 0.93
# fp32 ONNX vs PyTorch: float reassociation only (folded BatchNorm, merged convolutions).
FP32_RELATIVE_TOLERANCE = 1e-4


def fresh(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name).eval()


@pytest.fixture(scope="module")
def photos(ccp_samples: Path) -> list[np.ndarray]:
    return load_images(ccp_samples / "images")


TRAINED_TINY = Path(__file__).parent / "golden" / "asbunet_025_trained.safetensors"


def train_tiny(samples: Path, photos: list[np.ndarray], out: Path) -> nn.Module:
    """asbunet_025 trained for a few steps on the sample photos, BatchNorm statistics then re-estimated on them.

    A run this short leaves the running BatchNorm averages (momentum 0.01) far from the batch statistics, which makes
    the eval-mode logits meaningless; one pass in training mode with a cumulative average fixes that. Training rounds
    differently on each CPU (AVX2, AVX-512, AMX), so the tests load the weights this wrote once
    (`python tests/test_export.py --update-tiny`) instead of training them again.
    """
    cfg = TrainConfig(
        model="asbunet_025",
        data={"train": [str(samples)], "val_fraction": 0.125, "max_side": 192},
        shapes=[[128, 128]],
        val_size=128,
        batch_size=2,
        epochs=100,
        max_steps=60,
        optimizer="adamw",
        lr=0.003,
        weight_decay=0.0,
        schedule="cosine",
        workers=0,
        threads=1,
        output=str(out),
    )
    train(cfg)
    model = model_from_checkpoint(load_checkpoint(out / "best.pt"))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.stack([torch.from_numpy(prepare_at(im, (192, 144))) for im in photos]))
    return model.eval()


@pytest.fixture(scope="module")
def trained_tiny() -> nn.Module:
    """The tiny model `train_tiny` trained once, from its committed weights: the same inputs on every CPU."""
    model = create_model("asbunet_025")
    model.load_state_dict(load_file(TRAINED_TINY))
    return model.eval()


@pytest.fixture(scope="module")
def tiny_onnx(trained_tiny, photos, tmp_path_factory) -> tuple[Path, Path]:
    """The trained tiny model as dynamic-size fp32 ONNX and its int8 version calibrated on the photos."""
    d = tmp_path_factory.mktemp("tiny_onnx")
    export_onnx(trained_tiny, d / "tiny.onnx", size=(128, 128), dynamic=True)
    quantize_int8(d / "tiny.onnx", d / "tiny_int8.onnx", photos, input_size=128)
    return d / "tiny.onnx", d / "tiny_int8.onnx"


# ------------------------------------------------------------------------------------------------ fp32 export


@pytest.mark.parametrize("name", ["asbunet", "mobilenetv2_unet_100"])
def test_fp32_onnx_matches_pytorch_on_random_input(name, tmp_path):
    model = fresh(name)
    result = export_onnx(model, tmp_path / f"{name}.onnx", size=(64, 96))
    r = result.random
    assert r.max_abs_diff <= FP32_RELATIVE_TOLERANCE * max(1.0, r.max_abs_logit), str(r)
    assert r.max_prob_diff < 1e-3 and r.mask_iou > 0.999
    assert OnnxRunner(result.path).size == (64, 96)
    # a fresh input the export check did not see
    x = random_batch((64, 96), seed=7)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(OnnxRunner(result.path)(x) - ref).max() <= FP32_RELATIVE_TOLERANCE * max(1.0, np.abs(ref).max())


def test_merging_the_asb_branches_is_exact(tmp_path):
    """ASBL2, ASBL8 and the three decoder ASB layers have two dilation-1 3x3 branches: five merged convolutions."""
    result = export_onnx(fresh("asbunet"), tmp_path / "plain.onnx", size=(64, 64), merge_branches=False)
    proto = onnx.load(str(result.path))
    convs = sum(n.op_type == "Conv" for n in proto.graph.node)
    assert merge_parallel_convs(proto) == 5
    assert sum(n.op_type == "Conv" for n in proto.graph.node) == convs - 5
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp_path / "merged.onnx"))
    x = random_batch((64, 64), seed=3)
    plain, merged = OnnxRunner(result.path)(x), OnnxRunner(tmp_path / "merged.onnx")(x)
    assert np.abs(plain - merged).max() <= 1e-5 * max(1.0, np.abs(plain).max())


@pytest.mark.slow
def test_int8_quantization_leaves_no_files_in_the_working_directory(tiny_onnx, photos, tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.warns(CalibrationWarning, match="int8 calibration on 2 image\\(s\\), fewer than the 32 recommended"):
        quantize_int8(tiny_onnx[0], tmp_path / "again_int8.onnx", photos[:2], input_size=128)
    assert (tmp_path / "again_int8.onnx").is_file() and list(work.iterdir()) == []


def test_calibration_files_are_shared_by_the_folders_and_spread(shared_data):
    portraits, street = shared_data / "pfcn_portrait" / "train" / "images", shared_data / "ccp" / "train" / "images"
    files = calibration_files([portraits, street], 5)
    assert [f.parent for f in files] == [portraits] * 3 + [street] * 2
    assert files[0].name == sorted(p.name for p in portraits.iterdir())[0] and files[1] != files[0]
    assert len(calibration_files(shared_data / "ccp_samples" / "images", 32)) == 8  # all of a small folder


def test_dynamic_export_runs_any_size(trained_tiny, tiny_onnx):
    runner = OnnxRunner(tiny_onnx[0])
    assert runner.size is None and runner.input_size is None
    for shape in [(2, 3, 48, 80), (1, 3, 144, 256), (1, 3, 100, 70)]:
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            ref = trained_tiny(torch.from_numpy(x)).numpy()
        out = runner(x)
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() <= FP32_RELATIVE_TOLERANCE * max(1.0, np.abs(ref).max())


def test_fixed_size_runner_resizes_other_sizes(tmp_path):
    result = export_onnx(fresh("asbunet_025"), tmp_path / "fixed.onnx", size=(64, 64))
    runner = OnnxRunner(result.path, threads=1)
    assert runner.input_size == 64
    assert runner(np.zeros((2, 3, 48, 80), np.float32)).shape == (2, 1, 48, 80)


# ------------------------------------------------------------------------------------------------------ int8


def test_int8_agrees_with_fp32_on_real_photos(trained_tiny, tiny_onnx, photos, shared_data):
    _, int8 = tiny_onnx
    runner = OnnxRunner(int8)
    in_sample = agreement(trained_tiny, runner, [prepare(im, 128)[None] for im in photos])
    assert in_sample.mask_iou >= INT8_MASK_IOU, str(in_sample)
    portraits = load_images(shared_data / "pfcn_portrait" / "test" / "images", count=4)
    held_out = agreement(trained_tiny, runner, [prepare(im, 128)[None] for im in portraits])
    assert held_out.mask_iou >= INT8_MASK_IOU, str(held_out)
    # the rewrites and quantization happened: integer convolutions, concat ranges shared
    proto = onnx.load(str(int8))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    weights = [onnx.numpy_helper.to_array(t) for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert weights and max(np.abs(w.astype(np.int32)).max() for w in weights) <= INT8_WEIGHT_LIMIT  # 7 bits
    assert int8.stat().st_size < tiny_onnx[0].stat().st_size / 2


def test_int8_concat_inputs_share_the_output_range(tiny_onnx):
    """Every Concat reads and writes one scale and zero point, so onnxruntime's QLinearConcat only copies bytes."""
    model = onnx.load(str(tiny_onnx[1]))
    values = {t.name: onnx.numpy_helper.to_array(t).item() for t in model.graph.initializer if not t.dims}
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    checked = 0
    for cat in (n for n in model.graph.node if n.op_type == "Concat"):
        dqs = [producer.get(t) for t in cat.input]
        if not all(d is not None and d.op_type == "DequantizeLinear" for d in dqs):
            continue  # shape arithmetic
        q = next(c for c in consumers[cat.output[0]] if c.op_type == "QuantizeLinear")
        out_range = [values[q.input[1]], values[q.input[2]]]
        assert all([values[d.input[1]], values[d.input[2]]] == out_range for d in dqs), cat.name
        checked += 1
    assert checked >= 5


def test_quantize_needs_calibration_images(tiny_onnx, tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        quantize_int8(tiny_onnx[0], tmp_path / "x.onnx", tmp_path / "missing")
    with pytest.raises(ValueError, match="no calibration images"):
        quantize_int8(tiny_onnx[0], tmp_path / "x.onnx", [])


# ------------------------------------------------------------------------------------------ runner and Segmenter


def test_segmenter_on_onnx_predicts_like_pytorch(trained_tiny, tiny_onnx, photos):
    torch_seg = Segmenter(TorchRunner(trained_tiny, threads=2), input_size=128)
    onnx_seg = Segmenter.from_pretrained(tiny_onnx[0], input_size=128, threads=2)
    for image in photos[:4]:
        a, b = torch_seg.predict(image), onnx_seg.predict(image)
        assert a.shape == b.shape == image.shape[:2]
        assert np.abs(a - b).max() < 1e-4
    batch_a, batch_b = torch_seg.predict_batch(photos[:3]), onnx_seg.predict_batch(photos[:3])
    assert max(np.abs(a - b).max() for a, b in zip(batch_a, batch_b, strict=True)) < 1e-4


def test_missing_corrupt_and_wrong_onnx_files_give_clear_errors(tmp_path, tiny_onnx):
    with pytest.raises(FileNotFoundError, match="asbunet export"):
        OnnxRunner(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf")
    with pytest.raises(ValueError, match="garbage.onnx: not a usable ONNX model"):
        OnnxRunner(garbage)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(tiny_onnx[0].read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated.onnx: not a usable ONNX model"):
        Segmenter.from_pretrained(truncated)
    # a valid ONNX file that is not an image model: (B, 10) -> (B, 10)
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["B", 10])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["B", 10])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    wrong = tmp_path / "wrong.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(wrong))
    with pytest.raises(ValueError, match=r"wrong.onnx: input 'x' is tensor\(float\) \['B', 10\]"):
        OnnxRunner(wrong)
    runner = OnnxRunner(tiny_onnx[0])
    with pytest.raises(ValueError, match=r"expected a normalized batch shaped \(B, 3, H, W\)"):
        runner(np.zeros((3, 32, 32), np.float32))


def test_head_stride_export_leaves_the_resize_to_the_segmenter(trained_tiny, tiny_onnx, photos, tmp_path):
    path = export_onnx(trained_tiny, tmp_path / "head.onnx", size=(128, 128), dynamic=True, head_stride=True).path
    x = prepare(photos[0], 128)[None]  # (1, 3, h, w)
    with torch.no_grad():
        ref = trained_tiny.head_logits(torch.from_numpy(x)).numpy()
    out = OnnxRunner(path)(x)
    assert out.shape == ref.shape == (1, 1, x.shape[2] // 2, x.shape[3] // 2)
    assert np.abs(out - ref).max() <= FP32_RELATIVE_TOLERANCE * max(1.0, np.abs(ref).max())
    full_runner, head_runner = OnnxRunner(tiny_onnx[0], threads=1), OnnxRunner(path, threads=1)
    assert head_runner.metadata.get(HEAD_STRIDE_KEY) == "true" and HEAD_STRIDE_KEY not in full_runner.metadata
    for refine in [None, GuidedRefine(2, 1e-4, 4), GuidedRefine(3, 1e-4, 1)]:
        full, head = (Segmenter(r, 128, refine=refine) for r in (full_runner, head_runner))
        for image in photos[:4]:
            a, b = full.predict(image), head.predict(image)
            assert a.shape == b.shape == image.shape[:2]
            # the same logits, resized once (here) instead of twice (in the network, then back to the image)
            assert np.abs(a - b).mean() < 0.01 and iou(a >= 0.5, b >= 0.5) > 0.97, refine
    with pytest.raises(ValueError, match="no head_logits"):
        export_onnx(nn.Conv2d(3, 1, 1), tmp_path / "conv.onnx", size=(16, 16), head_stride=True)


@pytest.mark.slow
def test_cli_export_prints_the_differences(tmp_path, capsys, ccp_samples):
    code = main(
        [
            "export",
            "asbunet_025",
            "--output",
            str(tmp_path / "m.onnx"),
            "--size",
            "64",
            "64",
            "--int8",
            "--calibration",
            str(ccp_samples / "images"),
            "--calibration-count",
            "4",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("random input: max |logit diff|") == 2 and out.count("real images:  max |logit diff|") == 2
    assert (tmp_path / "m.onnx").is_file() and (tmp_path / "m_int8.onnx").is_file()
    assert main(["export", "asbunet_025", "--output", str(tmp_path / "x.onnx"), "--size", "64", "64", "--dynamic"]) == 2
    assert "not both" in capsys.readouterr().err


def test_tflite_export_matches_pytorch(tmp_path):
    pytest.importorskip("litert_torch", reason="litert-torch is not installed: " + install_hint("tflite"))
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")
    result = export_tflite(fresh("asbunet_025"), tmp_path / "m.tflite", size=(64, 64))
    assert result.random.max_abs_diff <= 1e-3 * max(1.0, result.random.max_abs_logit), str(result.random)


# ------------------------------------------------------------------------------------------------------ bench


@pytest.mark.slow
def test_bench_quick_mode_writes_table_plot_and_profile(tmp_path, ccp_samples):
    accuracy = tmp_path / "acc.json"
    accuracy.write_text(json.dumps({"asbunet_025": {"ccp_test": 0.5}}))
    out = tmp_path / "bench"
    code = main(
        [
            "bench",
            "--model",
            "asbunet_025",
            "--size",
            "64x64",
            "--threads",
            "1",
            "--runs",
            "3",
            "--warmup",
            "1",
            "--calibration",
            str(ccp_samples / "images"),
            "--calibration-count",
            "2",
            "--peers",
            str(PEERS),
            "--accuracy",
            str(accuracy),
            "--profile-model",
            "asbunet_025",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    table = (out / "results.md").read_text()
    for label in ("PyTorch fp32", "onnxruntime fp32", "onnxruntime int8"):
        assert f"| asbunet_025 | {label} |" in table
    assert "accuracy ccp_test" in table and "0.5000" in table
    assert "int8 MatMulInteger" in table
    isa = describe_isa(cpu_isa())  # "AVX2 yes, AVX-512F ..., AMX-INT8 no (int8 kind: ...)"
    assert table.count(f": {isa}.") == table.count("| model | runtime |") >= 1  # the instruction sets with every table
    rows = json.loads((out / "results.json").read_text())["rows"]
    models = [r for r in rows if r["family"] != "peer"]
    assert len(models) == 3 and all(r["median_ms"] > 0 and r["macs"] > 0 for r in models)
    assert (out / "latency.png").stat().st_size > 10_000
    assert (out / "results.csv").read_text().count("\n") == len(rows) + 1
    profile = (out / "profile.md").read_text()
    assert "## int8 variants" in profile and "QLinearConv" in profile and isa in profile
    assert (out / "results.csv").read_text().splitlines()[1].endswith(f'"{isa}"')
    assert json.loads((out / "results.json").read_text())["machine"]["instruction_sets"] == cpu_isa()


def test_bench_looks_for_mediapipe_in_the_repository():
    from asbunet.cli import build_parser

    assert build_parser().parse_args(["bench"]).peers == str(DEFAULT_PEERS_DIR)
    assert (PEERS / "selfie_segmentation_landscape.tflite").is_file()


def test_widest_variant_no_slower_than_mediapipe():
    def row(model, ms, runtime="onnxruntime-int8"):
        return {"model": model, "runtime": runtime, "threads": 2, "size": "256x256", "median_ms": ms}

    report = {
        "settings": {"threads": [2]},
        "rows": [
            row("mediapipe_general", 2.0, "tflite"),
            row("asbunet", 5.0),
            row("asbunet_050", 2.5),
            row("asbunet_050", 1.9, "torch"),
            row("asbunet_035", 1.5),
            row("asbunet_025", 1.0),
        ],
    }
    assert widest_no_slower(report) == [
        {"threads": 2, "mediapipe_ms": 2.0, "model": "asbunet_050", "runtime": "torch", "median_ms": 1.9}
    ]
    report["rows"][3]["median_ms"] = 2.1
    assert widest_no_slower(report)[0]["model"] == "asbunet_035"


def test_accuracies_from_evaluate_summaries_and_plain_json(tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"model": "x", "datasets": {"ccp": {"mean": {"iou": 0.8}, "pooled": {}}}}))
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"asbunet": 0.9, "mediapipe_general": {"ccp": 0.88}}))
    assert load_accuracies([f"asbunet_050={summary}", str(plain)]) == {
        "asbunet_050": {"ccp": 0.8},
        "asbunet": {"accuracy": 0.9},
        "mediapipe_general": {"ccp": 0.88},
    }
    with pytest.raises(ValueError, match="choose another --accuracy-metric"):
        load_accuracies([f"a={summary}"], metric="dice")
    with pytest.raises(FileNotFoundError):
        load_accuracies([str(tmp_path / "none.json")])


def test_mediapipe_peer_macs():
    general = PEERS / "selfie_segmentation.tflite"
    if not general.is_file():
        pytest.skip(f"MediaPipe model not found ({general}); the package keeps it in asbunet/peers")
    interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter(model_path=str(general))
    interpreter.allocate_tensors()
    macs, weights = tflite_stats(interpreter)
    assert 30e6 < macs < 100e6 and 50_000 < weights < 200_000  # a ~0.06 GMAC, ~0.1 M-weight MobileNetV3-style net


def test_bench_default_output_is_not_the_committed_results():
    from asbunet.cli import build_parser

    output = Path(build_parser().parse_args(["bench"]).output)
    assert output == Path("out/bench") and "benchmarks" not in output.parts  # benchmarks/ holds committed results


if __name__ == "__main__":
    import sys
    import tempfile

    if sys.argv[1:] != ["--update-tiny"]:
        sys.exit("usage: python tests/test_export.py --update-tiny   (needs ../shared/data/ccp_samples)")
    samples = REPO.parent / "shared" / "data" / "ccp_samples"
    with tempfile.TemporaryDirectory() as tmp:
        tiny = train_tiny(samples, load_images(samples / "images"), Path(tmp))
    save_file({k: v.contiguous() for k, v in tiny.state_dict().items()}, TRAINED_TINY)
    print("wrote", TRAINED_TINY)
