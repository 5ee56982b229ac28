"""Model analysis: parameter counts and size (Fig. 7), MACs, output strides, receptive field (Section III-C, Eq. 2).

Parameters are counted two ways. `count_parameters` is PyTorch's count (`model.parameters()`, no buffers).
`count_keras_parameters` adds the BatchNorm running mean and variance, which Keras lists as non-trainable
parameters and includes in its "Total params", the figure Fig. 7 most likely reports.

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

import copy
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path

import torch
from torch import nn

from asbunet.atomic import save_figure
from asbunet.models import create_model, list_models
from asbunet.models.asbunet import ASBNetEncoder
from asbunet.models.unet import ASBLayer

# Fig. 7, "Total params and Model Size Comparison": (total params, model size in MB).
PAPER_FIG7: dict[str, tuple[int, float]] = {
    "mobilenetv2_unet_100": (1_057_013, 4.7),
    "mobilenetv2_unet_130": (1_577_717, 6.8),
    "mobilenetv2_unet_140": (1_786_565, 7.6),
    "efficientnet_unet_b0": (1_448_056, 6.3),
    "efficientnet_unet_b1": (1_808_860, 7.9),
    "efficientnet_unet_b2": (2_075_728, 9.0),
    "asbunet": (1_656_385, 6.9),
    "asbunet_swish": (1_656_385, 6.9),
}

# Sum of the convolution weights listed in Fig. 8 (no biases, no normalization).
FIG8_CONV_WEIGHTS = 1_362_624


# --------------------------------------------------------------------------------------------------------------
# Parameters, size, MACs, strides
# --------------------------------------------------------------------------------------------------------------


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """PyTorch's parameter count: every tensor of `model.parameters()`, buffers excluded."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_bn_statistics(model: nn.Module) -> int:
    """Number of BatchNorm running-mean and running-variance entries (Keras "non-trainable params")."""
    total = 0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            total += m.running_mean.numel() + m.running_var.numel()
    return total


def count_keras_parameters(model: nn.Module) -> int:
    """Keras-style "Total params": the parameters plus the BatchNorm moving mean and variance."""
    return count_parameters(model) + count_bn_statistics(model)


def fp32_size_bytes(model: nn.Module) -> int:
    """Bytes of the state dict's floating-point tensors stored as fp32 (integer counters such as
    `num_batches_tracked` excluded): what a float32 weight file holds, headers aside."""
    return sum(t.numel() * 4 for t in model.state_dict().values() if t.is_floating_point())


def count_macs(model: nn.Module, size: tuple[int, int] = (256, 256)) -> int:
    """Multiply-accumulates of one forward pass on a (1, 3, H, W) input, from `nn.Conv2d` and `nn.Linear` only.

    Counted with forward hooks on a copy of the model on the meta device, so no arithmetic runs and the model
    itself is left untouched. A convolution costs `out.numel() * in_channels / groups * kh * kw`, a linear layer
    `out.numel() * in_features`; biases, normalization, activations, pooling and resizing are not counted.
    """
    height, width = size
    if height < 1 or width < 1:
        raise ValueError(f"size must be two positive integers (H, W), got {size}")
    meta = copy.deepcopy(model).to("meta").eval()
    macs = 0

    def conv_hook(m: nn.Conv2d, inputs, out: torch.Tensor) -> None:
        nonlocal macs
        macs += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m: nn.Linear, inputs, out: torch.Tensor) -> None:
        nonlocal macs
        macs += out.numel() * m.in_features

    for m in meta.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, nn.Linear):
            m.register_forward_hook(linear_hook)
    with torch.no_grad():
        meta(torch.empty(1, 3, height, width, device="meta"))  # (1, K, H, W) on meta: shapes only
    return macs


def output_strides(model: nn.Module) -> list[int]:
    """Strides of the encoder's features, shallowest first (encoder contract: `model.encoder.strides`)."""
    encoder = getattr(model, "encoder", None)
    if encoder is None or not hasattr(encoder, "strides"):
        raise ValueError(f"{type(model).__name__} has no `encoder.strides`; pass a model built by asbunet.create_model")
    return list(encoder.strides)


