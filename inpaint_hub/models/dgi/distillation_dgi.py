"""DGI's training-side networks: the teacher (the auxiliary network, AN), the meta-networks, the three distillation
losses. Nothing here runs at inference; :class:`~inpaint_hub.models.dgi.DGIModel` never needs these weights.

The losses, as ``../shared/DGI_SPEC.md`` section 4 reconstructs them (``M_l`` the hole max-pooled to level ``l``,
``|H_l|`` its pixel count, ``sg`` stop-gradient; student features ``x_l`` are taken after the completion blocks)::

    cross (CD)      sum_l  sum_c rho^l_c  / |H_l| * || M_l * (x_l,c - gamma_l(sg(x*_l))_c) ||^2
                    rho^l = softmax(FC(GAP(x*_l)))               teacher level l -> student level l, hole only
    self (SD)       sum_l<L sum_c phi^l_c / |H_l+1| * || M_l+1 * (f_l(x_l)_c - sg(x_l+1)_c) ||^2
                    phi^l = softmax(FC(GAP(sg(x_l+1))))          deeper student level -> shallower, hole only
    attention (AT)  1 / |H| sum_{i in H} t_i * sum_j | r_ij - sg(r*_ij) |
                    t = sigmoid(conv3x3([d, sg(d*), M]))          the student's affinity rows of hole pixels
                                                                  pulled towards the teacher's

Each is averaged over the batch (an image without a hole adds 0). What the paper attests: gamma is "a few
convolutions" transforming the teacher's feature; rho is a fully-connected meta-network with a softmax giving
non-negative channel weights; f_l a convolution giving x_l the shape of x_{l+1}; phi non-negative channel weights from
a meta-network; t one convolution and a sigmoid; the losses restricted to the hole. Our choices (the spec's proposals):
squared L2 normalised by the hole's area; gamma residual and starting as the identity (its last convolution is zero);
rho and phi a zero-initialised linear layer, so the weights start uniform (1 / C); f_l a 3x3 convolution with the
level's stride; the teacher's features detached (the teacher learns from its own reconstruction loss only); the row
distance L1 (rows are distributions).

How the parts train (``DGI_SPEC.md`` 4.4, 5.3): the student, gamma and f_l by the inpainting objective with the
distillation terms (:meth:`DGIDistiller.inner_parameters`); rho, phi and t by a separate *meta* step on the inpainting
loss alone (:meth:`DGIDistiller.meta_parameters`; the paper: "the network and rho are trained in separate steps";
t driven by the distillation loss itself would simply go to 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .configuration_dgi import DGIConfig
from .modeling_dgi import DGIAttention, DGINetwork, level_mask


class DGITeacher(nn.Module):
    """The auxiliary network (AN): the student's encoder-decoder without completion blocks, reading the whole image
    (no hole) and trained to reconstruct it. It evolves with the student during training (the paper's teacher is not
    fixed) and is discarded afterwards."""

    def __init__(self, config: DGIConfig) -> None:
        super().__init__()
        self.config = config
        self.network = DGINetwork(config, in_channels=3, completion=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor]:
        """``image`` ``[B, 3, H, W]`` RGB in [0, 1] -> ``(reconstruction in [0, 1], features per level, d)``."""
        out, features, d = self.network(image * 2 - 1)
        return (out + 1) / 2, features, d


# ------------------------------------------------------------------------------------------------- meta-networks


class DGIFeatureAdapter(nn.Module):
    """``gamma_l``: ``z + conv3x3(ReLU(conv3x3(z)))``, last convolution zero-initialised (an identity at first)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.body(z)


class DGIChannelWeights(nn.Module):
    """``rho_l`` / ``phi_l``: ``softmax(Linear(GAP(feature)))`` over the channels -- non-negative, summing to 1, per
    image ``[B, C]``. The linear layer starts at zero, so every channel starts with weight ``1 / C``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, channels)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(feature.mean(dim=(2, 3))), dim=1)


class DGIPixelWeights(nn.Module):
    """``t``: ``sigmoid(conv3x3([d, sg(d*), M]))``, one weight in (0, 1) per pixel of the attention's map."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * channels + 1, 1, 3, padding=1)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(torch.cat([student, teacher.detach(), mask.to(student.dtype)], dim=1)))


# ------------------------------------------------------------------------------------------------- losses


