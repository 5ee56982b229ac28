"""One suite over every model variant, plus the analysis helpers (Fig. 7, Fig. 8, Section III-C Eq. 2).

Every name of `asbunet.list_models()`: output shape on odd sizes, no NaN, a gradient for every parameter, the
parameter budget of Fig. 7, deterministic eval output, a seeded golden output, ONNX export agreeing with PyTorch.
The golden statistics live in tests/golden/<name>.json; after an intended model change regenerate them with

    python tests/test_models.py --update-golden
"""

from __future__ import annotations

import copy
import functools
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision import models as tvm

import asbunet
from asbunet.analysis.receptive_field import (
    RFLayer,
    atrous_dilations,
    blockwise,
    deeplab_dilations,
    linearity,
    model_rf_layers,
    paper_and_deeplab,
    receptive_fields,
    with_dilations,
)
from asbunet.analysis.size import (
    count_keras_parameters,
    count_macs,
    count_parameters,
    encoder_conv_weights,
    fp32_size_bytes,
    output_strides,
)
from asbunet.cli import main
from asbunet.export.onnx import export_onnx
from asbunet.models.unet import ASBLayer
from asbunet.paper import FIG8_CONV_WEIGHTS

NAMES = asbunet.list_models()
GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN_SIZE = (64, 64)

# Fig. 7 totals: (paper params, relative tolerance of our PyTorch count).
PARAM_BUDGET = {
    "asbunet": (1_656_385, 0.01),
    "asbunet_swish": (1_656_385, 0.01),
    "mobilenetv2_unet_100": (1_057_013, 0.10),
    "mobilenetv2_unet_130": (1_577_717, 0.10),
    "mobilenetv2_unet_140": (1_786_565, 0.10),
    "efficientnet_unet_b0": (1_448_056, 0.10),
    "efficientnet_unet_b1": (1_808_860, 0.10),
    "efficientnet_unet_b2": (2_075_728, 0.10),
}
# Variants the paper does not list: output stride 8 and the width multipliers must stay below the paper's model.
SMALLER_THAN_ASBUNET = {
    "asbunet_os8",
    "asbunet_050",
    "asbunet_035",
    "asbunet_035_s4",
    "asbunet_035_s4_subpixel",
    "asbunet_025",
}

BASELINE_BACKBONES = {
    "mobilenetv2_unet_100": lambda: tvm.mobilenet_v2(weights=None, width_mult=1.0),
    "mobilenetv2_unet_130": lambda: tvm.mobilenet_v2(weights=None, width_mult=1.3),
    "mobilenetv2_unet_140": lambda: tvm.mobilenet_v2(weights=None, width_mult=1.4),
    "efficientnet_unet_b0": lambda: tvm.efficientnet_b0(weights=None),
    "efficientnet_unet_b1": lambda: tvm.efficientnet_b1(weights=None),
    "efficientnet_unet_b2": lambda: tvm.efficientnet_b2(weights=None),
}

# Fig. 8, "ASBU-Net Encoder Layer Specifications", as (out, in, k, k, dilation) in the figure's order.
FIG8_CONVS = [
    (64, 3, 3, 3, 1),  # conv1, stride 2
    (24, 64, 3, 3, 1), (32, 24, 1, 1, 1), (32, 24, 3, 3, 1), (32, 24, 3, 3, 1),  # space_bender2
    (24, 96, 3, 3, 1), (32, 24, 1, 1, 1), (32, 24, 3, 3, 1), (32, 24, 3, 3, 2),  # space_bender3
    (48, 96, 3, 3, 1), (64, 48, 1, 1, 1), (64, 48, 3, 3, 1), (64, 48, 3, 3, 2),  # space_bender4
    (48, 192, 3, 3, 1), (64, 48, 1, 1, 1), (64, 48, 3, 3, 1), (64, 48, 3, 3, 4),  # space_bender5
    (72, 192, 3, 3, 1), (96, 72, 1, 1, 1), (96, 72, 3, 3, 1), (96, 72, 3, 3, 2),  # space_bender6
    (72, 288, 3, 3, 1), (96, 72, 1, 1, 1), (96, 72, 3, 3, 1), (96, 72, 3, 3, 2),  # space_bender7
    (96, 288, 3, 3, 1), (128, 96, 1, 1, 1), (128, 96, 3, 3, 1), (128, 96, 3, 3, 1),  # space_bender8
]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Keeps the suite on one core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _seeded(name: str) -> nn.Module:
    torch.manual_seed(0)
    return asbunet.create_model(name)


