"""DGI specifics: the completion block and its adaptive convolution, the non-local attention (rows, chunking), the
three distillation losses and their meta-networks, the teacher, the critic, gradients, saving and the config.

The shared model contract (shapes, known pixels, hole content, round trips, strict loading, batch independence,
odd sizes through the pipeline) runs in ``test_model_contract.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from safetensors.torch import load_file
from test_model_contract import inputs, widen_init

from inpaint_hub import AutoInpaintModel
from inpaint_hub.models.dgi import (
    DGIAdaptiveConv,
    DGIAttention,
    DGIChannelWeights,
    DGICompletionBlock,
    DGIConfig,
    DGIDiscriminator,
    DGIDistiller,
    DGIModel,
    DGIOutput,
    DGIPixelWeights,
    DGITeacher,
    attention_transfer_loss,
    level_mask,
    masked_channel_mse,
)


SIZE = (32, 48)
CENTRE = 4  # index of the (0, 0) tap of a 3 x 3 grid, taps in row-major (dy, dx) order


@pytest.fixture
def tiny() -> DGIModel:
    return DGIModel(DGIConfig.tiny()).eval()


def level_features(config: DGIConfig, batch: int = 2, size: tuple[int, int] = SIZE, seed: int = 0):
    """Random features with the shapes of the encoder's levels."""
    g = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(batch, c, size[0] // s, size[1] // s, generator=g)
        for c, s in zip(config.level_channels, config.level_strides)
    )


def full_affinity(attention: DGIAttention, d: torch.Tensor) -> torch.Tensor:
    """``softmax_j(q_i . k_j / sqrt(d_k))`` over all pixels, built whole from the 1x1 query / key convolutions."""
    q = F.conv2d(d, attention.query.weight, attention.query.bias).flatten(2)  # [B, c, N]
    k = F.conv2d(d, attention.key.weight, attention.key.bias).flatten(2)
    return torch.softmax(q.transpose(1, 2) @ k / math.sqrt(q.shape[1]), dim=-1)  # [B, N, N]


# ------------------------------------------------------------------------------------------------- completion block


def test_completion_block_rewrites_the_hole_only():
    block = DGICompletionBlock(8, kernel_size=3, groups=2)
    x = torch.randn(2, 8, 12, 10)
    mask = torch.zeros(2, 1, 12, 10)
    mask[0, :, 3:7, 2:6] = 1
    mask[1, :, 8:11, 5:9] = 1
    with torch.no_grad():
        out = block(x, mask)
        filled = block.fill(x, mask)
    hole = mask.expand_as(x) > 0
    assert torch.equal(out[~hole], x[~hole])  # bit for bit outside the hole
    assert torch.equal(out[hole], filled[hole])  # the adaptive convolution's output inside it
    assert (out[hole] - x[hole]).abs().mean() > 0.1
    with torch.no_grad():
        assert torch.equal(block(x, torch.zeros(2, 1, 12, 10)), x)  # no hole: an identity


def test_model_keeps_known_pixels_and_ignores_the_holes_content(tiny):
    image, mask = inputs(SIZE)
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(5)) * 3
    noisy = torch.where(mask > 0, noise, image)
    with torch.no_grad():
        a = tiny(image, mask, output_features=True)
        b = tiny(noisy, mask, output_features=True)
    hole = mask.expand_as(image) > 0
    assert torch.equal(a.inpainted[~hole], image[~hole])
    assert torch.equal(a.inpainted[hole], a.predicted[hole])
    assert torch.equal(a.predicted, b.predicted)
    assert torch.equal(a.inpainted[hole], b.inpainted[hole])
    assert torch.equal(b.inpainted[~hole], image[~hole])
    for fa, fb in zip(a.features, b.features, strict=True):
        assert torch.equal(fa, fb)


# ------------------------------------------------------------------------------------------------- adaptive conv


