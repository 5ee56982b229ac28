"""The ASBU-Net decoder (Section III-D, Fig. 4) and the encoder-decoder wrapper every model shares.

Fig. 4 is not in the text; the decoder follows Section III-D:

* every skip connection passes a 1x1 convolution that reduces its channels;
* a *long-connect block* per skip: an *upscale connector block* (1x1 conv on the deeper features, bilinear
  upsampling to the skip's size, concatenation with the reduced skip) followed by an ASB layer with dilation 1;
* after the last long-connect block a 1x1 conv and a 3x3 conv, then a bilinear resize to the input size.
  The sigmoid is left to the prediction code: `forward` returns logits.

The decoder is built by zipping the encoder's `out_channels` and `strides` (encoder contract: `forward` returns a
stride-ordered list of features), so the same decoder serves ASB-Net and the baseline backbones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from asbunet.layers import ConvNormAct, SeparableConvNormAct, resize_to


@dataclass(frozen=True)
class DecoderStage:
    """Widths of one long-connect block, from the shallowest skip (stride 2) to the deepest.

    Args:
        skip: output channels of the 1x1 skip convolution.
        up: output channels of the upscale connector's 1x1 convolution on the deeper features.
        squeeze: filters of the ASB layer's 3x3 compress convolution.
        expand: filters of each of the ASB layer's three decompress branches (output = 3 * expand).
    """

    skip: int
    up: int
    squeeze: int
    expand: int

    def scaled(self, scale: Callable[[int], int]) -> DecoderStage:
        return DecoderStage(scale(self.skip), scale(self.up), scale(self.squeeze), scale(self.expand))


class ASBLayer(nn.Module):
    """Atrous space bender layer (Section III-B, Fig. 3).

    A 3x3 squeeze ("compress") convolution, then three parallel "decompress" branches on its output (1x1, 3x3 and
    3x3 with dilation `dilation`), concatenated along channels. Every convolution is Conv + BN + activation.
    With `separable` every 3x3 convolution is depthwise-separable (`SeparableConvNormAct`): not the paper's layer,
    a cheaper one for CPUs where dense 3x3 convolutions take most of the time.
    """

    def __init__(
        self,
        in_channels: int,
        squeeze: int,
        expand: int,
        dilation: int,
        act_layer: Callable[..., nn.Module],
        separable: bool = False,
    ):
        super().__init__()
        conv3x3 = SeparableConvNormAct if separable else ConvNormAct
        self.compress = conv3x3(in_channels, squeeze, 3, act_layer=act_layer)
        self.decompress1x1 = ConvNormAct(squeeze, expand, 1, act_layer=act_layer)
        self.decompress3x3_1 = conv3x3(squeeze, expand, 3, act_layer=act_layer)
        self.decompressXxX_2 = conv3x3(squeeze, expand, 3, dilation=dilation, act_layer=act_layer)
        self.out_channels = 3 * expand
        self.dilation = dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.compress(x)  # (B, squeeze, H, W)
        return torch.cat(
            [self.decompress1x1(s), self.decompress3x3_1(s), self.decompressXxX_2(s)], dim=1
        )  # (B, 3 * expand, H, W)


class UpscaleConnector(nn.Module):
    """Upscale connector block: 1x1 conv on the deeper features, bilinear upsampling, concat with the skip."""

    def __init__(self, deep_channels: int, up_channels: int, act_layer: Callable[..., nn.Module]):
        super().__init__()
        self.proj = ConvNormAct(deep_channels, up_channels, 1, act_layer=act_layer)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = resize_to(self.proj(deep), skip.shape[-2:])  # (B, up, Hs, Ws)
        return torch.cat([up, skip], dim=1)  # (B, up + skip, Hs, Ws)


class LongConnectBlock(nn.Module):
    """Long-connect block (Section III-D): upscale connector, then an ASB layer with dilation 1."""

    def __init__(
        self,
        deep_channels: int,
        stage: DecoderStage,
        act_layer: Callable[..., nn.Module],
        separable: bool = False,
    ):
        super().__init__()
        self.connector = UpscaleConnector(deep_channels, stage.up, act_layer)
        self.asbl = ASBLayer(stage.up + stage.skip, stage.squeeze, stage.expand, 1, act_layer, separable)
        self.out_channels = self.asbl.out_channels

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.asbl(self.connector(deep, skip))


class UNetDecoder(nn.Module):
    """1x1 skip convolutions and one long-connect block per skip, deepest first.

    `first_skip` drops the shallowest skips: with 1 the decoder stops at the second encoder feature's stride (4 for
    the ASB-Net encoder) instead of the first's (2), and its last, most costly block is not built.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        stages: Sequence[DecoderStage],
        act_layer: Callable[..., nn.Module],
        first_skip: int = 0,
        separable: bool = False,
    ):
        super().__init__()
        n_skips = len(encoder_channels) - 1
        if len(stages) < n_skips:
            raise ValueError(f"the encoder has {n_skips} skip connections but the decoder only {len(stages)} stages")
        if not 0 <= first_skip < n_skips:
            raise ValueError(f"first_skip must be in [0, {n_skips - 1}] for this encoder, got {first_skip}")
        self.first_skip = first_skip
        stages = list(stages)[first_skip:n_skips]
        self.skip_convs = nn.ModuleList(
            ConvNormAct(c, s.skip, 1, act_layer=act_layer)
            for c, s in zip(encoder_channels[first_skip:-1], stages, strict=True)
        )
        blocks = []
        deep = encoder_channels[-1]
        for stage in reversed(stages):
            blocks.append(LongConnectBlock(deep, stage, act_layer, separable))
            deep = blocks[-1].out_channels
        self.blocks = nn.ModuleList(blocks)  # deepest first
        self.out_channels = deep

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        skips = [conv(f) for conv, f in zip(self.skip_convs, features[self.first_skip : -1], strict=True)]
        x = features[-1]  # (B, C, H/os, W/os)
        for block, skip in zip(self.blocks, reversed(skips), strict=True):
            x = block(x, skip)  # (B, 3 * expand, Hs, Ws) at the skip's stride
        return x