def build(name: str) -> nn.Module:
    """A fresh copy of the model initialized from seed 0 (built once per name)."""
    return copy.deepcopy(_seeded(name))


def _input(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def golden_stats(name: str) -> dict[str, float]:
    """Statistics of the seeded model's eval output on a seeded (1, 3, 64, 64) input."""
    model = build(name).eval()
    with torch.no_grad():
        y = model(_input(1, 3, *GOLDEN_SIZE))[0, 0]  # (64, 64) logits
    return {
        "mean": y.mean().item(),
        "std": y.std().item(),
        "min": y.min().item(),
        "max": y.max().item(),
        "top_left": y[0, 0].item(),
        "centre": y[32, 32].item(),
        "bottom_right": y[-1, -1].item(),
    }


def write_golden() -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    torch.set_num_threads(1)
    for name in NAMES:
        path = GOLDEN_DIR / f"{name}.json"
        path.write_text(json.dumps(golden_stats(name), indent=2) + "\n")
        print(f"wrote {path}")


# --------------------------------------------------------------------------------------------------------------
# Every model
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_finite_and_every_parameter_gets_a_gradient(name):
    model = build(name).train()
    x = _input(2, 3, 97, 131)  # odd sizes: no stride divides them
    y = model(x)
    assert y.shape == (2, 1, 97, 131)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"{name}: parameters without a gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_parameter_budget(name):
    model = build(name)
    params = count_parameters(model)
    assert params == sum(p.numel() for p in model.parameters())
    # the fp32 state dict is the parameters plus the BN running statistics, 4 bytes each
    assert fp32_size_bytes(model) == 4 * count_keras_parameters(model)
    if name in PARAM_BUDGET:
        target, tol = PARAM_BUDGET[name]
        assert abs(params - target) <= tol * target, f"{name}: {params:,} vs Fig. 7 {target:,} (tolerance {tol:.0%})"
    elif name in SMALLER_THAN_ASBUNET:
        assert params < count_parameters(build("asbunet"))
    else:
        pytest.fail(f"{name} has no parameter budget: add it to PARAM_BUDGET or SMALLER_THAN_ASBUNET")


@pytest.mark.parametrize("name", NAMES)
def test_eval_output_is_deterministic(name):
    model = build(name).eval()
    x = _input(1, 3, 45, 61, seed=1)
    with torch.no_grad():
        a, b = model(x), model(x)
    assert a.shape == (1, 1, 45, 61)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_golden_output(name):
    path = GOLDEN_DIR / f"{name}.json"
    if not path.is_file():
        pytest.fail(f"{path} is missing; generate it with `python tests/test_models.py --update-golden`")
    expected = json.loads(path.read_text())
    actual = golden_stats(name)
    assert actual.keys() == expected.keys()
    atol = 1e-3 * max(1.0, expected["std"])
    for key, want in expected.items():
        assert math.isclose(actual[key], want, rel_tol=1e-3, abs_tol=atol), f"{name} {key}: {actual[key]} != {want}"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    "name", [n if n.startswith("asbunet") else pytest.param(n, marks=pytest.mark.slow) for n in NAMES]
)
def test_onnx_export_matches_pytorch(name, tmp_path):
    """Through the package's own `export_onnx` (exporter, merged branches, metadata, onnxruntime check)."""
    pytest.importorskip("onnxruntime")
    result = export_onnx(build(name), tmp_path / f"{name}.onnx", size=(64, 64))
    scale = max(1.0, result.random.max_abs_logit)
    assert result.random.max_abs_diff <= 1e-3 * scale, f"{name}: {result.random}"
    assert result.random.mask_iou > 0.99


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown model 'asbunet_999'") as err:
        asbunet.create_model("asbunet_999")
    assert all(name in str(err.value) for name in NAMES)


# --------------------------------------------------------------------------------------------------------------
# ASB-Net encoder (Fig. 8) and baselines
# --------------------------------------------------------------------------------------------------------------


