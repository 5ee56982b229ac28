"""Where an ONNX model's time goes on OpenVINO's CPU plugin: per-layer times of one thread, summed by layer type
and by kernel (oneDNN's names say which instructions run, e.g. `brgconv_avx512_I8` for AVX-512 VNNI int8
convolutions, `ref_*` for reference code), and the slowest layers. Run on an otherwise idle machine
(`benchmarks/paused.sh PID python benchmarks/runtimes/profile_layers.py ...`).

    python benchmarks/runtimes/profile_layers.py src/asbunet/weights/asbunet_person.int8.onnx --size 224 384
"""

from __future__ import annotations

import argparse
import collections

import numpy as np

from asbunet.bench.machine import describe_machine, machine_info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an .onnx file")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), required=True, help="network input size")
    parser.add_argument("--runs", type=int, default=50, help="timed inferences (default 50)")
    parser.add_argument("--top", type=int, default=15, help="slowest layers to list (default 15)")
    args = parser.parse_args()

    import openvino as ov

    core = ov.Core()
    model = core.read_model(args.model)
    shape = [1, 3, *args.size]
    model.reshape({model.inputs[0]: shape})
    config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": 1, "PERF_COUNT": True}
    config["INFERENCE_PRECISION_HINT"] = "f32"  # as `OpenVinoRunner` by default
    request = core.compile_model(model, "CPU", config).create_infer_request()
    batch = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    by_type: collections.Counter = collections.Counter()
    by_kernel: collections.Counter = collections.Counter()
    layers: collections.Counter = collections.Counter()
    for run in range(10 + args.runs):
        request.infer({0: batch})
        if run < 10:
            continue
        for layer in request.profiling_info:
            us = layer.real_time.total_seconds() * 1e6 / args.runs
            by_type[layer.node_type] += us
            by_kernel[layer.exec_type] += us
            layers[(layer.node_name, layer.node_type, layer.exec_type)] += us
    total = sum(by_type.values())
    print(describe_machine(machine_info()))
    print(f"{args.model} at {args.size[0]}x{args.size[1]}, 1 thread: {total / 1000:.2f} ms summed over layers")
    for title, counter in (("layer type", by_type), ("kernel", by_kernel)):
        print(f"\n| {title} | ms | share |\n|---|---:|---:|")
        for name, us in counter.most_common():
            if us >= 1:
                print(f"| {name} | {us / 1000:.3f} | {us / total:.1%} |")
    print("\n| layer | type | kernel | ms |\n|---|---|---|---:|")
    for (name, kind, kernel), us in layers.most_common(args.top):
        print(f"| {name} | {kind} | {kernel} | {us / 1000:.3f} |")


if __name__ == "__main__":
    main()
