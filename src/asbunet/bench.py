"""CPU latency benchmark of every model on every runtime, against the machine's matmul peaks and MediaPipe.

The paper compares accuracy, parameters, size and computation time (Fig. 6, 7); this measures the time part on the
machine at hand, with everything that makes such figures trustworthy printed beside them:

* runtimes: PyTorch eager fp32 (channels-last, inference mode), onnxruntime fp32 and onnxruntime int8
  (`asbunet.export.quantize.quantize_int8`, calibrated on a few real images);
* batch 1 at each input size and thread count; warm-up passes, then many timed passes taken round-robin over all
  models and runtimes of a size and thread count (a change of load hits them alike); median and 95th percentile;
* the machine (CPU, cores, versions) and its fp32 and int8 matmul peaks measured in the same run (onnxruntime
  MatMul and MatMulInteger, 2048 x 2048), so achieved GOP/s read as a fraction of what the cores can do; the int8
  *floor* of a model is 2 * MACs / int8 peak;
* peers: MediaPipe Selfie Segmentation general (256x256) and landscape (144x256), run with ai-edge-litert from the
  model files of the `mediapipe==0.10.21` wheel (`fetch_peers`); ratios to MediaPipe at the same input size;
* an onnxruntime per-operator profile of the int8 and fp32 ASBU-Net and an ablation of the int8 graph rewrites.

Outputs (`write_outputs`): `results.md` (tables like Fig. 6/7 plus the summary), `results.csv`, `results.json`,
`latency.png` (accuracy, or MACs, against latency) and `profile.md`.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from asbunet import atomic
from asbunet.analysis import count_macs, count_parameters
from asbunet.export.calibration import calibration_files, load_images
from asbunet.export.onnx import export_onnx
from asbunet.export.quantize import quantize_int8
from asbunet.inference.cpu import cpu_flags, cpu_isa, cpu_name, describe_isa, int8_kind
from asbunet.inference.mediapipe_wheel import MEDIAPIPE_VERSION, extract_from_wheel
from asbunet.inference.peers import DEFAULT_PEERS_DIR, PEERS
from asbunet.inference.runners import OnnxRunner, TfliteRunner
from asbunet.models import create_model, list_models

RUNTIMES = ("torch", "onnxruntime", "onnxruntime-int8")
RUNTIME_LABELS = {
    "torch": "PyTorch fp32",
    "onnxruntime": "onnxruntime fp32",
    "onnxruntime-int8": "onnxruntime int8",
    "tflite": "LiteRT (XNNPACK)",
}
DEFAULT_SIZES = ((256, 256), (144, 256), (360, 640))
WIDTH_VARIANTS = {"asbunet": 1.0, "asbunet_050": 0.5, "asbunet_035": 0.35, "asbunet_025": 0.25}
GENERAL_PEER = "mediapipe_general"
MATMUL_N = 2048
PROFILE_MODEL = "asbunet"
WHEEL_CACHE = Path(".cache/peers")  # where `fetch_peers` keeps the downloaded mediapipe wheel


# ------------------------------------------------------------------------------------------------- the machine


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
    try:
        versions["ai-edge-litert"] = version("ai-edge-litert")
    except PackageNotFoundError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "isa": [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags],
        "instruction_sets": isa,
        "int8_kind": int8_kind(isa),
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


# ----------------------------------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Latency statistics of one candidate, milliseconds."""

    median_ms: float
    p95_ms: float
    mean_ms: float
    min_ms: float
    runs: int

    @classmethod
    def of(cls, times_ms: Sequence[float]) -> Timing:
        t = np.asarray(times_ms)
        return cls(float(np.median(t)), float(np.percentile(t, 95)), float(t.mean()), float(t.min()), len(t))


def time_call(fn: Callable[[], object], runs: int, warmup: int) -> Timing:
    """Times `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return Timing.of(times)


def time_round_robin(fns: dict[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, Timing]:
    """Times every callable `runs` times, interleaved (pass i of each, then pass i + 1), after `warmup` each."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t0) * 1e3)
    return {k: Timing.of(v) for k, v in times.items()}


# ------------------------------------------------------------------------------------------------------ peers


