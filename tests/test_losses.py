"""Tests of inpaint_hub.losses: every loss against values worked out by hand from the original formulas on tiny
tensors, R1 / gradient penalty against torch.autograd.grad and closed forms, and PerceptualLoss on random weights
saved in the released key layouts (nothing is downloaded)."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inpaint_hub import losses
from inpaint_hub.losses import (
    PerceptualLoss,
    feature_matching_loss,
    gradient_penalty,
    hinge_discriminator_loss,
    hinge_generator_loss,
    masked_l1_loss,
    non_saturating_discriminator_loss,
    non_saturating_generator_loss,
    pyramid_l1_loss,
    r1_penalty,
    region_l1_loss,
    region_mse_loss,
    wgan_discriminator_loss,
    wgan_generator_loss,
)
from inpaint_hub.metrics import MissingWeightsError
from inpaint_hub.modeling_utils import WeightsMismatchError


def t(values, *shape: int) -> torch.Tensor:
    """float32 tensor of the given values, reshaped."""
    return torch.tensor(values, dtype=torch.float32).reshape(*shape)


# ------------------------------------------------------------------------------------------------- reconstruction


def test_masked_l1_loss_hand_computed():
    prediction = t([1, 2, 3, 4], 1, 1, 2, 2)
    target = torch.zeros(1, 1, 2, 2)
    mask = t([1, 0, 0, 1], 1, 1, 2, 2)
    # |diff| * weights = [1*2, 2*10, 3*10, 4*2] = [2, 20, 30, 8] -> mean 60 / 4
    assert masked_l1_loss(prediction, target, mask, weight_hole=2.0, weight_known=10.0).item() == pytest.approx(15.0)
    # LaMa's setting (weight_missing 0, weight_known 10): only the known pixels 2 and 3 count -> 10 * 5 / 4
    assert masked_l1_loss(prediction, target, mask, weight_hole=0.0, weight_known=10.0).item() == pytest.approx(12.5)


def test_masked_l1_loss_broadcasts_mask_over_channels_and_batch():
    prediction = t([1, 2, 3, 4], 1, 2, 1, 2)  # channel 0 = [1, 2], channel 1 = [3, 4]
    target = torch.zeros(1, 2, 1, 2)
    mask = t([1, 0], 1, 1, 1, 2)
    # hole weight 0: channel 0 keeps 2, channel 1 keeps 4 -> (2 + 4) / 4 elements
    assert masked_l1_loss(prediction, target, mask, weight_hole=0.0, weight_known=1.0).item() == pytest.approx(1.5)
    batch = torch.cat([prediction, 2 * prediction])
    # one mask for the whole batch: second sample doubles -> (6 + 12) / 8
    value = masked_l1_loss(batch, torch.zeros_like(batch), mask, weight_hole=0.0, weight_known=1.0)
    assert value.item() == pytest.approx(18 / 8)


def test_masked_l1_loss_rejects_bad_mask():
    x = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="spatial size"):
        masked_l1_loss(x, x, torch.zeros(1, 1, 2, 2), weight_hole=1.0, weight_known=1.0)
    with pytest.raises(ValueError, match="broadcast"):
        masked_l1_loss(x, x, torch.zeros(2, 1, 4, 4), weight_hole=1.0, weight_known=1.0)
    with pytest.raises(ValueError, match="same shape"):
        masked_l1_loss(x, torch.zeros(1, 3, 4, 5), torch.zeros(1, 1, 4, 4), weight_hole=1.0, weight_known=1.0)


def test_region_l1_loss_is_pennet_hole_and_valid_l1():
    prediction = t([1, 2, 3, 4], 1, 1, 2, 2)
    target = torch.zeros(1, 1, 2, 2)
    mask = t([1, 0, 0, 0], 1, 1, 2, 2)
    # PEN-Net hole: L1(pred*m, img*m) / mean(m) = (1/4) / (1/4) = 1; valid: ((2+3+4)/4) / (3/4) = 3
    assert region_l1_loss(prediction, target, mask).item() == pytest.approx(1.0)
    assert region_l1_loss(prediction, target, 1 - mask).item() == pytest.approx(3.0)
    assert region_l1_loss(prediction, target, torch.zeros_like(mask)).item() == 0.0


def test_region_mse_loss_is_the_mean_squared_error_per_region_pixel():
    prediction = t([1, 2, 3, 4], 1, 1, 2, 2)
    target = torch.zeros(1, 1, 2, 2)
    mask = t([1, 0, 0, 0], 1, 1, 2, 2)
    assert region_mse_loss(prediction, target, mask).item() == pytest.approx(1.0)
    assert region_mse_loss(prediction, target, 1 - mask).item() == pytest.approx((4 + 9 + 16) / 3)
    assert region_mse_loss(prediction, target, torch.zeros_like(mask)).item() == 0.0
    with pytest.raises(ValueError, match="same shape"):
        region_mse_loss(prediction, torch.zeros(1, 1, 2, 3), mask)


def test_pyramid_l1_loss_sums_levels_with_align_corners_bilinear():
    target = t([0, 1, 2, 3], 1, 1, 2, 2)
    full = torch.ones(1, 1, 2, 2)  # |1 - [0, 1, 2, 3]| = [1, 0, 1, 2] -> mean 1
    coarse = t([5], 1, 1, 1, 1)  # align_corners=True picks the corner 0 (align_corners=False would average to 1.5)
    assert pyramid_l1_loss([full, coarse], target).item() == pytest.approx(1.0 + 5.0)
    # 3x3 -> 2x2 with align_corners=True keeps exactly the four corners 0, 2, 6, 8
    target3 = t(range(9), 1, 1, 3, 3)
    assert pyramid_l1_loss([t([0, 2, 6, 8], 1, 1, 2, 2)], target3).item() == pytest.approx(0.0)
    # without a mask a common weight multiplies everything
    assert pyramid_l1_loss([coarse], target, weight_hole=0.5, weight_known=0.5).item() == pytest.approx(2.5)


def test_pyramid_l1_loss_with_mask_resizes_nearest():
    target = t([0, 1, 2, 3], 1, 1, 2, 2)
    mask = t([1, 0, 0, 0], 1, 1, 2, 2)  # nearest to 1x1 samples the top-left pixel: a hole
    full = torch.ones(1, 1, 2, 2)
    coarse = t([5], 1, 1, 1, 1)
    # full: |diff| [1, 0, 1, 2] * weights [2, 1, 1, 1] -> 5 / 4; coarse: 5 * 2
    value = pyramid_l1_loss([full, coarse], target, mask, weight_hole=2.0, weight_known=1.0)
    assert value.item() == pytest.approx(1.25 + 10.0)


def test_pyramid_l1_loss_rejects_bad_input():
    target = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="no mask"):
        pyramid_l1_loss([target], target, weight_hole=6.0, weight_known=1.0)
    with pytest.raises(ValueError, match="empty"):
        pyramid_l1_loss([], target)
    with pytest.raises(ValueError, match="list or tuple"):
        pyramid_l1_loss(target, target)
    with pytest.raises(ValueError, match=r"predictions\[0\]"):
        pyramid_l1_loss([torch.zeros(1, 1, 4, 4)], target)


def test_feature_matching_loss_hand_computed_and_real_detached():
    fake_a = t([1, 3], 1, 1, 1, 2).requires_grad_(True)
    fake_b = t([2, 0], 1, 2, 1, 1).requires_grad_(True)
    real_a = torch.zeros(1, 1, 1, 2, requires_grad=True)
    real_b = torch.zeros(1, 2, 1, 1, requires_grad=True)
    # layer a: (1 + 9) / 2 = 5; layer b: (4 + 0) / 2 = 2; mean over layers 3.5
    value = feature_matching_loss([fake_a, fake_b], [real_a, real_b])
    assert value.item() == pytest.approx(3.5)
    value.backward()
    assert fake_a.grad is not None and fake_b.grad is not None
    assert real_a.grad is None and real_b.grad is None


def test_feature_matching_loss_with_mask_weights_known_region_bilinear():
    mask = t([1, 0, 0, 0], 1, 1, 2, 2)
    fake_a = torch.full((1, 1, 2, 2), 2.0)  # squared error 4 everywhere, weights 1 - m = [0, 1, 1, 1] -> 12 / 4
    fake_b = t([1], 1, 1, 1, 1)  # bilinear (align_corners=False) 2x2 -> 1x1 averages: m = 0.25, weight 0.75
    value = feature_matching_loss([fake_a, fake_b], [torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 1, 1)], mask)
    assert value.item() == pytest.approx((3.0 + 0.75) / 2)


def test_feature_matching_loss_rejects_mismatch():
    with pytest.raises(ValueError, match="as many layers"):
        feature_matching_loss([torch.zeros(1, 1, 2, 2)], [torch.zeros(1, 1, 2, 2)] * 2)
    with pytest.raises(ValueError, match="differ in shape"):
        feature_matching_loss([torch.zeros(1, 1, 2, 2)], [torch.zeros(1, 1, 2, 3)])


# ------------------------------------------------------------------------------------------------- R1


def linear_critic(weight: torch.Tensor):
    """D(x) = sum(w * x) per sample: d D / d x = w for every sample."""
    return lambda x: (x * weight).flatten(1).sum(dim=1)


def test_r1_penalty_linear_critic_is_squared_weight_norm():
    weight = t([1, 2, 3, 4], 1, 1, 2, 2).requires_grad_(True)
    real = torch.randn(3, 1, 2, 2, requires_grad=True)
    penalty = r1_penalty(linear_critic(weight)(real), real)
    assert penalty.item() == pytest.approx(1 + 4 + 9 + 16)
    penalty.backward()  # create_graph=True: the penalty trains D; d ||w||^2 / d w = 2 w
    torch.testing.assert_close(weight.grad, 2 * weight.detach())


def test_r1_penalty_matches_autograd_on_conv_critic():
    critic = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 1, 3, stride=2, padding=1))
    real = torch.randn(2, 3, 6, 6, requires_grad=True)
    logits = critic(real)
    (gradient,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    expected = torch.stack([gradient[b].pow(2).sum() for b in range(2)]).mean()
    torch.testing.assert_close(r1_penalty(logits, real), expected)


def test_r1_penalty_errors_and_no_grad():
    weight = torch.ones(1, 1, 2, 2)
    real = torch.randn(2, 1, 2, 2)
    with pytest.raises(ValueError, match="requires_grad_"):
        r1_penalty(linear_critic(weight)(real), real)
    real.requires_grad_(True)
    with pytest.raises(ValueError, match="does not depend"):
        r1_penalty(torch.randn(2, requires_grad=True), real)
    with torch.no_grad():  # LaMa's make_r1_gp: 0 without autograd (validation)
        assert r1_penalty(linear_critic(weight)(real), real).item() == 0.0


# ------------------------------------------------------------------------------------------------- non-saturating


def test_non_saturating_generator_loss():
    fake = t([0.0, math.log(3.0)], 2)
    # softplus(-0) = ln 2, softplus(-ln 3) = ln(1 + 1/3)
    expected = (math.log(2.0) + math.log(4.0 / 3.0)) / 2
    assert non_saturating_generator_loss(fake).item() == pytest.approx(expected)


def test_non_saturating_discriminator_loss_without_mask():
    real = t([0.0, 0.0], 2)
    fake = t([math.log(3.0), 0.0], 2)
    loss, parts = non_saturating_discriminator_loss(real, fake)
    # real: softplus(0) = ln 2; fake labelled fake: softplus(ln 3) = ln 4, softplus(0) = ln 2
    expected_fake = (math.log(4.0) + math.log(2.0)) / 2
    assert loss.item() == pytest.approx(math.log(2.0) + expected_fake)
    assert parts["real"].item() == pytest.approx(math.log(2.0))
    assert parts["fake"].item() == pytest.approx(expected_fake)
    assert parts["r1"].item() == 0.0
    assert set(parts) == {"real", "fake", "r1", "real_logits", "fake_logits"}


def test_mask_as_fake_target_labels_unmasked_fake_logits_real_and_resizes_nearest():
    real = torch.zeros(1, 1, 2, 2)
    fake = torch.full((1, 1, 2, 2), math.log(3.0))
    # 4x4 mask; nearest to 2x2 samples pixels (0,0), (0,2), (2,0), (2,2) -> [[1, 0], [0, 1]]
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, 0, 0] = mask[0, 0, 2, 2] = 1
    mask[0, 0, 1, 3] = 1  # not sampled by nearest (a max-pool would mark logit (0, 1) as hole)
    loss, parts = non_saturating_discriminator_loss(real, fake, mask=mask)
    # hole logits are fake: softplus(ln 3) = ln 4; the others are real: softplus(-ln 3) = ln(4/3)
    expected_fake = (2 * math.log(4.0) + 2 * math.log(4.0 / 3.0)) / 4
    assert parts["fake"].item() == pytest.approx(expected_fake)
    assert loss.item() == pytest.approx(math.log(2.0) + expected_fake)
    # no hole at all: every fake logit gets the real label, the same term as for real logits
    _, parts = non_saturating_discriminator_loss(real, fake, mask=torch.zeros(1, 1, 4, 4))
    assert parts["fake"].item() == pytest.approx(F.softplus(-fake).mean().item())
    assert parts["fake"].item() == pytest.approx(math.log(4.0 / 3.0))


def test_non_saturating_discriminator_loss_with_r1():
    weight = t([1, 2, 3, 4], 1, 1, 2, 2)
    real_images = torch.randn(2, 1, 2, 2, requires_grad=True)
    real_logits = linear_critic(weight)(real_images)
    fake_logits = torch.zeros(2)
    loss, parts = non_saturating_discriminator_loss(real_logits, fake_logits, real_images=real_images, r1_weight=0.001)
    expected_real = F.softplus(-real_logits).mean().item()
    assert parts["r1"].item() == pytest.approx(30.0)
    assert loss.item() == pytest.approx(expected_real + math.log(2.0) + 0.001 * 30.0)
    with pytest.raises(ValueError, match="real_images"):
        non_saturating_discriminator_loss(real_logits, fake_logits, r1_weight=0.001)
    with pytest.raises(ValueError, match="logit map"):
        non_saturating_discriminator_loss(real_logits, fake_logits, mask=torch.zeros(2, 1, 2, 2))


# ------------------------------------------------------------------------------------------------- hinge / WGAN


def test_hinge_losses():
    real = t([0.5, 2.0], 2)
    fake = t([-2.0, 0.5], 2)
    # relu(1 - real) = [0.5, 0] -> 0.25; relu(1 + fake) = [0, 1.5] -> 0.75; 0.5 * 0.25 + 0.5 * 0.75
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(0.5)
    assert hinge_generator_loss(fake).item() == pytest.approx(0.75)


def test_wgan_losses():
    real = t([1.0, 3.0], 2)
    fake = t([0.0, -2.0], 2)
    assert wgan_discriminator_loss(real, fake).item() == pytest.approx(-1.0 - 2.0)
    assert wgan_generator_loss(fake).item() == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------- gradient penalty


def test_gradient_penalty_linear_critic_closed_form():
    weight = t([1, 2, 3, 4], 1, 1, 2, 2)
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    # the gradient is w wherever the interpolate lies: (||w|| - 1)^2
    value = gradient_penalty(linear_critic(weight), real, fake)
    assert value.item() == pytest.approx((math.sqrt(30.0) - 1) ** 2, rel=1e-6)
    # neuralgym's masked penalty: only hole gradients, sqrt(sum(g^2 * m)) = sqrt(1 + 16)
    mask = t([1, 0, 0, 1], 1, 1, 2, 2)
    value = gradient_penalty(linear_critic(weight), real, fake, mask=mask)
    assert value.item() == pytest.approx((math.sqrt(17.0) - 1) ** 2, rel=1e-6)


def test_gradient_penalty_matches_autograd_on_conv_critic():
    critic = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 1, 3, stride=2, padding=1))
    real = torch.randn(2, 3, 6, 6)
    fake = torch.randn(2, 3, 6, 6, requires_grad=True)  # e.g. a generator output: must not get gradients
    mask = torch.zeros(2, 1, 6, 6)
    mask[:, :, 1:4, 2:5] = 1

    value = gradient_penalty(critic, real, fake, mask=mask, generator=torch.Generator().manual_seed(7))
    value.backward()
    # the last bias does not change d D / d x: no gradient (None) in both computations
    grads = [None if p.grad is None else p.grad.clone() for p in critic.parameters()]
    assert grads[0] is not None and grads[-1] is None
    assert fake.grad is None

    critic.zero_grad()
    eps = torch.rand((2, 1, 1, 1), generator=torch.Generator().manual_seed(7))
    interpolates = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    (gradient,) = torch.autograd.grad(critic(interpolates).sum(), interpolates, create_graph=True)
    slopes = torch.sqrt((gradient.pow(2) * mask).sum(dim=(1, 2, 3)))
    expected = ((slopes - 1) ** 2).mean()
    expected.backward()
    torch.testing.assert_close(value, expected)
    for got, parameter in zip(grads, critic.parameters()):
        if got is None:
            assert parameter.grad is None
        else:
            torch.testing.assert_close(got, parameter.grad)


def test_gradient_penalty_seeded_and_finite_for_zero_masked_gradient():
    critic = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Conv2d(2, 1, 1))
    real, fake = torch.randn(4, 1, 5, 5), torch.randn(4, 1, 5, 5)
    first = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(3))
    second = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(3))
    assert first.item() == second.item()
    value = gradient_penalty(critic, real, fake, mask=torch.zeros(1, 1, 5, 5))  # empty hole: slope 0
    assert value.item() == pytest.approx(1.0)
    value.backward()
    assert all(torch.isfinite(p.grad).all() for p in critic.parameters() if p.grad is not None)
    assert critic[0].weight.grad is not None
    with pytest.raises(ValueError, match="one shape"):
        gradient_penalty(critic, real, fake[:2])


# ------------------------------------------------------------------------------------------------- perceptual


def resnet50_dilated_parameter_count() -> int:
    """Parameters of the deep-stem ResNet-50 (no fc), from the architecture of CSAILVision models/resnet.py."""
    stem = 3 * 64 * 9 + 64 * 64 * 9 + 64 * 128 * 9 + 2 * (64 + 64 + 128)

    def bottleneck(inplanes: int, planes: int, downsample: bool) -> int:
        convs = inplanes * planes + 9 * planes * planes + planes * 4 * planes
        norms = 2 * (planes + planes + 4 * planes)
        return convs + norms + ((inplanes * 4 * planes + 2 * 4 * planes) if downsample else 0)

    total, inplanes = stem, 128
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        total += bottleneck(inplanes, planes, True) + (blocks - 1) * bottleneck(4 * planes, planes, False)
        inplanes = 4 * planes
    return total


def vgg19_to_relu5_1_parameter_count() -> int:
    chain = [3, 64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512]
    return sum(9 * cin * cout + cout for cin, cout in zip(chain[:-1], chain[1:]))


@pytest.fixture(autouse=True)
def _reset_disabled_warning(monkeypatch):
    monkeypatch.setattr(losses, "_WARNED_DISABLED_KINDS", set())


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A random-weight encoder_epoch_20.pth-style file (plus an fc head, which must be ignored)."""
    torch.manual_seed(1)
    state = PerceptualLoss("resnet50-hrf").encoder.state_dict()
    for key, value in state.items():
        if key.endswith("running_mean"):
            state[key] = torch.randn_like(value) * 0.1
        elif key.endswith("running_var"):
            state[key] = torch.rand_like(value) + 0.5
    state["fc.weight"], state["fc.bias"] = torch.randn(150, 2048), torch.randn(150)
    path = tmp_path_factory.mktemp("weights") / "encoder_epoch_20.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A random-weight vgg19-dcbb9e9d.pth-style file with torchvision's full key set."""
    torch.manual_seed(2)
    state = PerceptualLoss("vgg19").encoder.state_dict()
    for index in (30, 32, 34):
        state[f"features.{index}.weight"] = torch.randn(512, 512, 3, 3)
        state[f"features.{index}.bias"] = torch.zeros(512)
    for index, (cin, cout) in {0: (25088, 4096), 3: (4096, 4096), 6: (4096, 1000)}.items():
        state[f"classifier.{index}.weight"] = torch.zeros(cout, cin)
        state[f"classifier.{index}.bias"] = torch.zeros(cout)
    path = tmp_path_factory.mktemp("weights") / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    return path, state


