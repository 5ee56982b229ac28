"""The benchmark run (`asbunet bench`, `run_bench`): every model on every runtime, input size and thread count, timed
round-robin, beside the machine's matmul peaks and the MediaPipe peers."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from asbunet.analysis.size import count_macs, count_parameters
from asbunet.bench.accuracies import load_accuracies
from asbunet.bench.calls import build_model, ort_call, peer_call, torch_call
from asbunet.bench.config import BenchConfig, size_text
from asbunet.bench.machine import MATMUL_N, describe_isa_of, describe_machine, machine_info, matmul_peaks
from asbunet.bench.peers import find_peers, tflite_stats
from asbunet.bench.profile import profile_report
from asbunet.bench.timing import Timing, time_round_robin
from asbunet.export.calibration import calibration_files, load_images
from asbunet.export.onnx import export_onnx
from asbunet.export.quantize import quantize_int8
from asbunet.inference.cpu import describe_isa
from asbunet.inference.runners import OnnxRunner, TfliteRunner


def _calibration_images(cfg: BenchConfig) -> tuple[list[np.ndarray], str]:
    if cfg.calibration is not None:
        folders = [cfg.calibration] if isinstance(cfg.calibration, (str, Path)) else list(cfg.calibration)
        images = load_images(calibration_files(folders, cfg.calibration_count))
        return images, f"{len(images)} real images from {', '.join(map(str, folders))}"
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(cfg.calibration_count)]
    return images, f"{len(images)} random-noise images (no --calibration folder: int8 accuracy is meaningless)"


def _peer_runners(peers: dict[str, Path], threads: int) -> dict[str, TfliteRunner]:
    """Loads each MediaPipe model with ai-edge-litert; a peer that cannot be loaded is skipped with the reason."""
    runners = {}
    for name, path in peers.items():
        try:
            runners[name] = TfliteRunner(path, threads=threads, input_range="unit", output="probability")
        except (ImportError, ValueError, FileNotFoundError) as err:
            print(f"  skipping peer {name}: {err}", flush=True)
    return runners


def _peer_row(name: str, runner: TfliteRunner, threads: int, timing: Timing) -> dict:
    macs, weights = tflite_stats(runner.interpreter)
    return {
        "model": name,
        "family": "peer",
        "runtime": "tflite",
        "dtype": "fp32 (fp16 weights)",
        "size": size_text(runner.size),
        "threads": threads,
        **asdict(timing),
        "params": weights,
        "macs": macs,
        "file_mb": runner.path.stat().st_size / 1e6,
    }


def _print_row(row: dict) -> None:
    print(
        f"  {row['model']:24s} {row['runtime']:18s} {row['size']:>8s} {row['threads']}T  "
        f"{row['median_ms']:8.2f} ms (p95 {row['p95_ms']:.2f})",
        flush=True,
    )


def run_bench(cfg: BenchConfig) -> dict:
    """Measures every model on every runtime, size and thread count; returns the report `write_outputs` writes."""
    accuracies = load_accuracies(cfg.accuracy, cfg.accuracy_metric) if cfg.accuracy else {}  # fail early
    info = machine_info()
    print("machine:", describe_machine(info), flush=True)
    print("instruction sets:", describe_isa(info["instruction_sets"]), flush=True)
    peaks = {}
    for t in cfg.latency.threads:
        peaks[t] = matmul_peaks(t)
        print(
            f"matmul {MATMUL_N}x{MATMUL_N}, {t} thread(s): fp32 {peaks[t]['fp32']:.0f} GFLOP/s, "
            f"int8 {peaks[t]['int8']:.0f} GOP/s",
            flush=True,
        )
    if "onnxruntime-int8" in cfg.runtimes or cfg.profile:
        images, calibration_text = _calibration_images(cfg)
    else:
        images, calibration_text = [], "none (no int8 runtime)"
    previous_threads = torch.get_num_threads()
    peers = find_peers(cfg.peers) if cfg.peers is not None else {}
    if cfg.peers is not None and not peers:
        print(f"no MediaPipe .tflite files in {cfg.peers}: run with --fetch-peers to download them", flush=True)
    rows: list[dict] = []
    sizes = [size_text(size) for size in cfg.latency.sizes]
    try:
        with tempfile.TemporaryDirectory(prefix="asbunet-bench-") as tmp:
            workdir = Path(cfg.workdir) if cfg.workdir is not None else Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            peer_runners = {t: _peer_runners(peers, t) for t in cfg.latency.threads}
            for size in cfg.latency.sizes:
                prepared = _prepare_models(cfg, size, images, workdir)
                for t in cfg.latency.threads:
                    print(f"{size_text(size)}, {t} thread(s) on {describe_isa_of(info)}", flush=True)
                    torch.set_num_threads(t)
                    fns: dict[tuple[str, str], Callable[[], object]] = {}
                    for name, item in prepared.items():
                        for runtime in cfg.runtimes:
                            if runtime == "torch":
                                fns[(name, runtime)] = torch_call(item["model"], size)
                            else:
                                fns[(name, runtime)] = ort_call(OnnxRunner(item[runtime], threads=t), size)
                    for name, runner in peer_runners[t].items():
                        if runner.size == tuple(size):
                            fns[(name, "tflite")] = peer_call(runner)
                    for (name, runtime), timing in time_round_robin(fns, cfg.latency.runs, cfg.latency.warmup).items():
                        if runtime == "tflite":
                            row = _peer_row(name, peer_runners[t][name], t, timing)
                        else:
                            item = prepared[name]
                            file_mb = (item["params"] * 4 if runtime == "torch" else item[runtime].stat().st_size) / 1e6
                            row = {
                                "model": name,
                                "family": _family(name),
                                "runtime": runtime,
                                "dtype": "int8" if runtime.endswith("int8") else "fp32",
                                "size": size_text(size),
                                "threads": t,
                                **asdict(timing),
                                "params": item["params"],
                                "macs": item["macs"],
                                "file_mb": file_mb,
                            }
                        rows.append(row)
                        _print_row(row)
            for t, runners in peer_runners.items():  # peers at a size not benchmarked: on their own
                alone = {name: peer_call(r) for name, r in runners.items() if size_text(r.size) not in sizes}
                if alone:
                    print(f"peers at their own size, {t} thread(s) on {describe_isa_of(info)}", flush=True)
                for name, timing in time_round_robin(alone, cfg.latency.runs, cfg.latency.warmup).items():
                    rows.append(_peer_row(name, runners[name], t, timing))
                    _print_row(rows[-1])
            profile = None
            if cfg.profile:
                print(f"profile on {describe_isa_of(info)}", flush=True)
                profile = {**profile_report(cfg, images, peaks, workdir), "machine": info}
    finally:
        torch.set_num_threads(previous_threads)
    settings = {
        "runs": cfg.latency.runs,
        "warmup": cfg.latency.warmup,
        "batch": 1,
        "sizes": sizes,
        "threads": list(cfg.latency.threads),
        "runtimes": list(cfg.runtimes),
    }
    report = {
        "machine": info,
        "peaks": {str(t): p for t, p in peaks.items()},
        "calibration": calibration_text,
        "settings": settings,
        "rows": rows,
        "accuracies": accuracies,
        "profile": profile,
    }
    _annotate(report)
    return report


def _family(name: str) -> str:
    return "asbunet" if name.startswith("asbunet") else "baseline"


def _prepare_models(cfg: BenchConfig, size: tuple[int, int], images: list[np.ndarray], workdir: Path) -> dict:
    """Builds each model, counts its MACs and exports the ONNX files the runtimes need at `size`."""
    prepared = {}
    for name in cfg.models:
        model = build_model(name)
        item = {"model": model, "params": count_parameters(model), "macs": count_macs(model, size)}
        if "onnxruntime" in cfg.runtimes or "onnxruntime-int8" in cfg.runtimes:
            fp32 = workdir / f"{name}_{size_text(size)}.onnx"
            export_onnx(model, fp32, size=size)
            item["onnxruntime"] = fp32
            if "onnxruntime-int8" in cfg.runtimes:
                int8 = workdir / f"{name}_{size_text(size)}_int8.onnx"
                quantize_int8(fp32, int8, images, count=cfg.calibration_count)
                item["onnxruntime-int8"] = int8
        prepared[name] = item
        print(
            f"prepared {name} at {size_text(size)}: {item['params']:,} parameters, {item['macs'] / 1e9:.3f} GMACs",
            flush=True,
        )
    return prepared


def _annotate(report: dict) -> None:
    """Adds achieved GOP/s, fraction of peak, int8 floor, accuracy and the ratio to MediaPipe to every row."""
    peaks = report["peaks"]
    ref = {(r["size"], r["threads"]): r for r in report["rows"] if r["family"] == "peer"}
    for r in report["rows"]:
        peak = peaks[str(r["threads"])]["int8" if r["dtype"] == "int8" else "fp32"]
        r["gops"] = 2 * r["macs"] / (r["median_ms"] * 1e-3) / 1e9 if r.get("macs") else None
        r["fraction_of_peak"] = r["gops"] / peak if r["gops"] is not None else None
        r["int8_floor_ms"] = 2 * r["macs"] / (peaks[str(r["threads"])]["int8"] * 1e9) * 1e3 if r.get("macs") else None
        r["floor_ratio"] = r["median_ms"] / r["int8_floor_ms"] if r["int8_floor_ms"] else None
        acc = report["accuracies"].get(r["model"], {})
        r["accuracy"] = dict(acc)
        peer = ref.get((r["size"], r["threads"]))
        r["vs_mediapipe"] = r["median_ms"] / peer["median_ms"] if peer else None
        r["mediapipe_peer"] = peer["model"] if peer else None
