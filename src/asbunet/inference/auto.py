"""`runtime="auto"`, the default: the runtime and precision a bundled model runs on, chosen for this kind of CPU from a
table of measurements, with no timing at run time (a first-use measurement on a busy machine would keep a noisy
choice).

The CPU's kind comes from its instruction sets (`asbunet.inference.cpu`). `RUNTIME_TABLE` holds, for each kind and
bundled model measured, the runtime whose whole `Segmenter.predict` was fastest at 1 thread among those whose masks
passed the accuracy check against onnxruntime fp32; `MEASURED` names the file with the figures and the command behind
them. The choice depends on the model's architecture and input size, not on its weights: retrained weights keep it,
and their int8 file carries its own accuracy check. A kind or model not in the table runs on onnxruntime as before:
int8 where the bundled export measured it within 0.3 IoU points of fp32, else fp32
(`asbunet.inference.weights.load_bundled_onnx`). A chosen int8 runtime whose file fails that check runs the same
runtime in fp32, and a chosen runtime whose optional package is not installed falls back to onnxruntime.
"""

from __future__ import annotations

from functools import cache

from asbunet.inference.cpu import cpu_flags, cpu_isa

# How a bundled model runs (`asbunet.inference.weights.load_model`): "auto", the default (None too), picks one here.
RUNTIMES = ("auto", "onnx", "onnx-int8", "openvino", "openvino-int8", "openvino-bf16", "torch")
# Kinds of CPU, from the instruction sets that decide which kernels the runtimes use (most capable first).
KINDS = ("AMX", "AVX-512 VNNI", "AVX-VNNI", "AVX2", "other")

# kind -> bundled model -> runtime (`RUNTIMES`); MEASURED names the figures. AVX2-only and AMX CPUs were not measured
# with every runtime by a command in the repository (benchmarks/runtimes/README.md): they run onnxruntime.
RUNTIME_TABLE: dict[str, dict[str, str]] = {
    "AVX-512 VNNI": {"asbunet_person_fast": "openvino-int8", "asbunet_person": "openvino-int8"},
}
MEASURED = {"AVX-512 VNNI": "benchmarks/runtimes/predict.md"}


def cpu_kind(isa: dict[str, bool]) -> str:
    """The kind of CPU among `KINDS` from `cpu_isa`'s instruction sets."""
    if isa.get("AMX-INT8"):
        return "AMX"
    if isa.get("AVX-512 VNNI"):
        return "AVX-512 VNNI"
    if isa.get("AVX-VNNI"):
        return "AVX-VNNI"
    return "AVX2" if isa.get("AVX2") else "other"


@cache
def this_cpu_kind() -> str:
    """`cpu_kind` of this machine's CPU, read once per process."""
    return cpu_kind(cpu_isa(cpu_flags()))


def auto_runtime(name: str, kind: str | None = None) -> str | None:
    """The runtime the table gives bundled model `name` on a CPU of `kind` (None: this one), or None where the kind or
    the model was not measured (onnxruntime's default then)."""
    return RUNTIME_TABLE.get(this_cpu_kind() if kind is None else kind, {}).get(name)
