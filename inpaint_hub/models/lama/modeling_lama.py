"""LaMa: Resolution-robust Large Mask Inpainting with Fourier Convolutions.

Paper: Suvorov et al., WACV 2022, https://arxiv.org/abs/2109.07161
Original code: https://github.com/advimman/lama @ 786f5936 (Apache-2.0), ``saicinpainting/training/modules/ffc.py``
(``FFCResNetGenerator``) and ``modules/pix2pixhd.py`` (``NLayerDiscriminator``). This is an independent
re-implementation; parameter names are ours and the converter (``convert_lama_original.py``) maps the original ones.
Released weights (big-lama, lama-fourier) are published by the authors without a separate weight licence; they were
trained on Places365 / Places-Challenge, whose terms are research and non-commercial.

Architecture (big-lama defaults, ``../shared/MODELS.md`` section 1.1):

    masked image + mask (4 ch) -> 7x7 stem conv -> 3 stride-2 convs (the last splits channels into a local
    branch and a global branch, 25/75) -> 18 FFC residual blocks -> concat(local, global) -> 3 transposed
    convs -> 7x7 conv -> sigmoid

A Fast Fourier Convolution (FFC) keeps two branches. The local branch is ordinary 3x3 convolution; the global branch
runs a spectral transform whose Fourier unit applies a 1x1 convolution to the real 2-D FFT of the feature map, so
every output pixel sees the whole image -- the receptive field that lets LaMa fill large holes.
"""

from __future__ import annotations

import torch
from torch import nn

from ...modeling_utils import InpaintModel, InpaintOutput
from .configuration_lama import LamaConfig


# ------------------------------------------------------------------------------------------------- blocks


class LamaFourierUnit(nn.Module):
    """1x1 convolution + BatchNorm + ReLU in the frequency domain (``ffc.py:FourierUnit``, LFU and SE off).

    The real and imaginary parts of ``rfft2(x)`` are interleaved along channels (``c0.re, c0.im, c1.re, ...``),
    as in the original, so converted weights line up channel for channel.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, 2 * channels, kernel_size=1, bias=False)
        self.norm = nn.BatchNorm2d(2 * channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        dtype = x.dtype
        # FFTs run in float32 whatever the model dtype: half-precision FFTs are unsupported on CPU and
        # restricted to power-of-two sizes on CUDA. A no-op for float32 models.
        spectrum = torch.fft.rfftn(x.float(), dim=(-2, -1), norm="ortho")  # [B, C, H, W//2+1] complex
        spectrum = torch.stack((spectrum.real, spectrum.imag), dim=-1)  # [B, C, H, W', 2]
        spectrum = spectrum.permute(0, 1, 4, 2, 3).contiguous().view(batch, 2 * channels, height, -1)
        spectrum = self.act(self.norm(self.conv(spectrum.to(dtype)))).float()
        spectrum = spectrum.view(batch, channels, 2, height, -1).permute(0, 1, 3, 4, 2).contiguous()
        spectrum = torch.complex(spectrum[..., 0], spectrum[..., 1])
        out = torch.fft.irfftn(spectrum, s=(height, width), dim=(-2, -1), norm="ortho")
        return out.to(dtype)


class LamaSpectralTransform(nn.Module):
    """The global-to-global path of an FFC (``ffc.py:SpectralTransform``, stride 1, no LFU):
    halve the channels with a 1x1 conv, add the Fourier unit's output to its input, restore the channels."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        hidden = out_channels // 2
        self.reduce = nn.Conv2d(in_channels, hidden, kernel_size=1, bias=False)
        self.reduce_norm = nn.BatchNorm2d(hidden)
        self.act = nn.ReLU(inplace=True)
        self.fourier = LamaFourierUnit(hidden)
        self.expand = nn.Conv2d(hidden, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.reduce_norm(self.reduce(x)))
        return self.expand(x + self.fourier(x))


