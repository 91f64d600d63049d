"""DeepFill v2: Free-Form Image Inpainting with Gated Convolution.

Paper: Yu, Lin, Yang, Shen, Lu, Huang, ICCV 2019, https://arxiv.org/abs/1806.03589
Original code: https://github.com/JiahuiYu/generative_inpainting @ v2.0.0 (TensorFlow 1; CC BY-NC 4.0),
``inpaint_model.py`` (``build_inpaint_net``, ``build_sn_patch_gan_discriminator``) and ``inpaint_ops.py``
(``gen_conv``, ``gen_deconv``, ``contextual_attention``). This is an independent PyTorch re-implementation; layer
names are the original's TF scope names (``conv1`` ... ``allconv17``), grouped by stage.

Architecture (``../shared/MODELS.md`` section 3.1), widths for cnum = 48, "filters -> channels after gating"::

    stage 1 (coarse):  [image * (1 - m), ones, m] -> conv 48,k5 -> down 96 -> conv 96 -> down 192 -> 2 convs 192
                       -> 4 dilated convs (2, 4, 8, 16) -> 2 convs -> up 96 -> conv 96 -> up 48 -> conv 24 -> conv 3
                       -> tanh
    paste:             x = stage1 * m + image * (1 - m)
    stage 2 branch a:  the same encoder with dilated convs ("hallucination")
    stage 2 branch b:  encoder (last conv gated with ReLU) -> contextual attention -> 2 convs
    merge:             concat a, b -> 2 convs -> up -> conv -> up -> conv -> conv 3 -> tanh

A gated convolution computes ``2n`` filters and returns ``ELU(features) * sigmoid(gates)`` (``n`` channels); the
layers with 3 filters are plain convolutions. Every convolution pads like TensorFlow's ``"SAME"``: the total padding
``max((ceil(in / s) - 1) * s + (k - 1) * d + 1 - in, 0)`` is split with the extra pixel at the bottom/right, which is
asymmetric for stride 2 on even sizes (0 top, 1 bottom).

Contextual attention: the hole region of the H/4 feature map is rebuilt from the known region's 4x4 patches (stride
2), weighted by a softmax (scale 10) over the cosine similarity of 3x3 patches matched on a 2x nearest-downsampled
copy (H/8); only source patches whose mask is zero everywhere count; optionally the scores are first smoothed along
both image axes with a 3x3 identity kernel ("fuse"), which favours coherent shifts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...modeling_utils import InpaintModel, InpaintOutput
from .configuration_deepfill_v2 import DeepFillV2Config


@dataclass
class DeepFillV2Output(InpaintOutput):
    """:class:`InpaintOutput` plus the coarse network's prediction.

    Attributes:
        coarse: ``[B, 3, H, W]`` stage-1 output in [0, 1] (RGB). Training supervises it with the same L1 loss as the
            refined output.
    """

    coarse: torch.Tensor | None = None


# ------------------------------------------------------------------------------------------------- TF helpers


def tf_same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's ``"SAME"`` padding of one axis: ``(before, after)``.

    The output has ``ceil(size / stride)`` samples; the total padding that needs is split in two, the odd pixel
    after (TF ``ops_util.cc:GetWindowedOutputSize``).
    """
    out = -(-size // stride)
    effective = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int = 1, dilation: int = 1) -> torch.Tensor:
    """Zero-pad ``[B, C, H, W]`` as TensorFlow's ``"SAME"`` convolution would."""
    top, bottom = tf_same_padding(x.shape[-2], kernel, stride, dilation)
    left, right = tf_same_padding(x.shape[-1], kernel, stride, dilation)
    return F.pad(x, (left, right, top, bottom))