def encoder_conv_weights(model: nn.Module) -> int:
    """Sum of the encoder's convolution weights (biases excluded), comparable with Fig. 8's 1,362,624."""
    return sum(m.weight.numel() for m in model.encoder.modules() if isinstance(m, nn.Conv2d))


@dataclass(frozen=True)
class ModelSummary:
    """The figures `asbunet summary` prints for one model."""

    name: str
    params: int  # PyTorch count, no buffers
    keras_params: int  # params + BatchNorm running mean/var
    fp32_bytes: int
    macs: int
    size: tuple[int, int]
    strides: tuple[int, ...]
    encoder_conv_weights: int

    @property
    def fp32_mb(self) -> float:
        return self.fp32_bytes / 1e6

    @property
    def fp32_mib(self) -> float:
        return self.fp32_bytes / 2**20

    @property
    def paper(self) -> tuple[int, float] | None:
        """(params, MB) from Fig. 7, or None for variants the paper does not list."""
        return PAPER_FIG7.get(self.name)


def summarize(name: str, size: tuple[int, int] = (256, 256)) -> ModelSummary:
    """Builds the named model and measures it; MACs at an input of `size` (H, W)."""
    model = create_model(name).eval()
    return ModelSummary(
        name=name,
        params=count_parameters(model),
        keras_params=count_keras_parameters(model),
        fp32_bytes=fp32_size_bytes(model),
        macs=count_macs(model, size),
        size=tuple(size),
        strides=tuple(output_strides(model)),
        encoder_conv_weights=encoder_conv_weights(model),
    )


def format_summary(s: ModelSummary) -> str:
    """Multi-line report of one model."""
    macs_label = f"MACs at {s.size[0]}x{s.size[1]}"
    lines = [
        f"model                    {s.name}",
        f"parameters (PyTorch)     {s.params:,}",
        f"parameters (Keras-style) {s.keras_params:,}  (+ BatchNorm running mean/var)",
        f"fp32 size                {s.fp32_mb:.2f} MB ({s.fp32_mib:.2f} MiB), state dict incl. BN statistics",
        f"{macs_label:<25}{s.macs / 1e9:.3f} G",
        f"output strides           {', '.join(map(str, s.strides))}",
        f"encoder conv weights     {s.encoder_conv_weights:,}",
    ]
    if s.paper is not None:
        params, mb = s.paper
        lines.append(
            f"paper (Fig. 7)           {params:,} params, {mb} MB; ours/paper {s.params / params:.3f} (PyTorch), "
            f"{s.keras_params / params:.3f} (Keras-style)"
        )
    return "\n".join(lines)


def format_table(summaries: Sequence[ModelSummary]) -> str:
    """One table in the layout of Fig. 7 (name, params, size) plus MACs and the paper's figures beside ours."""
    size = summaries[0].size if summaries else (256, 256)
    header = (
        f"{'model':<22}{'params':>12}{'keras':>12}{'fp32 MB':>9}{'GMACs':>8}"
        f"{'paper params':>14}{'paper MB':>10}{'params/paper':>14}{'MB/paper':>10}"
    )
    lines = [f"MACs at {size[0]}x{size[1]}; params = PyTorch count, keras = params + BN running mean/var", header]
    lines.append("-" * len(header))
    for s in summaries:
        row = f"{s.name:<22}{s.params:>12,}{s.keras_params:>12,}{s.fp32_mb:>9.2f}{s.macs / 1e9:>8.3f}"
        if s.paper is None:
            row += f"{'-':>14}{'-':>10}{'-':>14}{'-':>10}"
        else:
            params, mb = s.paper
            row += f"{params:>14,}{mb:>10.1f}{s.params / params:>14.3f}{s.fp32_mb / mb:>10.3f}"
        lines.append(row)
    return "\n".join(lines)


def summarize_all(size: tuple[int, int] = (256, 256)) -> list[ModelSummary]:
    """`summarize` for every name of `asbunet.list_models()`."""
    return [summarize(name, size) for name in list_models()]


# --------------------------------------------------------------------------------------------------------------
# Receptive field (Section III-C, Eq. 2)
# --------------------------------------------------------------------------------------------------------------


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