def masked_channel_mse(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """``mean_b sum_c w_bc / |H_b| * || M_b * (prediction_bc - target_bc) ||^2``: a channel-weighted squared error over
    the hole ``mask`` ``[B, 1, h, w]`` only; an image without a hole adds 0.

    Args:
        prediction, target: ``[B, C, h, w]``.
        mask: ``[B, 1, h, w]``, 1 = hole.
        weights: ``[B, C]`` non-negative channel weights.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
    errors = ((prediction - target).square() * mask).sum(dim=(2, 3))  # [B, C]
    area = mask.sum(dim=(2, 3)).clamp_min(1.0)  # [B, 1]
    return (weights * errors / area).sum(dim=1).mean()


def attention_transfer_loss(
    student_attention: DGIAttention,
    student_input: torch.Tensor,
    teacher_attention: DGIAttention,
    teacher_input: torch.Tensor,
    mask: torch.Tensor,
    pixel_weights: torch.Tensor,
) -> torch.Tensor:
    """``mean_b 1 / |H_b| sum_{i in H_b} t_i * sum_j |r_ij - sg(r*_ij)|``: the student's affinity rows of the hole's
    pixels against the teacher's, row by row (each is a distribution over all ``N`` pixels).

    Args:
        student_attention, teacher_attention: the two networks' :class:`DGIAttention`.
        student_input, teacher_input: their inputs ``d``, ``[B, C, h, w]``.
        mask: ``[B, 1, h, w]`` the hole at the attention's resolution.
        pixel_weights: ``[B, 1, h, w]`` the meta-weights ``t``.
    """
    batch = student_input.shape[0]
    total = student_input.new_zeros(())
    for b in range(batch):
        rows = mask[b].flatten().nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        student = student_attention.affinity_rows(student_input[b : b + 1], rows)[0]  # [n, N]
        with torch.no_grad():
            teacher = teacher_attention.affinity_rows(teacher_input[b : b + 1], rows)[0]
        distance = (student - teacher).abs().sum(dim=1)  # [n]
        total = total + (pixel_weights[b].flatten()[rows] * distance).mean()
    return total / batch


@dataclass
class DGIDistillationLosses:
    """The three distillation terms (unweighted) and their per-level parts, for logging."""

    cross: torch.Tensor
    self: torch.Tensor
    attention: torch.Tensor
    cross_levels: tuple[torch.Tensor, ...]
    self_levels: tuple[torch.Tensor, ...]


class DGIDistiller(nn.Module):
    """The adapters and meta-networks of DGI's three distillations, and the losses they compute.

    * ``cross_adapters`` (``gamma_l``) and ``self_adapters`` (``f_l``): trained with the student;
    * ``cross_weights`` (``rho_l``), ``self_weights`` (``phi_l``), ``attention_weights`` (``t``): the meta-networks,
      trained by the meta step (:meth:`meta_parameters`).
    """

    def __init__(self, config: DGIConfig) -> None:
        super().__init__()
        widths, strides = config.level_channels, config.level_strides
        self.strides = strides
        self.cross_adapters = nn.ModuleList(DGIFeatureAdapter(w) for w in widths)
        self.cross_weights = nn.ModuleList(DGIChannelWeights(w) for w in widths)
        self.self_adapters = nn.ModuleList(
            nn.Conv2d(widths[k], widths[k + 1], 3, stride=strides[k + 1] // strides[k], padding=1)
            for k in range(len(widths) - 1)
        )
        self.self_weights = nn.ModuleList(DGIChannelWeights(w) for w in widths[1:])
        self.attention_weights = DGIPixelWeights(widths[-1])

    def inner_parameters(self) -> list[nn.Parameter]:
        """gamma and f: trained by the student's objective."""
        return [*self.cross_adapters.parameters(), *self.self_adapters.parameters()]

    def meta_modules(self) -> tuple[nn.Module, ...]:
        """rho, phi and t, the meta-networks."""
        return self.cross_weights, self.self_weights, self.attention_weights

    def meta_parameters(self) -> list[nn.Parameter]:
        """rho, phi and t's parameters: trained by the meta step."""
        return [p for module in self.meta_modules() for p in module.parameters()]

    def cross_distillation(
        self, student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...], mask: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """Per level: ``rho``-weighted squared error, in the hole, between the student's ``x_l`` and
        ``gamma_l(sg(x*_l))``."""
        losses = []
        for k, (x, x_star) in enumerate(zip(student, teacher, strict=True)):
            x_star = x_star.detach()
            target = self.cross_adapters[k](x_star)
            losses.append(
                masked_channel_mse(x, target, level_mask(mask, self.strides[k]), self.cross_weights[k](x_star))
            )
        return tuple(losses)

    def self_distillation(self, student: tuple[torch.Tensor, ...], mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per level ``l < L``: ``phi``-weighted squared error, in level ``l+1``'s hole, between ``f_l(x_l)`` and
        ``sg(x_{l+1})``."""
        losses = []
        for k in range(len(student) - 1):
            deeper = student[k + 1].detach()
            prediction = self.self_adapters[k](student[k])
            weights = self.self_weights[k](deeper)
            losses.append(masked_channel_mse(prediction, deeper, level_mask(mask, self.strides[k + 1]), weights))
        return tuple(losses)

    def forward(
        self,
        student_features: tuple[torch.Tensor, ...],
        teacher_features: tuple[torch.Tensor, ...],
        student_attention: DGIAttention,
        teacher_attention: DGIAttention,
        mask: torch.Tensor,
        *,
        cross: bool = True,
        self_distill: bool = True,
        attention: bool = True,
    ) -> DGIDistillationLosses:
        """All three distillation losses (a switched-off one is 0). ``student_features`` / ``teacher_features`` are
        the per-level encoder features (``DGIOutput.features`` and the teacher's), their last entries the attention
        inputs ``d``; ``mask`` ``[B, 1, H, W]`` the hole at full resolution."""
        zero = mask.new_zeros(())
        cross_levels = self.cross_distillation(student_features, teacher_features, mask) if cross else ()
        self_levels = self.self_distillation(student_features, mask) if self_distill else ()
        attention_loss = zero
        if attention:
            d, d_star = student_features[-1], teacher_features[-1].detach()
            hole = level_mask(mask, self.strides[-1])
            t = self.attention_weights(d, d_star, hole)
            attention_loss = attention_transfer_loss(student_attention, d, teacher_attention, d_star, hole, t)
        return DGIDistillationLosses(
            cross=sum(cross_levels, zero),
            self=sum(self_levels, zero),
            attention=attention_loss,
            cross_levels=cross_levels,
            self_levels=self_levels,
        )


__all__ = [
    "DGIChannelWeights",
    "DGIDistillationLosses",
    "DGIDistiller",
    "DGIFeatureAdapter",
    "DGIPixelWeights",
    "DGITeacher",
    "attention_transfer_loss",
    "masked_channel_mse",
]