def nn_downsample_tf(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour downsampling by an integer ``factor`` with TF's ``align_corners=True``.

    Output row ``i`` of ``H // factor`` takes input row ``round(i * (H - 1) / (H // factor - 1))`` (half up), so the
    first and last rows are always kept -- not every ``factor``-th row as ``F.interpolate(mode="nearest")`` does.
    """
    height, width = x.shape[-2:]
    rows = torch.linspace(0, height - 1, height // factor, device=x.device).add_(0.5).floor_().long()
    cols = torch.linspace(0, width - 1, width // factor, device=x.device).add_(0.5).floor_().long()
    return x[..., rows, :][..., cols]


def _patches(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """``[B, L, C, k, k]``: the ``kernel x kernel`` patches of ``x`` at ``stride``, TF-SAME zero padded."""
    batch, channels = x.shape[:2]
    cols = F.unfold(pad_same(x, kernel, stride), kernel, stride=stride)  # [B, C*k*k, L]
    return cols.transpose(1, 2).reshape(batch, -1, channels, kernel, kernel)


# ------------------------------------------------------------------------------------------------- attention


def _fuse_scores(scores: torch.Tensor, fuse_kernel: int, height: int, width: int) -> torch.Tensor:
    """Propagate attention scores along both image axes (the original's ``fuse``).

    ``scores`` is ``[S, T]`` (sources x targets, both ``height x width`` grids in row-major order). Convolving that
    matrix with a ``k x k`` identity kernel adds ``score(s + d, t + d)`` for ``|d| <= k // 2``: a target's neighbour
    matched to the source's neighbour in the same direction. Done once in row-major order (neighbours along the
    width) and once with both grids transposed (neighbours along the height). The operation treats both axes alike,
    so it is the same on the ``[T, S]`` matrix the TF original builds.
    """
    eye = torch.eye(fuse_kernel, dtype=scores.dtype, device=scores.device).view(1, 1, fuse_kernel, fuse_kernel)
    pad = fuse_kernel // 2
    y = F.conv2d(F.pad(scores[None, None], (pad, pad, pad, pad)), eye)
    # Transpose both grids, [h, w, h, w] -> [w, h, w, h], propagate along the (new) rows, transpose back.
    y = y.view(height, width, height, width).permute(1, 0, 3, 2).reshape(1, 1, height * width, height * width)
    y = F.conv2d(F.pad(y, (pad, pad, pad, pad)), eye)
    return y.view(width, height, width, height).permute(1, 0, 3, 2).reshape(height * width, height * width)


def contextual_attention(
    foreground: torch.Tensor,
    background: torch.Tensor,
    mask: torch.Tensor,
    *,
    patch_size: int = 3,
    rate: int = 2,
    softmax_scale: float = 10.0,
    fuse: bool = True,
    fuse_kernel_size: int = 3,
    mask_resize: str = "two_step",
) -> torch.Tensor:
    """DeepFill's contextual attention (``inpaint_ops.py:contextual_attention`` with stride 1).

    Args:
        foreground: ``[B, C, h, w]`` feature whose every position gets rebuilt (``f``); ``h`` and ``w`` even.
        background: ``[B, C, h, w]`` feature the patches come from (``b``; DeepFill passes the same tensor twice).
        mask: ``[B, 1, H, W]`` (or ``[1, 1, H, W]``) full-resolution hole mask (1 = hole), ``H = 4h``. Each batch
            element's own mask decides its valid sources. (The originals use the first element's mask for the whole
            batch -- their training shares one mask per batch and their inference runs one image -- which is the
            same in those cases; per-element masks keep a result independent of the other images in a batch.)
        patch_size: matching patch size on the downsampled grid.
        rate: downsampling of the matching grid; the pasted raw patches are ``2 * rate`` wide with stride ``rate``.
        softmax_scale: multiplies the cosine similarities before the softmax over sources.
        fuse: propagate the scores with a ``fuse_kernel_size`` identity kernel first (:func:`_fuse_scores`).
        mask_resize: ``"two_step"`` (``H -> H/4 -> H/8``, the TF original) or ``"one_step"`` (``H -> H/8``, the
            PyTorch port); nearest neighbour with ``align_corners=True`` either way.

    Returns:
        ``[B, C, h, w]``: every position's attention-weighted sum of background patches.
    """
    batch, channels, height, width = foreground.shape
    kernel = 2 * rate
    # Raw patches for the reconstruction, from the full-resolution background: [B, L, C, 2r, 2r].
    raw = _patches(background, kernel, rate)
    # Matching on a downsampled grid.
    small_f = nn_downsample_tf(foreground, rate)
    small_b = nn_downsample_tf(background, rate)
    sh, sw = small_b.shape[-2:]
    sources = _patches(small_b, patch_size, 1)  # [B, L, C, k, k]
    if tuple(mask.shape[-2:]) != (4 * height, 4 * width):
        raise ValueError(
            f"the mask {tuple(mask.shape[-2:])} does not match the feature {(height, width)}: the attention runs on "
            "the H/4 feature map, so the mask must be 4x its size"
        )
    if mask_resize == "two_step":
        small_mask = nn_downsample_tf(nn_downsample_tf(mask, 4), rate)
    elif mask_resize == "one_step":
        small_mask = nn_downsample_tf(mask, 4 * rate)
    else:
        raise ValueError(f"mask_resize must be 'two_step' or 'one_step', got {mask_resize!r}")
    valid = (_patches(small_mask.to(foreground.dtype), patch_size, 1).mean(dim=(2, 3, 4)) == 0).to(foreground.dtype)
    valid = valid.view(-1, sh * sw, 1, 1).expand(batch, -1, -1, -1)

    outputs = []
    for i in range(batch):
        weights = sources[i]
        norms = torch.sqrt((weights**2).sum(dim=(1, 2, 3), keepdim=True)).clamp_min(1e-4)
        scores = F.conv2d(pad_same(small_f[i : i + 1], patch_size), weights / norms)  # [1, L, sh, sw]
        if fuse:
            scores = _fuse_scores(scores.reshape(sh * sw, sh * sw), fuse_kernel_size, sh, sw).view(1, -1, sh, sw)
        scores = F.softmax(scores * valid[i] * softmax_scale, dim=1) * valid[i]
        # Paste the raw patches back: a transposed convolution with stride `rate` (padding 1 = TF SAME for 4x4/2).
        outputs.append(F.conv_transpose2d(scores, raw[i], stride=rate, padding=rate // 2) / 4.0)
    return torch.cat(outputs, dim=0)


# ------------------------------------------------------------------------------------------------- layers


class GatedConv2d(nn.Module):
    """``gen_conv``: TF-SAME convolution; with an activation, ``act(features) * sigmoid(gates)`` on half the filters.

    ``out_channels`` is the number of channels *after* gating (the original's ``cnum // 2``); a layer with 3 outputs
    or no activation is a plain convolution (the RGB heads).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        activation: str | None = "elu",
    ) -> None:
        super().__init__()
        self.gated = activation is not None and out_channels != 3
        self.activation = activation
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        filters = 2 * out_channels if self.gated else out_channels
        self.conv = nn.Conv2d(in_channels, filters, kernel_size, stride=stride, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(pad_same(x, self.kernel_size, self.stride, self.dilation))
        if not self.gated:
            return x
        features, gates = x.chunk(2, dim=1)
        features = F.elu(features) if self.activation == "elu" else F.relu(features)
        return features * torch.sigmoid(gates)


class GatedUpConv2d(GatedConv2d):
    """``gen_deconv``: nearest-neighbour x2 upsampling, then a 3x3 gated convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))


def _encoder(prefix: str, in_channels: int, widths: tuple[int, int, int, int, int]) -> dict[str, nn.Module]:
    """The five-layer encoder every branch starts with: k5, stride-2, k3, stride-2, k3."""
    w1, w2, w3, w4, w5 = widths
    return {
        f"{prefix}conv1": GatedConv2d(in_channels, w1, 5),
        f"{prefix}conv2_downsample": GatedConv2d(w1, w2, 3, stride=2),
        f"{prefix}conv3": GatedConv2d(w2, w3),
        f"{prefix}conv4_downsample": GatedConv2d(w3, w4, 3, stride=2),
        f"{prefix}conv5": GatedConv2d(w4, w5),
    }


def _dilated(c: int, prefix: str) -> dict[str, nn.Module]:
    """The four dilated 3x3 convolutions (rates 2, 4, 8, 16) of the coarse network and the refinement's conv branch."""
    rates = (2, 4, 8, 16)
    return {f"{prefix}conv{7 + i}_atrous": GatedConv2d(2 * c, 2 * c, 3, dilation=r) for i, r in enumerate(rates)}


def _decoder(c: int, prefix: str, in_channels: int) -> dict[str, nn.Module]:
    """conv11, conv12, up 13, conv14, up 15, conv16, conv17 (RGB, linear)."""
    return {
        f"{prefix}conv11": GatedConv2d(in_channels, 2 * c),
        f"{prefix}conv12": GatedConv2d(2 * c, 2 * c),
        f"{prefix}conv13_upsample": GatedUpConv2d(2 * c, c),
        f"{prefix}conv14": GatedConv2d(c, c),
        f"{prefix}conv15_upsample": GatedUpConv2d(c, c // 2),
        f"{prefix}conv16": GatedConv2d(c // 2, c // 4),
        f"{prefix}conv17": GatedConv2d(c // 4, 3, activation=None),
    }


def _init_tf(module: nn.Module) -> None:
    """TensorFlow's ``tf.layers.conv2d`` defaults, as the original: Glorot-uniform kernels, zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            weight = layer.weight_orig if hasattr(layer, "weight_orig") else layer.weight
            nn.init.xavier_uniform_(weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


# ------------------------------------------------------------------------------------------------- generator


class DeepFillV2Model(InpaintModel):
    """The DeepFill v2 generator (``build_inpaint_net``).

    Example::

        model = AutoInpaintModel.from_pretrained("org/deepfill-v2-places2")
        out = model(image, mask)  # image [B, 3, H, W] RGB in [0, 1], H and W multiples of 8; mask 1 = hole
        out.inpainted, out.coarse
    """

    config_class = DeepFillV2Config

    def __init__(self, config: DeepFillV2Config) -> None:
        super().__init__(config)
        c = config.base_channels
        half = c // 2
        self.stage1 = nn.ModuleDict(
            {
                **_encoder("", config.in_channels, (half, c, c, 2 * c, 2 * c)),
                "conv6": GatedConv2d(2 * c, 2 * c),
                **_dilated(c, ""),
                **_decoder(c, "", 2 * c),
            }
        )
        self.stage2_conv = nn.ModuleDict(
            {**_encoder("x", 3, (half, half, c, c, 2 * c)), "xconv6": GatedConv2d(2 * c, 2 * c), **_dilated(c, "x")}
        )
        self.stage2_attention = nn.ModuleDict(
            {
                **_encoder("pm", 3, (half, half, c, 2 * c, 2 * c)),
                "pmconv6": GatedConv2d(2 * c, 2 * c, activation="relu"),
                "pmconv9": GatedConv2d(2 * c, 2 * c),
                "pmconv10": GatedConv2d(2 * c, 2 * c),
            }
        )
        self.stage2_merge = nn.ModuleDict(_decoder(c, "all", 4 * c))
        _init_tf(self)

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    def _attention(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        config = self.config
        return contextual_attention(
            x,
            x,
            mask,
            patch_size=config.attention_patch_size,
            rate=2,
            softmax_scale=config.softmax_scale,
            fuse=config.fuse,
            fuse_kernel_size=config.fuse_kernel_size,
            mask_resize=config.attention_mask_resize,
        )

    def generate(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The bare generator, in the original's conventions (and channel order).

        Args:
            x: ``[B, 5, H, W]``: the image in [-1, 1] with hole pixels zeroed, a channel of ones, the mask.
            mask: ``[B, 1, H, W]``, 1 = hole.

        Returns:
            ``(x_stage1, x_stage2)``: the coarse and refined tanh outputs, in [-1, 1].
        """
        incomplete = x[:, :3]
        y = x
        for layer in self.stage1.values():
            y = layer(y)
        stage1 = torch.tanh(y)

        pasted = stage1 * mask + incomplete * (1 - mask)
        hallucinated = pasted
        for layer in self.stage2_conv.values():
            hallucinated = layer(hallucinated)
        attended = pasted
        for name, layer in self.stage2_attention.items():
            attended = layer(attended)
            if name == "pmconv6":
                attended = self._attention(attended, mask)
        y = torch.cat([hallucinated, attended], dim=1)
        for layer in self.stage2_merge.values():
            y = layer(y)
        return stage1, torch.tanh(y)

    def forward(
        self, image: torch.Tensor, mask: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> DeepFillV2Output:
        """Inpaint ``image`` where ``mask`` is 1.

        Args:
            image: ``[B, 3, H, W]`` float RGB in [0, 1]; H and W multiples of 8 (``InpaintPipeline`` pads).
            mask: ``[B, 1, H, W]`` float, 1 = hole, 0 = keep.
            generator: unused; DeepFill v2 is deterministic.

        Returns:
            :class:`DeepFillV2Output`: ``inpainted`` (``predicted`` in the hole, ``image`` elsewhere, bit-identical),
            ``predicted`` (the refined output mapped to [0, 1]) and ``coarse`` (stage 1, [0, 1]).
        """
        self._check_inputs(image, mask)
        bgr = self.config.channel_order == "bgr"
        signed = (image.flip(1) if bgr else image) * 2 - 1
        incomplete = signed * (1 - mask)
        ones = torch.ones_like(mask)
        stage1, stage2 = self.generate(torch.cat([incomplete, ones, ones * mask], dim=1), mask)
        if bgr:
            stage1, stage2 = stage1.flip(1), stage2.flip(1)
        predicted = (stage2 + 1) / 2
        inpainted = mask * predicted + (1 - mask) * image
        return DeepFillV2Output(inpainted=inpainted, predicted=predicted, coarse=(stage1 + 1) / 2)


# ------------------------------------------------------------------------------------------------- discriminator


class DeepFillV2Discriminator(nn.Module):
    """SN-PatchGAN (``build_sn_patch_gan_discriminator``): six spectral-norm 5x5 stride-2 TF-SAME convolutions with
    LeakyReLU 0.2 (64, 128, 256, 256, 256, 256 channels for 64 base channels: 5,946,816 parameters), flattened.

    It sees ``[image in [-1, 1], mask]`` (4 channels; ``gan_with_mask``) and returns ``[B, N]`` patch scores for the
    hinge loss.
    """

    def __init__(self, config: DeepFillV2Config) -> None:
        super().__init__()
        self.config = config
        base = config.discriminator_base_channels
        widths = (base, 2 * base, 4 * base, 4 * base, 4 * base, 4 * base)
        self.convs = nn.ModuleList()
        in_ch = config.out_channels + 1
        for width in widths:
            self.convs.append(nn.utils.spectral_norm(nn.Conv2d(in_ch, width, 5, stride=2)))
            in_ch = width
        _init_tf(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.leaky_relu(conv(pad_same(x, 5, 2)), 0.2)
        return x.flatten(1)


__all__ = [
    "DeepFillV2Discriminator",
    "DeepFillV2Model",
    "DeepFillV2Output",
    "GatedConv2d",
    "contextual_attention",
    "nn_downsample_tf",
    "pad_same",
    "tf_same_padding",
]