def fetch_peers(
    folder: str | Path = DEFAULT_PEERS_DIR, version: str = MEDIAPIPE_VERSION, cache: str | Path = WHEEL_CACHE
) -> dict[str, Path]:
    """Downloads the mediapipe wheel (`pip download --no-deps`) into `cache` and extracts the two .tflite files into
    `folder`."""
    extract_from_wheel(PEERS.values(), folder, cache, version)
    return find_peers(folder)


def find_peers(cache: str | Path) -> dict[str, Path]:
    """The MediaPipe .tflite files present in `cache`."""
    cache = Path(cache)
    return {name: cache / Path(member).name for name, member in PEERS.items() if (cache / Path(member).name).is_file()}


def tflite_stats(interpreter) -> tuple[int, int]:
    """(MACs, weights) of the convolutions and fully connected layers of a TFLite interpreter's graph."""
    shapes = {t["index"]: [int(d) for d in t["shape"]] for t in interpreter.get_tensor_details()}
    macs = weights = 0
    for op in interpreter._get_ops_details():  # the interpreter's only view of the graph's operators
        name, ins, outs = op["op_name"], [i for i in op["inputs"] if i >= 0], op["outputs"]
        if len(ins) < 2:
            continue
        x, w, y = shapes[ins[0]], shapes[ins[1]], shapes[outs[0]]
        if name == "CONV_2D":  # w (Co, kh, kw, Ci)
            macs += int(np.prod(y)) * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":  # w (1, kh, kw, C)
            macs += int(np.prod(y)) * w[1] * w[2]
        elif name in ("TRANSPOSE_CONV", "Convolution2DTransposeBias"):  # w (Co, kh, kw, Ci), per input pixel
            if name == "TRANSPOSE_CONV":
                x, w = shapes[ins[2]], shapes[ins[1]]
            macs += int(np.prod(x)) * w[0] * w[1] * w[2]
        elif name == "FULLY_CONNECTED":  # w (O, I)
            macs += int(np.prod(y)) * w[1]
        else:
            continue
        weights += int(np.prod(w)) + sum(int(np.prod(shapes[i])) for i in ins[2:3] if name != "TRANSPOSE_CONV")
    return macs, weights


# ------------------------------------------------------------------------------------------------- accuracies


def load_accuracies(specs: Sequence[str], metric: str = "iou") -> dict[str, dict[str, float]]:
    """Accuracies per model and data set from JSON files.

    Each spec is `NAME=summary.json` (a file written by `asbunet evaluate`: the mean-over-images `metric` of each of
    its data sets is NAME's accuracy there) or a path to a JSON mapping `{name: value}` or
    `{name: {data set: value}}`.
    """
    out: dict[str, dict[str, float]] = {}
    for spec in specs:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"accuracy file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not JSON ({err})") from None
        if name:
            if not isinstance(data, dict) or "datasets" not in data:
                raise ValueError(f"{path}: expected a summary.json written by `asbunet evaluate` (with 'datasets')")
            try:
                out[name] = {slug: float(e["mean"][metric]) for slug, e in data["datasets"].items()}
            except KeyError:
                raise ValueError(f"{path}: no mean '{metric}' per data set; choose another --accuracy-metric") from None
            continue
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object {{model: accuracy}} or {{model: {{data set: value}}}}")
        for model, value in data.items():
            if isinstance(value, (int, float)):
                out[model] = {"accuracy": float(value)}
            elif isinstance(value, dict) and all(isinstance(v, (int, float)) for v in value.values()):
                out[model] = {k: float(v) for k, v in value.items()}
            else:
                raise ValueError(f"{path}: accuracy of {model!r} must be a number or {{data set: number}}")
    return out


# ------------------------------------------------------------------------------------------------------ the run


