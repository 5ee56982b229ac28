"""The latency of every model of a comparison, measured in one run on this machine (CPU through `asbunet.bench`, or
CUDA), and cached with its settings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from asbunet import atomic
from asbunet.bench.config import LatencySettings
from asbunet.compare.config import CompareConfig
from asbunet.models import create_model


def measure_latency(models: Sequence[str], settings: LatencySettings) -> dict:
    """Latency of one forward pass of every model, all measured together in one run.

    On the CPU this is `asbunet.bench.run.run_bench` restricted to the PyTorch runtime, one size and one thread count:
    models from the registry with fixed random weights (latency does not depend on them), eval mode, channels-last,
    inference mode, `warmup` untimed passes, then the timed passes round-robin over the models (pass i of every
    model, then pass i + 1), so a change of load on the machine affects every model alike; the machine and its
    matmul peaks are measured in the same run. On a GPU (`device: cuda`, which `asbunet.bench` does not time) the
    same conventions apply through `asbunet.bench.timing.time_round_robin`, each pass followed by a synchronization.

    Args:
        models: registry names.
        settings: one size and one thread count (`CompareConfig` checks this).

    Returns:
        The settings, the machine, the source of the figures and, per model, the median, 95th percentile and mean
        in milliseconds.
    """
    from asbunet.bench.config import BenchConfig
    from asbunet.bench.machine import describe_machine, machine_info
    from asbunet.bench.run import run_bench
    from asbunet.bench.timing import time_round_robin

    previous_threads = torch.get_num_threads()
    try:
        if settings.device == "cpu":
            report = run_bench(BenchConfig(models=list(models), latency=settings, runtimes=["torch"], profile=False))
            timings = {r["model"]: r for r in report["rows"] if r["runtime"] == "torch"}
            machine = describe_machine(report["machine"])
            source = "asbunet.bench.run.run_bench (PyTorch runtime)"
            peaks = report["peaks"]
        else:
            if not torch.cuda.is_available():
                raise ValueError("latency device is 'cuda' but PyTorch sees no GPU; use device: cpu")
            torch.set_num_threads(settings.threads[0])
            x = torch.randn(1, 3, *settings.sizes[0], device="cuda").contiguous(memory_format=torch.channels_last)
            calls = {}
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                for name in models:
                    net = create_model(name).eval().to("cuda", memory_format=torch.channels_last)
                    calls[name] = _cuda_call(net, x)
            timings = {name: asdict(t) for name, t in time_round_robin(calls, settings.runs, settings.warmup).items()}
            machine = (
                f"{torch.cuda.get_device_name()}, CUDA {torch.version.cuda}; host {describe_machine(machine_info())}"
            )
            source = "asbunet.bench.timing.time_round_robin, synchronized CUDA passes"
            peaks = None
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "settings": bench_record(settings),
        "machine": machine,
        "source": source,
        "peaks": peaks,
        "models": {name: {k: timings[name][k] for k in ("median_ms", "p95_ms", "mean_ms")} for name in models},
    }


def _cuda_call(net: torch.nn.Module, x: torch.Tensor):
    def call():
        with torch.inference_mode():
            net(x)  # (1, 1, H, W)
        torch.cuda.synchronize()

    return call


def bench_record(settings: LatencySettings) -> dict:
    """The settings as `latency.json` records them."""
    return {
        **asdict(settings),
        "sizes": [list(s) for s in settings.sizes],
        "threads": list(settings.threads),
        "dtype": "float32",
        "runtime": "pytorch eager",
    }


def cached_latency(cfg: CompareConfig) -> dict | None:
    """`<output>/latency.json` when it was measured with the config's settings for all its models, else None."""
    path = Path(cfg.output) / "latency.json"
    if not path.is_file():
        return None
    cached = json.loads(path.read_text())
    if cached.get("settings") != bench_record(cfg.latency) or not set(cfg.models) <= set(cached.get("models", {})):
        return None
    return cached


def latency(cfg: CompareConfig) -> dict:
    """The latency of the config's models: `<output>/latency.json` when it holds these models and settings,
    otherwise measured now (all models in one run) and written there."""
    cached = cached_latency(cfg)
    if cached is not None:
        return cached
    path = Path(cfg.output) / "latency.json"
    (h, w), threads = cfg.latency.sizes[0], cfg.latency.threads[0]
    print(
        f"compare: measuring latency of {len(cfg.models)} models at {h}x{w}, {threads} thread(s), "
        f"{cfg.latency.runs} passes each",
        flush=True,
    )
    measured = measure_latency(cfg.models, cfg.latency)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(measured, indent=2) + "\n")
    return measured
