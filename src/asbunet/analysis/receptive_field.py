"""The receptive field of the encoder (Section III-C, Eq. 2; `asbunet receptive-field`).

The receptive field follows Eq. 2 (Araujo et al., ref. [36]) with a dilated kernel replaced by its effective size
k' = a(k - 1) + 1 (Section III-C):

    r_L = 1 + sum_l (k'_l - 1) * prod_{i<l} s_i

The walk over the ASB-Net encoder (Fig. 8) takes conv1 (3x3, stride 2), every 3x3 max pool, and for each ASB
layer its 3x3 compress convolution followed by its widest branch, the dilated 3x3 `decompressXxX_2`: the path that
widens the field most. The comparison schedule (`deeplab_dilations`) keeps every layer and pool and only replaces
the atrous branches' dilations by DeepLab's doubling rates 1, 2, 4, 8, ... ([39]), the "series of dilated
convolutions" whose field the paper says grows exponentially.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path

from torch import nn

from asbunet.atomic import save_figure
from asbunet.models import create_model, list_models
from asbunet.models.asbunet import ASBNetEncoder
from asbunet.models.unet import ASBLayer


@dataclass(frozen=True)
class RFLayer:
    """One step of a receptive-field walk.

    Args:
        block: the Fig. 8 layer it belongs to ("conv1", "space_bender2", ...; pools are their own block).
        name: the convolution or pool, e.g. "space_bender3/decompressXxX_2".
        kernel: kernel size k (square kernels).
        stride: stride s.
        dilation: dilation rate a; the effective kernel is a(k - 1) + 1.
        atrous: True for the dilated branch whose rate a schedule (`with_dilations`) may replace.
    """

    block: str
    name: str
    kernel: int
    stride: int = 1
    dilation: int = 1
    atrous: bool = False

    @property
    def effective_kernel(self) -> int:
        return self.dilation * (self.kernel - 1) + 1


@dataclass(frozen=True)
class RFRow:
    """Receptive field after `layer`, in input pixels; `jump` is the product of the strides up to and including it."""

    layer: RFLayer
    jump: int
    receptive_field: int


def receptive_fields(layers: Sequence[RFLayer]) -> list[RFRow]:
    """Eq. 2 applied after every layer: r_l = r_{l-1} + (k'_l - 1) * prod_{i<l} s_i, with r_0 = 1."""
    rows, rf, jump = [], 1, 1
    for layer in layers:
        if layer.kernel < 1 or layer.stride < 1 or layer.dilation < 1:
            raise ValueError(f"{layer.name}: kernel, stride and dilation must be positive integers, got {layer}")
        rf += (layer.effective_kernel - 1) * jump
        jump *= layer.stride
        rows.append(RFRow(layer, jump, rf))
    return rows


def _conv_layer(block: str, name: str, conv: nn.Conv2d, atrous: bool = False) -> RFLayer:
    return RFLayer(block, name, conv.kernel_size[0], conv.stride[0], conv.dilation[0], atrous)


def _first_conv(module: nn.Module) -> nn.Conv2d:
    return next(m for m in module.modules() if isinstance(m, nn.Conv2d))


def encoder_rf_layers(encoder: nn.Module) -> list[RFLayer]:
    """The layer sequence of an ASB-Net encoder (Fig. 8), read from the built modules in forward order.

    conv1, then for every stage its leading 3x3 max pool and, per ASB layer, the compress convolution followed by
    its widest branch, the dilated `decompressXxX_2`.
    """
    if not isinstance(encoder, ASBNetEncoder):
        raise ValueError(
            f"the receptive-field walk needs an ASB-Net encoder, got {type(encoder).__name__}; "
            f"use an asbunet* model: {', '.join(n for n in list_models() if n.startswith('asbunet'))}"
        )
    layers = [_conv_layer("conv1", "conv1", _first_conv(encoder.conv1))]
    pool = encoder.pool
    for i, stage in enumerate(encoder.stages, start=1):
        layers.append(RFLayer(f"max_pool{i}", f"max_pool{i}", pool.kernel_size, pool.stride))
        for name, asbl in stage.named_children():
            if not isinstance(asbl, ASBLayer):
                raise ValueError(f"unexpected module {name} ({type(asbl).__name__}) in an ASB-Net stage")
            layers.append(_conv_layer(name, f"{name}/compress", _first_conv(asbl.compress)))
            # the dilated 3x3 (k' = 2a + 1 >= 3) is never narrower than the 1x1 and 3x3 branches beside it
            atrous = _conv_layer(name, f"{name}/decompressXxX_2", _first_conv(asbl.decompressXxX_2), atrous=True)
            layers.append(atrous)
    return layers


def model_rf_layers(name: str = "asbunet") -> list[RFLayer]:
    """`encoder_rf_layers` of the named model's encoder."""
    return encoder_rf_layers(create_model(name).encoder)


def atrous_dilations(layers: Sequence[RFLayer]) -> tuple[int, ...]:
    """Dilation rates of the atrous branches, in order (Fig. 8: 1, 2, 2, 4, 2, 2, 1)."""
    return tuple(layer.dilation for layer in layers if layer.atrous)


def deeplab_dilations(n: int) -> tuple[int, ...]:
    """DeepLab-style doubling rates 1, 2, 4, ..., 2^(n-1) for a series of n atrous layers."""
    return tuple(2**i for i in range(n))


def with_dilations(layers: Sequence[RFLayer], dilations: Sequence[int]) -> list[RFLayer]:
    """The same layers with the atrous branches' dilation rates replaced by `dilations`, in order."""
    n_atrous = sum(layer.atrous for layer in layers)
    if len(dilations) != n_atrous:
        raise ValueError(f"the sequence has {n_atrous} atrous layers; pass exactly {n_atrous} dilations")
    rates = iter(dilations)
    return [replace(layer, dilation=next(rates)) if layer.atrous else layer for layer in layers]


def blockwise(rows: Sequence[RFRow]) -> list[tuple[str, int]]:
    """Receptive field after each convolutional block of Fig. 8 (conv1, space_bender2, ...); pools are folded into
    the block that follows them."""
    out: dict[str, int] = {}
    for row in rows:
        if not row.layer.block.startswith("max_pool"):
            out[row.layer.block] = row.receptive_field
    return list(out.items())


@dataclass(frozen=True)
class Linearity:
    """How close a receptive-field curve is to a straight line in the layer index.

    Args:
        slope: pixels per layer of the least-squares line.
        r2_linear: R^2 of that line (1.0 = exactly linear).
        r2_exponential: R^2 of a line fitted to log(RF), i.e. of an exponential fit.
        increments: RF growth from each layer to the next.
        growth_ratio: geometric mean of the ratios of successive increments (1 = linear, 2 = doubling).
    """

    slope: float
    r2_linear: float
    r2_exponential: float
    increments: tuple[int, ...]
    growth_ratio: float


def _r2(x: Sequence[float], y: Sequence[float]) -> float:
    if len(set(y)) == 1:
        return 1.0
    return statistics.correlation(x, y) ** 2


def linearity(values: Sequence[int]) -> Linearity:
    """Fits RF against the layer index 1..n (n >= 3) and measures how far the growth is from linear."""
    if len(values) < 3:
        raise ValueError(f"need at least 3 receptive-field values to judge linearity, got {len(values)}")
    x = list(range(1, len(values) + 1))
    slope, _ = statistics.linear_regression(x, values)
    increments = tuple(b - a for a, b in pairwise(values))
    if any(d <= 0 for d in increments):
        raise ValueError(f"receptive fields must grow layer by layer, got {list(values)}")
    ratios = [b / a for a, b in pairwise(increments)]
    growth = math.exp(statistics.fmean(math.log(r) for r in ratios))
    return Linearity(slope, _r2(x, values), _r2(x, [math.log(v) for v in values]), increments, growth)


def format_rf_table(schedules: dict[str, Sequence[RFRow]]) -> str:
    """Per-layer table: one row per layer, one RF column per schedule (same layers, different dilations)."""
    names = list(schedules)
    rows = list(zip(*schedules.values(), strict=True))
    k_eff = "k'"
    header = f"{'layer':<32}{'k':>3}{'s':>3}{'jump':>6}" + "".join(f"{'a':>4}{k_eff:>5}{n:>12}" for n in names)
    lines = [header, "-" * len(header)]
    for group in rows:
        first = group[0]
        line = f"{first.layer.name:<32}{first.layer.kernel:>3}{first.layer.stride:>3}{first.jump:>6}"
        for row in group:
            line += f"{row.layer.dilation:>4}{row.layer.effective_kernel:>5}{row.receptive_field:>12}"
        lines.append(line)
    return "\n".join(lines)


def format_linearity(schedules: dict[str, Sequence[RFRow]]) -> str:
    """RF after each Fig. 8 block for every schedule, with the linearity figures and a verdict line each."""
    blocks = {name: blockwise(rows) for name, rows in schedules.items()}
    names = list(blocks)
    header = f"{'#':>2} {'block':<16}" + "".join(f"{n:>12}{'+':>7}" for n in names)
    lines = [header, "-" * len(header)]
    for i, group in enumerate(zip(*blocks.values(), strict=True)):
        line = f"{i + 1:>2} {group[0][0]:<16}"
        for name, (_, rf) in zip(names, group, strict=True):
            prev = blocks[name][i - 1][1] if i else 1
            line += f"{rf:>12}{rf - prev:>+7}"
        lines.append(line)
    lines.append("")
    for name in names:
        fit = linearity([rf for _, rf in blocks[name]])
        lines.append(
            f"{name}: R^2 linear {fit.r2_linear:.3f}, R^2 exponential {fit.r2_exponential:.3f}, "
            f"slope {fit.slope:.1f} px/layer, increment growth ratio {fit.growth_ratio:.2f}/layer, "
            f"final RF {blocks[name][-1][1]} px"
        )
    return "\n".join(lines)


def paper_and_deeplab(name: str = "asbunet") -> dict[str, list[RFRow]]:
    """RF rows of the model's own dilation schedule and of the DeepLab-style doubling schedule, same layers."""
    layers = model_rf_layers(name)
    deeplab = with_dilations(layers, deeplab_dilations(len(atrous_dilations(layers))))
    return {"paper": receptive_fields(layers), "deeplab": receptive_fields(deeplab)}


def plot_receptive_fields(schedules: dict[str, Sequence[RFRow]], path: str | Path, title: str = "") -> Path:
    """Plots RF after each Fig. 8 block for every schedule to a PNG: linear axis (with the paper schedule's
    least-squares line) on the left, log axis on the right, where exponential growth is a straight line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"plot path must end in .png, got {path}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    labels: list[str] = []
    for name, rows in schedules.items():
        blocks = blockwise(rows)
        labels = [b.replace("space_bender", "ASBL") for b, _ in blocks]
        x = list(range(1, len(blocks) + 1))
        rf = [v for _, v in blocks]
        dil = ",".join(map(str, atrous_dilations([r.layer for r in rows])))
        fit = linearity(rf)
        for ax in axes:
            ax.plot(x, rf, marker="o", label=f"{name}: dilations {dil} (R$^2$ linear {fit.r2_linear:.3f})")
        if name == "paper":
            slope, intercept = statistics.linear_regression(x, rf)
            axes[0].plot(x, [slope * i + intercept for i in x], ls="--", color="grey", lw=1, label="linear fit (paper)")
    for ax, scale in zip(axes, ("linear", "log"), strict=True):
        ax.set_yscale(scale)
        ax.set_xticks(range(1, len(labels) + 1), labels)
        ax.set_xlabel("layer (Fig. 8)")
        ax.set_ylabel(f"receptive field, input pixels ({scale} axis)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(title or "ASB-Net encoder receptive field (Eq. 2)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    plt.close(fig)
    return path
