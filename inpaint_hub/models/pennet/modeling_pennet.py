"""PEN-Net: Learning Pyramid-Context Encoder Network for High-Quality Image Inpainting.

Paper: Zeng, Fu, Chao, Guo, CVPR 2019, https://arxiv.org/abs/1904.07475
Original code: https://github.com/researchmm/PEN-Net-for-Inpainting @ 8721a55d, branch ``pytorch`` (MIT),
``model/pennet.py`` (``InpaintGenerator``, ``AtnConv``, ``Discriminator``). This is an independent re-implementation;
module names are ours and the converter (``convert_pennet_original.py``) maps the original ones.

Architecture (``../shared/MODELS.md`` section 2.1)::

    [image with holes = +1, mask] --6 stride-2 convs--> x1 (H/2) ... x6 (H/64)
    attention transfer, deep to shallow:  x5 <- ATN(x5, x6), x4 <- ATN(x4, x5), ..., x1 <- ATN(x1, x2)
    decoder: up(x6) -> conv -> concat x5 -> up -> conv -> concat x4 ... -> up -> 2 convs -> tanh  (full resolution)
             every level's concat also goes through a 1x1 conv + tanh: the RGB "pyramid" (H/2 ... H/32)

The Attention Transfer Network (ATN) is PEN-Net's idea: the hole of a low-level (larger, finer) feature map is
filled with its own known patches, chosen by where the *high-level* (smaller, more semantic) feature map finds
similar context. For every position of the high-level map, the cosine similarity of its 3x3 patch to every 3x3 patch
lying fully outside the hole is turned into a softmax (scale 10); the lower level's 4x4 patches (stride 2) are then
pasted back weighted by that attention. Four parallel dilated 3x3 convolutions refine the result, which replaces the
lower-level feature everywhere (no blending with the mask, as the original).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...modeling_utils import InpaintModel, InpaintOutput
from .configuration_pennet import NUM_LEVELS, PENNetConfig


@dataclass
class PENNetOutput(InpaintOutput):
    """:class:`InpaintOutput` plus PEN-Net's intermediate RGB predictions.

    Attributes:
        pyramid: five ``[B, 3, H / 2**k, W / 2**k]`` images in [0, 1] for k = 1 ... 5 (finest first, the original's
            ``img1 ... img5``), the decoder's output at each level. Training supervises them with the pyramid L1 loss.
    """

    pyramid: tuple[torch.Tensor, ...] = ()


def _upsample(x: torch.Tensor) -> torch.Tensor:
    # The original upsamples with bilinear interpolation, align_corners=True, everywhere in the decoder.
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


# ------------------------------------------------------------------------------------------------- attention transfer


def attention_transfer(
    low: torch.Tensor,
    high: torch.Tensor,
    mask: torch.Tensor,
    *,
    patch_size: int = 3,
    softmax_scale: float = 10.0,
    chunk_elements: int | None = None,
) -> torch.Tensor:
    """PEN-Net's attention transfer (``AtnConv`` without its fuse convolutions), computed in bounded memory.

    Args:
        low: ``[B, C1, 2h, 2w]`` lower-level (finer) feature; its 4x4 patches (stride 2, zero padding 1) are what
            gets transferred.
        high: ``[B, C2, h, w]`` higher-level feature; its ``patch_size`` patches (stride 1, zero padding
            ``patch_size // 2``) are compared by cosine similarity.
        mask: ``[B, 1, H, W]``, 1 = hole, at any resolution; resized to ``h x w`` bilinearly (align_corners=True).
            A source patch may be attended to only if the resized mask is zero over all of it.
        softmax_scale: multiplies the cosine similarities before the softmax.
        chunk_elements: bound on the attention scores that exist at once (``None``: all ``(h*w)**2`` at once, as
            the original). The scores are computed for blocks of whole target rows, as many rows as fit in
            ``chunk_elements`` but at least one (``h*w*w`` scores); since the softmax normalises over the *sources*,
            each block is exact, and the result equals the unchunked computation up to float rounding.

    Returns:
        ``[B, C1, 2h, 2w]``: for every target position, the attention-weighted sum of the source 4x4 patches, pasted
        with stride 2 and divided by 4 (each output pixel is covered by four patches).
    """
    batch, low_channels, low_h, low_w = low.shape
    _, high_channels, h, w = high.shape
    if (low_h, low_w) != (2 * h, 2 * w):
        raise ValueError(
            f"the low-level feature must be twice the high-level one: {tuple(low.shape)} vs {tuple(high.shape)}"
        )
    pad = patch_size // 2
    num_patches = h * w
    # Valid sources: patches of the resized mask that are zero everywhere (the mask is non-negative, so a zero mean
    # is the same as all-zero). Zero padding counts as known, as the original's zero-padded patch extraction.
    small_mask = F.interpolate(mask.to(high.dtype), size=(h, w), mode="bilinear", align_corners=True)
    valid = F.avg_pool2d(small_mask, patch_size, stride=1, padding=pad, count_include_pad=True) == 0
    valid = valid.to(high.dtype).reshape(batch, num_patches, 1, 1)

    # Source patches: [B, L, C, k, k] for the similarity, [B, L, C1, 4, 4] for the transfer.
    sources = F.unfold(high, patch_size, padding=pad).transpose(1, 2)
    sources = sources.reshape(batch, num_patches, high_channels, patch_size, patch_size)
    norms = torch.sqrt((sources**2).sum(dim=(2, 3, 4), keepdim=True)).clamp_min(1e-4)
    sources = sources / norms
    raw = F.unfold(low, 4, padding=1, stride=2).transpose(1, 2).reshape(batch, num_patches, low_channels, 4, 4)

    if chunk_elements is None:
        rows_per_block = h
    else:
        rows_per_block = max(1, min(h, chunk_elements // max(1, num_patches * w)))
    padded_high = F.pad(high, (pad, pad, pad, pad))
    outputs = []
    for i in range(batch):
        # The transposed convolution without padding covers one extra row/column on each side; crop at the end.
        out = low.new_zeros(1, low_channels, 2 * h + 2, 2 * w + 2)
        for top in range(0, h, rows_per_block):
            rows = min(rows_per_block, h - top)
            block = padded_high[i : i + 1, :, top : top + rows + 2 * pad]
            scores = F.conv2d(block, sources[i])  # [1, L, rows, w]: cosine similarity to every source patch
            scores = scores * valid[i]
            scores = F.softmax(scores * softmax_scale, dim=1)
            scores = (scores * valid[i]).clamp_min(1e-8)
            pasted = F.conv_transpose2d(scores, raw[i], stride=2)  # [1, C1, 2*rows + 2, 2w + 2]
            out[:, :, 2 * top : 2 * top + 2 * rows + 2] += pasted
        outputs.append(out[:, :, 1:-1, 1:-1] / 4.0)
    return torch.cat(outputs, dim=0)


class PENNetAttentionTransfer(nn.Module):
    """``AtnConv``: attention transfer from a higher level to this one, then (levels 1-4) the dilated fuse convs."""

    def __init__(self, channels: int, config: PENNetConfig, *, patch_size: int, fuse: bool) -> None:
        super().__init__()
        self.config = config
        self.patch_size = patch_size
        self.fuse = nn.ModuleList()
        if fuse:
            branch = channels // len(config.fuse_dilations)
            for dilation in config.fuse_dilations:
                self.fuse.append(
                    nn.Sequential(
                        nn.Conv2d(channels, branch, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)
                    )
                )

    def forward(self, low: torch.Tensor, high: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = attention_transfer(
            low,
            high,
            mask,
            patch_size=self.patch_size,
            softmax_scale=self.config.softmax_scale,
            chunk_elements=self.config.attention_chunk_elements,
        )
        if len(self.fuse):
            y = torch.cat([branch(y) for branch in self.fuse], dim=1)
        return y


# ------------------------------------------------------------------------------------------------- generator


def _init_normal(module: nn.Module) -> None:
    """The original ``BaseNetwork.init_weights('normal', 0.02)``: conv weights N(0, 0.02), biases 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            weight = layer.weight_orig if hasattr(layer, "weight_orig") else layer.weight
            nn.init.normal_(weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class PENNetModel(InpaintModel):
    """The PEN-Net generator (``InpaintGenerator``).

    Example::

        model = AutoInpaintModel.from_pretrained("org/pennet-places2")
        out = model(image, mask)  # image [B, 3, H, W] in [0, 1], H and W multiples of 64; mask 1 = hole
        out.inpainted, out.pyramid
    """

    config_class = PENNetConfig

    def __init__(self, config: PENNetConfig) -> None:
        super().__init__(config)
        ch = config.level_channels
        self.encoder = nn.ModuleList()
        in_ch = config.in_channels
        for level, out_ch in enumerate(ch, start=1):
            act = nn.ReLU(inplace=True) if level == NUM_LEVELS else nn.LeakyReLU(0.2, inplace=True)
            self.encoder.append(nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1), act))
            in_ch = out_ch
        # attention[k] writes level k + 1 from level k + 2 (the original's at_conv0{k+1}); the deepest uses 1x1
        # patches and no fuse convolutions.
        self.attention = nn.ModuleList(
            PENNetAttentionTransfer(
                ch[k],
                config,
                patch_size=config.attention_patch_size if k < NUM_LEVELS - 2 else 1,
                fuse=k < NUM_LEVELS - 2,
            )
            for k in range(NUM_LEVELS - 1)
        )
        # decoder[k] produces level k + 1's decoder feature (up_conv0{k+1}); to_rgb[k] is torgb{k+1}.
        self.decoder = nn.ModuleList()
        self.to_rgb = nn.ModuleList()
        for k in range(NUM_LEVELS - 1):
            in_ch = ch[k + 1] if k == NUM_LEVELS - 2 else 2 * ch[k + 1]
            self.decoder.append(nn.Sequential(nn.Conv2d(in_ch, ch[k], 3, padding=1), nn.ReLU(inplace=True)))
            self.to_rgb.append(nn.Sequential(nn.Conv2d(2 * ch[k], config.out_channels, 1), nn.Tanh()))
        self.head = nn.Sequential(
            nn.Conv2d(2 * ch[0], ch[0], 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch[0], config.out_channels, 3, padding=1),
            nn.Tanh(),
        )
        _init_normal(self)

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    def generate(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The bare generator, in the original's conventions.

        Args:
            x: ``[B, 4, H, W]``: the image in [-1, 1] with hole pixels set to +1, and the mask.
            mask: ``[B, 1, H, W]``, 1 = hole.

        Returns:
            ``(pyramid, output)``: five tanh images from H/2 down to H/32 (``img1 ... img5``) and the full-resolution
            tanh output, all in [-1, 1].
        """
        features = []
        for layer in self.encoder:
            x = layer(x)
            features.append(x)
        # Deep-to-shallow attention transfer: each level is rebuilt from the level above it, already rebuilt.
        for k in reversed(range(NUM_LEVELS - 1)):
            features[k] = self.attention[k](features[k], features[k + 1], mask)
        pyramid: list[torch.Tensor] = [None] * (NUM_LEVELS - 1)  # type: ignore[list-item]
        up = self.decoder[-1](_upsample(features[-1]))
        for k in reversed(range(NUM_LEVELS - 1)):
            skip = torch.cat([up, features[k]], dim=1)
            pyramid[k] = self.to_rgb[k](skip)
            up = self.decoder[k - 1](_upsample(skip)) if k > 0 else skip
        return pyramid, self.head(_upsample(up))

    def forward(
        self, image: torch.Tensor, mask: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> PENNetOutput:
        """Inpaint ``image`` where ``mask`` is 1.

        Args:
            image: ``[B, 3, H, W]`` float RGB in [0, 1]; H and W multiples of 64 (``InpaintPipeline`` pads).
            mask: ``[B, 1, H, W]`` float, 1 = hole, 0 = keep.
            generator: unused; PEN-Net is deterministic.

        Returns:
            :class:`PENNetOutput`: ``inpainted`` (``predicted`` in the hole, ``image`` elsewhere, bit-identical),
            ``predicted`` (the generator output mapped to [0, 1]) and the five ``pyramid`` images in [0, 1].
        """
        self._check_inputs(image, mask)
        signed = image * 2 - 1
        pyramid, output = self.generate(torch.cat([signed * (1 - mask) + mask, mask], dim=1), mask)
        predicted = (output + 1) / 2
        inpainted = mask * predicted + (1 - mask) * image
        return PENNetOutput(
            inpainted=inpainted, predicted=predicted, pyramid=tuple((level + 1) / 2 for level in pyramid)
        )


# ------------------------------------------------------------------------------------------------- discriminator


class PENNetDiscriminator(nn.Module):
    """PEN-Net's patch discriminator (``model/pennet.py:Discriminator``): four spectral-norm 5x5 convolutions
    (no bias, padding 1, strides 2, 2, 2, 1; LeakyReLU 0.2) and a plain 5x5 classifier. With 64 base channels it has
    4,318,401 parameters. It sees the 3-channel image in [-1, 1] and returns patch logits (no sigmoid: hinge loss).
    """

    def __init__(self, config: PENNetConfig) -> None:
        super().__init__()
        self.config = config
        base = config.discriminator_base_channels
        widths = (base, 2 * base, 4 * base, 8 * base)
        layers = []
        in_ch = config.out_channels
        for width, stride in zip(widths, (2, 2, 2, 1)):
            conv = nn.utils.spectral_norm(nn.Conv2d(in_ch, width, 5, stride=stride, padding=1, bias=False))
            layers.append(nn.Sequential(conv, nn.LeakyReLU(0.2, inplace=True)))
            in_ch = width
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(in_ch, 1, 5, stride=1, padding=1)
        _init_normal(self)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.layers(image))


__all__ = ["PENNetDiscriminator", "PENNetModel", "PENNetOutput", "attention_transfer"]
