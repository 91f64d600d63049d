"""Generic training losses of the five inpainting papers: reconstruction, adversarial, regularisers, perceptual.

Every function is stateless and reduces to a scalar tensor; each docstring cites the original code it reproduces
(facts collected in ``shared/MODELS.md``). Which paper uses what:

* **LaMa** (``advimman/lama : saicinpainting/training/losses/{feature_matching,adversarial,perceptual}.py``):
  :func:`masked_l1_loss` (weight 0 in the hole, 10 on known pixels), :func:`non_saturating_generator_loss` /
  :func:`non_saturating_discriminator_loss` with ``mask_as_fake_target`` and :func:`r1_penalty` (``gp_coef``
  0.001), :func:`feature_matching_loss` (weight 100) and the high-receptive-field perceptual loss
  :class:`PerceptualLoss` (``kind="resnet50-hrf"``, weight 30).
* **PEN-Net** (``researchmm/PEN-Net-for-Inpainting@pytorch : core/trainer.py, core/loss.py``): hole / valid L1
  normalised by the mask mean (:func:`region_l1_loss`), :func:`pyramid_l1_loss` (weight 0.5) and the hinge GAN
  (:func:`hinge_discriminator_loss`, :func:`hinge_generator_loss`, weight 0.1).
* **DeepFill v2** (``JiahuiYu/generative_inpainting@v2.0.0 : inpaint_model.py`` with
  ``neuralgym : ops/gan_ops.py:gan_hinge_loss``): plain L1 and the same hinge GAN.
* **PiiGAN** (``vivitsai/PiiGAN : model.py`` with neuralgym's ``gan_wgan_loss`` / ``gradients_penalty``):
  known-pixel L1 normalised by the mask mean (:func:`region_l1_loss`), :func:`wgan_discriminator_loss` /
  :func:`wgan_generator_loss` and the masked :func:`gradient_penalty` (lambda 10).

Tensors are ``[B, C, H, W]``; masks are ``[B, 1, H, W]`` (or ``[1, 1, H, W]``, shared by the batch) with
1 = hole, broadcast over channels. Value ranges do not matter except for :class:`PerceptualLoss` (RGB in [0, 1]).

The perceptual backbones are not shipped and never downloaded: :meth:`PerceptualLoss.from_file` loads a weights
file the user supplies (read with ``torch.load(weights_only=True)``: no pickled code runs). Without one the term is
disabled (0) with a single warning.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .metrics import MissingWeightsError, _load_state_dict_file
from .modeling_utils import WeightsMismatchError, state_dict_mismatches


logger = logging.getLogger(__name__)

__all__ = [
    "PerceptualLoss",
    "feature_matching_loss",
    "gradient_penalty",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "masked_l1_loss",
    "non_saturating_discriminator_loss",
    "non_saturating_generator_loss",
    "pyramid_l1_loss",
    "r1_penalty",
    "region_l1_loss",
    "wgan_discriminator_loss",
    "wgan_generator_loss",
]


# ------------------------------------------------------------------------------------------------- input checks


def _check_tensor(value: object, name: str, ndim: int | None = None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {value.dtype}")
    return value


def _check_pair(prediction: object, target: object, names: tuple[str, str] = ("prediction", "target")) -> None:
    _check_tensor(prediction, names[0], ndim=4)
    _check_tensor(target, names[1], ndim=4)
    if prediction.shape != target.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {tuple(prediction.shape)} and "
            f"{tuple(target.shape)}"
        )


def _check_mask(mask: object, like: torch.Tensor, name: str = "mask", *, same_size: bool = True) -> torch.Tensor:
    """Validate a ``[B or 1, 1 or C, H, W]`` mask against a ``[B, C, h, w]`` tensor; return it in ``like``'s dtype."""
    if not isinstance(mask, torch.Tensor) or mask.ndim != 4:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{name} must be a [B, 1, H, W] tensor (1 = hole), got {shape}")
    if like.ndim != 4:
        raise ValueError(f"a {name} needs [B, C, H, W] tensors to apply to, got shape {tuple(like.shape)}")
    if mask.shape[0] not in (1, like.shape[0]) or mask.shape[1] not in (1, like.shape[1]):
        raise ValueError(
            f"{name} of shape {tuple(mask.shape)} does not broadcast to {tuple(like.shape)}: expected "
            f"[{like.shape[0]} or 1, 1, H, W]"
        )
    if same_size and mask.shape[-2:] != like.shape[-2:]:
        raise ValueError(
            f"{name} must have the spatial size of the images, {tuple(like.shape[-2:])}, got {tuple(mask.shape[-2:])}"
        )
    return mask.to(like.dtype)