def test_resnet50_hrf_structure():
    encoder = PerceptualLoss("resnet50-hrf").encoder
    assert sum(p.numel() for p in encoder.parameters()) == resnet50_dilated_parameter_count()
    with torch.no_grad():
        features = encoder(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in features] == [(256, 16, 16), (512, 8, 8), (1024, 8, 8), (2048, 8, 8)]
    # ResnetDilated._nostride_dilate: first 3x3 of a dilated stage gets d // 2, the others d; no strides left
    assert encoder.layer3[0].conv2.dilation == (1, 1) and encoder.layer3[1].conv2.dilation == (2, 2)
    assert encoder.layer4[0].conv2.dilation == (2, 2) and encoder.layer4[2].conv2.dilation == (4, 4)
    assert encoder.layer3[0].downsample[0].stride == (1, 1) and encoder.layer2[0].conv2.stride == (2, 2)
    keys = set(encoder.state_dict())
    assert {"conv1.weight", "bn3.running_var", "layer1.0.downsample.0.weight", "layer4.2.bn3.bias"} <= keys


def test_vgg19_structure():
    encoder = PerceptualLoss("vgg19").encoder
    assert sum(p.numel() for p in encoder.parameters()) == vgg19_to_relu5_1_parameter_count()
    assert len(encoder.features) == 30 and isinstance(encoder.features[4], nn.AvgPool2d)
    with torch.no_grad():
        features = encoder(torch.randn(1, 3, 32, 32))
    assert len(features) == 13 and tuple(features[-1].shape) == (1, 512, 2, 2)


