"""The machine a benchmark runs on: CPU, cores, instruction sets, library versions, and its fp32 and int8 matmul peaks
(onnxruntime MatMul and MatMulInteger, 2048 x 2048)."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from asbunet.bench.timing import time_call
from asbunet.inference.auto import cpu_kind
from asbunet.inference.cpu import cpu_flags, cpu_isa, cpu_name, describe_isa, int8_kind

MATMUL_N = 2048


def machine_info() -> dict:
    """CPU model, cores, the CPU features that matter for int8 (`asbunet.inference.cpu.cpu_isa`), library versions."""
    cpu, flags = cpu_name(), cpu_flags()
    isa = cpu_isa(flags)
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
    }
    for package in ("ai-edge-litert", "openvino"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "isa": [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile") if f in flags],
        "instruction_sets": isa,
        "int8_kind": int8_kind(isa),
        "cpu_kind": cpu_kind(isa),
        "platform": platform.platform(),
        "versions": versions,
        "load_average_1min": load,
    }


def describe_isa_of(info: dict) -> str:
    """The instruction-set line of `machine_info` (`asbunet.inference.cpu.describe_isa`), printed with every table."""
    isa = info.get("instruction_sets") or cpu_isa(set(info.get("isa", ())))  # reports written before this field
    return f"{info['cpu']}: {describe_isa(isa)}"


def describe_machine(info: dict) -> str:
    v = ", ".join(f"{k} {val}" for k, val in info["versions"].items())
    load = f"; 1-min load average {info['load_average_1min']:.2f}" if info.get("load_average_1min") is not None else ""
    return (
        f"{info['cpu']}, {info['usable_cpus']} usable of {info['logical_cpus']} logical CPUs "
        f"({', '.join(info['isa']) or 'no AVX'}); {v}{load}"
    )


def _matmul_model(int8: bool, n: int = MATMUL_N) -> bytes:
    a_type, b_type, y_type = (
        (TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32) if int8 else (TensorProto.FLOAT,) * 3
    )
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger" if int8 else "MatMul", ["A", "B"], ["Y"])],
        "matmul",
        [helper.make_tensor_value_info("A", a_type, [n, n]), helper.make_tensor_value_info("B", b_type, [n, n])],
        [helper.make_tensor_value_info("Y", y_type, [n, n])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _session(model: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def matmul_peaks(threads: int, runs: int = 10, n: int = MATMUL_N) -> dict[str, float]:
    """fp32 (MatMul) and int8 (MatMulInteger, u8 x s8) GOP/s of onnxruntime on n x n matrices: median of `runs`."""
    rng = np.random.default_rng(0)
    feeds = {
        "fp32": {"A": rng.random((n, n), np.float32), "B": rng.random((n, n), np.float32)},
        "int8": {
            "A": rng.integers(0, 256, (n, n), dtype=np.uint8),
            "B": rng.integers(-128, 128, (n, n), dtype=np.int8),
        },
    }
    peaks = {}
    for kind, feed in feeds.items():
        session = _session(_matmul_model(kind == "int8", n), threads)
        timing = time_call(lambda s=session, f=feed: s.run(None, f), runs=runs, warmup=2)
        peaks[kind] = 2 * n**3 / (timing.median_ms * 1e-3) / 1e9
    return peaks
