"""ASB-Net encoder (Section III-C, Fig. 8) and ASBU-Net (Section III-D).

The encoder is conv1 (3x3, stride 2, 64 filters), a 3x3 max pool, then seven atrous space bender layers with the
filter counts and dilation rates of Fig. 8, written out literally in `FIG8_ASB_LAYERS`. Output stride 16 puts
stride-2 max pools after conv1, ASBL3 and ASBL5; output stride 8 after conv1 and ASBL3 only (Section III-C).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from asbunet.layers import ConvNormAct, get_activation, init_weights_kaiming, make_divisible
from asbunet.models.unet import ASBLayer, DecoderStage, EncoderDecoder


@dataclass(frozen=True)
class ASBLayerSpec:
    """One row group of Fig. 8: `ss_3x3` squeeze filters, `e_1x1 = se_3x3 = ase_3x3` expand filters, dilation."""

    name: str
    squeeze: int
    expand: int
    dilation: int


CONV1_FILTERS = 64  # conv1: 3x3x3x64, stride 2

# Fig. 8, "ASBU-Net Encoder Layer Specifications". Strides are for output stride 16 (pools after conv1, ASBL3, ASBL5).
FIG8_ASB_LAYERS = (
    # name            squeeze expand dilation   # stride
    ASBLayerSpec("space_bender2", 24, 32, 1),  # 4  compress 3x3x64x24,  decompress 1x1/3x3/3x3 x24x32
    ASBLayerSpec("space_bender3", 24, 32, 2),  # 4  compress 3x3x96x24   -> max pool
    ASBLayerSpec("space_bender4", 48, 64, 2),  # 8  compress 3x3x96x48
    ASBLayerSpec("space_bender5", 48, 64, 4),  # 8  compress 3x3x192x48  -> max pool (output stride 16 only)
    ASBLayerSpec("space_bender6", 72, 96, 2),  # 16 compress 3x3x192x72
    ASBLayerSpec("space_bender7", 72, 96, 2),  # 16 compress 3x3x288x72
    ASBLayerSpec("space_bender8", 96, 128, 1),  # 16 compress 3x3x288x96
)

# Max pools (3x3, stride 2) follow these layers (Section III-C).
POOL_AFTER = {
    16: ("conv1", "space_bender3", "space_bender5"),
    8: ("conv1", "space_bender3"),
}

# Decoder widths (Fig. 4 is not in the text; chosen so the whole model matches Fig. 7's 1,656,385 parameters).
ASBUNET_DECODER = (
    DecoderStage(skip=16, up=32, squeeze=24, expand=24),  # stride 2 skip (conv1, 64 ch)
    DecoderStage(skip=24, up=48, squeeze=32, expand=32),  # stride 4 skip (ASBL3, 96 ch)
    DecoderStage(skip=48, up=96, squeeze=64, expand=64),  # stride 8 skip (ASBL5, 192 ch)
)
ASBUNET_HEAD_CHANNELS = 32


@dataclass(frozen=True)
class ASBUNetConfig:
    """Everything that defines an ASBU-Net variant; the factory functions only change these fields."""

    activation: str = "relu"  # "relu" or "swish"
    output_stride: int = 16  # 16 or 8
    width_mult: float = 1.0
    min_channels: int = 8  # floor of every scaled width (with `width_mult` < 1)
    decoder_stride: int = 2  # where the decoder stops: 2 (Section III-D) or 4
    subpixel_head: bool = False  # with decoder_stride 4: the head predicts at stride 2 from conv1 (SubPixelHead)
    separable: bool = False  # depthwise-separable 3x3 convolutions in every ASB layer (not the paper's)
    num_classes: int = 1
    layers: tuple[ASBLayerSpec, ...] = FIG8_ASB_LAYERS
    decoder: tuple[DecoderStage, ...] = ASBUNET_DECODER
    head_channels: int = ASBUNET_HEAD_CHANNELS
    conv1_filters: int = CONV1_FILTERS

    def __post_init__(self):
        if self.output_stride not in POOL_AFTER:
            raise ValueError(f"output_stride must be one of {sorted(POOL_AFTER)}, got {self.output_stride}")
        if self.width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {self.width_mult}")
        if self.decoder_stride not in (2, 4):
            raise ValueError(f"decoder_stride must be 2 or 4, got {self.decoder_stride}")
        if self.subpixel_head and self.decoder_stride == 2:
            raise ValueError("subpixel_head needs decoder_stride 4 (with 2 the head already predicts at stride 2)")
        if self.min_channels < 8 or self.min_channels % 8:
            raise ValueError(f"min_channels must be a positive multiple of 8, got {self.min_channels}")
        get_activation(self.activation)

    def width(self, channels: int) -> int:
        """A layer's width: `channels` x `width_mult`, a multiple of 8, at least `min_channels`."""
        return channels if self.width_mult == 1.0 else make_divisible(channels * self.width_mult, 8, self.min_channels)


class ASBNetEncoder(nn.Module):
    """ASB-Net (Fig. 8). `forward` returns the features before every max pool plus the last one, stride-ordered."""

    def __init__(self, cfg: ASBUNetConfig):
        super().__init__()
        act = get_activation(cfg.activation)
        pool_after = POOL_AFTER[cfg.output_stride]
        self.conv1 = ConvNormAct(3, cfg.width(cfg.conv1_filters), 3, stride=2, act_layer=act)
        channels, stride = self.conv1.out_channels, 2
        self.out_channels, self.strides = [channels], [stride]
        self.stages = nn.ModuleList()
        stage = nn.Sequential()
        for spec in cfg.layers:
            layer = ASBLayer(
                channels, cfg.width(spec.squeeze), cfg.width(spec.expand), spec.dilation, act, cfg.separable
            )
            stage.add_module(spec.name, layer)
            channels = layer.out_channels
            if spec.name in pool_after:
                self.stages.append(stage)
                self.out_channels.append(channels)
                self.strides.append(stride * 2)
                stage, stride = nn.Sequential(), stride * 2
        self.stages.append(stage)
        self.out_channels.append(channels)
        self.strides.append(stride * 2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.conv1(x)  # (B, 64, H/2, W/2)
        features = [x]
        for stage in self.stages:
            x = stage(self.pool(x))  # the pool halves the size before every stage
            features.append(x)
        return features  # strides 2, 4, 8, 16 (output stride 16) or 2, 4, 8 (output stride 8)


class ASBUNet(EncoderDecoder):
    """ASBU-Net (Section III-D): ASB-Net encoder, 1x1 skip convs, long-connect blocks, head. Returns logits."""

    def __init__(self, cfg: ASBUNetConfig = ASBUNetConfig()):
        act = get_activation(cfg.activation)
        encoder = ASBNetEncoder(cfg)
        stages = tuple(s.scaled(cfg.width) for s in cfg.decoder)
        first_skip = encoder.strides.index(cfg.decoder_stride)  # the shallowest skip the decoder reads
        head = cfg.width(cfg.head_channels)
        super().__init__(encoder, stages, head, cfg.num_classes, act, first_skip, cfg.subpixel_head, cfg.separable)
        self.cfg = cfg
        init_weights_kaiming(self)