def one_hot_adaptive_conv(channels: int, taps: list[int], offset: tuple[float, float] = (0.0, 0.0)) -> DGIAdaptiveConv:
    """An adaptive convolution whose per-pixel kernel is the one-hot tap ``taps[g]`` for channel group ``g``, whose
    offsets are the constant ``(dy, dx)`` for every tap, and whose ``mix`` is the identity."""
    groups = len(taps)
    conv = DGIAdaptiveConv(channels, kernel_size=3, groups=groups)
    with torch.no_grad():
        conv.kernel[-1].weight.zero_()
        bias = torch.zeros(9, groups)  # channel k * groups + g: tap k of group g
        for g, k in enumerate(taps):
            bias[k, g] = 1
        conv.kernel[-1].bias.copy_(bias.flatten())
        conv.offset[-1].weight.zero_()
        conv.offset[-1].bias.copy_(torch.tensor(offset).repeat(9))  # channels 2k, 2k + 1: (dy, dx) of tap k
        conv.mix.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
        conv.mix.bias.zero_()
    return conv


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``out[..., i, j] = x[..., i + dy, j + dx]``, zeros where that falls outside."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    out[..., max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)] = x[
        ..., max(dy, 0) : h - max(-dy, 0), max(dx, 0) : w - max(-dx, 0)
    ]
    return out


def test_adaptive_conv_with_a_centre_tap_and_no_offset_is_the_identity():
    conv = one_hot_adaptive_conv(8, [CENTRE, CENTRE])
    x = torch.randn(2, 8, 7, 9)
    mask = (torch.rand(2, 1, 7, 9) > 0.5).float()
    with torch.no_grad():
        torch.testing.assert_close(conv(x, mask), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("offset", "dy", "dx"), [((0.0, 1.0), 0, 1), ((1.0, 0.0), 1, 0), ((0.0, -1.0), 0, -1)], ids=["x+1", "y+1", "x-1"]
)
def test_adaptive_conv_offsets_move_the_sample_by_whole_pixels(offset, dy, dx):
    conv = one_hot_adaptive_conv(8, [CENTRE, CENTRE], offset=offset)
    x = torch.randn(2, 8, 7, 9)
    with torch.no_grad():
        out = conv(x, torch.zeros(2, 1, 7, 9))
    torch.testing.assert_close(out, shifted(x, dy, dx), atol=1e-5, rtol=0)  # zeros past the border


def test_adaptive_conv_fractional_offset_interpolates_bilinearly():
    conv = one_hot_adaptive_conv(4, [CENTRE], offset=(0.0, 0.25))
    x = torch.randn(1, 4, 5, 6)
    with torch.no_grad():
        out = conv(x, torch.zeros(1, 1, 5, 6))
    torch.testing.assert_close(out, 0.75 * x + 0.25 * shifted(x, 0, 1), atol=1e-5, rtol=0)


def test_adaptive_conv_taps_and_groups_are_where_the_layout_says():
    # group 0 reads the tap above (dy = -1: index 1), group 1 the tap to the right (dx = +1: index 5)
    conv = one_hot_adaptive_conv(8, [1, 5])
    x = torch.randn(2, 8, 6, 7)
    with torch.no_grad():
        out = conv(x, torch.zeros(2, 1, 6, 7))
    torch.testing.assert_close(out[:, :4], shifted(x[:, :4], -1, 0), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 4:], shifted(x[:, 4:], 0, 1), atol=1e-5, rtol=0)


