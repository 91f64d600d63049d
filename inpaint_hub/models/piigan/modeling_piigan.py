"""PiiGAN: Generative Adversarial Networks for Pluralistic Image Inpainting.

Paper: Cai & Wei, IEEE Access 8 (2020), doi 10.1109/ACCESS.2020.2979348, https://arxiv.org/abs/1912.01834
Original code: https://github.com/vivitsai/PiiGAN @ dcdd3be (TensorFlow 1 + neuralgym; CC BY-NC 4.0), ``model.py``
(``build_inpaint_net``, ``build_extractor``, ``build_wgan_*_discriminator``) and ``function.py`` (``gen_conv``,
``gen_conv_add_z``, ``gen_deconv``, ``contextual_attention``). No weights were released. This is an independent PyTorch
re-implementation; layer names are the original's TF scope names (``conv1`` ... ``allconv17``), grouped by stage.

Architecture (``../shared/MODELS.md`` section 4), widths for cnum = 32. It is DeepFill v1's two-stage network (plain
convolutions, ELU) with a one-channel *style map* ``z`` added to the convolution outputs before the ELU::

    z = z * mask (noise only inside the hole); z/2, z/4 = nearest-neighbour resized copies
    stage 1 (coarse):  [image * (1 - m), z, ones, m] -> conv 32,k5 (+z) -> down 64 (+z/2) -> conv 64 (+z/2)
                       -> down 128 (+z/4) -> 2 convs 128 -> 4 dilated convs (2, 4, 8, 16) -> 2 convs (all +z/4)
                       -> up 64 -> conv 64 -> up 32 -> conv 16 -> conv 3 -> clip to [-1, 1]
    paste:             x = stage1 * m + image * (1 - m); stage-2 input [x, z, ones, m]
    stage 2 branch a:  conv 32,k5 (+z) -> down 32 -> conv 64 (+z/2) -> down 64 -> conv 128 -> conv 128
                       -> 4 dilated convs (all +z/4)
    stage 2 branch b:  conv 32,k5 (+z) -> down 32 -> conv 64 (+z/2) -> down 128 -> 2 convs 128 (+z/4)
                       -> contextual attention -> 2 convs 128 (+z/4)
    merge:             concat a, b -> 2 convs 128 (+z/4) -> up 64 -> conv 64 -> up 32 -> conv 16 -> conv 3 -> clip

Different ``z`` give different completions of the same hole: that is the model's point. At inference ``z ~ N(0, 1)``
on a ``style_size`` grid spread over the hole's bounding box (:meth:`PiiGANModel.sample_z`);
in training the *style extractor* encodes the real hole patch into a ``style_size x style_size`` code (a VAE-style
encoder, KL to N(0, I)) that the generator must turn back into the ground truth, and regresses the code of a generated
patch back to the ``z`` that made it. The local and global WGAN-GP critics are plain (no spectral norm) 5x5 stride-2
convolutions with LeakyReLU and a dense head.

The network works in RGB (the original read its training images with OpenCV, i.e. BGR; no weights were released,
so nothing depends on it). Convolutions pad like TensorFlow's ``"SAME"``; the contextual attention is DeepFill's
(shared with :mod:`inpaint_hub.models.deepfill_v2`: ksize 3, rate 2, softmax scale 10, fuse, mask H -> H/4 -> H/8).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...modeling_utils import InpaintModel, InpaintOutput
from ..deepfill_v2.modeling_deepfill_v2 import contextual_attention, nn_downsample_tf, pad_same
from .configuration_piigan import PiiGANConfig


@dataclass
class PiiGANOutput(InpaintOutput):
    """:class:`InpaintOutput` plus the coarse prediction and the style map that produced this result.

    Attributes:
        coarse: ``[B, 3, H, W]`` stage-1 output in [0, 1]. Training supervises it as the refined output.
        z: ``[B, 1, H, W]`` the style map the generator was run with, as given or sampled (before it is masked to
            the hole). ``model(image, mask, z=out.z)`` reproduces this result exactly.
    """

    coarse: torch.Tensor | None = None
    z: torch.Tensor | None = None


# ------------------------------------------------------------------------------------------------- layers


class PiiGANConv(nn.Module):
    """``gen_conv`` / ``gen_conv_add_z`` / ``gen_deconv``: a TF-SAME convolution with bias, then ``ELU(conv(x) + z)``.

    ``z`` is a one-channel map broadcast over every output channel (``None`` for the layers without it). With
    ``upsample`` the input is first enlarged 2x by nearest neighbour (``gen_deconv``); with ``activation=False`` the
    layer is linear (the RGB heads). The original's ``pmconv6`` asks for ReLU, but ``gen_conv_add_z`` ignores its
    activation argument: every layer with z uses ELU, and so do we.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        *,
        upsample: bool = False,
        activation: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        self.upsample, self.activation = upsample, activation
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv(pad_same(x, self.kernel_size, self.stride, self.dilation))
        if z is not None:
            x = x + z
        return F.elu(x) if self.activation else x


