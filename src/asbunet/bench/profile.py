"""An onnxruntime per-operator profile of the int8 and fp32 ASBU-Net, and the ablation of the int8 graph rewrites."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx

from asbunet.analysis.size import count_macs
from asbunet.bench.calls import build_model, ort_call
from asbunet.bench.config import BenchConfig, size_text
from asbunet.bench.timing import Timing, time_call
from asbunet.export.onnx import export_onnx
from asbunet.export.quantize import quantize_int8
from asbunet.inference.runners import OnnxRunner


def _profile_runner(
    path: Path, threads: int, size: tuple[int, int], runs: int, prefix: Path, optimization: str = "all"
) -> tuple[dict, Timing]:
    """Latency (a plain session) and per-node kernel times (a profiling session: median over `runs`, microseconds)."""
    timing = time_call(ort_call(OnnxRunner(path, threads=threads, optimization=optimization), size), runs, warmup=3)
    runner = OnnxRunner(path, threads=threads, profile=str(prefix), optimization=optimization)
    time_call(ort_call(runner, size), runs=runs, warmup=3)
    trace = runner.end_profiling()
    events = json.loads(trace.read_text())
    trace.unlink()
    durations, ops = defaultdict(list), {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            node = e["name"][: -len("_kernel_time")]
            durations[node].append(e["dur"])
            ops[node] = e["args"].get("op_name", "?")
    skip = 3  # the warm-up passes
    return {n: (ops[n], float(np.median(d[skip:] or d))) for n, d in durations.items()}, timing


def _op_table(nodes: dict) -> list[tuple[str, int, float]]:
    by_op: dict[str, list[float]] = defaultdict(list)
    for op, us in nodes.values():
        by_op[op].append(us)
    return sorted(((op, len(v), sum(v)) for op, v in by_op.items()), key=lambda t: -t[2])


def _conv_macs(path: Path, size: tuple[int, int]) -> dict[str, int]:
    """MACs of every Conv node of an fp32 ONNX file at `size` (shape inference)."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in list(model.graph.value_info) + list(model.graph.output)
    }
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    macs = {}
    for n in model.graph.node:
        if n.op_type == "Conv" and n.output[0] in shapes and n.input[1] in inits:
            w, y = inits[n.input[1]], shapes[n.output[0]]
            macs[n.name] = int(np.prod(y[1:])) * int(np.prod(w[1:]))
    return macs


def profile_report(cfg: BenchConfig, images: list[np.ndarray], peaks: dict, workdir: Path) -> dict:
    """Per-operator profile of `cfg.profile_model` (fp32 and int8) and the int8 ablation, at the first size."""
    name, size, threads = cfg.profile_model, cfg.latency.sizes[0], max(cfg.latency.threads)
    runs = max(cfg.latency.runs, 10)
    model = build_model(name)
    macs = count_macs(model, size)
    floor_ms = 2 * macs / (peaks[threads]["int8"] * 1e9) * 1e3
    d = workdir / "profile"
    d.mkdir(exist_ok=True)
    plain, fp32 = d / "fp32_plain.onnx", d / "fp32.onnx"
    export_onnx(model, plain, size=size, merge_branches=False)
    merged = export_onnx(model, fp32, size=size).notes.get("merged parallel convolutions", 0)
    count = cfg.calibration_count
    variants = [
        (
            "QDQ, no rewrites (straightforward quantize_static)",
            plain,
            dict(optimize=False, share_concat_ranges=False, preprocess=False),
            "all",
        ),
        ("+ quant_pre_process", plain, dict(optimize=False, share_concat_ranges=False), "all"),
        ("+ shared Concat ranges (QLinearConcat copies)", plain, dict(optimize=False), "all"),
        ("+ graph rewrites (all of the above: the shipped int8)", fp32, {}, "all"),
        ("same, without the NHWC layout transform (optimization level 'extended')", fp32, {}, "extended"),
        ("same rewrites, QOperator format instead of QDQ", fp32, dict(quant_format="qoperator"), "all"),
    ]
    ablation, nodes_int8 = [], None
    for i, (label, src, options, level) in enumerate(variants):
        out = d / f"int8_{i}.onnx"
        result = quantize_int8(src, out, images, count=count, **options)
        rewrites = {k: v for k, v in result.rewrites.items() if v}
        if src == fp32:  # the branches were merged at export
            rewrites = {"merged convolutions": merged, **rewrites}
        if result.shared_concat_ranges:
            rewrites["Concats sharing one range"] = result.shared_concat_ranges
        nodes, timing = _profile_runner(out, threads, size, runs, d / f"int8_{i}", level)
        ablation.append(
            {
                "variant": label,
                "median_ms": timing.median_ms,
                "p95_ms": timing.p95_ms,
                "floor_ratio": timing.median_ms / floor_ms,
                "rewrites": rewrites,
                "concat_ms": sum(us for op, us in nodes.values() if "Concat" in op) / 1e3,
            }
        )
        if i == 3:
            nodes_int8 = nodes
        print(
            f"  profile: {label}: {timing.median_ms:.2f} ms = {timing.median_ms / floor_ms:.2f} x int8 floor",
            flush=True,
        )
    nodes_fp32, timing_fp32 = _profile_runner(fp32, threads, size, runs, d / "fp32")
    conv_macs = _conv_macs(fp32, size)  # the int8 graph keeps the fp32 node names, with suffixes
    top = []
    for node, (op, us) in sorted(nodes_int8.items(), key=lambda kv: -kv[1][1])[:25]:
        base = max((c for c in conv_macs if node == c or node.startswith(c + "_")), key=len, default=None)
        m = conv_macs.get(base)
        top.append({"node": node, "op": op, "us": us, "macs": m, "gops": 2 * m / (us * 1e-6) / 1e9 if m else None})
    fp32_gflops = 2 * macs / (timing_fp32.median_ms * 1e-3) / 1e9
    return {
        "model": name,
        "size": size_text(size),
        "threads": threads,
        "macs": macs,
        "int8_floor_ms": floor_ms,
        "int8_peak": peaks[threads]["int8"],
        "fp32_peak": peaks[threads]["fp32"],
        "fp32_ms": timing_fp32.median_ms,
        "fp32_fraction_of_peak": fp32_gflops / peaks[threads]["fp32"],
        "ablation": ablation,
        "int8_ops": [{"op": op, "nodes": n, "us": us} for op, n, us in _op_table(nodes_int8)],
        "fp32_ops": [{"op": op, "nodes": n, "us": us} for op, n, us in _op_table(nodes_fp32)],
        "int8_top_nodes": top,
        "relu_nodes_left_int8": sum(op == "Relu" for op, _ in nodes_int8.values()),
    }