@dataclass
class BenchConfig:
    """What `run_bench` measures.

    Args:
        models: registry names (`asbunet.list_models()`).
        sizes: input sizes (H, W), at least 16 (other than multiples of 16 work: the decoder resizes to each skip).
        threads: thread counts; each row pins one.
        runtimes: subset of `RUNTIMES`.
        runs: timed passes per candidate; warmup: untimed passes first.
        calibration: folders of real images for the int8 calibration, shared equally (None: random images, noted
            in the report).
        calibration_count: images used for calibration (`asbunet.export.calibration.MIN_CALIBRATION_IMAGES` or more).
        peers: folder with the MediaPipe .tflite files (see `fetch_peers`); None skips the peers.
        accuracy: `load_accuracies` specs.
        accuracy_metric: metric read from `asbunet evaluate` summaries.
        profile: write the per-operator profile and int8 ablation of `profile_model`.
        workdir: where the exported models go (None: a temporary folder).
    """

    models: Sequence[str] = field(default_factory=list_models)
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES
    threads: Sequence[int] = (1, 2)
    runtimes: Sequence[str] = RUNTIMES
    runs: int = 50
    warmup: int = 10
    calibration: str | Path | Sequence[str | Path] | None = None
    calibration_count: int = 32
    peers: str | Path | None = DEFAULT_PEERS_DIR
    accuracy: Sequence[str] = ()
    accuracy_metric: str = "iou"
    profile: bool = True
    profile_model: str = PROFILE_MODEL
    workdir: str | Path | None = None

    def __post_init__(self):
        unknown = [m for m in self.models if m not in list_models()]
        if unknown:
            raise ValueError(f"unknown models {unknown}; valid names: {', '.join(list_models())}")
        bad = [r for r in self.runtimes if r not in RUNTIMES]
        if bad or not self.runtimes:
            raise ValueError(f"runtimes must be among {list(RUNTIMES)}, got {list(self.runtimes)}")
        for h, w in self.sizes:
            if h < 16 or w < 16:
                raise ValueError(f"sizes must be at least 16x16 (the output stride), got {h}x{w}")
        if not self.threads or any(t < 1 for t in self.threads):
            raise ValueError(f"threads must be positive, got {list(self.threads)}")
        if self.profile and self.profile_model not in list_models():
            raise ValueError(f"unknown profile model {self.profile_model!r}; valid names: {', '.join(list_models())}")
        if self.runs < 1 or self.warmup < 0:
            raise ValueError(f"runs must be >= 1 and warmup >= 0, got {self.runs} and {self.warmup}")


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _calibration_images(cfg: BenchConfig) -> tuple[list[np.ndarray], str]:
    if cfg.calibration is not None:
        folders = [cfg.calibration] if isinstance(cfg.calibration, (str, Path)) else list(cfg.calibration)
        images = load_images(calibration_files(folders, cfg.calibration_count))
        return images, f"{len(images)} real images from {', '.join(map(str, folders))}"
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(cfg.calibration_count)]
    return images, f"{len(images)} random-noise images (no --calibration folder: int8 accuracy is meaningless)"


def _build_model(name: str) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return create_model(name).eval()


def _torch_call(model: torch.nn.Module, size: tuple[int, int]) -> Callable[[], object]:
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, *size).contiguous(memory_format=torch.channels_last)

    def call():
        with torch.inference_mode():
            return model(x)

    return call


def _ort_call(runner: OnnxRunner, size: tuple[int, int]) -> Callable[[], object]:
    x = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
    session, feed, out = runner.session, {runner.input_name: x}, [runner.output_name]
    return lambda: session.run(out, feed)


def _peer_runners(peers: dict[str, Path], threads: int) -> dict[str, TfliteRunner]:
    """Loads each MediaPipe model with ai-edge-litert; a peer that cannot be loaded is skipped with the reason."""
    runners = {}
    for name, path in peers.items():
        try:
            runners[name] = TfliteRunner(path, threads=threads, input_range="unit", output="probability")
        except (ImportError, ValueError, FileNotFoundError) as err:
            print(f"  skipping peer {name}: {err}", flush=True)
    return runners


def _peer_call(runner: TfliteRunner) -> Callable[[], object]:
    x = np.random.default_rng(0).random(runner.input["shape"]).astype(np.float32)  # RGB in [0, 1], NHWC
    return lambda: runner.invoke(x)