@pytest.mark.parametrize("kind", ["resnet50-hrf", "vgg19"])
def test_perceptual_loss_loads_released_layout(kind, resnet_file, vgg_file):
    path, state = resnet_file if kind == "resnet50-hrf" else vgg_file
    loss = PerceptualLoss.from_file(path, kind=kind, weight=2.0)
    loaded = loss.encoder.state_dict()
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key])

    prediction = torch.rand(2, 3, 32, 32, requires_grad=True)
    target = torch.rand(2, 3, 32, 32)
    assert loss(target, target).item() == 0.0
    value = loss(prediction, target)
    assert value.item() > 0

    # weight * sum over layers of the feature MSE, on ImageNet-normalised inputs (normalised here by hand)
    mean, std = t([0.485, 0.456, 0.406], 1, 3, 1, 1), t([0.229, 0.224, 0.225], 1, 3, 1, 1)
    with torch.no_grad():
        fake, real = loss.encoder((prediction - mean) / std), loss.encoder((target - mean) / std)
    expected = 2.0 * sum(F.mse_loss(a, b) for a, b in zip(fake, real))
    torch.testing.assert_close(value.detach(), expected)

    value.backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in loss.parameters())
    loss.train()
    assert not loss.encoder.training and all(not m.training for m in loss.encoder.modules())


