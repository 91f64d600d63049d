"""DGI: Distillation-Guided Image Inpainting -- the inpainting network (the student), everything inference needs.

Paper: Suin, Purohit & Rajagopalan, "Distillation-Guided Image Inpainting", ICCV 2021, pp. 2481-2490; extended as
"Adaptive Image Inpainting", arXiv:2201.00177. **No code or weights were ever released**: this is the first public
implementation, written from the paper's description as ``../shared/DGI_SPEC.md`` reconstructs it. The spec tags
every item as attested by the paper, reconstructed, or a gap; where the paper is silent we take the spec's proposal
and say so here (``[choice]``). The teacher (auxiliary network), the meta-networks and the distillation losses are
training-only and live in :mod:`inpaint_hub.models.dgi.distillation_dgi`.

The network, one encoder-decoder design shared with the teacher (``DGIConfig`` holds the widths)::

    input  [image * (1 - m) in [-1, 1], m]            (4 channels; the hole reads 0, i.e. mid-grey)   [choice]
    encoder level 1   reflect-pad, conv 7x7, InstanceNorm (or none), ReLU, residual block(s), completion block
    encoder level k   conv 4x4 stride 2, InstanceNorm (or none), ReLU, residual block(s), completion block
    bottleneck        dilated residual blocks, completion block
    attention         non-local, matrix multiplication: r = softmax_j(q_i . k_j), o_i = sum_j r_ij d_j   [paper]
    fusion            pixel-adaptive global-local fusion of d, o and a local conv branch                  [paper]
    decoder           transposed conv 4x4 stride 2, InstanceNorm (or none), ReLU (per level); conv 7x7 -> 3, tanh
    output            predicted = (tanh + 1) / 2; inpainted = m * predicted + (1 - m) * image

Choices where the paper is silent (``DGI_SPEC.md`` section 10, the gap register): the EdgeConnect-style backbone
without skip connections (gaps 1-2); the completion block's replacement form ``x' = (1 - M) x + M ada(x)`` and its
adaptive convolution with 3x3 taps, per-pixel kernels shared by channel groups, predicted from ``[x, M]`` (gaps 3-4);
one attention module at the bottleneck's resolution (gap 11) with no value projection (gap 12) but -- unlike the
spec's proposal -- a ``1 / sqrt(d_k)`` temperature on the query-key products, so that the softmax is not saturated at
initialisation; the fusion as a per-pixel softmax gate over the attention output and a local branch (gap 14). The
level masks ``M_l`` are the mask max-pooled to each level (a feature pixel is a hole if any pixel under it is).
PyTorch's default initialisation throughout (the paper's is unknown).

The deformable sampling of the adaptive convolution is done with :func:`torch.nn.functional.grid_sample` (bilinear,
zeros outside), one tap at a time, because torchvision's ``deform_conv2d`` is not available here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...modeling_utils import InpaintModel, InpaintOutput
from .configuration_dgi import DGIConfig


@dataclass
class DGIOutput(InpaintOutput):
    """:class:`InpaintOutput` plus, with ``output_features=True``, what the distillation losses read.

    Attributes:
        features: the encoder's levels after their completion blocks, ``[B, C_l, H / s_l, W / s_l]`` each
            (``DGIConfig.level_channels`` / ``level_strides``).
        attention_input: ``d``, the bottleneck feature the non-local attention reads ``[B, C, H / 2^n, W / 2^n]``.
    """

    features: tuple[torch.Tensor, ...] | None = None
    attention_input: torch.Tensor | None = None


def level_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """The hole at a level ``stride`` times smaller: max-pooled, so a feature pixel is a hole if any pixel is."""
    return mask if stride == 1 else F.max_pool2d(mask, kernel_size=stride, stride=stride)


# ------------------------------------------------------------------------------------------------- blocks


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``DGIConfig.norm``: InstanceNorm (no affine parameters) or none (an identity, so that the parameter names are
    the same either way)."""
    return nn.InstanceNorm2d(channels) if kind == "instance" else nn.Identity()


