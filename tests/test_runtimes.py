"""The runtimes of the bundled models: each runner against onnxruntime fp32, `runtime="auto"`'s choice from the table
(and what it falls back to), the compiled-shape cache of the OpenVINO runner, and a clear message where the optional
runtime is not installed. Timings live in benchmarks/runtimes/, not here."""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

from asbunet.cli import main
from asbunet.export.calibration import load_images
from asbunet.extras import install_hint
from asbunet.inference import auto, cpu, weights
from asbunet.inference.preprocess import normalize
from asbunet.inference.segmenter import Segmenter
from asbunet.inference.weights import ONNX_RUNTIMES, bundled_models, bundled_onnx_paths, bundled_runtime
from asbunet.metrics import iou

NAMES = bundled_models()
FAST = "asbunet_person_fast"


def needs_openvino(runtime: str) -> None:
    if ONNX_RUNTIMES[runtime][0] == "OpenVINO":
        pytest.importorskip("openvino", reason=f"runtime {runtime!r} needs the openvino extra")
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    if runtime.endswith("bf16") and capped not in ("ALL", "AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX10_1_512_AMX"):
        # OpenVINO sees the CPU's bf16 instructions, but its oneDNN is capped below them: as on a CPU without them
        pytest.skip(f"runtime {runtime!r} needs bf16 instructions; ONEDNN_MAX_CPU_ISA={capped} caps them")


@pytest.fixture(scope="module")
def photos(shared_data) -> list[np.ndarray]:
    """Eight street photos and four portraits of the test sets."""
    images = load_images(shared_data / "ccp_samples" / "images")
    return images + load_images(shared_data / "pfcn_portrait" / "test" / "images", count=4)