def _resize_mask(mask: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    if mode == "nearest":
        return F.interpolate(mask, size=tuple(size), mode="nearest")
    return F.interpolate(mask, size=tuple(size), mode=mode, align_corners=False)


def _check_sequence(values: object, name: str) -> list[torch.Tensor]:
    if isinstance(values, torch.Tensor) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a list or tuple of tensors, got {type(values).__name__}")
    if len(values) == 0:
        raise ValueError(f"{name} is empty")
    return [_check_tensor(value, f"{name}[{index}]") for index, value in enumerate(values)]


# ------------------------------------------------------------------------------------------------- reconstruction


def masked_l1_loss(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *, weight_hole: float, weight_known: float
) -> torch.Tensor:
    """L1 with one weight for hole pixels and another for known pixels (LaMa).

    ``mean(|prediction - target| * (mask * weight_hole + (1 - mask) * weight_known))`` over all elements, as LaMa's
    ``masked_l1_loss`` (``advimman/lama : saicinpainting/training/losses/feature_matching.py``, where the weights are
    called ``weight_missing`` / ``weight_known``). LaMa's big-lama / lama-fourier configs use ``weight_hole=0``,
    ``weight_known=10``: the L1 acts on known pixels only.

    Args:
        prediction: ``[B, C, H, W]`` generator output.
        target: ``[B, C, H, W]`` ground truth.
        mask: ``[B, 1, H, W]`` (or ``[1, 1, H, W]``) hole mask, 1 = hole, broadcast over channels; soft values
            interpolate between the two weights.
        weight_hole: weight of hole pixels.
        weight_known: weight of known pixels.

    Returns:
        Scalar loss.
    """
    _check_pair(prediction, target)
    mask = _check_mask(mask, prediction)
    pixel_weights = mask * weight_hole + (1 - mask) * weight_known
    return ((prediction - target).abs() * pixel_weights).mean()


def region_l1_loss(prediction: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """L1 inside a region, normalised by the region's mean (PEN-Net hole / valid losses, PiiGAN ``ae_loss``).

    ``mean(|prediction - target| * region) / mean(region)``: the mean over all elements of the weighted error
    divided by the mean of the ``[B, 1, H, W]`` region, i.e. the mean absolute error per region pixel and channel.
    PEN-Net (``core/trainer.py``) computes ``L1(pred*m, img*m) / mean(m)`` (hole, weight 6) and
    ``L1(pred*(1-m), img*(1-m)) / mean(1-m)`` (valid, weight 1), which is this with ``region = m`` and ``1 - m``
    for a binary mask; PiiGAN's ``ae_loss`` (``model.py``) is ``mean(|x - x1| * (1-m)) / mean(1-m)``.

    Args:
        prediction: ``[B, C, H, W]``.
        target: ``[B, C, H, W]``.
        region: ``[B, 1, H, W]`` (or ``[1, 1, H, W]``) weights in [0, 1], e.g. ``mask`` or ``1 - mask``.

    Returns:
        Scalar loss; 0 for an empty region (where the originals would divide 0 by 0).
    """
    _check_pair(prediction, target)
    region = _check_mask(region, prediction, "region")
    numerator = ((prediction - target).abs() * region).mean()
    return numerator / region.mean().clamp_min(torch.finfo(region.dtype).tiny)


def region_mse_loss(prediction: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Squared error inside a region, normalised as :func:`region_l1_loss` (the mean per region pixel and channel).

    Not in the papers' recipes: an option of our small CPU recipes, where hole-PSNR (a squared-error metric) is the
    target and an L1 model's median-like fills lose to a mean-like one. 0 for an empty region.
    """
    _check_pair(prediction, target)
    region = _check_mask(region, prediction, "region")
    numerator = ((prediction - target).square() * region).mean()
    return numerator / region.mean().clamp_min(torch.finfo(region.dtype).tiny)


def pyramid_l1_loss(
    predictions: Sequence[torch.Tensor],
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    weight_hole: float = 1.0,
    weight_known: float = 1.0,
) -> torch.Tensor:
    """PEN-Net's pyramid L1: every pyramid output against the target resized to its size, **summed** over levels.

    PEN-Net (``researchmm/PEN-Net-for-Inpainting@pytorch : core/trainer.py``) computes
    ``sum_k L1(img_k, F.interpolate(img, size=img_k.shape[2:], mode='bilinear', align_corners=True))`` with a plain
    mean L1 (no mask) and weight 0.5 (``pyramid_weight``). The target is resized the same way here (no
    anti-aliasing, as the original). With ``mask=None`` this is the original loss (times ``weight_known``, which must
    then equal ``weight_hole``).

    A ``mask`` is an extension of the original: each level uses :func:`masked_l1_loss` with the full-resolution
    mask resized to the level by **nearest** neighbour (it stays binary; PEN-Net itself resizes masks with bilinear
    ``align_corners=True`` inside its attention layers, but never masks this loss).

    Args:
        predictions: ``[B, C, h_k, w_k]`` outputs, any sizes and order (PEN-Net: ``img1..img5`` at H/2 .. H/32;
            the full-resolution output may be included).
        target: ``[B, C, H, W]`` full-resolution ground truth.
        mask: optional ``[B, 1, H, W]`` hole mask at the target's resolution.
        weight_hole: hole-pixel weight (with a mask).
        weight_known: known-pixel weight (with a mask); without a mask, the weight of every pixel.

    Returns:
        Scalar loss, the sum over levels.
    """
    predictions = _check_sequence(predictions, "predictions")
    _check_tensor(target, "target", ndim=4)
    if mask is None:
        if weight_hole != weight_known:
            raise ValueError(
                f"weight_hole ({weight_hole}) and weight_known ({weight_known}) differ but no mask was given"
            )
    else:
        mask = _check_mask(mask, target)
    total = target.new_zeros(())
    for index, prediction in enumerate(predictions):
        if prediction.ndim != 4 or prediction.shape[:2] != target.shape[:2]:
            raise ValueError(
                f"predictions[{index}] must be [B, C, h, w] with B, C = {tuple(target.shape[:2])} like the target, "
                f"got {tuple(prediction.shape)}"
            )
        size = prediction.shape[-2:]
        level_target = target
        if size != target.shape[-2:]:
            level_target = F.interpolate(target, size=size, mode="bilinear", align_corners=True)
        if mask is None:
            total = total + weight_known * (prediction - level_target).abs().mean()
        else:
            level_mask = _resize_mask(mask, size, "nearest")
            total = total + masked_l1_loss(
                prediction, level_target, level_mask, weight_hole=weight_hole, weight_known=weight_known
            )
    return total


def feature_matching_loss(
    fake_features: Sequence[torch.Tensor], real_features: Sequence[torch.Tensor], mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Discriminator feature matching (LaMa): mean over layers of the MSE between fake and real features.

    As LaMa's ``feature_matching_loss`` (``advimman/lama : saicinpainting/training/losses/feature_matching.py``):
    without a mask, ``mean_l MSE(fake_l, real_l)``; with a mask, ``mean_l mean((fake_l - real_l)^2 * (1 - m_l))``
    where ``m_l`` is the mask resized to layer ``l`` **bilinearly** (``align_corners=False``), so only known
    regions are matched, and the mean is still over all elements (not normalised by the known area). LaMa's
    configs do not pass the mask (``pass_mask`` unset). The real features are detached here (LaMa does not detach
    them, but the generator step never updates the discriminator, so the generator's gradients are the same).

    Args:
        fake_features: ``[B, C_l, h_l, w_l]`` discriminator activations of the generated image, one per layer.
        real_features: the same layers for the real image.
        mask: optional ``[B, 1, H, W]`` hole mask (1 = hole) at image resolution.

    Returns:
        Scalar loss.
    """
    fake_features = _check_sequence(fake_features, "fake_features")
    real_features = _check_sequence(real_features, "real_features")
    if len(fake_features) != len(real_features):
        raise ValueError(
            f"fake_features and real_features must have as many layers, got {len(fake_features)} and "
            f"{len(real_features)}"
        )
    terms = []
    for index, (fake, real) in enumerate(zip(fake_features, real_features)):
        if fake.shape != real.shape:
            raise ValueError(
                f"layer {index}: fake and real features differ in shape, {tuple(fake.shape)} and {tuple(real.shape)}"
            )
        real = real.detach()
        if mask is None:
            terms.append(F.mse_loss(fake, real))
        else:
            layer_mask = _check_mask(mask, fake, same_size=False)
            layer_mask = F.interpolate(layer_mask, size=fake.shape[-2:], mode="bilinear", align_corners=False)
            terms.append(((fake - real).pow(2) * (1 - layer_mask)).mean())
    return torch.stack(terms).mean()


# ------------------------------------------------------------------------------------------------- adversarial


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty (Mescheder et al. 2018) as LaMa's ``make_r1_gp``.

    ``mean_b || d(real_logits.sum()) / d real_images[b] ||^2``
    (``advimman/lama : saicinpainting/training/losses/adversarial.py``). The gradient is taken with
    ``create_graph=True`` so the penalty trains the discriminator. ``real_images`` must require grad *before* the
    discriminator runs on them (LaMa's ``pre_discriminator_step`` sets ``real_batch.requires_grad = True``). Like
    LaMa, the penalty is 0 when autograd is disabled (``torch.no_grad()``, e.g. validation).

    Args:
        real_logits: discriminator output on ``real_images``, any shape (summed).
        real_images: ``[B, ...]`` real batch with ``requires_grad=True``.

    Returns:
        Scalar penalty (not yet multiplied by its weight).

    Raises:
        ValueError: ``real_images`` does not require grad, or ``real_logits`` does not depend on it.
    """
    _check_tensor(real_logits, "real_logits")
    _check_tensor(real_images, "real_images")
    if not torch.is_grad_enabled():
        return real_logits.new_zeros(())
    if not real_images.requires_grad:
        raise ValueError(
            "r1_penalty needs the gradient of the discriminator w.r.t. the real images: call "
            "real_images.requires_grad_(True) before running the discriminator on them"
        )
    if not real_logits.requires_grad:
        raise ValueError("real_logits does not depend on real_images (no autograd graph); run D on real_images")
    (gradient,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True, allow_unused=True)
    if gradient is None:
        raise ValueError("real_logits does not depend on real_images; pass the tensor the discriminator was run on")
    return gradient.flatten(1).pow(2).sum(dim=1).mean()


def non_saturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``mean(softplus(-D(fake)))`` over all logits.

    LaMa's ``NonSaturatingWithR1.generator_loss`` with ``extra_mask_weight_for_gen=0`` (the big-lama / lama-fourier
    setting), before its weight (10).

    Args:
        fake_logits: discriminator logits of the generated images, any shape (LaMa: ``[B, 1, h, w]`` patch map).

    Returns:
        Scalar loss.
    """
    return F.softplus(-_check_tensor(fake_logits, "fake_logits")).mean()


def non_saturating_discriminator_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    real_images: torch.Tensor | None = None,
    r1_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Non-saturating discriminator loss with R1 and LaMa's ``mask_as_fake_target``.

    LaMa's ``NonSaturatingWithR1.discriminator_loss`` (``advimman/lama : saicinpainting/training/losses/
    adversarial.py``; big-lama: ``gp_coef=0.001``, ``mask_as_fake_target=True``, ``allow_scale_mask=True``,
    ``mask_scale_mode='nearest'``)::

        softplus(-D(real)) + r1_weight * R1 + [softplus(D(fake)) * m + (1 - m) * softplus(-D(fake))]

    averaged, where ``m`` is the mask nearest-resized to the logit map: **unmasked regions of the fake image are
    labelled real**, only the hole is fake. Without a mask every fake logit is labelled fake (plain non-saturating
    loss). Each term is averaged over its own logits, which equals LaMa's mean of the sum when both maps have one
    shape.

    Args:
        real_logits: ``[B, 1, h, w]`` (or any shape) logits of the real images.
        fake_logits: logits of the generated images; ``[B, C, h, w]`` when a mask is given.
        mask: optional ``[B, 1, H, W]`` hole mask at image resolution (1 = hole).
        real_images: the real batch ``real_logits`` was computed from, with ``requires_grad=True``; needed when
            ``r1_weight > 0``.
        r1_weight: weight of :func:`r1_penalty` (LaMa: 0.001).

    Returns:
        ``(loss, parts)``: the scalar loss and, for logging (detached), ``parts["real"]`` = mean
        ``softplus(-D(real))``, ``parts["fake"]`` = mean fake term, ``parts["r1"]`` = the unweighted R1 (0 when
        ``r1_weight == 0``), ``parts["real_logits"]`` / ``parts["fake_logits"]`` = mean logits (LaMa logs
        ``discr_real_out``, ``discr_fake_out`` and ``discr_real_gp`` = the weighted R1).
    """
    _check_tensor(real_logits, "real_logits")
    _check_tensor(fake_logits, "fake_logits")
    if r1_weight < 0 or not math.isfinite(r1_weight):
        raise ValueError(f"r1_weight must be a finite number >= 0, got {r1_weight}")
    real_loss = F.softplus(-real_logits).mean()
    if mask is None:
        fake_loss = F.softplus(fake_logits).mean()
    else:
        if fake_logits.ndim != 4:
            raise ValueError(
                "mask_as_fake_target needs a [B, C, h, w] logit map, got fake_logits of shape "
                f"{tuple(fake_logits.shape)}"
            )
        logit_mask = _resize_mask(_check_mask(mask, fake_logits, same_size=False), fake_logits.shape[-2:], "nearest")
        fake_loss = (F.softplus(fake_logits) * logit_mask + (1 - logit_mask) * F.softplus(-fake_logits)).mean()
    if r1_weight > 0:
        if real_images is None:
            raise ValueError("r1_weight > 0 needs real_images (with requires_grad=True) to compute the R1 penalty")
        r1 = r1_penalty(real_logits, real_images)
    else:
        r1 = real_logits.new_zeros(())
    loss = real_loss + fake_loss + r1_weight * r1
    parts = {
        "real": real_loss.detach(),
        "fake": fake_loss.detach(),
        "r1": r1.detach(),
        "real_logits": real_logits.detach().mean(),
        "fake_logits": fake_logits.detach().mean(),
    }
    return loss, parts


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss ``0.5 * mean(relu(1 - D(real))) + 0.5 * mean(relu(1 + D(fake)))``.

    neuralgym's ``gan_hinge_loss`` used by DeepFill v2 (``neuralgym : ops/gan_ops.py``, ``d_loss = .5 * hinge_pos +
    .5 * hinge_neg``). PEN-Net's is the same value: ``AdversarialLoss(type='hinge')`` gives ``mean(relu(1 - real))``
    and ``mean(relu(1 + fake))`` and the trainer averages the two, ``(dis_real_loss + dis_fake_loss) / 2``
    (``core/loss.py``, ``core/trainer.py``). So no scale option is needed.

    Args:
        real_logits: discriminator output on real images, any shape.
        fake_logits: discriminator output on generated images, any shape.

    Returns:
        Scalar loss.
    """
    _check_tensor(real_logits, "real_logits")
    _check_tensor(fake_logits, "fake_logits")
    return 0.5 * F.relu(1 - real_logits).mean() + 0.5 * F.relu(1 + fake_logits).mean()


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss ``-mean(D(fake))`` (neuralgym ``gan_hinge_loss``; PEN-Net ``patchgan(.., is_disc=False)``).

    Args:
        fake_logits: discriminator output on generated images, any shape.

    Returns:
        Scalar loss.
    """
    return -_check_tensor(fake_logits, "fake_logits").mean()


def wgan_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss ``mean(D(fake)) - mean(D(real))`` (neuralgym ``gan_wgan_loss``: ``mean(neg - pos)``).

    Args:
        real_scores: critic output on real images, any shape.
        fake_scores: critic output on generated images, any shape.

    Returns:
        Scalar loss (add :func:`gradient_penalty` times its weight for WGAN-GP).
    """
    _check_tensor(real_scores, "real_scores")
    _check_tensor(fake_scores, "fake_scores")
    return fake_scores.mean() - real_scores.mean()


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss ``-mean(D(fake))`` (neuralgym ``gan_wgan_loss``).

    Args:
        fake_scores: critic output on generated images, any shape.

    Returns:
        Scalar loss.
    """
    return -_check_tensor(fake_scores, "fake_scores").mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP gradient penalty (Gulrajani et al. 2017), optionally masked as neuralgym's ``gradients_penalty``.

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U[0, 1)`` per sample (drawn as
    ``torch.rand((B, 1, ..., 1), generator=generator)`` on ``real``'s device and dtype), then
    ``mean_b (||grad_b||_2 - 1)^2`` with ``grad = d critic(x_hat).sum() / d x_hat``, taken with
    ``create_graph=True`` so the penalty trains the critic. ``real`` and ``fake`` are detached.

    With a mask, the norm is neuralgym's (``neuralgym : ops/gan_ops.py``, used by PiiGAN ``model.py`` with the hole
    mask for the global critic and the hole patch's mask for the local one): ``sqrt(sum(grad^2 * mask))`` over
    ``C, H, W``, i.e. only the gradients inside the hole count. (neuralgym writes its interpolate as
    ``real + alpha * (fake - real)``, the same distribution.) For a binary mask this is the norm of
    ``grad * mask``. It is computed as the norm of ``grad * sqrt(mask)``: the same value for any mask >= 0 and,
    unlike neuralgym's ``sqrt`` of a sum, a finite gradient when the masked gradient is zero (empty hole).

    Args:
        critic: maps ``[B, C, H, W]`` images to scores (any shape; summed).
        real: ``[B, C, H, W]`` real images.
        fake: ``[B, C, H, W]`` generated images.
        mask: optional mask broadcastable to the images (``[B or 1, 1 or C, H, W]``), values in [0, 1].
        generator: optional ``torch.Generator`` (on ``real``'s device) for ``eps``.

    Returns:
        Scalar penalty (not yet multiplied by its weight; WGAN-GP and PiiGAN use 10).
    """
    _check_tensor(real, "real")
    _check_tensor(fake, "fake")
    if real.shape != fake.shape or real.ndim < 2:
        raise ValueError(
            f"real and fake must be batches of one shape, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    if mask is not None:
        mask = _check_mask(mask, real).detach()
    real, fake = real.detach(), fake.detach()
    eps_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    eps = torch.rand(eps_shape, generator=generator, device=real.device, dtype=real.dtype)
    with torch.enable_grad():
        interpolates = (eps * real + (1 - eps) * fake).requires_grad_(True)
        scores = critic(interpolates)
        if not isinstance(scores, torch.Tensor) or not scores.requires_grad:
            raise ValueError("the critic's output does not depend on its input (no autograd graph)")
        (gradient,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True, allow_unused=True)
    if gradient is None:
        raise ValueError("the critic's output does not depend on its input")
    if mask is not None:
        gradient = gradient * mask.clamp_min(0).sqrt()
    slopes = gradient.flatten(1).norm(2, dim=1)
    return (slopes - 1).pow(2).mean()


# ------------------------------------------------------------------------------------------------- perceptual

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

_RESNET_HRF_FILE_HELP = (
    "encoder_epoch_20.pth: the encoder of the ADE20k scene-parsing model 'resnet50dilated-ppm_deepsup' "
    "(CSAILVision/semantic-segmentation-pytorch, BSD-3-Clause) that LaMa's high-receptive-field perceptual loss "
    "uses; get it from http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet50dilated-ppm_deepsup/"
    "encoder_epoch_20.pth (LaMa keeps it as ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth)"
)
_VGG19_FILE_HELP = (
    "vgg19-dcbb9e9d.pth: torchvision's ImageNet VGG19 weights (IMAGENET1K_V1, BSD-3-Clause); get it from "
    "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth (or from torchvision's cache on a machine where it was "
    "downloaded, ~/.cache/torch/hub/checkpoints/)"
)
_FILE_HELP = {"resnet50-hrf": _RESNET_HRF_FILE_HELP, "vgg19": _VGG19_FILE_HELP}

_WARNED_DISABLED_KINDS: set[str] = set()
"""Kinds whose "perceptual loss disabled" warning was already logged in this process."""


class _ResNetBottleneck(nn.Module):
    """ResNet-50 bottleneck of CSAILVision's ``models/resnet.py`` (stride on the 3x3 conv), with a dilation."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1, downsample: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if downsample:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def _resnet_layer(inplanes: int, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
    """One ResNet stage after ``ResnetDilated._nostride_dilate``: a stage dilated by ``d`` loses its stride, its
    first 3x3 conv gets dilation ``d // 2`` and the others ``d`` (``dilation=1``: the plain stage)."""
    layers = [_ResNetBottleneck(inplanes, planes, stride, max(dilation // 2, 1), downsample=True)]
    layers += [_ResNetBottleneck(planes * 4, planes, 1, dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class _ResNet50DilatedEncoder(nn.Module):
    """The ADE20k ``resnet50dilated`` encoder (output stride 8) of CSAILVision semantic-segmentation-pytorch.

    ``ResnetDilated(resnet50(), dilate_scale=8)`` (``CSAILVision/semantic-segmentation-pytorch : mit_semseg/models/
    models.py``, copied in ``advimman/lama : models/ade20k/base.py``): the "deep stem" ResNet-50 of
    ``models/resnet.py`` (conv1 3->64 stride 2, conv2 64->64, conv3 64->128, each 3x3 + BN + ReLU, max-pool 3/2),
    bottleneck stages of 3, 4, 6, 3 blocks with layer3 dilated 2 and layer4 dilated 4 (their strides removed), no
    avg-pool / fc. State-dict keys are those of ``encoder_epoch_20.pth`` (``conv1.weight``, ``bn1.*``, ...,
    ``layer4.2.bn3.*``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.relu3 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _resnet_layer(128, 64, 3, stride=1, dilation=1)
        self.layer2 = _resnet_layer(256, 128, 4, stride=2, dilation=1)
        self.layer3 = _resnet_layer(512, 256, 6, stride=1, dilation=2)
        self.layer4 = _resnet_layer(1024, 512, 3, stride=1, dilation=4)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[B, 3, H, W]`` ImageNet-normalised -> layer1..layer4 outputs (256, 512, 1024, 2048 channels; strides
        4, 8, 8, 8)."""
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        x = self.maxpool(x)
        features = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        return features


_VGG19_CONFIG = (64, 64, "P", 128, 128, "P", 256, 256, 256, 256, "P", 512, 512, 512, 512, "P", 512)
"""torchvision ``vgg19().features`` up to conv5_1 (indices 0..29); "P" = pooling."""
_VGG19_UNUSED_KEYS = frozenset(f"features.{index}.{name}" for index in (30, 32, 34) for name in ("weight", "bias"))


class _VGG19Encoder(nn.Module):
    """torchvision VGG19 ``features[:30]`` (conv1_1 .. relu5_1) with LaMa's average pooling.

    Indices match torchvision (``features.0.weight`` ... ``features.28.bias``), so ``vgg19-dcbb9e9d.pth`` loads. As
    LaMa's ``PerceptualLoss`` (``saicinpainting/training/losses/perceptual.py``) the max-pools are replaced by
    ``AvgPool2d(2, 2)`` and every ReLU output (relu1_1, relu1_2, relu2_1, ..., relu4_4, relu5_1: 13 layers) is used.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG19_CONFIG:
            if item == "P":
                layers.append(nn.AvgPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU()]
                channels = item
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[B, 3, H, W]`` ImageNet-normalised -> the 13 ReLU outputs."""
        features = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                features.append(x)
        return features


def _format_keys(keys: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown if len(keys) <= limit else f"{shown}, ... ({len(keys) - limit} more)"


class PerceptualLoss(nn.Module):
    """Perceptual loss on a frozen backbone: LaMa's high-receptive-field ResNetPL or a VGG19 loss.

    * ``kind="resnet50-hrf"`` (default): LaMa's ``ResNetPL`` (``advimman/lama : saicinpainting/training/losses/
      perceptual.py``; Suvorov et al. 2022, Sec. 3.2). Both images are ImageNet-normalised and passed through the
      ADE20k ``resnet50dilated`` segmentation encoder (deep stem, layer3/layer4 dilated 2/4, output stride 8); the
      loss is ``weight * sum_{l=1..4} MSE(f_l(prediction), f_l(target))`` over the outputs of layer1..layer4.
      LaMa uses weight 30. Weights: ``encoder_epoch_20.pth`` (see :meth:`from_file`).
    * ``kind="vgg19"``: LaMa's VGG ``PerceptualLoss`` (same file): torchvision VGG19 ``features`` up to relu5_1 with
      max-pools replaced by 2x2 average pools, ImageNet-normalised inputs, ``weight * sum_l MSE`` over the 13 ReLU
      outputs. LaMa averages each layer per sample and then **sums over the batch** (``.sum() * weight``) and
      weighs it 0 (off) in big-lama / lama-fourier; here the batch is averaged, so the value does not depend on
      the batch size (multiply ``weight`` by the batch size for LaMa's scale). LaMa's optional mask (known region
      only) is not offered. Weights: torchvision's ``vgg19-dcbb9e9d.pth``.

    The backbone is frozen (``requires_grad=False``) and stays in eval mode even under ``.train()`` (BN uses the
    stored statistics; LaMa sets ``eval()`` once, which a later ``.train()`` of the training module undoes).
    Gradients flow to both inputs. The target's features are computed without autograd unless the target requires
    grad.

    Build it with :meth:`from_file`; ``PerceptualLoss(kind)`` has random backbone weights (tests), and
    ``enabled=False`` builds no backbone and returns 0.

    Args:
        kind: ``"resnet50-hrf"`` or ``"vgg19"``.
        weight: factor of the loss.
        enabled: ``False`` for a disabled loss (no backbone, always 0).

    Attributes:
        encoder: the backbone (``None`` when disabled); its ``state_dict`` keys are the released file's keys.
    """

    KINDS = ("resnet50-hrf", "vgg19")

    def __init__(
        self, kind: Literal["resnet50-hrf", "vgg19"] = "resnet50-hrf", weight: float = 30.0, *, enabled: bool = True
    ) -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        if not math.isfinite(weight):
            raise ValueError(f"weight must be finite, got {weight}")
        self.kind = kind
        self.weight = float(weight)
        self.enabled = enabled
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.encoder: nn.Module | None = None
        if enabled:
            self.encoder = _ResNet50DilatedEncoder() if kind == "resnet50-hrf" else _VGG19Encoder()
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike | None,
        kind: Literal["resnet50-hrf", "vgg19"] = "resnet50-hrf",
        weight: float = 30.0,
    ) -> PerceptualLoss:
        """Load the backbone weights the user supplies (nothing is downloaded).

        Args:
            path: ``kind="resnet50-hrf"``: ``encoder_epoch_20.pth`` of ADE20k ``resnet50dilated-ppm_deepsup`` from
                http://sceneparsing.csail.mit.edu/model/pytorch/ (keys ``conv1.weight``, ``bn1.*``, ...,
                ``layer4.2.bn3.*``; ``fc.*`` is ignored, BN ``num_batches_tracked`` is optional). ``kind="vgg19"``:
                torchvision's ``vgg19-dcbb9e9d.pth`` (``features.N.*``; ``classifier.*`` and the unused conv5_2..5_4
                are ignored). ``None``: a disabled loss that returns 0, with one warning per process and kind.
            kind: the backbone.
            weight: factor of the loss (LaMa's HRF perceptual loss: 30).

        Returns:
            The loss on the CPU in float32 (move it with ``.to(device)``).

        Raises:
            MissingWeightsError: ``path`` does not exist.
            ValueError: the file is not a state dict readable with ``weights_only=True``.
            WeightsMismatchError: keys missing, unexpected or of the wrong shape (all named).
        """
        if kind not in cls.KINDS:
            raise ValueError(f"kind must be one of {cls.KINDS}, got {kind!r}")
        if path is None:
            if kind not in _WARNED_DISABLED_KINDS:
                _WARNED_DISABLED_KINDS.add(kind)
                logger.warning(
                    "Perceptual loss (%s) is disabled: no weights file was given, so this term is 0. To enable it, "
                    "pass the path of %s",
                    kind,
                    _FILE_HELP[kind],
                )
            return cls(kind, weight, enabled=False)
        if not os.path.isfile(path):
            raise MissingWeightsError(
                f"perceptual-loss weights {os.fspath(path)!r} not found; kind={kind!r} needs {_FILE_HELP[kind]}"
            )
        state = _load_state_dict_file(path, _FILE_HELP[kind])
        model = cls(kind, weight)
        model.load_backbone_state_dict(state, source=os.fspath(path))
        return model

    def load_backbone_state_dict(self, state: Mapping[str, torch.Tensor], source: str = "the state dict") -> None:
        """Strictly load released backbone weights into :attr:`encoder` (converted to float32).

        Args:
            state: the released state dict (see :meth:`from_file` for the keys).
            source: where it came from, for error messages.

        Raises:
            WeightsMismatchError: keys missing, unexpected or of the wrong shape (all named).
        """
        if self.encoder is None:
            raise ValueError("this PerceptualLoss is disabled (built without a backbone)")
        expected = self.encoder.state_dict()
        if self.kind == "resnet50-hrf":
            ignored = {key for key in state if key.startswith("fc.")}
            optional = {key for key in expected if key.endswith(".num_batches_tracked")}
        else:
            ignored = {key for key in state if key.startswith("classifier.") or key in _VGG19_UNUSED_KEYS}
            optional = set()
        mismatches = state_dict_mismatches(state, expected, ignored=ignored, optional=optional)
        problems = [f"{label}: {_format_keys(keys)}" for label, keys in mismatches.items() if keys]
        if problems:
            raise WeightsMismatchError(
                f"{source} does not match the {self.kind} perceptual-loss backbone; "
                + "; ".join(problems)
                + f". It must be {_FILE_HELP[self.kind]}"
            )
        merged = dict(expected)
        merged.update({key: value for key, value in state.items() if key in expected})
        self.encoder.load_state_dict(
            {key: value if key in optional else value.to(torch.float32) for key, value in merged.items()}, strict=True
        )

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Switch training mode; the frozen backbone always stays in eval mode."""
        super().train(mode)
        if self.encoder is not None:
            self.encoder.eval()
        return self

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Backbone features of ``[B, 3, H, W]`` RGB images in [0, 1] (ImageNet-normalised here)."""
        if self.encoder is None:
            raise ValueError("this PerceptualLoss is disabled (built without a backbone)")
        images = images.to(self.mean.dtype)
        return self.encoder((images - self.mean) / self.std)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Perceptual distance of two batches.

        Args:
            prediction: ``[B, 3, H, W]`` RGB in [0, 1] (gradients flow back to it).
            target: ``[B, 3, H, W]`` RGB in [0, 1].

        Returns:
            Scalar loss (``weight`` times the sum over layers of the feature MSE); 0 for identical inputs, and a
            0-dimensional zero on ``prediction``'s device when the loss is disabled.
        """
        _check_pair(prediction, target)
        if prediction.shape[1] != 3:
            raise ValueError(f"PerceptualLoss takes RGB batches [B, 3, H, W], got shape {tuple(prediction.shape)}")
        if not self.enabled:
            return prediction.new_zeros(())
        if self.kind == "vgg19" and min(prediction.shape[-2:]) < 16:
            raise ValueError(
                "the vgg19 perceptual loss needs images of at least 16x16 pixels (four 2x2 poolings before relu5_1), "
                f"got {prediction.shape[-2]}x{prediction.shape[-1]}"
            )
        prediction_features = self.features(prediction)
        with torch.set_grad_enabled(torch.is_grad_enabled() and target.requires_grad):
            target_features = self.features(target)
        per_layer = [F.mse_loss(fake, real) for fake, real in zip(prediction_features, target_features)]
        return torch.stack(per_layer).sum() * self.weight

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, weight={self.weight}, enabled={self.enabled}"
