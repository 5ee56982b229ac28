"""The CPU a model runs on: its name, and the x86 instruction sets that decide how fast, and on which kernels, the
runtimes' int8 convolutions (docs/deployment.md, "int8") and bf16 layers run."""

from __future__ import annotations

import platform
from pathlib import Path

# x86 instruction sets that matter for int8 inference: /proc/cpuinfo flag -> name. Without a VNNI flag onnxruntime's
# u8 x s8 kernels add pairs of products in 16 bits (AVX2 `vpmaddubsw`), which saturate unless the weights keep to 7
# bits (`asbunet.export.quantize.quantize_int8` makes sure they do).
ISA_FLAGS = {
    "avx2": "AVX2",
    "avx512f": "AVX-512F",
    "avx512_vnni": "AVX-512 VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "avx_vnni": "AVX-VNNI",
    "amx_int8": "AMX-INT8",
}


def cpu_flags() -> set[str]:
    """The flags of the first CPU in /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_isa(flags: set[str] | None = None) -> dict[str, bool]:
    """`{name: present}` for every instruction set of `ISA_FLAGS`, e.g. `{"AVX2": True, "AVX-512F": False, ...}`."""
    flags = cpu_flags() if flags is None else flags
    return {name: flag in flags for flag, name in ISA_FLAGS.items()}


def int8_kind(isa: dict[str, bool]) -> str:
    """The kind of x86 CPU for int8 figures: "AMX", "VNNI", "AVX2 without VNNI" or "no AVX2"."""
    if isa.get("AMX-INT8"):
        return "AMX"
    if isa.get("AVX-512 VNNI") or isa.get("AVX-VNNI"):
        return "VNNI"
    return "AVX2 without VNNI" if isa.get("AVX2") else "no AVX2"


def describe_isa(isa: dict[str, bool]) -> str:
    """One line: `AVX2 yes, AVX-512F yes, AVX-512 VNNI yes, AVX-512 BF16 no, AVX-VNNI no, AMX-INT8 no (int8 kind:
    VNNI)`."""
    listed = ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in isa.items())
    return f"{listed} (int8 kind: {int8_kind(isa)})"