@pytest.fixture(scope="module")
def reference() -> dict[str, Segmenter]:
    return {name: Segmenter.from_pretrained(name, runtime="onnx", threads=2) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_openvino_fp32_matches_onnxruntime_fp32(name, reference, photos):
    needs_openvino("openvino")
    segmenter = Segmenter.from_pretrained(name, runtime="openvino", threads=2)
    assert segmenter.name == f"{name} (OpenVINO fp32)" and segmenter.threshold == reference[name].threshold
    assert segmenter.refine == reference[name].refine and segmenter.input_size == reference[name].input_size
    for image in photos[:4]:
        assert np.abs(segmenter.predict(image) - reference[name].predict(image)).max() < 1e-4


@pytest.mark.parametrize("runtime", ["onnx-int8", "openvino-int8", "openvino-bf16"])
@pytest.mark.parametrize("name", NAMES)
def test_reduced_precisions_keep_fp32_masks(name, runtime, reference, photos):
    """int8 and bf16 masks against onnxruntime fp32's on 12 test photos, on whatever CPU runs this (the full check on
    the validation photos and test sets is benchmarks/runtimes/accuracy.md)."""
    needs_openvino(runtime)
    segmenter = Segmenter.from_pretrained(name, runtime=runtime, threads=2)
    ious = [iou(segmenter.mask(image), reference[name].mask(image)) for image in photos]
    where = cpu.describe_isa(cpu.cpu_isa())
    assert np.mean(ious) >= 0.99 and min(ious) >= 0.95, f"{runtime} vs fp32 mask IoU {np.round(ious, 4)} on {where}"


def test_openvino_takes_the_images_and_normalizes_them_itself(photos):
    needs_openvino("openvino")
    runner = Segmenter.from_pretrained(FAST, runtime="openvino", threads=1).runner
    smalls = [Segmenter(runner, 320)._network_image(image) for image in photos[:2]]
    for small in smalls:
        fused = runner.run_images(small[None])
        assert np.abs(fused - runner(normalize(small)[None])).max() < 1e-4
    with pytest.raises(ValueError, match=r"expected RGB uint8 images shaped \(B, H, W, 3\)"):
        runner.run_images(normalize(smalls[0])[None])


def test_openvino_keeps_the_last_compiled_shapes(monkeypatch):
    needs_openvino("openvino")
    from asbunet.inference import openvino_runner

    monkeypatch.setattr(openvino_runner, "CACHE_SHAPES", 2)
    runner = openvino_runner.OpenVinoRunner(bundled_onnx_paths(FAST)[0], threads=1)
    x = np.zeros((1, 3, 64, 96), np.float32)
    first = runner.request(x.shape)
    assert runner.request(x.shape) is first  # compiled once
    runner(x)
    runner(np.zeros((1, 3, 96, 64), np.float32))
    runner(np.zeros((2, 3, 64, 96), np.float32))
    assert list(runner._compiled) == [((1, 3, 96, 64), False), ((2, 3, 64, 96), False)]  # the oldest is dropped
    assert runner.request(x.shape) is not first


def test_an_onnx_file_runs_on_openvino_when_asked(tmp_path):
    needs_openvino("openvino")
    from asbunet.inference.openvino_runner import OpenVinoRunner

    path = bundled_onnx_paths(FAST)[0]
    segmenter = Segmenter.from_pretrained(path, runtime="openvino")
    assert isinstance(segmenter.runner, OpenVinoRunner) and segmenter.refine is not None
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf")
    with pytest.raises(ValueError, match="garbage.onnx: not a usable ONNX model for OpenVINO"):
        Segmenter.from_pretrained(garbage, runtime="openvino")


@pytest.mark.parametrize(
    ("flags", "kind"),
    [
        ({"avx2", "avx512f", "avx512_vnni", "amx_int8"}, "AMX"),
        ({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}, "AVX-512 VNNI"),
        ({"avx2", "avx_vnni"}, "AVX-VNNI"),
        ({"avx2"}, "AVX2"),
        (set(), "other"),
    ],
)
def test_cpu_kind_from_the_instruction_sets(flags, kind):
    assert auto.cpu_kind(cpu.cpu_isa(flags)) == kind


def test_the_table_holds_runtimes_of_bundled_models_with_their_measurements():
    assert set(auto.RUNTIME_TABLE) <= set(auto.KINDS) and set(auto.MEASURED) == set(auto.RUNTIME_TABLE)
    for choices in auto.RUNTIME_TABLE.values():
        assert set(choices) <= set(NAMES) and set(choices.values()) <= set(ONNX_RUNTIMES)
    assert auto.auto_runtime(FAST, "other") is None


@pytest.mark.parametrize("kind", auto.KINDS)
def test_auto_takes_the_table_or_falls_back_to_onnxruntime(kind, monkeypatch):
    monkeypatch.setattr(weights, "this_cpu_kind", lambda: kind)
    for name in NAMES:
        chosen, why = bundled_runtime(name, "auto")
        assert bundled_runtime(name, None) == (chosen, why)
        expected = auto.RUNTIME_TABLE.get(kind, {}).get(name)
        if expected is None:
            assert (chosen, why) == ("onnx-int8", f"auto: {kind} not measured, onnxruntime")
        elif ONNX_RUNTIMES[expected][0] == "OpenVINO" and importlib.util.find_spec("openvino") is None:
            assert chosen == "onnx-int8" and "openvino not installed" in why
        else:
            assert (chosen, why) == (expected, f"auto for {kind}")
    assert bundled_runtime(FAST, "onnx") == ("onnx", "")  # a runtime asked for by name is taken as it is


def test_auto_is_the_default_and_falls_back_where_openvino_is_missing(monkeypatch):
    monkeypatch.setattr(weights, "this_cpu_kind", lambda: "AVX-512 VNNI")
    monkeypatch.setitem(auto.RUNTIME_TABLE, "AVX-512 VNNI", {FAST: "openvino-int8"})
    monkeypatch.setattr(weights.importlib.util, "find_spec", lambda name: None)  # no openvino
    segmenter = Segmenter.from_pretrained(FAST)
    assert segmenter.name == (
        f"{FAST} (onnxruntime int8, auto: openvino not installed, onnxruntime (openvino-int8 is the choice for "
        "AVX-512 VNNI))"
    )
    assert segmenter.runner.path == bundled_onnx_paths(FAST)[1]


def test_auto_runs_fp32_where_int8_fails_its_check(monkeypatch):
    monkeypatch.setattr(weights, "this_cpu_kind", lambda: "AVX2")
    monkeypatch.setitem(auto.RUNTIME_TABLE, "AVX2", {FAST: "onnx-int8"})
    original = weights.onnx_runner

    def failing_int8(path, runtime, threads=None):
        runner = original(path, runtime, threads)
        runner.metadata = {**runner.metadata, weights.INT8_DEFAULT_KEY: "false"}
        return runner

    monkeypatch.setattr(weights, "onnx_runner", failing_int8)
    segmenter = Segmenter.from_pretrained(FAST)
    assert segmenter.runner.path == bundled_onnx_paths(FAST)[0]
    assert segmenter.name == f"{FAST} (onnxruntime fp32, auto for AVX2; int8 fails its accuracy check)"
    assert Segmenter.from_pretrained(FAST, runtime="onnx-int8").runner.path == bundled_onnx_paths(FAST)[1]


def test_the_cpu_kind_is_read_once(monkeypatch):
    calls = []
    monkeypatch.setattr(auto, "cpu_flags", lambda: calls.append(1) or {"avx2"})
    auto.this_cpu_kind.cache_clear()
    try:
        assert auto.this_cpu_kind() == auto.this_cpu_kind() == "AVX2" and len(calls) == 1
    finally:
        auto.this_cpu_kind.cache_clear()


def test_a_missing_openvino_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails
    with pytest.raises(ModuleNotFoundError, match="need openvino, the package's 'openvino' extra .*: pip install"):
        Segmenter.from_pretrained(FAST, runtime="openvino")
    image = tmp_path / "frame.png"
    image.write_bytes(b"")  # never read: the model fails to load first
    assert main(["segment", str(image), "--model", FAST, "--runtime", "openvino-int8", "--output", str(tmp_path)]) == 2
    assert f"this needs the 'openvino' extra (openvino is not installed): {install_hint('openvino')}" in (
        capsys.readouterr().err
    )