# Which copy of z each layer adds: 0 = full resolution, 1 = H/2, 2 = H/4; layers not listed add none.
_Z_LEVEL = {
    **{name: 0 for name in ("conv1", "xconv1", "pmconv1")},
    **{f"{prefix}{name}": 1 for prefix in ("", "x", "pm") for name in ("conv2_downsample", "conv3")},
    **{
        f"{prefix}{name}": 2
        for prefix, names in (
            ("", ("conv4_downsample", "conv5", "conv6", "conv11", "conv12")),
            ("x", ("conv4_downsample", "conv5", "conv6")),
            ("pm", ("conv4_downsample", "conv5", "conv6", "conv9", "conv10")),
            ("all", ("conv11", "conv12")),
        )
        for name in names
    },
    **{f"{prefix}conv{7 + i}_atrous": 2 for prefix in ("", "x") for i in range(4)},
}


def _dilated(c: int, prefix: str) -> dict[str, PiiGANConv]:
    """The four dilated 3x3 convolutions (rates 2, 4, 8, 16) of the coarse network and the refinement's conv branch."""
    rates = (2, 4, 8, 16)
    return {f"{prefix}conv{7 + i}_atrous": PiiGANConv(4 * c, 4 * c, 3, dilation=r) for i, r in enumerate(rates)}