class DGIResidualBlock(nn.Module):
    """``x + N(conv3x3(ReLU(N(conv3x3_dilated(x)))))`` with reflection padding (EdgeConnect's block; ``N`` the
    config's normalisation, InstanceNorm in EdgeConnect)."""

    def __init__(self, channels: int, dilation: int = 1, norm: str = "instance") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(dilation),
            nn.Conv2d(channels, channels, 3, dilation=dilation),
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DGIAdaptiveConv(nn.Module):
    """The completion block's adaptive convolution: per-pixel kernels and offsets predicted by convolutions.

    ``y(j) = mix(sum_k V_{j,k} * x(j + p_k + delta_{j,k}))`` over the ``K = k x k`` taps ``p_k`` of a dilation-1 grid,
    where ``V = f_ker([x, M])`` (``K`` values per pixel and channel group) and ``delta = f_off([x, M])`` (``2K``
    values per pixel, ``(dy, dx)`` per tap); fractional positions are sampled bilinearly, zeros outside the feature
    map (as deformable convolutions). ``f_ker`` and ``f_off`` are conv 3x3 -> LeakyReLU(0.2) -> conv 3x3 each; the
    last layer of ``f_off`` starts at zero, so the taps start on the regular grid. ``mix`` is a 1x1 convolution.
    """

    def __init__(self, channels: int, kernel_size: int = 3, groups: int = 8) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"channels ({channels}) must be a multiple of groups ({groups})")
        self.groups = groups
        taps = kernel_size * kernel_size
        self.kernel = nn.Sequential(
            nn.Conv2d(channels + 1, channels, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, taps * groups, 3, padding=1),
        )
        self.offset = nn.Sequential(
            nn.Conv2d(channels + 1, channels, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, 2 * taps, 3, padding=1),
        )
        nn.init.zeros_(self.offset[-1].weight)
        nn.init.zeros_(self.offset[-1].bias)
        self.mix = nn.Conv2d(channels, channels, 1)
        half = kernel_size // 2
        grid = torch.arange(-half, half + 1, dtype=torch.float32)
        dy, dx = torch.meshgrid(grid, grid, indexing="ij")
        self.register_buffer("taps", torch.stack([dy.flatten(), dx.flatten()], dim=1), persistent=False)  # [K, 2]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, C, H, W]``, ``mask`` ``[B, 1, H, W]`` (1 = hole) -> ``[B, C, H, W]``."""
        b, c, h, w = x.shape
        condition = torch.cat([x, mask.to(x.dtype)], dim=1)
        taps = self.taps.to(x.dtype)
        kernels = self.kernel(condition).view(b, len(taps), self.groups, 1, h, w)
        offsets = self.offset(condition).view(b, len(taps), 2, h, w)
        rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
        cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
        out = x.new_zeros(b, self.groups, c // self.groups, h, w)
        for k, (dy, dx) in enumerate(taps):
            y = rows + dy + offsets[:, k, 0]
            x_pos = cols + dx + offsets[:, k, 1]
            # grid_sample's (x, y) in [-1, 1], corners at the centres of the corner pixels (align_corners=True)
            grid = torch.stack([2 * x_pos / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)
            sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
            out = out + sampled.view(b, self.groups, c // self.groups, h, w) * kernels[:, k]
        return self.mix(out.view(b, c, h, w))


class DGICompletionBlock(nn.Module):
    """The adaptive completion block (the paper's CB, ``f_fill`` in the arXiv version) at the end of an encoder level.

    ``x' = (1 - M_l) x + M_l ada(x)``: only the hole's features are rewritten, by the adaptive convolution; every
    feature outside the hole passes through unchanged (bit for bit). The paper's aim: the encoder's plain layers
    extract what the known region holds, the block fills the hole so that its encoding can meet the distillation
    targets.
    """

    def __init__(self, channels: int, kernel_size: int = 3, groups: int = 8) -> None:
        super().__init__()
        self.fill = DGIAdaptiveConv(channels, kernel_size, groups)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.where(mask > 0.5, self.fill(x, mask), x)


class DGIAttention(nn.Module):
    """Matrix-multiplication non-local attention over all pixels of a feature map ``d`` (the paper's decoder
    attention; its hole rows are what attention-transfer distillation compares).

    ``p_ij = q_i . k_j / sqrt(d_k)`` with 1x1-convolution queries and keys (``channels / reduction`` each),
    ``r_ij = softmax_j(p_ij)`` over all ``N = h * w`` pixels, ``o_i = sum_j r_ij d_j`` (no value projection). The
    ``N x N`` affinity is computed ``chunk_size`` query rows at a time, so inference memory grows with ``N *
    chunk_size``, not ``N^2`` (at 512 px and H/4, a whole affinity would be 16384^2 floats, 1 GiB per image); the
    result is the same for any chunk size.
    """

    def __init__(self, channels: int, reduction: int = 8, chunk_size: int = 1024) -> None:
        super().__init__()
        inner = max(channels // reduction, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.scale = inner**-0.5
        self.chunk_size = chunk_size

    def _queries_keys(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.query(d).flatten(2).transpose(1, 2) * self.scale, self.key(d).flatten(2)  # [B, N, c], [B, c, N]

    def forward(self, d: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        """``d`` ``[B, C, h, w]`` -> the attention output ``o`` ``[B, C, h, w]``."""
        b, c, h, w = d.shape
        queries, keys = self._queries_keys(d)
        values = d.flatten(2).transpose(1, 2)  # [B, N, C]
        step = chunk_size or self.chunk_size
        rows = [torch.softmax(queries[:, i : i + step] @ keys, dim=-1) @ values for i in range(0, h * w, step)]
        return torch.cat(rows, dim=1).transpose(1, 2).reshape(b, c, h, w)

    def affinity_rows(self, d: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The affinity rows ``r_i.`` of the pixels ``rows`` (flat indices ``i = y * w + x``, ``[n]``) ->
        ``[B, n, N]``, each row a distribution over all pixels."""
        queries, keys = self._queries_keys(d)
        return torch.softmax(queries[:, rows] @ keys, dim=-1)


class DGIGlobalLocalFusion(nn.Module):
    """Pixel-adaptive global-local fusion: ``d + w_g * o + w_l * local(d)``, with ``(w_g, w_l)`` a per-pixel softmax
    of a 1x1 convolution over ``[d, o, local(d)]``; ``local`` is conv 3x3 -> ReLU -> conv 3x3. The paper names the
    module and its purpose (coherence between regions); its form is our choice (``DGI_SPEC.md`` 3.5)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.local = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
        )
        self.gate = nn.Conv2d(3 * channels, 2, 1)

    def forward(self, d: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        local = self.local(d)
        weights = torch.softmax(self.gate(torch.cat([d, attended, local], dim=1)), dim=1)
        return d + weights[:, :1] * attended + weights[:, 1:] * local


class DGIResidualAttention(nn.Module):
    """Without the fusion: ``d + gamma * o``, ``gamma`` a learned scalar starting at 0 (as SAGAN)."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, d: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        return d + self.gamma * attended


class DGINetwork(nn.Module):
    """The encoder-decoder both DGI networks share: the student (``in_channels=4``, completion blocks) and the teacher
    (``in_channels=3``, the whole image, no completion blocks). See :class:`DGIConfig` for the layer table."""

    def __init__(self, config: DGIConfig, in_channels: int, completion: bool) -> None:
        super().__init__()
        widths = config.level_channels
        levels = [
            nn.Sequential(
                nn.ReflectionPad2d(3),
                nn.Conv2d(in_channels, widths[0], 7),
                norm_layer(config.norm, widths[0]),
                nn.ReLU(inplace=True),
                *[DGIResidualBlock(widths[0], norm=config.norm) for _ in range(config.level_blocks)],
            )
        ]
        for k in range(1, config.num_downsamples + 1):
            levels.append(
                nn.Sequential(
                    nn.Conv2d(widths[k - 1], widths[k], 4, stride=2, padding=1),
                    norm_layer(config.norm, widths[k]),
                    nn.ReLU(inplace=True),
                    *[DGIResidualBlock(widths[k], norm=config.norm) for _ in range(config.level_blocks)],
                )
            )
        levels.append(
            nn.Sequential(
                *[
                    DGIResidualBlock(widths[-1], config.bottleneck_dilation, config.norm)
                    for _ in range(config.bottleneck_blocks)
                ]
            )
        )
        self.levels = nn.ModuleList(levels)
        self.strides = config.level_strides
        self.completion = (
            nn.ModuleList(
                DGICompletionBlock(w, config.completion_kernel_size, config.completion_groups) for w in widths
            )
            if completion
            else None
        )
        self.attention = DGIAttention(widths[-1], config.attention_reduction, config.attention_chunk_size)
        self.fusion = DGIGlobalLocalFusion(widths[-1]) if config.global_local_fusion else DGIResidualAttention()
        decoder: list[nn.Module] = []
        for k in range(config.num_downsamples, 0, -1):
            decoder += [
                nn.ConvTranspose2d(widths[k], widths[k - 1], 4, stride=2, padding=1),
                norm_layer(config.norm, widths[k - 1]),
                nn.ReLU(inplace=True),
            ]
        decoder += [nn.ReflectionPad2d(3), nn.Conv2d(widths[0], 3, 7), nn.Tanh()]
        self.decoder = nn.Sequential(*decoder)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor]:
        """``x`` ``[B, in_channels, H, W]`` (and the hole ``mask`` when there are completion blocks) ->
        ``(output in [-1, 1], encoder features per level, the attention's input d)``."""
        if self.completion is not None and mask is None:
            raise ValueError("a network with completion blocks needs the mask")
        features = []
        h = x
        for index, level in enumerate(self.levels):
            h = level(h)
            if self.completion is not None:
                h = self.completion[index](h, level_mask(mask, self.strides[index]))
            features.append(h)
        d = h
        return self.decoder(self.fusion(d, self.attention(d))), tuple(features), d


# ------------------------------------------------------------------------------------------------- model


class DGIModel(InpaintModel):
    """The DGI inpainting network (the student): all that runs at inference. The teacher and the meta-networks are
    not part of it; ``DGIModel.from_pretrained`` reads the student's weights only.

    Example::

        >>> model = DGIModel(DGIConfig.tiny())
        >>> out = model(torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64))
        >>> out.inpainted.shape
        torch.Size([1, 3, 64, 64])
    """

    config_class = DGIConfig

    def __init__(self, config: DGIConfig) -> None:
        super().__init__(config)
        self.network = DGINetwork(config, in_channels=4, completion=config.completion_blocks)

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    @property
    def min_size(self) -> int:
        return self.config.min_size

    def forward(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        output_features: bool = False,
    ) -> DGIOutput:
        """Fill the holes of ``image``.

        Args:
            image: ``[B, 3, H, W]`` RGB in [0, 1]; ``H``, ``W`` multiples of ``size_multiple``, at least ``min_size``.
            mask: ``[B, 1, H, W]``, 1 = hole (binary).
            generator: unused (DGI is deterministic); accepted for the shared signature.
            output_features: also return the encoder features and the attention's input (for distillation).

        Returns:
            :class:`DGIOutput` with ``inpainted`` (``predicted`` in the hole, ``image`` elsewhere, bit-identical) and
            ``predicted`` (the network's output mapped to [0, 1]).
        """
        self._check_inputs(image, mask)
        signed = image * 2 - 1
        out, features, d = self.network(torch.cat([signed * (1 - mask), mask], dim=1), mask)
        predicted = (out + 1) / 2
        inpainted = mask * predicted + (1 - mask) * image
        if not output_features:
            return DGIOutput(inpainted=inpainted, predicted=predicted)
        return DGIOutput(inpainted=inpainted, predicted=predicted, features=features, attention_input=d)


# ------------------------------------------------------------------------------------------------- discriminator


class DGIDiscriminator(nn.Module):
    """PatchGAN critic with spectral normalisation (``DGI_SPEC.md`` 5.4, our choice: the paper's is unknown): 4x4
    convolutions of ``c, 2c, 4c, 8c, 1`` channels, strides 2, 2, 2, 1, 1, LeakyReLU(0.2) -> one logit per patch.

    Input: RGB in [-1, 1], ``[B, 3, H, W]`` -> ``[B, 1, H / 8 - 2, W / 8 - 2]``.
    """

    def __init__(self, config: DGIConfig) -> None:
        super().__init__()
        c = config.discriminator_channels
        sn = nn.utils.parametrizations.spectral_norm
        layers: list[nn.Module] = []
        for cin, cout, stride in ((3, c, 2), (c, 2 * c, 2), (2 * c, 4 * c, 2), (4 * c, 8 * c, 1)):
            layers += [sn(nn.Conv2d(cin, cout, 4, stride=stride, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(sn(nn.Conv2d(8 * c, 1, 4, stride=1, padding=1)))
        self.layers = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)


__all__ = [
    "DGIAdaptiveConv",
    "DGIAttention",
    "DGICompletionBlock",
    "DGIDiscriminator",
    "DGIGlobalLocalFusion",
    "DGIModel",
    "DGINetwork",
    "DGIOutput",
    "DGIResidualAttention",
    "DGIResidualBlock",
    "level_mask",
]