def test_fig8_convolutions_in_order():
    encoder = build("asbunet").encoder
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [(*m.weight.shape, m.dilation[0]) for m in convs] == FIG8_CONVS
    assert [m.stride[0] for m in convs] == [2] + [1] * 28
    assert all(m.bias is None for m in convs)
    total = sum(out * cin * kh * kw for out, cin, kh, kw, _ in FIG8_CONVS)
    assert total == encoder_conv_weights(build("asbunet")) == FIG8_CONV_WEIGHTS == 1_362_624


@pytest.mark.parametrize(("name", "strides"), [("asbunet", [2, 4, 8, 16]), ("asbunet_os8", [2, 4, 8])])
def test_pools_give_the_output_stride(name, strides):
    model = build(name).eval()
    assert output_strides(model) == strides
    with torch.no_grad():
        features = model.encoder(_input(1, 3, 64, 64))
    assert [64 // f.shape[-1] for f in features] == strides


def test_min_channels_floors_the_thin_layers_of_a_narrow_model():
    def widths(model):
        return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d) and m.out_channels > 1]

    narrow, floored = asbunet.create_model("asbunet_035"), asbunet.create_model("asbunet_035", min_channels=16)
    assert min(widths(narrow)) == 8 and min(widths(floored)) == 16
    assert [max(w, 16) for w in widths(narrow)] == widths(floored)  # only the layers below the floor change
    assert count_parameters(floored) > count_parameters(narrow)
    with torch.no_grad():
        assert floored.eval()(_input(1, 3, 64, 96)).shape == (1, 1, 64, 96)
    for bad in (0, 12):
        with pytest.raises(ValueError, match="min_channels"):
            asbunet.create_model("asbunet_035", min_channels=bad)


def test_separable_asb_layers_make_every_3x3_convolution_depthwise_then_pointwise():
    def convs(model):
        return [m for m in model.modules() if isinstance(m, nn.Conv2d)]

    dense = asbunet.create_model("asbunet_035_s4_subpixel")
    separable = asbunet.create_model("asbunet_035_s4_subpixel", separable=True)
    asb = [m for m in separable.modules() if isinstance(m, ASBLayer)]
    assert len(asb) == len([m for m in dense.modules() if isinstance(m, ASBLayer)]) == 9  # 7 encoder, 2 decoder
    for layer in asb:
        for branch in (layer.compress, layer.decompress3x3_1, layer.decompressXxX_2):
            depthwise, pointwise = branch[0][0], branch[1][0]
            assert depthwise.groups == depthwise.in_channels == depthwise.out_channels
            assert depthwise.kernel_size == (3, 3) and pointwise.kernel_size == (1, 1)
        assert layer.decompressXxX_2[0][0].dilation == (layer.dilation, layer.dilation)
    dense_3x3 = sum(c.weight.numel() for c in convs(dense) if c.kernel_size == (3, 3))
    separable_3x3 = sum(c.weight.numel() for c in convs(separable) if c.kernel_size == (3, 3))
    assert separable_3x3 < dense_3x3 / 4
    with torch.no_grad():
        assert separable.eval()(_input(1, 3, 64, 96)).shape == (1, 1, 64, 96)


@pytest.mark.parametrize("name", list(BASELINE_BACKBONES))
def test_baseline_loads_backbone_weights(name, tmp_path):
    torch.manual_seed(1)
    backbone = BASELINE_BACKBONES[name]()
    path = tmp_path / "backbone.pth"
    torch.save(backbone.state_dict(), path)
    model = asbunet.create_model(name, backbone_weights=path)
    reference = backbone.features.state_dict()
    loaded = model.encoder.features.state_dict()
    assert loaded.keys() <= reference.keys()
    assert all(torch.equal(v, reference[k]) for k, v in loaded.items())
    with pytest.raises(FileNotFoundError, match="backbone weights not found"):
        asbunet.create_model(name, backbone_weights=tmp_path / "missing.pth")


# --------------------------------------------------------------------------------------------------------------
# Analysis: counts, MACs, receptive field
# --------------------------------------------------------------------------------------------------------------


def test_counts_and_size_of_a_small_network():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4))
    assert count_parameters(net) == 3 * 4 * 9 + 4 + 4  # weight + gamma + beta
    assert count_keras_parameters(net) == 116 + 4 + 4  # + moving mean + moving variance
    assert fp32_size_bytes(net) == 124 * 4  # num_batches_tracked (int64) is not a weight