class SegmentationHead(nn.Sequential):
    """1x1 conv and 3x3 conv to `num_classes` logits (Section III-D)."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int, act_layer: Callable[..., nn.Module]):
        super().__init__(
            ConvNormAct(in_channels, mid_channels, 1, act_layer=act_layer),
            nn.Conv2d(mid_channels, num_classes, 3, padding=1, bias=True),
        )


class SubPixelHead(nn.Module):
    """A head that predicts at twice the decoder's resolution (sub-pixel convolution, Shi et al. 2016, ESPCN).

    `SegmentationHead`'s 1x1 convolution on the decoder output, plus a 2x2 stride-2 convolution on the encoder feature
    at half the decoder's stride (a linear map of each 2x2 cell, as a 1x1 convolution on the pixel-unshuffled feature
    would be, without its transposes), summed before the norm; the 3x3 convolution then gives 4 logits per cell, one
    per sub-pixel, which pixel shuffle lays out at the finer stride. It gives a decoder stopped at stride 4 the
    stride-2 detail of conv1 for a fraction of the cost of a stride-2 decoder block.
    """

    def __init__(
        self,
        in_channels: int,
        detail_channels: int,
        mid_channels: int,
        num_classes: int,
        act_layer: Callable[..., nn.Module],
    ):
        super().__init__()
        self.proj = ConvNormAct(in_channels, mid_channels, 1, act_layer=act_layer)
        self.fold = nn.Conv2d(detail_channels, mid_channels, 2, stride=2, bias=False)
        self.out = nn.Conv2d(mid_channels, 4 * num_classes, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
        conv, norm, act = self.proj
        # One zero row and column at the far edges: on odd sizes the 2x2 cells then cover the grid the encoder's
        # 3x3 stride-2 max pool made, ceil(n / 2) cells a side.
        folded = self.fold(nn.functional.pad(detail, (0, 1, 0, 1)))  # (B, mid, Hs, Ws) from (B, Cd, ~2 Hs, ~2 Ws)
        y = act(norm(conv(x) + folded))  # (B, mid, Hs, Ws)
        return nn.functional.pixel_shuffle(self.out(y), 2)  # (B, K, 2 Hs, 2 Ws) from (B, 4 K, Hs, Ws)


class EncoderDecoder(nn.Module):
    """Encoder -> U-Net decoder -> head -> bilinear resize to the input size. Returns logits `(B, K, H, W)`.

    With `subpixel_head` (needs `first_skip` >= 1) the head also reads the encoder feature just shallower than the
    decoder's last skip and predicts at its stride (`SubPixelHead`).
    """

    def __init__(
        self,
        encoder: nn.Module,
        stages: Sequence[DecoderStage],
        head_channels: int,
        num_classes: int,
        act_layer: Callable[..., nn.Module],
        first_skip: int = 0,
        subpixel_head: bool = False,
        separable: bool = False,
    ):
        super().__init__()
        if subpixel_head and first_skip < 1:
            raise ValueError("subpixel_head needs a decoder that stops before the shallowest encoder feature")
        self.encoder = encoder
        self.decoder = UNetDecoder(encoder.out_channels, stages, act_layer, first_skip, separable)
        self.detail = first_skip - 1 if subpixel_head else None  # index of the feature the head reads
        if self.detail is None:
            self.head = SegmentationHead(self.decoder.out_channels, head_channels, num_classes, act_layer)
        else:
            detail_channels = encoder.out_channels[self.detail]
            self.head = SubPixelHead(self.decoder.out_channels, detail_channels, head_channels, num_classes, act_layer)

    def head_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the head's own stride, before the resize to the input size: `(B, K, H/2, W/2)` (H/4 for a
        decoder stopped at stride 4 without `subpixel_head`). What `asbunet export --head-stride` writes."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"expected a batch of RGB images shaped (B, 3, H, W), got {tuple(x.shape)}; "
                "add a batch dimension with x[None] or convert the image to 3 channels"
            )
        features = self.encoder(x)  # stride-ordered list
        decoded = self.decoder(features)  # (B, C, H/2, W/2), or H/4 with `first_skip=1`
        if self.detail is None:
            return self.head(decoded)  # (B, K, H/2, W/2), or H/4 with `first_skip=1`
        return self.head(decoded, features[self.detail])  # (B, K, H/2, W/2) with `first_skip=1`

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_to(self.head_logits(x), x.shape[-2:])  # (B, K, H, W)