def _decoder(c: int, prefix: str) -> dict[str, PiiGANConv]:
    """up 13, conv 14, up 15, conv 16, conv 17 (RGB, linear): the same tail in both stages."""
    return {
        f"{prefix}conv13_upsample": PiiGANConv(4 * c, 2 * c, upsample=True),
        f"{prefix}conv14": PiiGANConv(2 * c, 2 * c),
        f"{prefix}conv15_upsample": PiiGANConv(2 * c, c, upsample=True),
        f"{prefix}conv16": PiiGANConv(c, c // 2),
        f"{prefix}conv17": PiiGANConv(c // 2, 3, activation=False),
    }


def _init_tf(module: nn.Module) -> None:
    """TensorFlow's ``tf.layers`` defaults, as the original: Glorot-uniform kernels, zero biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def hole_boxes(mask: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """``(top, left, height, width)`` of each image's hole bounding box (the whole image when it has no hole)."""
    boxes = []
    for m in mask[:, 0] > 0:
        rows, cols = m.any(dim=1).nonzero(), m.any(dim=0).nonzero()
        if len(rows) == 0:
            boxes.append((0, 0, m.shape[0], m.shape[1]))
        else:
            top, left = int(rows[0]), int(cols[0])
            boxes.append((top, left, int(rows[-1]) - top + 1, int(cols[-1]) - left + 1))
    return boxes


def crop_patches(x: torch.Tensor, boxes: list[tuple[int, int, int, int]], size: int) -> torch.Tensor:
    """``[B, C, size, size]``: each image's box, resized bilinearly (a plain crop when the box is ``size`` square)."""
    patches = []
    for i, (top, left, height, width) in enumerate(boxes):
        patch = x[i : i + 1, :, top : top + height, left : left + width]
        if (height, width) != (size, size):
            patch = F.interpolate(patch, size=(size, size), mode="bilinear", align_corners=False)
        patches.append(patch)
    return torch.cat(patches)


def paste_patches(patches: torch.Tensor, boxes: list[tuple[int, int, int, int]], height: int, width: int):
    """The inverse of :func:`crop_patches`: each ``[C, S, S]`` patch resized to its box, on an all-zero map."""
    canvas = patches.new_zeros(patches.shape[0], patches.shape[1], height, width)
    for i, (top, left, box_h, box_w) in enumerate(boxes):
        patch = patches[i : i + 1]
        if (box_h, box_w) != tuple(patch.shape[-2:]):
            patch = F.interpolate(patch, size=(box_h, box_w), mode="bilinear", align_corners=False)
        canvas[i : i + 1, :, top : top + box_h, left : left + box_w] = patch
    return canvas


def _run(layers: nn.ModuleDict, x: torch.Tensor, z_levels: tuple[torch.Tensor, ...]) -> torch.Tensor:
    for name, layer in layers.items():
        level = _Z_LEVEL.get(name)
        x = layer(x, None if level is None else z_levels[level])
    return x


# ------------------------------------------------------------------------------------------------- generator


class PiiGANModel(InpaintModel):
    """The PiiGAN generator (``build_inpaint_net``): several plausible fills per input, one per style map ``z``.

    Example::

        model = AutoInpaintModel.from_pretrained("org/piigan-celeba")
        g = torch.Generator().manual_seed(0)
        a = model(image, mask, generator=g)  # image [B, 3, H, W] RGB in [0, 1], H, W multiples of 8; mask 1 = hole
        b = model(image, mask, generator=g)  # another z: another completion
        model(image, mask, z=a.z)            # a again, exactly
    """

    config_class = PiiGANConfig
    supports_sampling = True

    def __init__(self, config: PiiGANConfig) -> None:
        super().__init__(config)
        c = config.base_channels
        self.stage1 = nn.ModuleDict(
            {
                "conv1": PiiGANConv(config.in_channels, c, 5),
                "conv2_downsample": PiiGANConv(c, 2 * c, 3, stride=2),
                "conv3": PiiGANConv(2 * c, 2 * c),
                "conv4_downsample": PiiGANConv(2 * c, 4 * c, 3, stride=2),
                "conv5": PiiGANConv(4 * c, 4 * c),
                "conv6": PiiGANConv(4 * c, 4 * c),
                **_dilated(c, ""),
                "conv11": PiiGANConv(4 * c, 4 * c),
                "conv12": PiiGANConv(4 * c, 4 * c),
                **_decoder(c, ""),
            }
        )
        self.stage2_conv = nn.ModuleDict(
            {
                "xconv1": PiiGANConv(config.in_channels, c, 5),
                "xconv2_downsample": PiiGANConv(c, c, 3, stride=2),
                "xconv3": PiiGANConv(c, 2 * c),
                "xconv4_downsample": PiiGANConv(2 * c, 2 * c, 3, stride=2),
                "xconv5": PiiGANConv(2 * c, 4 * c),
                "xconv6": PiiGANConv(4 * c, 4 * c),
                **_dilated(c, "x"),
            }
        )
        # Split around the attention: pmconv1-6, contextual attention, pmconv9-10.
        self.stage2_attention_encoder = nn.ModuleDict(
            {
                "pmconv1": PiiGANConv(config.in_channels, c, 5),
                "pmconv2_downsample": PiiGANConv(c, c, 3, stride=2),
                "pmconv3": PiiGANConv(c, 2 * c),
                "pmconv4_downsample": PiiGANConv(2 * c, 4 * c, 3, stride=2),
                "pmconv5": PiiGANConv(4 * c, 4 * c),
                "pmconv6": PiiGANConv(4 * c, 4 * c),
            }
        )
        self.stage2_attention_decoder = nn.ModuleDict(
            {"pmconv9": PiiGANConv(4 * c, 4 * c), "pmconv10": PiiGANConv(4 * c, 4 * c)}
        )
        self.stage2_merge = nn.ModuleDict(
            {"allconv11": PiiGANConv(8 * c, 4 * c), "allconv12": PiiGANConv(4 * c, 4 * c), **_decoder(c, "all")}
        )
        _init_tf(self)

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    def generate(
        self, incomplete: torch.Tensor, mask: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The bare generator, in the original's conventions.

        Args:
            incomplete: ``[B, 3, H, W]`` the image in [-1, 1] with hole pixels zeroed.
            mask: ``[B, 1, H, W]``, 1 = hole.
            z: ``[B, 1, H, W]`` style map; only its values inside the hole matter (it is multiplied by ``mask``).

        Returns:
            ``(x_stage1, x_stage2)``: the coarse and refined outputs, clipped to [-1, 1].
        """
        z = torch.where(mask > 0, z, torch.zeros_like(z))  # not z * mask: a non-finite value outside must not leak
        z_levels = (z, nn_downsample_tf(z, 2), nn_downsample_tf(z, 4))
        ones = torch.ones_like(mask)
        stage1 = _run(self.stage1, torch.cat([incomplete, z, ones, ones * mask], dim=1), z_levels).clamp(-1, 1)

        pasted = stage1 * mask + incomplete * (1 - mask)
        x = torch.cat([pasted, z, ones, ones * mask], dim=1)
        hallucinated = _run(self.stage2_conv, x, z_levels)
        attended = _run(self.stage2_attention_encoder, x, z_levels)
        attended = contextual_attention(
            attended,
            attended,
            mask,
            patch_size=self.config.attention_patch_size,
            rate=2,
            softmax_scale=self.config.softmax_scale,
            fuse=self.config.fuse,
            fuse_kernel_size=self.config.fuse_kernel_size,
            mask_resize="two_step",
        )
        attended = _run(self.stage2_attention_decoder, attended, z_levels)
        stage2 = _run(self.stage2_merge, torch.cat([hallucinated, attended], dim=1), z_levels).clamp(-1, 1)
        return stage1, stage2

    def sample_z(
        self, image: torch.Tensor, mask: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A fresh style map ``[B, 1, H, W]``: ``style_size x style_size`` values ``~ N(0, 1)`` (drawn from
        ``generator``) spread over each image's hole bounding box (bilinear), zero elsewhere.

        That is the shape of the codes the style extractor produces in training (:func:`paste_patches` of its
        ``style_size`` map), so random and encoded codes look alike to the generator whatever the hole's size. The
        original drew ``z ~ N(0, 1)`` per pixel of the whole image and multiplied it by the mask; in the paper's
        setting (a 56-64 px box, a 64 x 64 style map) that is nearly the same (exactly for a 64 px box; smaller boxes
        get the grid resized, so slightly correlated), while for other hole sizes per-pixel noise would give the
        generator codes at another scale than the ones it was trained to reconstruct from.
        """
        batch, size = image.shape[0], self.config.style_size
        device = generator.device if generator is not None else image.device
        noise = torch.randn((batch, 1, size, size), generator=generator, device=device, dtype=image.dtype)
        return paste_patches(noise.to(image.device), hole_boxes(mask), *image.shape[-2:])

    def forward(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        z: torch.Tensor | None = None,
    ) -> PiiGANOutput:
        """Inpaint ``image`` where ``mask`` is 1, in the style ``z``.

        Args:
            image: ``[B, 3, H, W]`` float RGB in [0, 1]; H and W multiples of 8 (``InpaintPipeline`` pads).
            mask: ``[B, 1, H, W]`` float, 1 = hole, 0 = keep.
            generator: draws ``z`` when it is not given (the global RNG when ``None``; see :meth:`sample_z`).
            z: ``[B, 1, H, W]`` style map to use instead of a fresh one (e.g. ``out.z`` of an earlier call).

        Returns:
            :class:`PiiGANOutput`: ``inpainted`` (``predicted`` in the hole, ``image`` elsewhere, bit-identical),
            ``predicted`` (the refined output mapped to [0, 1]), ``coarse`` (stage 1, [0, 1]) and the ``z`` used.

        Raises:
            ValueError: if ``z`` is not ``[B, 1, H, W]`` for this image (and the errors of the shared input checks).
        """
        self._check_inputs(image, mask)
        if z is None:
            z = self.sample_z(image, mask, generator=generator)
        elif z.shape != (image.shape[0], 1, *image.shape[-2:]):
            expected = [image.shape[0], 1, *image.shape[-2:]]
            raise ValueError(f"z must be [B, 1, H, W] = {expected} for this image, got {list(z.shape)}")
        z = z.to(device=image.device, dtype=image.dtype)
        if not torch.isfinite(z).all():
            raise ValueError("z has non-finite values (NaN or inf)")
        signed = image * 2 - 1
        stage1, stage2 = self.generate(signed * (1 - mask), mask, z)
        predicted = (stage2 + 1) / 2
        inpainted = mask * predicted + (1 - mask) * image
        return PiiGANOutput(inpainted=inpainted, predicted=predicted, coarse=(stage1 + 1) / 2, z=z)


# ------------------------------------------------------------------------------------------------- extractor, critics


def _strided_stack(in_channels: int, widths: tuple[int, ...]) -> nn.ModuleList:
    """``dis_conv`` / ``e_conv``: 5x5 stride-2 TF-SAME convolutions, each followed by LeakyReLU(0.2)."""
    layers = nn.ModuleList()
    for width in widths:
        layers.append(nn.Conv2d(in_channels, width, 5, stride=2))
        in_channels = width
    return layers


def _run_strided(layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for conv in layers:
        x = F.leaky_relu(conv(pad_same(x, 5, 2)), 0.2)
    return x.flatten(1)


def _check_square(x: torch.Tensor, size: int, what: str) -> None:
    if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (size, size):
        raise ValueError(
            f"{what} must be [B, 3, {size}, {size}] (its dense head is built for that size), got {list(x.shape)}"
        )


class PiiGANStyleExtractor(nn.Module):
    """``build_extractor``: the style encoder. A ``style_size`` local patch -> (mu, logvar) of a same-sized style map.

    Four 5x5 stride-2 convolutions (64, 128, 256, 256 channels) with LeakyReLU, flattened, then two parallel dense
    heads of ``style_size ** 2`` outputs each, for the mean and the log-variance (36,230,528 parameters at 64 px).
    """

    def __init__(self, config: PiiGANConfig) -> None:
        super().__init__()
        self.config = config
        e, size = config.extractor_base_channels, config.style_size
        self.convs = _strided_stack(config.out_channels, (e, 2 * e, 4 * e, 4 * e))
        features = (size // 16) ** 2 * 4 * e
        self.mu = nn.Linear(features, size * size)
        self.logvar = nn.Linear(features, size * size)
        _init_tf(self)

    def forward(self, patch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode ``patch`` ``[B, 3, S, S]`` in [-1, 1] into ``(mu, logvar)``, each ``[B, 1, S, S]``."""
        size = self.config.style_size
        _check_square(patch, size, "the style extractor's patch")
        h = _run_strided(self.convs, patch)
        return self.mu(h).view(-1, 1, size, size), self.logvar(h).view(-1, 1, size, size)

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``mu + exp(logvar / 2) * eps``, the standard reparameterisation.

        The released code computes ``mu + (mu + exp(logvar / 2) * eps) * eps`` (``build_encode_z``: the same ``eps``
        twice and ``mu`` added twice), which does not sample N(mu, sigma^2); we treat it as a slip and use the
        standard form the paper's VAE-style formulation describes.
        """
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps


class PiiGANDiscriminator(nn.Module):
    """The two WGAN critics (``build_wgan_discriminator``): no spectral norm, RGB in [-1, 1] in, one score out each.

    * local: four 5x5 stride-2 convolutions (64, 128, 256, 512) on the ``style_size`` hole patch, dense -> 1
      (4,314,753 parameters at 64 px);
    * global: four 5x5 stride-2 convolutions (64, 128, 256, 256) on the ``global_size`` image, dense -> 1
      (2,684,289 parameters at 128 px).
    """

    def __init__(self, config: PiiGANConfig) -> None:
        super().__init__()
        self.config = config
        d = config.discriminator_base_channels
        self.local_convs = _strided_stack(config.out_channels, (d, 2 * d, 4 * d, 8 * d))
        self.local_fc = nn.Linear((config.style_size // 16) ** 2 * 8 * d, 1)
        self.global_convs = _strided_stack(config.out_channels, (d, 2 * d, 4 * d, 4 * d))
        self.global_fc = nn.Linear((config.global_size // 16) ** 2 * 4 * d, 1)
        _init_tf(self)

    def score_local(self, patch: torch.Tensor) -> torch.Tensor:
        """``[B, 1]`` critic scores of hole patches ``[B, 3, style_size, style_size]``."""
        _check_square(patch, self.config.style_size, "the local critic's patch")
        return self.local_fc(_run_strided(self.local_convs, patch))

    def score_global(self, image: torch.Tensor) -> torch.Tensor:
        """``[B, 1]`` critic scores of whole images ``[B, 3, global_size, global_size]``."""
        _check_square(image, self.config.global_size, "the global critic's image")
        return self.global_fc(_run_strided(self.global_convs, image))

    def forward(self, patch: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(local scores, global scores)``, each ``[B, 1]``."""
        return self.score_local(patch), self.score_global(image)


__all__ = [
    "PiiGANConv",
    "PiiGANDiscriminator",
    "PiiGANModel",
    "PiiGANOutput",
    "PiiGANStyleExtractor",
    "crop_patches",
    "hole_boxes",
    "paste_patches",
]