def test_perceptual_loss_strict_loading(tmp_path, resnet_file):
    _, state = resnet_file
    extra = dict(state, **{"decoder.conv_last.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(WeightsMismatchError, match=r"unexpected: decoder\.conv_last\.weight"):
        PerceptualLoss.from_file(tmp_path / "extra.pth")

    missing = {k: v for k, v in state.items() if k != "layer2.1.conv2.weight"}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(WeightsMismatchError, match=r"missing: layer2\.1\.conv2\.weight"):
        PerceptualLoss.from_file(tmp_path / "missing.pth")

    wrong = dict(state, **{"conv1.weight": torch.zeros(64, 3, 7, 7)})
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(WeightsMismatchError, match=r"wrong shape: conv1\.weight \(64, 3, 7, 7\)"):
        PerceptualLoss.from_file(tmp_path / "wrong.pth")

    # older checkpoints without BN num_batches_tracked load
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth")
    PerceptualLoss.from_file(tmp_path / "old.pth")

    with pytest.raises(WeightsMismatchError, match="missing: features"):
        PerceptualLoss.from_file(tmp_path / "old.pth", kind="vgg19")


def test_perceptual_loss_missing_file_and_bad_kind(tmp_path):
    with pytest.raises(MissingWeightsError, match="encoder_epoch_20.pth"):
        PerceptualLoss.from_file(tmp_path / "nope.pth")
    with pytest.raises(MissingWeightsError, match="vgg19-dcbb9e9d.pth"):
        PerceptualLoss.from_file(tmp_path / "nope.pth", kind="vgg19")
    with pytest.raises(ValueError, match="kind"):
        PerceptualLoss.from_file(None, kind="alexnet")


def test_disabled_perceptual_loss_warns_once_and_returns_zero(caplog):
    with caplog.at_level(logging.WARNING, logger="inpaint_hub.losses"):
        loss = PerceptualLoss.from_file(None)
        again = PerceptualLoss.from_file(None)
    records = [r for r in caplog.records if r.name == "inpaint_hub.losses"]
    assert len(records) == 1
    assert "disabled" in records[0].getMessage() and "encoder_epoch_20.pth" in records[0].getMessage()
    assert loss.encoder is None and not loss.enabled
    prediction = torch.rand(1, 3, 8, 8, requires_grad=True)
    value = again(prediction, torch.rand(1, 3, 8, 8))
    assert value.ndim == 0 and value.item() == 0.0 and value.device == prediction.device
    assert list(loss.parameters()) == []