def test_macs_of_a_small_network():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 8*4*4 outputs x 3*3*3
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise: 8*4*4 outputs x 1*3*3
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),  # 10 outputs x 128
    )
    assert count_macs(net, (4, 4)) == 128 * 27 + 128 * 9 + 10 * 128
    assert next(net.parameters()).device.type == "cpu"  # counted on a meta copy


def test_macs_scale_with_the_input_area():
    model = build("asbunet")
    assert count_macs(model, (256, 256)) == 16 * count_macs(model, (64, 64))


def test_receptive_field_hand_computed():
    conv = RFLayer("c", "c", 3)
    # Eq. 2: 1 + 2 = 3, then + 2 = 5 for two stacked 3x3 convolutions
    assert [r.receptive_field for r in receptive_fields([conv, conv])] == [3, 5]
    layers = [RFLayer("a", "a", 3, 2), RFLayer("b", "b", 3, 2), RFLayer("c", "c", 3, 1, dilation=2)]
    # k' = 2 * (3 - 1) + 1 = 5 for the dilated layer: 1 + 2*1 + 2*2 + 4*4 = 23
    rows = receptive_fields(layers)
    assert [r.receptive_field for r in rows] == [3, 7, 23]
    assert [r.jump for r in rows] == [2, 4, 4]
    assert RFLayer("d", "d", 3, dilation=4).effective_kernel == 9
    with pytest.raises(ValueError, match="positive"):
        receptive_fields([RFLayer("z", "z", 0)])


def test_receptive_field_of_the_fig8_encoder():
    layers = model_rf_layers("asbunet")
    assert atrous_dilations(layers) == (1, 2, 2, 4, 2, 2, 1)
    assert [layer.name for layer in layers[:4]] == [
        "conv1",
        "max_pool1",
        "space_bender2/compress",
        "space_bender2/decompressXxX_2",
    ]
    rows = receptive_fields(layers)
    # by hand, jump in brackets: conv1 3 [2]; pool 7 [4]; ASBL2 +8 +8 = 23; ASBL3 +8 +16 = 47; pool 55 [8];
    # ASBL4 +16 +32 = 103; ASBL5 +16 +64 = 183; pool 199 [16]; ASBL6 +32 +64 = 295; ASBL7 391; ASBL8 +32 +32 = 455
    assert [rf for _, rf in blockwise(rows)] == [3, 23, 47, 103, 183, 295, 391, 455]
    # output stride 8: no third pool, jump stays 8: ASBL6 183 +16 +32 = 231; ASBL7 279; ASBL8 +16 +16 = 311
    os8 = receptive_fields(model_rf_layers("asbunet_os8"))
    assert [rf for _, rf in blockwise(os8)][-3:] == [231, 279, 311]


def test_deeplab_schedule_and_linearity():
    assert deeplab_dilations(5) == (1, 2, 4, 8, 16)
    schedules = paper_and_deeplab("asbunet")
    assert atrous_dilations([r.layer for r in schedules["deeplab"]]) == (1, 2, 4, 8, 16, 32, 64)
    # ASBL8 with rate 64 after the stride-16 pool: the last step alone adds (129 - 1) * 16 = 2048
    assert schedules["deeplab"][-1].receptive_field - schedules["deeplab"][-2].receptive_field == 2048
    with pytest.raises(ValueError, match="pass exactly 7 dilations"):
        with_dilations(model_rf_layers("asbunet"), (1, 2))

    line = linearity([1, 3, 5, 7])
    assert line.slope == pytest.approx(2.0) and line.r2_linear == pytest.approx(1.0)
    assert line.growth_ratio == pytest.approx(1.0) and line.increments == (2, 2, 2)
    doubling = linearity([1, 2, 4, 8, 16])
    assert doubling.growth_ratio == pytest.approx(2.0) and doubling.r2_exponential == pytest.approx(1.0)
    assert doubling.r2_linear < 0.95
    with pytest.raises(ValueError, match="must grow"):
        linearity([1, 3, 3])

    paper = linearity([rf for _, rf in blockwise(schedules["paper"])])
    deeplab = linearity([rf for _, rf in blockwise(schedules["deeplab"])])
    assert paper.r2_linear > paper.r2_exponential and deeplab.r2_exponential > deeplab.r2_linear


