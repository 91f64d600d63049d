"""DeepFill v2's building blocks: parameter counts, TF-SAME padding, TF nearest downsampling, contextual attention.

The shared model contract (shapes, known pixels, save/load, determinism, ...) is in ``test_model_contract.py``; the
golden vectors of the original are reproduced through the converter in ``test_convert_deepfill_v2.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from inpaint_hub import AutoInpaintModel
from inpaint_hub.models.deepfill_v2 import (
    DeepFillV2Config,
    DeepFillV2Discriminator,
    DeepFillV2Model,
    contextual_attention,
    nn_downsample_tf,
    pad_same,
    tf_same_padding,
)
from inpaint_hub.models.deepfill_v2.modeling_deepfill_v2 import _fuse_scores


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------------- sizes


def test_parameter_counts_match_the_released_model():
    config = DeepFillV2Config.places2()
    assert _count(DeepFillV2Model(config)) == 4_052_478
    assert _count(DeepFillV2Discriminator(config)) == 5_946_816


def test_layer_names_are_the_originals_tf_scopes():
    encoder = ["conv1", "conv2_downsample", "conv3", "conv4_downsample", "conv5", "conv6"]
    dilated = ["conv7_atrous", "conv8_atrous", "conv9_atrous", "conv10_atrous"]
    decoder = ["conv11", "conv12", "conv13_upsample", "conv14", "conv15_upsample", "conv16", "conv17"]
    expected = {
        "stage1": encoder + dilated + decoder,
        "stage2_conv": ["x" + name for name in encoder + dilated],
        "stage2_attention": ["pm" + name for name in encoder] + ["pmconv9", "pmconv10"],
        "stage2_merge": ["all" + name for name in decoder],
    }
    model = DeepFillV2Model(DeepFillV2Config.tiny())
    assert {group: list(getattr(model, group)) for group in expected} == expected  # in forward order
    assert len(model.state_dict()) == 84  # the original's 84 tensors


def test_gated_layers_output_half_their_filters():
    model = DeepFillV2Model(DeepFillV2Config.places2())
    conv1 = model.stage1["conv1"]
    assert conv1.conv.out_channels == 48 and conv1.gated
    out = conv1(torch.zeros(1, 5, 16, 16))
    assert out.shape == (1, 24, 16, 16)
    head = model.stage1["conv17"]
    assert not head.gated and head(torch.zeros(1, 12, 8, 8)).shape == (1, 3, 8, 8)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "dilation", "expected"),
    [
        (8, 3, 1, 1, (1, 1)),
        (9, 3, 1, 1, (1, 1)),
        (8, 3, 2, 1, (0, 1)),  # even input, stride 2: TF pads only the bottom/right
        (9, 3, 2, 1, (1, 1)),  # odd input, stride 2: symmetric
        (8, 5, 2, 1, (1, 2)),  # the discriminator's 5x5 stride 2 on an even size
        (7, 5, 2, 1, (2, 2)),
        (8, 5, 1, 1, (2, 2)),
        (8, 3, 1, 2, (2, 2)),  # dilation 2: effective kernel 5
        (8, 3, 1, 16, (16, 16)),
        (8, 4, 2, 1, (1, 1)),  # the attention's 4x4 raw patches
        (1, 3, 2, 1, (1, 1)),
    ],
)
def test_tf_same_padding_hand_computed(size, kernel, stride, dilation, expected):
    assert tf_same_padding(size, kernel, stride, dilation) == expected
    # and the padded convolution has TF's SAME output size, ceil(size / stride)
    x = torch.zeros(1, 1, size, size + 1)
    weight = torch.zeros(1, 1, kernel, kernel)
    y = F.conv2d(pad_same(x, kernel, stride, dilation), weight, stride=stride, dilation=dilation)
    assert y.shape[-2:] == (math.ceil(size / stride), math.ceil((size + 1) / stride))


def test_pad_same_puts_the_odd_pixel_bottom_right():
    x = torch.ones(1, 1, 4, 4)
    padded = pad_same(x, 3, 2)
    assert padded.shape[-2:] == (5, 5)
    assert padded[0, 0, :4, :4].eq(1).all() and padded[0, 0, 4].eq(0).all() and padded[0, 0, :, 4].eq(0).all()


def test_nn_downsample_tf_keeps_the_corners_like_align_corners():
    x = torch.arange(64.0).view(1, 1, 64, 1).expand(1, 1, 64, 2)
    rows = nn_downsample_tf(x, 2)[0, 0, :, 0].long().tolist()
    assert rows == [math.floor(i * 63 / 31 + 0.5) for i in range(32)]
    assert rows[0] == 0 and rows[-1] == 63
    # not torch's nearest, which takes every second row
    assert rows != F.interpolate(x, scale_factor=0.5, mode="nearest")[0, 0, :, 0].long().tolist()


# ------------------------------------------------------------------------------------------------- attention


def _attention_case():
    """Features whose best-matching known patches are known.

    Three channels: [is A, is B, label]. The known region has an A half (label 7) and a B half (label 5); the hole
    carries B features with label 100. The foreground asks for B everywhere in the hole (label channel 0), so every
    hole target must be rebuilt from the B half's patches: label 5, never 7 (A is orthogonal) and never 100 (hole
    patches are not valid sources even though their features match as well).
    """
    h = w = 32  # the H/4 feature; the mask is 4x larger
    background = torch.zeros(1, 3, h, w)
    background[:, 0, :, : w // 2] = 1.0
    background[:, 2, :, : w // 2] = 7.0
    background[:, 1, :, w // 2 :] = 1.0
    background[:, 2, :, w // 2 :] = 5.0
    mask = torch.zeros(1, 1, 4 * h, 4 * w)
    top, left, size = 10, 12, 10  # hole on the feature grid, straddling both halves
    mask[:, :, 4 * top : 4 * (top + size), 4 * left : 4 * (left + size)] = 1
    background[:, :, top : top + size, left : left + size] = torch.tensor([0.0, 1.0, 100.0]).view(1, 3, 1, 1)
    foreground = background.clone()
    foreground[:, :, top : top + size, left : left + size] = torch.tensor([0.0, 10.0, 0.0]).view(1, 3, 1, 1)
    return foreground, background, mask, (top, left, size)


@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("mask_resize", ["one_step", "two_step"])
def test_contextual_attention_copies_the_best_matching_known_patches(fuse, mask_resize):
    foreground, background, mask, (top, left, size) = _attention_case()
    out = contextual_attention(foreground, background, mask, fuse=fuse, mask_resize=mask_resize)
    assert out.shape == background.shape
    inner = out[0, :, top + 2 : top + size - 2, left + 2 : left + size - 2]  # away from the transposed conv's edges
    # Targets near the hole's border also see known context in their 3x3 patch, and a few B sources' 4x4 raw patches
    # reach the zero padding: a few hundredths of spread, far from the A label (7) and the hole's (100).
    assert torch.allclose(inner[2], torch.full_like(inner[2], 5.0), atol=0.1), inner[2]
    assert torch.allclose(inner[1], torch.ones_like(inner[1]), atol=0.02)
    assert inner[0].abs().max() < 1e-3
    assert out[0, 2].max() < 99  # the hole's own patches never contribute


def test_contextual_attention_rebuilds_known_positions_from_themselves():
    # A known target matches its own patch best (cosine 1); with distinct random features and a large softmax scale
    # the output there is the background itself (interior pixels are covered by four 4x4 patches, hence /4).
    g = torch.Generator().manual_seed(0)
    background = torch.randn(1, 4, 16, 16, generator=g)
    mask = torch.zeros(1, 1, 64, 64)
    out = contextual_attention(background, background, mask, softmax_scale=1000.0, fuse=False)
    small = nn_downsample_tf(background, 2)
    assert small.shape[-2:] == (8, 8)
    # position (i, j) of the small grid pastes the 4x4 patch of the full map centred on (2i, 2j) (padding 1)
    for i, j in [(3, 3), (4, 5), (2, 6)]:
        # every full-resolution pixel is covered by 4 patches; for the interior ones of a self-match the result
        # equals the background where the four neighbouring targets each copy themselves.
        block = out[0, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
        assert torch.allclose(block, background[0, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2], atol=1e-4)


def test_contextual_attention_uses_each_samples_own_mask():
    foreground, background, mask, _ = _attention_case()
    other = torch.zeros_like(mask)
    batched = contextual_attention(
        foreground.repeat(2, 1, 1, 1), background.repeat(2, 1, 1, 1), torch.cat([mask, other])
    )
    assert torch.allclose(batched[0:1], contextual_attention(foreground, background, mask), atol=1e-5)
    assert torch.allclose(batched[1:2], contextual_attention(foreground, background, other), atol=1e-5)


def test_contextual_attention_rejects_a_mismatched_mask():
    x = torch.zeros(1, 2, 16, 16)
    with pytest.raises(ValueError, match="does not match"):
        contextual_attention(x, x, torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="mask_resize"):
        contextual_attention(x, x, torch.zeros(1, 1, 64, 64), mask_resize="bilinear")


def _fuse_reference(scores: torch.Tensor, k: int, h: int, w: int) -> torch.Tensor:
    """The original's fuse, by loops: identity-kernel convolution of the [L, L] matrix in row-major order, then in
    column-major order of both grids."""
    n = h * w
    r = k // 2

    def diag(matrix):
        out = torch.zeros_like(matrix)
        for a in range(n):
            for b in range(n):
                out[a, b] = sum(matrix[a + d, b + d] for d in range(-r, r + 1) if 0 <= a + d < n and 0 <= b + d < n)
        return out

    first = diag(scores)
    col_major = [(p % h) * w + p // h for p in range(n)]  # column-major position p -> row-major index
    swapped = first[col_major][:, col_major]
    second = diag(swapped)
    back = torch.empty_like(second)
    back[torch.tensor(col_major)[:, None], torch.tensor(col_major)[None, :]] = second
    return back


def test_fuse_matches_a_loop_reference():
    g = torch.Generator().manual_seed(1)
    h, w = 3, 4
    scores = torch.randn(h * w, h * w, generator=g)
    assert torch.allclose(_fuse_scores(scores, 3, h, w), _fuse_reference(scores, 3, h, w), atol=1e-5)


def test_fuse_favours_coherent_shifts():
    # Two equally good sources for every target; fuse makes the one whose neighbours also match (a coherent shift)
    # win.
    h = w = 8
    small = torch.zeros(h * w, h * w)
    for t in range(h * w):
        ti, tj = divmod(t, w)
        small[(ti * w + (tj + 4) % w), t] = 1.0  # a coherent shift by 4 columns
    lonely = torch.zeros_like(small)
    lonely[5, 20] = 1.0  # a single, isolated match of the same strength
    fused = _fuse_scores(small + lonely, 3, h, w)
    assert fused[(2 * w + 4 + 4) % (h * w), 2 * w + 4] > fused[5, 20]


# ------------------------------------------------------------------------------------------------- model


def test_bgr_config_flips_channels_in_and_out():
    torch.manual_seed(0)
    rgb = DeepFillV2Model(DeepFillV2Config(base_channels=8, channel_order="rgb")).eval()
    bgr = DeepFillV2Model(rgb.config.model_copy(update={"channel_order": "bgr"})).eval()
    bgr.load_state_dict(rgb.state_dict())
    image = torch.rand(1, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:20, 10:24] = 1
    with torch.no_grad():
        a = rgb(image.flip(1), mask)
        b = bgr(image, mask)
    assert torch.allclose(a.predicted.flip(1), b.predicted, atol=1e-6)
    assert torch.allclose(a.coarse.flip(1), b.coarse, atol=1e-6)


def test_coarse_output_and_generate_conventions():
    model = DeepFillV2Model(DeepFillV2Config(base_channels=8, channel_order="rgb")).eval()
    image = torch.rand(2, 3, 32, 40)
    mask = torch.zeros(2, 1, 32, 40)
    mask[:, :, 4:20, 8:30] = 1
    with torch.no_grad():
        out = model(image, mask)
        x = torch.cat([(image * 2 - 1) * (1 - mask), torch.ones_like(mask), mask], dim=1)
        stage1, stage2 = model.generate(x, mask)
    assert out.coarse.shape == image.shape and 0 <= out.coarse.min() and out.coarse.max() <= 1
    assert torch.allclose(out.coarse, (stage1 + 1) / 2) and torch.allclose(out.predicted, (stage2 + 1) / 2)


def test_config_round_trip_and_validation(tmp_path):
    config = DeepFillV2Config(base_channels=8, fuse=False, channel_order="rgb", attention_mask_resize="one_step")
    model = DeepFillV2Model(config)
    model.save_pretrained(tmp_path)
    loaded = AutoInpaintModel.from_pretrained(tmp_path)
    assert isinstance(loaded, DeepFillV2Model) and loaded.config == config
    with pytest.raises(ValueError, match="multiple of 4"):
        DeepFillV2Config(base_channels=10)
    with pytest.raises(ValueError, match="odd"):
        DeepFillV2Config(attention_patch_size=4)
    with pytest.raises(ValueError):
        DeepFillV2Config(channel_order="rbg")


def test_discriminator_scores_patches():
    config = DeepFillV2Config.tiny()
    disc = DeepFillV2Discriminator(config)
    scores = disc(torch.randn(2, 4, 64, 96))
    assert scores.shape == (2, 4 * config.discriminator_base_channels * 1 * 2)  # 64 / 2**6 = 1, 96 / 64 -> 2
    assert all(hasattr(conv, "weight_orig") for conv in disc.convs)  # spectral norm on every layer