class LamaFFCConv(nn.Module):
    """A Fast Fourier Convolution followed by BatchNorm and ReLU on each branch (``ffc.py:FFC_BN_ACT``).

    Inputs and outputs are ``(local, global)`` pairs; ``global`` is ``None`` while the global share is zero (the
    stem and the first downsampling layers). Four paths, each present only when both its ends have channels::

        local_out  = conv_l2l(local) + conv_g2l(global)
        global_out = conv_l2g(local) + spectral_g2g(global)

    Spatial convolutions are bias-free and reflect-padded, as in the original.

    Args:
        in_channels / out_channels: total channels (local + global).
        ratio_in / ratio_out: share of ``in_channels`` / ``out_channels`` in the global branch.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        ratio_in: float = 0.0,
        ratio_out: float = 0.0,
    ) -> None:
        super().__init__()
        in_global = int(in_channels * ratio_in)
        in_local = in_channels - in_global
        out_global = int(out_channels * ratio_out)
        out_local = out_channels - out_global

        def conv(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, kernel_size, stride, padding, bias=False, padding_mode="reflect")

        self.conv_l2l = conv(in_local, out_local)
        self.conv_l2g = conv(in_local, out_global) if out_global else None
        self.conv_g2l = conv(in_global, out_local) if in_global else None
        self.spectral_g2g = LamaSpectralTransform(in_global, out_global) if in_global and out_global else None
        self.norm_local = nn.BatchNorm2d(out_local)
        self.norm_global = nn.BatchNorm2d(out_global) if out_global else None
        self.act = nn.ReLU(inplace=True)

    def forward(
        self, x_local: torch.Tensor, x_global: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        out_local = self.conv_l2l(x_local)
        if self.conv_g2l is not None:
            out_local = out_local + self.conv_g2l(x_global)
        out_local = self.act(self.norm_local(out_local))
        if self.norm_global is None:
            return out_local, None
        out_global = self.conv_l2g(x_local)
        if self.spectral_g2g is not None:
            out_global = out_global + self.spectral_g2g(x_global)
        return out_local, self.act(self.norm_global(out_global))


class LamaResidualBlock(nn.Module):
    """Two FFCs with a residual connection on each branch (``ffc.py:FFCResnetBlock``)."""

    def __init__(self, channels: int, global_ratio: float) -> None:
        super().__init__()
        self.conv1 = LamaFFCConv(channels, channels, 3, padding=1, ratio_in=global_ratio, ratio_out=global_ratio)
        self.conv2 = LamaFFCConv(channels, channels, 3, padding=1, ratio_in=global_ratio, ratio_out=global_ratio)

    def forward(
        self, x_local: torch.Tensor, x_global: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        y_local, y_global = self.conv2(*self.conv1(x_local, x_global))
        return x_local + y_local, None if x_global is None else x_global + y_global


class LamaUpsample(nn.Module):
    """Transposed 3x3 convolution (stride 2, with bias) + BatchNorm + ReLU, doubling height and width."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)
        self.norm = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


# ------------------------------------------------------------------------------------------------- model