def test_receptive_field_rejects_baselines():
    with pytest.raises(ValueError, match="needs an ASB-Net encoder"):
        model_rf_layers("mobilenetv2_unet_100")


# --------------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------------


def test_cli_summary_one_model(capsys):
    assert main(["summary", "asbunet", "--size", "64", "64"]) == 0
    out = capsys.readouterr().out
    model = build("asbunet")
    assert f"{sum(p.numel() for p in model.parameters()):,}" in out
    assert f"{count_keras_parameters(model):,}" in out
    assert "1,362,624" in out and "2, 4, 8, 16" in out and "MACs at 64x64" in out
    assert f"{count_macs(model, (64, 64)) / 1e9:.3f} G" in out


def test_cli_summary_all(capsys):
    assert main(["summary", "--all", "--size", "32", "32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[3:]}
    assert list(rows) == NAMES
    assert "1,656,385" in rows["asbunet"] and "2,075,728" in rows["efficientnet_unet_b2"]
    assert rows["asbunet_050"].split()[-1] == "-"


def test_cli_summary_needs_a_model_or_all(capsys):
    assert main(["summary"]) == 2
    assert "--all" in capsys.readouterr().err


def test_cli_receptive_field_with_plot(capsys, tmp_path):
    png = tmp_path / "rf.png"
    assert main(["receptive-field", "asbunet", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "space_bender8/decompressXxX_2" in out and "455" in out and "3975" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--update-golden"]:
        sys.exit("usage: python tests/test_models.py --update-golden")
    write_golden()


def test_decoder_stride_4_drops_the_stride_2_block_and_predicts_at_stride_4():
    full, s4 = asbunet.create_model("asbunet_035").eval(), asbunet.create_model("asbunet_035_s4").eval()
    assert len(s4.decoder.blocks) == len(full.decoder.blocks) - 1
    assert len(s4.decoder.skip_convs) == len(full.decoder.skip_convs) - 1
    x = _input(1, 3, 64, 96)
    features = s4.encoder(x)
    assert s4.head(s4.decoder(features)).shape[-2:] == (16, 24)  # (H/4, W/4) before the resize to the input
    assert s4(x).shape == (1, 1, 64, 96)
    with pytest.raises(ValueError, match="decoder_stride must be 2 or 4"):
        asbunet.create_model("asbunet_035", decoder_stride=8)


def test_subpixel_head_predicts_at_stride_2_from_conv1_and_starts_as_the_stride_4_model():
    sp = asbunet.create_model("asbunet_035_s4_subpixel").eval()
    x = _input(1, 3, 64, 96)
    features = sp.encoder(x)
    assert sp.head(sp.decoder(features), features[0]).shape[-2:] == (32, 48)  # (H/2, W/2) before the resize
    assert sp(x).shape == (1, 1, 64, 96)
    # With the conv1 weights at zero and one 3x3 filter per sub-pixel copied, it is the stride-4 head, upsampled
    # nearest: the starting point `experiments/fast_model/subpixel_init.py` builds.
    s4 = asbunet.create_model("asbunet_035_s4").eval()
    state = {k: v for k, v in s4.state_dict().items() if not k.startswith("head.")}
    state |= {"head.proj.0.weight": s4.head[0][0].weight, "head.fold.weight": torch.zeros_like(sp.head.fold.weight)}
    state |= {f"head.proj.1.{k}": v for k, v in s4.head[0][1].state_dict().items()}
    state |= {"head.out.weight": s4.head[1].weight.repeat(4, 1, 1, 1), "head.out.bias": s4.head[1].bias.repeat(4)}
    sp.load_state_dict(state)
    with torch.no_grad():
        coarse = s4.head(s4.decoder(s4.encoder(x)))  # (1, 1, 16, 24)
        fine = sp.head(sp.decoder(sp.encoder(x)), sp.encoder(x)[0])  # (1, 1, 32, 48)
    torch.testing.assert_close(fine, coarse.repeat_interleave(2, -2).repeat_interleave(2, -1), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="subpixel_head needs decoder_stride 4"):
        asbunet.create_model("asbunet_035", subpixel_head=True)