def test_adaptive_conv_offsets_start_at_zero_and_groups_must_divide():
    conv = DGIAdaptiveConv(8, 3, 2)
    condition = torch.randn(1, 9, 5, 5)
    assert torch.equal(conv.offset(condition), torch.zeros(1, 18, 5, 5))
    assert conv.taps.tolist() == [[dy, dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    with pytest.raises(ValueError, match="multiple of groups"):
        DGIAdaptiveConv(12, 3, 8)


# ------------------------------------------------------------------------------------------------- attention


def test_affinity_rows_are_distributions_and_the_rows_of_the_full_softmax():
    attention = DGIAttention(16, reduction=4)
    d = torch.randn(2, 16, 5, 7)
    rows = torch.tensor([0, 3, 17, 34])
    with torch.no_grad():
        got = attention.affinity_rows(d, rows)
        full = full_affinity(attention, d)
    assert got.shape == (2, 4, 35)
    torch.testing.assert_close(got.sum(dim=-1), torch.ones(2, 4), atol=1e-6, rtol=0)
    torch.testing.assert_close(got, full[:, rows], atol=1e-6, rtol=0)


def test_chunked_attention_equals_the_whole_affinity():
    attention = DGIAttention(16, reduction=4, chunk_size=1024)
    d = torch.randn(2, 16, 5, 7)  # N = 35
    with torch.no_grad():
        expected = (full_affinity(attention, d) @ d.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(d.shape)
        for chunk in (None, 1, 7, 35, 50):
            torch.testing.assert_close(attention(d, chunk_size=chunk), expected, atol=1e-6, rtol=0, msg=str(chunk))


def test_model_output_does_not_depend_on_the_attention_chunk_size(tiny):
    image, mask = inputs(SIZE)  # attention at 8 x 12: N = 96 (the tiny config's chunk is 16)
    with torch.no_grad():
        expected = tiny(image, mask, output_features=True)
        for chunk in (1, 5, 96, 1000):
            other = DGIModel(tiny.config.replace(attention_chunk_size=chunk)).eval()
            other.load_state_dict(tiny.state_dict())
            assert other.network.attention.chunk_size == chunk
            got = other(image, mask, output_features=True)
            torch.testing.assert_close(got.predicted, expected.predicted, atol=1e-6, rtol=0)
            torch.testing.assert_close(got.inpainted, expected.inpainted, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------- meta-networks


def test_channel_weights_are_a_distribution_per_image_and_start_uniform():
    weights = DGIChannelWeights(16)
    feature = torch.randn(3, 16, 5, 7) * 3
    with torch.no_grad():
        start = weights(feature)
    assert start.shape == (3, 16)
    torch.testing.assert_close(start, torch.full((3, 16), 1 / 16), atol=1e-7, rtol=0)
    with torch.no_grad():
        weights.linear.weight.normal_(0, 2, generator=torch.Generator().manual_seed(0))
        weights.linear.bias.normal_(0, 2, generator=torch.Generator().manual_seed(1))
        random = weights(feature)
    assert (random >= 0).all()
    torch.testing.assert_close(random.sum(dim=1), torch.ones(3), atol=1e-6, rtol=0)
    assert (random - 1 / 16).abs().max() > 0.05  # no longer uniform: the weights read the feature


def test_pixel_weights_are_in_the_open_unit_interval_and_do_not_train_the_teacher():
    weights = DGIPixelWeights(16)
    with torch.no_grad():
        weights.conv.weight.mul_(10)
    student = torch.randn(2, 16, 4, 6, requires_grad=True)
    teacher = torch.randn(2, 16, 4, 6, requires_grad=True)
    mask = (torch.rand(2, 1, 4, 6) > 0.5).float()
    t = weights(student, teacher, mask)
    assert t.shape == (2, 1, 4, 6)
    assert (t > 0).all() and (t < 1).all()
    assert t.std() > 0.05
    t.sum().backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None


def test_distiller_parameters_split_into_inner_and_meta():
    distiller = DGIDistiller(DGIConfig.tiny())
    inner = {id(p) for p in distiller.inner_parameters()}
    meta = {id(p) for p in distiller.meta_parameters()}
    assert inner and meta and not inner & meta
    assert inner | meta == {id(p) for p in distiller.parameters()}
    assert len(distiller.cross_adapters) == len(distiller.cross_weights) == 4
    assert len(distiller.self_adapters) == len(distiller.self_weights) == 3


# ------------------------------------------------------------------------------------------------- losses


def test_masked_channel_mse_by_hand_counts_the_hole_only():
    g = torch.Generator().manual_seed(0)
    prediction, target = torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 3, 4, 5, generator=g)
    mask = torch.zeros(2, 1, 4, 5)
    mask[0, 0, 1:3, 1:4] = 1  # 6 hole pixels in image 0, none in image 1
    weights = torch.softmax(torch.randn(2, 3, generator=g), dim=1)
    loss = masked_channel_mse(prediction, target, mask, weights)
    hole = mask[0, 0] > 0
    per_channel = ((prediction[0] - target[0])[:, hole] ** 2).sum(dim=1) / 6
    torch.testing.assert_close(loss, (weights[0] * per_channel).sum() / 2)  # image 1 adds 0 to the batch mean
    assert masked_channel_mse(target, target, mask, weights) == 0
    outside = prediction + (1 - mask) * torch.randn(2, 3, 4, 5, generator=g)
    assert torch.equal(masked_channel_mse(outside, target, mask, weights), loss)
    assert masked_channel_mse(target + mask * 0.1, target, mask, weights) > 0
    assert masked_channel_mse(prediction, target, torch.zeros(2, 1, 4, 5), weights) == 0
    with pytest.raises(ValueError, match="differ in shape"):
        masked_channel_mse(prediction, target[:, :2], mask, weights[:, :2])


def test_cross_distillation_is_zero_on_agreement_and_counts_each_levels_hole_only():
    config = DGIConfig.tiny()
    distiller = DGIDistiller(config)
    _, mask = inputs(SIZE)
    teacher = level_features(config)
    masks = [level_mask(mask, s) for s in config.level_strides]
    with torch.no_grad():
        assert all(loss == 0 for loss in distiller.cross_distillation(teacher, teacher, mask))  # gamma starts as id
        g = torch.Generator().manual_seed(1)
        student = tuple(f + (1 - m) * torch.randn(f.shape, generator=g) for f, m in zip(teacher, masks))
        assert all(loss == 0 for loss in distiller.cross_distillation(student, teacher, mask))
        moved_teacher = tuple(f + (1 - m) * torch.randn(f.shape, generator=g) for f, m in zip(teacher, masks))
        assert all(loss == 0 for loss in distiller.cross_distillation(teacher, moved_teacher, mask))
        for k in range(4):  # a change inside level k's hole counts at level k only
            inside = list(teacher)
            inside[k] = teacher[k] + masks[k] * torch.randn(teacher[k].shape, generator=g)
            losses = distiller.cross_distillation(tuple(inside), teacher, mask)
            assert [bool(loss > 0) for loss in losses] == [j == k for j in range(4)], k
            # at initialisation: gamma the identity and rho uniform (1 / C) -> a plain mean over channels and holes
            err = ((inside[k] - teacher[k]) ** 2 * masks[k]).sum(dim=(1, 2, 3))
            expected = (err / (config.level_channels[k] * masks[k].sum(dim=(1, 2, 3)))).mean()
            torch.testing.assert_close(losses[k], expected)


def test_cross_distillation_channel_weights_read_the_teacher():
    config = DGIConfig.tiny()
    distiller = DGIDistiller(config)
    widen_init(distiller.cross_weights)  # rho no longer uniform
    _, mask = inputs(SIZE)
    teacher, student = level_features(config, seed=0), level_features(config, seed=1)
    masks = [level_mask(mask, s) for s in config.level_strides]
    with torch.no_grad():
        losses = distiller.cross_distillation(student, teacher, mask)
        for k in range(4):
            rho = distiller.cross_weights[k](teacher[k])
            assert (rho - 1 / config.level_channels[k]).abs().max() > 1e-3
            expected = masked_channel_mse(student[k], teacher[k], masks[k], rho)  # gamma is still the identity
            torch.testing.assert_close(losses[k], expected)
        g = torch.Generator().manual_seed(3)
        moved = tuple(f + (1 - m) * torch.randn(f.shape, generator=g) for f, m in zip(student, masks))
        for before, after in zip(losses, distiller.cross_distillation(moved, teacher, mask)):
            assert torch.equal(before, after)


def _reach(mask: torch.Tensor, stride: int, size: tuple[int, int]) -> torch.Tensor:
    """The pixels of a level of size ``size`` that a 3x3 conv of ``stride`` reads to produce the hole ``mask``."""
    centres = torch.zeros(mask.shape[0], 1, *size)  # output pixel i reads rows stride * i - 1 .. stride * i + 1
    centres[..., ::stride, ::stride] = mask
    return F.max_pool2d(centres, 3, stride=1, padding=1)


def test_self_distillation_is_zero_when_the_adapter_reproduces_the_deeper_level():
    config = DGIConfig.tiny()  # widths 8, 16, 16, 16; strides 1, 2, 4, 4
    distiller = DGIDistiller(config)
    with torch.no_grad():
        for adapter in distiller.self_adapters:  # out channel o copies in channel o % C_in at the centre tap
            adapter.weight.zero_()
            adapter.bias.zero_()
            for o in range(adapter.out_channels):
                adapter.weight[o, o % adapter.in_channels, 1, 1] = 1
    _, mask = inputs(SIZE)
    x0 = torch.randn(2, 8, *SIZE)
    x1 = x0[:, [o % 8 for o in range(16)], ::2, ::2]  # a stride-2 centre tap reads pixel 2i
    x2 = x1[:, :, ::2, ::2]
    x3 = x2.clone()  # the bottleneck: stride 1
    with torch.no_grad():
        losses = distiller.self_distillation((x0, x1, x2, x3), mask)
        assert len(losses) == 3 and all(loss == 0 for loss in losses)
        moved = x3 + level_mask(mask, 4) * 0.5
        losses = distiller.self_distillation((x0, x1, x2, moved), mask)
    assert [bool(loss > 0) for loss in losses] == [False, False, True]


def test_self_distillation_reads_the_shallower_level_under_the_deeper_hole_only():
    config = DGIConfig.tiny()
    distiller = DGIDistiller(config)
    _, mask = inputs(SIZE, dots=False)
    features = level_features(config)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        before = distiller.self_distillation(features, mask)
        assert all(loss > 0 for loss in before)
        for k in range(3):
            x = features[k]
            step = config.level_strides[k + 1] // config.level_strides[k]
            reach = _reach(level_mask(mask, config.level_strides[k + 1]), step, x.shape[-2:])
            assert 0 < reach.mean() < 0.8
            outside, inside = list(features), list(features)
            outside[k] = x + (1 - reach) * torch.randn(x.shape, generator=g)
            inside[k] = x + level_mask(mask, config.level_strides[k]) * torch.randn(x.shape, generator=g)
            assert torch.equal(distiller.self_distillation(tuple(outside), mask)[k], before[k]), k
            assert distiller.self_distillation(tuple(inside), mask)[k] != before[k], k
    # the deeper level is a target only: no gradient reaches it through its own level's term
    leaves = [f.clone().requires_grad_() for f in features]
    distiller.self_distillation(tuple(leaves), mask)[0].backward()
    assert leaves[0].grad.abs().sum() > 0 and leaves[1].grad is None


def test_attention_transfer_loss_zero_on_agreement_and_holeless_images_add_nothing():
    attention = DGIAttention(16, reduction=4)
    d = torch.randn(2, 16, 4, 6)
    mask = torch.zeros(2, 1, 4, 6)
    mask[0, 0, 1:3, 2:5] = 1
    t = torch.full((2, 1, 4, 6), 0.7)
    with torch.no_grad():
        assert attention_transfer_loss(attention, d, attention, d, mask, t) == 0
        other = d + torch.randn(2, 16, 4, 6)
        both = attention_transfer_loss(attention, d, attention, other, mask, t)
        assert both > 0
        alone = attention_transfer_loss(attention, d[:1], attention, other[:1], mask[:1], t[:1])
        torch.testing.assert_close(both, alone / 2)  # image 1 has no hole: it adds 0 to the batch mean
        assert attention_transfer_loss(attention, d, attention, other, torch.zeros_like(mask), t) == 0
        assert attention_transfer_loss(attention, d, attention, other, mask, torch.zeros_like(t)) == 0


def test_attention_transfer_loss_compares_the_hole_pixels_rows():
    attention = DGIAttention(16, reduction=4)
    with torch.no_grad():
        attention.key.weight[:, 0] = 0  # channel 0 moves queries only: changing it at one pixel changes its row only
    teacher_d = torch.randn(1, 16, 4, 6)
    student_d = teacher_d.clone()
    student_d[0, 0, 2, 3] += 3.0
    pixel = 2 * 6 + 3
    with torch.no_grad():
        student_r, teacher_r = full_affinity(attention, student_d)[0], full_affinity(attention, teacher_d)[0]
    differs = (student_r != teacher_r).any(dim=1)
    assert differs.nonzero().flatten().tolist() == [pixel]
    row_distance = (student_r[pixel] - teacher_r[pixel]).abs().sum()
    assert row_distance > 1e-2
    t = torch.rand(1, 1, 4, 6, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    hole = torch.zeros(1, 1, 4, 6)
    hole[0, 0, 0:2, 0:2] = 1
    hole[0, 0, 3, 5] = 1
    with torch.no_grad():
        assert attention_transfer_loss(attention, student_d, attention, teacher_d, hole, t) == 0
        hole[0, 0, 2, 3] = 1  # now the differing row is a hole row: 6 hole pixels, one of them counts
        loss = attention_transfer_loss(attention, student_d, attention, teacher_d, hole, t)
    torch.testing.assert_close(loss, t[0, 0, 2, 3] * row_distance / 6)


def test_distiller_forward_sums_the_levels_and_distils_the_attention_input():
    config = DGIConfig.tiny()
    student, teacher, distiller = DGIModel(config).eval(), DGITeacher(config).eval(), DGIDistiller(config)
    image, mask = inputs(SIZE)
    with torch.no_grad():
        out = student(image, mask, output_features=True)
        _, features, d_star = teacher(image)
        losses = distiller(out.features, features, student.network.attention, teacher.network.attention, mask)
        cross = distiller.cross_distillation(out.features, features, mask)
        self_levels = distiller.self_distillation(out.features, mask)
        hole = level_mask(mask, 4)
        t = distiller.attention_weights(out.attention_input, d_star, hole)
        attention = attention_transfer_loss(
            student.network.attention, out.attention_input, teacher.network.attention, d_star, hole, t
        )
    assert len(losses.cross_levels) == 4 and len(losses.self_levels) == 3
    for got, expected in zip((*losses.cross_levels, *losses.self_levels), (*cross, *self_levels)):
        assert torch.equal(got, expected)
    torch.testing.assert_close(losses.cross, sum(cross))
    torch.testing.assert_close(losses.self, sum(self_levels))
    assert torch.equal(losses.attention, attention) and attention > 0


def test_level_mask_marks_a_cell_holding_any_hole_pixel():
    mask = torch.zeros(1, 1, 16, 16)
    mask[0, 0, 5, 9] = 1  # one pixel
    assert torch.equal(level_mask(mask, 1), mask)
    for stride in (2, 4):
        coarse = level_mask(mask, stride)
        assert coarse.shape == (1, 1, 16 // stride, 16 // stride)
        assert coarse.nonzero().tolist() == [[0, 0, 5 // stride, 9 // stride]]


# ------------------------------------------------------------------------------------------------- features, teacher


def test_features_and_teacher_have_the_levels_shapes(tiny):
    config = tiny.config
    image, mask = inputs(SIZE)
    teacher = DGITeacher(config).eval()
    with torch.no_grad():
        out = tiny(image, mask, output_features=True)
        plain = tiny(image, mask)
        reconstruction, teacher_features, teacher_d = teacher(image)
    assert isinstance(out, DGIOutput) and plain.features is None and plain.attention_input is None
    expected = [(2, c, SIZE[0] // s, SIZE[1] // s) for c, s in zip(config.level_channels, config.level_strides)]
    assert expected == [(2, 8, 32, 48), (2, 16, 16, 24), (2, 16, 8, 12), (2, 16, 8, 12)]
    assert [tuple(f.shape) for f in out.features] == expected
    assert torch.equal(out.attention_input, out.features[-1])
    assert torch.equal(out.predicted, plain.predicted)
    assert [tuple(f.shape) for f in teacher_features] == expected
    assert torch.equal(teacher_d, teacher_features[-1])
    assert reconstruction.shape == image.shape
    assert reconstruction.min() >= 0 and reconstruction.max() <= 1
    assert teacher.network.completion is None and tiny.network.completion is not None


def test_discriminator_scores_patches_with_spectral_norm():
    critic = DGIDiscriminator(DGIConfig.tiny())
    convs = [m for m in critic.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5
    assert all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    for _ in range(30):  # each training forward runs one power iteration
        out = critic(image)
    assert out.shape == (2, 1, 6, 6)
    with torch.no_grad():
        for conv in convs:
            sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
            assert abs(sigma.item() - 1) < 0.05


# ------------------------------------------------------------------------------------------------- gradients


def _distillation_step(widen: bool):
    config = DGIConfig.tiny()
    student, teacher, distiller = DGIModel(config).train(), DGITeacher(config).train(), DGIDistiller(config)
    if widen:
        widen_init(student, gain=0.5)
        widen_init(distiller, seed=1, gain=0.5)
    image, mask = inputs(SIZE, dots=False)
    out = student(image, mask, output_features=True)
    _, teacher_features, _ = teacher(image)
    losses = distiller(out.features, teacher_features, student.network.attention, teacher.network.attention, mask)
    return student, teacher, distiller, (out.predicted - image).abs().mean(), losses


def _grad_norms(params) -> dict[str, float]:
    norms = {}
    for name, p in params:
        assert p.grad is not None, f"{name} received no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        norms[name] = p.grad.abs().sum().item()
    return norms


def test_one_backward_reaches_the_student_and_the_distillers_inner_and_meta_parameters():
    student, teacher, distiller, l1, losses = _distillation_step(widen=True)
    assert losses.cross > 0 and losses.self > 0 and losses.attention > 0
    (l1 + losses.cross + losses.self + losses.attention).backward()
    norms = _grad_norms(student.named_parameters())
    norms |= _grad_norms((f"distiller.{n}", p) for n, p in distiller.named_parameters())  # inner and meta
    assert {n for n, v in norms.items() if v == 0} == set()
    assert all(p.grad is None for p in teacher.parameters())  # detached features, no teacher loss here


def test_at_initialisation_only_layers_feeding_a_zero_layer_get_a_zero_gradient():
    # The offset head of every adaptive convolution and the residual branch of every gamma end in a zero-initialised
    # convolution: the layer before it gets exactly zero gradient until that convolution moves.
    student, _, distiller, l1, losses = _distillation_step(widen=False)
    (l1 + losses.cross + losses.self + losses.attention).backward()
    norms = _grad_norms(student.named_parameters())
    norms |= _grad_norms((f"distiller.{n}", p) for n, p in distiller.named_parameters())
    zero = {n for n, v in norms.items() if v == 0}
    expected = {f"network.completion.{k}.fill.offset.0.{w}" for k in range(4) for w in ("weight", "bias")}
    expected |= {f"distiller.cross_adapters.{k}.body.0.{w}" for k in range(4) for w in ("weight", "bias")}
    assert zero == expected


def test_distillation_losses_alone_train_the_meta_networks_and_never_the_teacher():
    student, teacher, distiller, _, losses = _distillation_step(widen=False)
    (losses.cross + losses.self + losses.attention).backward()
    for i, p in enumerate(distiller.meta_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, i
    assert all(p.grad is None for p in teacher.parameters())
    assert student.network.levels[0][1].weight.grad.abs().sum() > 0  # the encoder is pulled by the distillation
    assert all(p.grad is None for p in student.network.decoder.parameters())  # the decoder is not


def test_distiller_switches_turn_terms_off():
    student, teacher, distiller, _, _ = _distillation_step(widen=False)
    image, mask = inputs(SIZE, dots=False)
    with torch.no_grad():
        out = student(image, mask, output_features=True)
        _, features, _ = teacher(image)
        losses = distiller(
            out.features, features, student.network.attention, teacher.network.attention, mask,
            cross=False, self_distill=False, attention=False,
        )  # fmt: skip
    assert losses.cross == losses.self == losses.attention == 0
    assert losses.cross_levels == losses.self_levels == ()


# ------------------------------------------------------------------------------------------------- saving


def test_saved_weights_are_the_students_only_and_reload_identically(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "dgi")
    state = load_file(tmp_path / "dgi" / "model.safetensors")
    assert set(state) == {name for name, _ in tiny.named_parameters()}  # parameters only: no buffers, no teacher
    assert all(key.startswith("network.") for key in state)
    assert any(".completion." in key for key in state)  # the student's own blocks (the teacher has none)
    for word in ("teacher", "distiller", "adapters", "cross_", "self_", "attention_weights"):
        assert not any(word in key for key in state), word
    assert state["network.levels.0.1.weight"].shape[1] == 4  # the student's [image, mask] input, not the teacher's 3
    image, mask = inputs(SIZE)
    with torch.no_grad():
        expected = tiny(image, mask)
    for loader in (DGIModel, AutoInpaintModel):
        loaded = loader.from_pretrained(tmp_path / "dgi")
        assert type(loaded) is DGIModel and loaded.config == tiny.config
        with torch.no_grad():
            got = loaded(image, mask)
        assert torch.equal(got.inpainted, expected.inpainted) and torch.equal(got.predicted, expected.predicted)


# ------------------------------------------------------------------------------------------------- config, sizes


def test_presets_validate_and_level_tables():
    default = DGIConfig()
    assert default.level_channels == (64, 128, 256, 256) and default.level_strides == (1, 2, 4, 4)
    assert DGIConfig.paper() == default
    assert DGIConfig.small().level_channels == (24, 48, 96, 96)
    assert DGIConfig.tiny().level_channels == (8, 16, 16, 16) and DGIConfig.tiny().level_strides == (1, 2, 4, 4)
    for preset in (DGIConfig.paper, DGIConfig.small, DGIConfig.tiny):
        config = preset()
        assert DGIConfig.from_dict(config.to_dict()) == config
    assert DGIConfig(num_downsamples=3).level_strides == (1, 2, 4, 8, 8)
    assert DGIConfig(num_downsamples=3).level_channels == (64, 128, 256, 256, 256)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"completion_kernel_size": 4}, "completion_kernel_size"),
        ({"base_channels": 12, "max_channels": 48, "completion_groups": 8}, "completion_groups"),
        ({"base_channels": 64, "max_channels": 32}, "max_channels"),
        ({"attention_reduction": 32}, "attention_reduction"),
        ({"base_channels": 2}, "base_channels"),
        ({"num_downsamples": 5}, "num_downsamples"),
        ({"attention_chunk_size": 0}, "attention_chunk_size"),
    ],
)
def test_invalid_configs_name_the_field(changes, field):
    with pytest.raises(ValidationError, match=field):
        DGIConfig.tiny().replace(**changes)


def test_sizes_off_the_multiple_or_below_the_minimum_are_refused(tiny):
    assert tiny.size_multiple == 4 and tiny.min_size == 16
    with torch.no_grad():
        assert tiny(torch.rand(1, 3, 16, 20), torch.ones(1, 1, 16, 20)).inpainted.shape == (1, 3, 16, 20)
        with pytest.raises(ValueError, match="divisible by 4, got 18x20"):
            tiny(torch.rand(1, 3, 18, 20), torch.zeros(1, 1, 18, 20))
        with pytest.raises(ValueError, match="at least 16, got 12x32"):
            tiny(torch.rand(1, 3, 12, 32), torch.zeros(1, 1, 12, 32))


@pytest.mark.parametrize(("downsamples", "dilation"), [(1, 5), (2, 4), (3, 1)])
def test_min_size_is_enough_for_the_bottlenecks_padding(downsamples, dilation):
    config = DGIConfig.tiny().replace(num_downsamples=downsamples, bottleneck_dilation=dilation)
    model = DGIModel(config).eval()
    size = model.min_size
    assert size % model.size_multiple == 0
    with torch.no_grad():
        out = model(torch.rand(1, 3, size, size), torch.zeros(1, 1, size, size), output_features=True)
    assert out.inpainted.shape == (1, 3, size, size)
    assert len(out.features) == downsamples + 2


def test_variants_without_completion_blocks_or_fusion_run():
    config = DGIConfig.tiny().replace(completion_blocks=False, global_local_fusion=False)
    model = DGIModel(config).eval()
    assert model.network.completion is None
    assert not any("completion" in key for key in model.state_dict())
    image, mask = inputs(SIZE)
    with torch.no_grad():
        out = model(image, mask)
    hole = mask.expand_as(image) > 0
    assert torch.equal(out.inpainted[~hole], image[~hole])


def test_norm_none_drops_every_instance_norm_and_keeps_the_weight_names():
    instance, plain = DGIConfig.tiny(), DGIConfig.tiny().replace(norm="none")
    for build in (DGIModel, DGITeacher):
        with_norm, without = build(instance), build(plain)
        assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in with_norm.modules())
        assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in without.modules())
        # InstanceNorm here has no parameters: the same weights load into either, and the outputs differ
        assert list(with_norm.state_dict()) == list(without.state_dict())
    student, plain_student = DGIModel(instance).eval(), DGIModel(plain).eval()
    plain_student.load_state_dict(student.state_dict())
    image, mask = inputs(SIZE)
    with torch.no_grad():
        normed, raw = student(image, mask), plain_student(image, mask)
    assert not torch.allclose(normed.predicted, raw.predicted)
    with pytest.raises(ValidationError, match="norm"):
        DGIConfig.tiny().replace(norm="batch")