def _peer_row(name: str, runner: TfliteRunner, threads: int, timing: Timing) -> dict:
    macs, weights = tflite_stats(runner.interpreter)
    return {
        "model": name,
        "family": "peer",
        "runtime": "tflite",
        "dtype": "fp32 (fp16 weights)",
        "size": _size_text(runner.size),
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
    for t in cfg.threads:
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
    sizes = [_size_text(size) for size in cfg.sizes]
    try:
        with tempfile.TemporaryDirectory(prefix="asbunet-bench-") as tmp:
            workdir = Path(cfg.workdir) if cfg.workdir is not None else Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            peer_runners = {t: _peer_runners(peers, t) for t in cfg.threads}
            for size in cfg.sizes:
                prepared = _prepare_models(cfg, size, images, workdir)
                for t in cfg.threads:
                    print(f"{_size_text(size)}, {t} thread(s) on {describe_isa_of(info)}", flush=True)
                    torch.set_num_threads(t)
                    fns: dict[tuple[str, str], Callable[[], object]] = {}
                    for name, item in prepared.items():
                        for runtime in cfg.runtimes:
                            if runtime == "torch":
                                fns[(name, runtime)] = _torch_call(item["model"], size)
                            else:
                                fns[(name, runtime)] = _ort_call(OnnxRunner(item[runtime], threads=t), size)
                    for name, runner in peer_runners[t].items():
                        if runner.size == tuple(size):
                            fns[(name, "tflite")] = _peer_call(runner)
                    for (name, runtime), timing in time_round_robin(fns, cfg.runs, cfg.warmup).items():
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
                                "size": _size_text(size),
                                "threads": t,
                                **asdict(timing),
                                "params": item["params"],
                                "macs": item["macs"],
                                "file_mb": file_mb,
                            }
                        rows.append(row)
                        _print_row(row)
            for t, runners in peer_runners.items():  # peers at a size not benchmarked: on their own
                alone = {name: _peer_call(r) for name, r in runners.items() if _size_text(r.size) not in sizes}
                if alone:
                    print(f"peers at their own size, {t} thread(s) on {describe_isa_of(info)}", flush=True)
                for name, timing in time_round_robin(alone, cfg.runs, cfg.warmup).items():
                    rows.append(_peer_row(name, runners[name], t, timing))
                    _print_row(rows[-1])
            profile = None
            if cfg.profile:
                print(f"profile on {describe_isa_of(info)}", flush=True)
                profile = {**profile_report(cfg, images, peaks, workdir), "machine": info}
    finally:
        torch.set_num_threads(previous_threads)
    settings = {
        "runs": cfg.runs,
        "warmup": cfg.warmup,
        "batch": 1,
        "sizes": sizes,
        "threads": list(cfg.threads),
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
        model = _build_model(name)
        item = {"model": model, "params": count_parameters(model), "macs": count_macs(model, size)}
        if "onnxruntime" in cfg.runtimes or "onnxruntime-int8" in cfg.runtimes:
            fp32 = workdir / f"{name}_{_size_text(size)}.onnx"
            export_onnx(model, fp32, size=size)
            item["onnxruntime"] = fp32
            if "onnxruntime-int8" in cfg.runtimes:
                int8 = workdir / f"{name}_{_size_text(size)}_int8.onnx"
                quantize_int8(fp32, int8, images, count=cfg.calibration_count)
                item["onnxruntime-int8"] = int8
        prepared[name] = item
        print(
            f"prepared {name} at {_size_text(size)}: {item['params']:,} parameters, {item['macs'] / 1e9:.3f} GMACs",
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


# ------------------------------------------------------------------------------------------------------ profile


def _profile_runner(
    path: Path, threads: int, size: tuple[int, int], runs: int, prefix: Path, optimization: str = "all"
) -> tuple[dict, Timing]:
    """Latency (a plain session) and per-node kernel times (a profiling session: median over `runs`, microseconds)."""
    timing = time_call(_ort_call(OnnxRunner(path, threads=threads, optimization=optimization), size), runs, warmup=3)
    runner = OnnxRunner(path, threads=threads, profile=str(prefix), optimization=optimization)
    time_call(_ort_call(runner, size), runs=runs, warmup=3)
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
    name, size, threads = cfg.profile_model, tuple(cfg.sizes[0]), max(cfg.threads)
    runs = max(cfg.runs, 10)
    model = _build_model(name)
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
        "size": _size_text(size),
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


# ------------------------------------------------------------------------------------------------------ outputs


def _fmt(value, digits: int = 2, suffix: str = "") -> str:
    return "" if value is None else f"{value:.{digits}f}{suffix}"


def _percent(fraction: float | None) -> str:
    return "" if fraction is None else f"{100 * fraction:.0f}%"


def _accuracy_columns(report: dict) -> list[str]:
    return sorted({k for acc in report["accuracies"].values() for k in acc})


def widest_no_slower(report: dict) -> list[dict]:
    """Per thread count at 256x256: the widest ASBU-Net width variant no slower than MediaPipe general (any runtime)."""
    out = []
    for t in report["settings"]["threads"]:
        peer = next(
            (r for r in report["rows"] if r["model"] == GENERAL_PEER and r["threads"] == t and r["size"] == "256x256"),
            None,
        )
        if peer is None:
            continue
        best = None
        for name in sorted(WIDTH_VARIANTS, key=lambda n: -WIDTH_VARIANTS[n]):
            rows = [r for r in report["rows"] if r["model"] == name and r["threads"] == t and r["size"] == "256x256"]
            fastest = min(rows, key=lambda r: r["median_ms"], default=None)
            if fastest is not None and fastest["median_ms"] <= peer["median_ms"]:
                best = fastest
                break
        out.append(
            {
                "threads": t,
                "mediapipe_ms": peer["median_ms"],
                "model": best["model"] if best else None,
                "runtime": best["runtime"] if best else None,
                "median_ms": best["median_ms"] if best else None,
            }
        )
    return out


def summary_lines(report: dict) -> list[str]:
    """The headline numbers: floor ratios, fraction of peak, the widest variant as fast as MediaPipe."""
    lines = []
    for r in report["rows"]:
        if r["model"] == PROFILE_MODEL and r["size"] == "256x256" and r["runtime"] == "onnxruntime-int8":
            lines.append(
                f"- ASBU-Net int8 (onnxruntime), 256x256, {r['threads']} thread(s): {r['median_ms']:.2f} ms "
                f"= {r['floor_ratio']:.2f} x its int8 floor of {r['int8_floor_ms']:.2f} ms "
                f"(2 x {r['macs'] / 1e9:.3f} GMACs at {report['peaks'][str(r['threads'])]['int8']:.0f} GOP/s; "
                "target 1.3 x)"
            )
        if r["model"] == PROFILE_MODEL and r["size"] == "256x256" and r["runtime"] == "onnxruntime":
            lines.append(
                f"- ASBU-Net fp32 (onnxruntime), 256x256, {r['threads']} thread(s): {r['median_ms']:.2f} ms, "
                f"{r['gops']:.0f} GFLOP/s = {100 * r['fraction_of_peak']:.0f}% of the fp32 matmul peak "
                "(target 70%)"
            )
    for w in widest_no_slower(report):
        if w["model"]:
            lines.append(
                f"- {w['threads']} thread(s), 256x256: the widest ASBU-Net no slower than MediaPipe general "
                f"({w['mediapipe_ms']:.2f} ms) is {w['model']} ({RUNTIME_LABELS[w['runtime']]}, "
                f"{w['median_ms']:.2f} ms)"
            )
        else:
            lines.append(
                f"- {w['threads']} thread(s), 256x256: no ASBU-Net width variant measured is as fast as "
                f"MediaPipe general ({w['mediapipe_ms']:.2f} ms)"
            )
    return lines


def format_markdown(report: dict) -> str:
    """`results.md`: machine, peaks, summary, then one table per input size and thread count."""
    acc_cols = _accuracy_columns(report)
    s = report["settings"]
    lines = [
        "# Latency benchmark",
        "",
        f"Machine: {describe_machine(report['machine'])}.",
        "",
        f"Batch 1, float32 input; {s['warmup']} warm-up passes then {s['runs']} timed passes per row, taken "
        "round-robin over the rows of a size and thread count; median and 95th percentile in ms. "
        f"int8 calibration: {report['calibration']}. Registry models run with random weights (latency does not "
        "depend on them).",
        "",
        "Matmul peaks measured in this run (onnxruntime, 2048 x 2048):",
        "",
    ]
    lines += [
        f"- {t} thread(s): fp32 MatMul {p['fp32']:.0f} GFLOP/s, int8 MatMulInteger {p['int8']:.0f} GOP/s"
        for t, p in report["peaks"].items()
    ]
    summary = summary_lines(report)
    if summary:
        lines += ["", "## Summary", "", *summary]
    head = [
        "model",
        "runtime",
        "median ms",
        "p95 ms",
        *[f"accuracy {c}" for c in acc_cols],
        "params",
        "GMACs",
        "file MB",
        "GOP/s",
        "% of peak",
        "x int8 floor",
        "x MediaPipe",
    ]
    groups = defaultdict(list)
    for r in report["rows"]:
        groups[(r["size"], r["threads"])].append(r)
    for (size, t), rows in sorted(
        groups.items(), key=lambda kv: (s["sizes"].index(kv[0][0]) if kv[0][0] in s["sizes"] else 99, kv[0][1])
    ):
        peer = next((r["mediapipe_peer"] for r in rows if r.get("mediapipe_peer")), None)
        lines += [
            "",
            f"## {size}, {t} thread(s)" + (f" (ratios to {peer})" if peer else ""),
            "",
            f"CPU: {describe_isa_of(report['machine'])}.",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * 2 + "---:|" * (len(head) - 2),
        ]
        for r in sorted(rows, key=lambda r: r["median_ms"]):
            acc = [_fmt(r["accuracy"].get(c), 4) for c in acc_cols]
            lines.append(
                "| "
                + " | ".join(
                    [
                        r["model"],
                        RUNTIME_LABELS.get(r["runtime"], r["runtime"]),
                        _fmt(r["median_ms"]),
                        _fmt(r["p95_ms"]),
                        *acc,
                        f"{r['params']:,}" if r.get("params") else "",
                        _fmt(r["macs"] / 1e9 if r.get("macs") else None, 3),
                        _fmt(r["file_mb"], 1),
                        _fmt(r["gops"], 0),
                        _percent(r["fraction_of_peak"]),
                        _fmt(r["floor_ratio"] if r["dtype"] == "int8" else None),
                        _fmt(r["vs_mediapipe"]),
                    ]
                )
                + " |"
            )
    lines += [
        "",
        "GOP/s = 2 x MACs / median latency (MACs of convolutions and linear layers only); % of peak against "
        "the fp32 or int8 matmul peak of the same thread count; x int8 floor = latency / (2 x MACs / int8 "
        "peak), for int8 rows; x MediaPipe = latency / MediaPipe's latency at the same size and threads.",
    ]
    return "\n".join(lines) + "\n"


def format_profile(profile: dict) -> str:
    """`profile.md`: the int8 ablation, per-operator totals (int8 and fp32) and the slowest int8 nodes."""
    p = profile
    lines = [
        f"# Profile of {p['model']} at {p['size']}, {p['threads']} thread(s)",
        "",
        f"CPU: {describe_isa_of(p['machine'])}." if p.get("machine") else "",
        "",
        f"{p['macs'] / 1e9:.3f} GMACs; int8 floor {p['int8_floor_ms']:.2f} ms at {p['int8_peak']:.0f} GOP/s "
        f"(MatMulInteger peak of this run). fp32 onnxruntime: {p['fp32_ms']:.2f} ms = "
        f"{100 * p['fp32_fraction_of_peak']:.0f}% of the fp32 matmul peak ({p['fp32_peak']:.0f} GFLOP/s). "
        f"Relu nodes left in the optimized int8 graph: {p['relu_nodes_left_int8']} (0: every Relu is fused "
        "into its QLinearConv).",
        "",
        "## int8 variants",
        "",
        "| variant | median ms | p95 ms | x int8 floor | Concat ms | rewrites |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for a in p["ablation"]:
        rewrites = ", ".join(f"{k} {v}" for k, v in a["rewrites"].items()) or "none"
        lines.append(
            f"| {a['variant']} | {a['median_ms']:.2f} | {a['p95_ms']:.2f} | {a['floor_ratio']:.2f} | "
            f"{a['concat_ms']:.2f} | {rewrites} |"
        )
    for title, key in (("int8 (shipped)", "int8_ops"), ("fp32", "fp32_ops")):
        total = sum(o["us"] for o in p[key])
        lines += [
            "",
            f"## Kernel time per operator, {title}",
            "",
            "| operator | nodes | us | share |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| {o['op']} | {o['nodes']} | {o['us']:.0f} | {100 * o['us'] / total:.1f}% |" for o in p[key]]
    lines += [
        "",
        "## Slowest int8 nodes",
        "",
        "| node | operator | us | MACs (M) | GOP/s |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {t['node']} | {t['op']} | {t['us']:.0f} | {_fmt(t['macs'] / 1e6 if t['macs'] else None, 1)} | "
        f"{_fmt(t['gops'], 0)} |"
        for t in p["int8_top_nodes"]
    ]
    lines += [
        "",
        "Kernel times are medians over the timed passes of onnxruntime's profiler (per node, microseconds); "
        "latencies are timed without the profiler. MACs are the model's own (without the zero filters and "
        "channels the int8 rewrites add); a merged convolution carries the name of its first branch.",
    ]
    return "\n".join(lines) + "\n"


def write_plot(report: dict, path: Path) -> None:
    """Accuracy (when known) and GMACs against latency at the first size and the most threads, every model and peer."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = report["settings"]
    size, threads = s["sizes"][0], max(s["threads"])
    rows = [r for r in report["rows"] if r["threads"] == threads and (r["size"] == size or r["family"] == "peer")]
    have_acc = any(r["accuracy"] for r in rows)
    panels = [("accuracy", "accuracy (mean over data sets)")] if have_acc else []
    panels.append(("macs", "GMACs"))
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5), squeeze=False)
    markers = {"torch": "s", "onnxruntime": "o", "onnxruntime-int8": "^", "tflite": "*"}
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        for runtime, marker in markers.items():
            pts = [r for r in rows if r["runtime"] == runtime]
            xs, ys, names = [], [], []
            for r in pts:
                y = (
                    (float(np.mean(list(r["accuracy"].values()))) if r["accuracy"] else None)
                    if key == "accuracy"
                    else (r["macs"] / 1e9 if r.get("macs") else None)
                )
                if y is not None:
                    xs.append(r["median_ms"])
                    ys.append(y)
                    names.append(f"{r['model']} {r['size']}" if r["family"] == "peer" else r["model"])
            if xs:
                ax.scatter(xs, ys, marker=marker, s=90 if runtime == "tflite" else 40, label=RUNTIME_LABELS[runtime])
                for x, y, n in zip(xs, ys, names, strict=True):
                    ax.annotate(n, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        if key == "macs":
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set(xlabel=f"median latency, ms ({size}, peers at their own size; {threads} thread(s))", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    isa = describe_isa_of(report["machine"]).split(": ", 1)[1]
    fig.suptitle(f"Latency on {report['machine']['cpu']}, batch 1\n{isa}", fontsize=10)
    fig.tight_layout()
    atomic.save_figure(fig, path, dpi=120)
    plt.close(fig)


def write_outputs(report: dict, output: str | Path) -> list[Path]:
    """Writes results.md, results.csv, results.json, latency.png and (with a profile) profile.md into `output`."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.md", out / "results.csv", out / "results.json", out / "latency.png"]
    atomic.write_text(paths[0], format_markdown(report))
    fields = [
        "model",
        "family",
        "runtime",
        "dtype",
        "size",
        "threads",
        "median_ms",
        "p95_ms",
        "mean_ms",
        "min_ms",
        "runs",
        "params",
        "macs",
        "file_mb",
        "gops",
        "fraction_of_peak",
        "int8_floor_ms",
        "floor_ratio",
        "vs_mediapipe",
        "mediapipe_peer",
        "accuracy",
        "cpu",
        "instruction_sets",
    ]
    isa = describe_isa_of(report["machine"]).split(": ", 1)[1]
    with atomic.open_atomic(paths[1], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in report["rows"]:
            writer.writerow(
                {
                    **{k: r.get(k) for k in fields},
                    "accuracy": json.dumps(r["accuracy"]) if r["accuracy"] else "",
                    "cpu": report["machine"]["cpu"],
                    "instruction_sets": isa,
                }
            )
    atomic.write_text(paths[2], json.dumps(report, indent=2, default=str) + "\n")
    write_plot(report, paths[3])
    if report.get("profile"):
        paths.append(out / "profile.md")
        atomic.write_text(paths[-1], format_profile(report["profile"]))
    return paths