class LamaModel(
    InpaintModel,
    license="apache-2.0",
    paper_url="https://arxiv.org/abs/2109.07161",
    tags=["lama", "fast-fourier-convolution"],
):
    """LaMa's FFC-ResNet generator (``FFCResNetGenerator``).

    Inputs follow the library contract: ``image`` [B, 3, H, W] RGB in [0, 1], ``mask`` [B, 1, H, W] with 1 = hole,
    H and W multiples of ``2 ** num_downsampling`` (8). LaMa works in [0, 1] itself, so no range conversion happens:
    the generator sees ``cat([image * (1 - mask), mask])`` and ends in a sigmoid, exactly as the original
    ``DefaultInpaintingTrainingModule.forward``. The original predict script pads to a multiple of 8 with numpy's
    ``symmetric`` mode (bottom/right), which is this class's ``pad_mode``.

    BatchNorm layers use running statistics in ``eval()`` (``from_pretrained`` returns the model in eval mode);
    the original behaves the same way at inference.
    """

    config_class = LamaConfig
    pad_mode = "symmetric"

    def __init__(self, config: LamaConfig) -> None:
        super().__init__(config)
        base, cap = config.base_channels, config.max_channels

        self.stem = LamaFFCConv(config.in_channels, base, kernel_size=7, padding=3)
        self.downsample = nn.ModuleList()
        for i in range(config.num_downsampling):
            last = i == config.num_downsampling - 1
            self.downsample.append(
                LamaFFCConv(
                    min(cap, base * 2**i),
                    min(cap, base * 2 ** (i + 1)),
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    # the last downsampling layer opens the global branch for the residual blocks
                    ratio_out=config.global_ratio if last else 0.0,
                )
            )
        self.blocks = nn.ModuleList(
            LamaResidualBlock(config.bottleneck_channels, config.global_ratio)
            for _ in range(config.num_residual_blocks)
        )
        self.upsample = nn.ModuleList()
        for i in range(config.num_downsampling):
            scale = 2 ** (config.num_downsampling - i)
            self.upsample.append(LamaUpsample(min(cap, base * scale), min(cap, base * scale // 2)))
        self.head = nn.Conv2d(base, config.out_channels, kernel_size=7, padding=3, padding_mode="reflect")
        # Initialisation: the original leaves every layer at PyTorch's default init (no init hook in ffc.py), and
        # so do we.

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    @property
    def min_size(self) -> int:
        # The residual blocks reflect-pad by 1, which needs at least 2 pixels at the deepest level.
        return 2 * self.config.size_multiple

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        """The bare generator: ``x`` = [B, 4, H, W] (masked image, mask) -> [B, 3, H, W] in [0, 1]."""
        x_local, x_global = self.stem(x, None)
        for layer in self.downsample:
            x_local, x_global = layer(x_local, x_global)
        for block in self.blocks:
            x_local, x_global = block(x_local, x_global)
        # local channels first, global last (``ConcatTupleLayer``)
        x = x_local if x_global is None else torch.cat([x_local, x_global], dim=1)
        for layer in self.upsample:
            x = layer(x)
        return torch.sigmoid(self.head(x))

    def forward(
        self, image: torch.Tensor, mask: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> InpaintOutput:
        """Inpaint ``image`` where ``mask`` is 1.

        Args:
            image: [B, 3, H, W] float RGB in [0, 1].
            mask: [B, 1, H, W] float, 1 = hole, 0 = keep.
            generator: unused; LaMa is deterministic.

        Returns:
            :class:`InpaintOutput` with ``predicted`` (sigmoid output) and ``inpainted`` (``predicted`` inside the
            hole, ``image`` outside, bit-identical there).
        """
        self._check_inputs(image, mask)
        predicted = self.generate(torch.cat([image * (1 - mask), mask], dim=1))
        inpainted = mask * predicted + (1 - mask) * image
        return InpaintOutput(inpainted=inpainted, predicted=predicted)


# ------------------------------------------------------------------------------------------------- discriminator


class LamaDiscriminator(nn.Module):
    """The pix2pixHD NLayer patch discriminator LaMa trains with (``pix2pixhd.py:NLayerDiscriminator``).

    4x4 convolutions with padding 2, LeakyReLU(0.2), BatchNorm after every layer but the first and the last. With
    ``n_layers = 4`` and 64 base channels it has 6,962,369 parameters. It sees the 3-channel image only.

    ``forward`` returns ``(logits [B, 1, h, w], [features of every layer but the last])``; the features feed LaMa's
    feature-matching loss.
    """

    def __init__(self, config: LamaConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.discriminator_base_channels

        def layer(cin: int, cout: int, stride: int, norm: bool) -> nn.Sequential:
            modules: list[nn.Module] = [nn.Conv2d(cin, cout, kernel_size=4, stride=stride, padding=2)]
            if norm:
                modules.append(nn.BatchNorm2d(cout))
            modules.append(nn.LeakyReLU(0.2, inplace=True))
            return nn.Sequential(*modules)

        layers = [layer(config.out_channels, channels, stride=2, norm=False)]
        for _ in range(1, config.discriminator_num_layers):
            layers.append(layer(channels, min(channels * 2, 512), stride=2, norm=True))
            channels = min(channels * 2, 512)
        layers.append(layer(channels, min(channels * 2, 512), stride=1, norm=True))
        channels = min(channels * 2, 512)
        self.layers = nn.ModuleList(layers)
        self.classifier = nn.Conv2d(channels, 1, kernel_size=4, stride=1, padding=2)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        x = image
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return self.classifier(x), features


__all__ = ["LamaDiscriminator", "LamaModel"]
