"""PEN-Net specifics: parameter counts and key table of the original, the attention transfer (chunking, which source
patches it copies and which it must never copy), the pyramid, size and config validation.

The shared model contract (known pixels, round trips, strict loading, pipeline sizes...) is in
``test_model_contract.py``.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from inpaint_hub.models.pennet import (
    PENNetConfig,
    PENNetDiscriminator,
    PENNetModel,
    PENNetOutput,
    attention_transfer,
    modeling_pennet,
)
from inpaint_hub.models.pennet.convert_pennet_original import original_pennet_forward, rename_key


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def widened(config: PENNetConfig, seed: int = 0) -> PENNetModel:
    """A model whose conv weights are He-normal: the original N(0, 0.02) init makes a tiny model output 0.5 +- 1e-7,
    so equalities within 1e-5 would hold trivially."""
    model = PENNetModel(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.normal_(0.0, (2.0 / module.weight[0].numel()) ** 0.5, generator=g)
                module.bias.uniform_(-0.1, 0.1, generator=g)
    return model.eval()


def box_masks(batch: int, h: int, w: int) -> torch.Tensor:
    """A different rectangular hole per sample."""
    mask = torch.zeros(batch, 1, h, w)
    mask[0, :, h // 4 : 3 * h // 4, w // 8 : w // 2] = 1
    if batch > 1:
        mask[1, :, h // 2 :, w // 3 : w - w // 8] = 1
    return mask


@pytest.fixture(scope="module")
def original_keys(golden_dir) -> dict:
    """``keys_pennet_default.json`` (beside the golden folder): the released generator's tensor names and shapes."""
    return json.loads((golden_dir.parent / "keys_pennet_default.json").read_text())


@pytest.fixture(scope="module")
def default_model() -> PENNetModel:
    return PENNetModel(PENNetConfig())


# ----------------------------------------------------------------------------------------------- released architecture


def test_parameter_counts_match_the_original(default_model):
    # MODELS.md section 0 / 2.1 / 2.2: counted by instantiating the original InpaintGenerator and Discriminator
    assert count(default_model) == 10_231_538
    assert len(default_model.state_dict()) == 68  # no buffers, as the original
    assert count(PENNetDiscriminator(PENNetConfig())) == 4_318_401
    assert PENNetConfig.places2() == PENNetConfig()


def test_state_dict_matches_the_original_key_table_through_rename_key(default_model, original_keys):
    ours = {k: tuple(v.shape) for k, v in default_model.state_dict().items()}
    keys = original_keys["keys"]
    assert len(keys) == original_keys["n_tensors"] == 68
    renamed = {}
    for key, info in keys.items():
        target = rename_key(key)
        assert target in ours, f"{key} -> {target}, which the model does not have"
        assert ours[target] == tuple(info["shape"]), key
        assert target not in renamed, f"{key} and {renamed.get(target)} both map to {target}"
        renamed[target] = key
    assert set(renamed) == set(ours)  # every model tensor comes from exactly one original tensor


@pytest.mark.parametrize("key", ["at_conv05.conv00.0.weight", "dw_conv07.0.weight", "decoder.1.weight", "netG"])
def test_rename_key_refuses_tensors_the_original_does_not_have(key):
    with pytest.raises(ValueError, match="unexpected original tensor"):
        rename_key(key)


def test_discriminator_tensor_shapes_match_the_original(original_keys):
    ours = PENNetDiscriminator(PENNetConfig()).state_dict()
    original = original_keys["discriminator_keys"]
    assert Counter(tuple(v.shape) for v in ours.values()) == Counter(tuple(s) for s in original.values())
    # spectral norm on the four 5x5 convs (weight_orig/_u/_v), none on the biased classifier
    assert sum(k.endswith("weight_orig") for k in ours) == 4 and "classifier.bias" in ours


# ------------------------------------------------------------------------------------------------- attention transfer


@pytest.mark.parametrize("patch_size", [1, 3])
def test_attention_transfer_chunked_equals_unchunked(patch_size):
    """Non-square, batch 2 with a different hole per sample; block sizes of 1, 2, 4 (uneven) and 5 rows of 6."""
    g = torch.Generator().manual_seed(0)
    h, w = 6, 10
    low = torch.randn(2, 5, 2 * h, 2 * w, generator=g)
    high = torch.randn(2, 7, h, w, generator=g)
    mask = box_masks(2, 4 * h, 4 * w)
    kwargs = dict(patch_size=patch_size, softmax_scale=10.0)
    reference = attention_transfer(low, high, mask, chunk_elements=None, **kwargs)
    assert reference.shape == low.shape
    row = (h * w) * w  # scores of one row of targets
    for chunk in (1, row, 2 * row, 4 * row, 5 * row + 1, 10**9):
        chunked = attention_transfer(low, high, mask, chunk_elements=chunk, **kwargs)
        torch.testing.assert_close(chunked, reference, atol=1e-5, rtol=0, msg=f"chunk_elements={chunk}")
    # each sample attends with its own mask
    for i in range(2):
        single = attention_transfer(low[i : i + 1], high[i : i + 1], mask[i : i + 1], chunk_elements=7, **kwargs)
        torch.testing.assert_close(single, reference[i : i + 1], atol=1e-5, rtol=0)
    swapped = attention_transfer(low, high, mask.flip(0), chunk_elements=None, **kwargs)
    assert not torch.allclose(swapped, reference, atol=1e-3)


# A constructed case on an 8 x 10 high-level map (low level 16 x 20). Every high-level position has its own one-hot
# feature, so two patches have cosine similarity 1 only if they hold the same positions' features. The hole is the
# 2 x 2 block HOLE; the block SOURCE, three rows down and five columns left, is fully valid. The high-level features of
# HOLE and its one-position ring are overwritten with those of SOURCE and its ring, so every hole target's patch equals
# exactly one valid source patch (and its own, which is in the hole and must not be used).
H, W = 8, 10
HOLE = (slice(2, 4), slice(6, 8))
SHIFT = (3, -5)


def constructed_case(patch_size: int, hole_value: float = 1000.0, *, copy: bool = True):
    """``(low, high, mask)``; without ``copy`` the hole targets resemble no valid source (all cosines 0)."""
    high = torch.eye(H * W).reshape(1, H * W, H, W)
    if copy:
        ring = 1 if patch_size == 3 else 0
        rows = slice(HOLE[0].start - ring, HOLE[0].stop + ring)
        cols = slice(HOLE[1].start - ring, HOLE[1].stop + ring)
        src_rows = slice(rows.start + SHIFT[0], rows.stop + SHIFT[0])
        src_cols = slice(cols.start + SHIFT[1], cols.stop + SHIFT[1])
        high[..., rows, cols] = high[..., src_rows, src_cols].clone()
    mask = torch.zeros(1, 1, H, W)  # already at the high-level size: the bilinear resize is the identity
    mask[..., HOLE[0], HOLE[1]] = 1
    low = torch.rand(1, 6, 2 * H, 2 * W, generator=torch.Generator().manual_seed(0))
    # The low-level pixels that only hole-touching source patches cover (4x4 patches, stride 2, padding 1): with 3x3
    # similarity patches every source within one position of the hole is invalid, which excludes the whole low-level
    # hole; with 1x1 patches the hole's direct neighbours are valid and reach one low-level pixel into it.
    inner = 0 if patch_size == 3 else 1
    low_hole = (
        slice(2 * HOLE[0].start + inner, 2 * HOLE[0].stop - inner),
        slice(2 * HOLE[1].start + inner, 2 * HOLE[1].stop - inner),
    )
    low[..., low_hole[0], low_hole[1]] = hole_value
    return low, high, mask


@pytest.mark.parametrize("chunk_elements", [None, 1])
@pytest.mark.parametrize("patch_size", [1, 3])
def test_attention_copies_the_best_matching_valid_source(patch_size, chunk_elements):
    low, high, mask = constructed_case(patch_size)
    out = attention_transfer(
        low, high, mask, patch_size=patch_size, softmax_scale=100.0, chunk_elements=chunk_elements
    )
    # Low-level pixels covered only by hole targets: rows 5-6, columns 13-14. All four targets covering each of them
    # attend to the source shifted by SHIFT, so the output there is the low-level feature shifted by 2 * SHIFT.
    target = (slice(2 * HOLE[0].start + 1, 2 * HOLE[0].stop - 1), slice(2 * HOLE[1].start + 1, 2 * HOLE[1].stop - 1))
    source = (
        slice(target[0].start + 2 * SHIFT[0], target[0].stop + 2 * SHIFT[0]),
        slice(target[1].start + 2 * SHIFT[1], target[1].stop + 2 * SHIFT[1]),
    )
    expected = low[..., source[0], source[1]]
    assert expected.max() <= 1  # a real low-level patch, not the hole marker
    torch.testing.assert_close(out[..., target[0], target[1]], expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("copy", [True, False], ids=["matching-source", "no-matching-source"])
@pytest.mark.parametrize("chunk_elements", [None, 1])
@pytest.mark.parametrize("patch_size", [1, 3])
def test_attention_never_copies_from_source_patches_touching_the_hole(patch_size, chunk_elements, copy):
    """The hole's own patch is at least as similar to each hole target as any valid source; copying it would bring
    the 1000 planted in the low-level hole into the output (the original's 1e-8 score floor leaks at most ~1e-4).
    Without a matching source every valid score is 0 and the softmax is flat: the hole-touching sources must still
    get no weight (the original masks the scores both before and after the softmax)."""
    low, high, mask = constructed_case(patch_size, hole_value=1000.0, copy=copy)
    out = attention_transfer(
        low, high, mask, patch_size=patch_size, softmax_scale=100.0, chunk_elements=chunk_elements
    )
    assert out.max() < 1 + 1e-3
    # The same construction with the validity mask ignored (no hole) does copy the marker: the test can fail.
    leaked = attention_transfer(low, high, torch.zeros_like(mask), patch_size=patch_size, softmax_scale=100.0)
    assert leaked.max() > 100


def test_attention_transfer_rejects_mismatched_levels():
    with pytest.raises(ValueError, match="twice the high-level"):
        attention_transfer(torch.rand(1, 4, 16, 18), torch.rand(1, 4, 8, 8), torch.zeros(1, 1, 32, 32))


# ------------------------------------------------------------------------------------------------- generator


def test_output_has_a_five_level_pyramid_in_unit_range():
    model = widened(PENNetConfig.tiny())
    image, mask = torch.rand(2, 3, 64, 128), box_masks(2, 64, 128)
    with torch.no_grad():
        out = model(image, mask)
    assert isinstance(out, PENNetOutput)
    assert len(out.pyramid) == 5
    for k, level in enumerate(out.pyramid, start=1):
        assert level.shape == (2, 3, 64 // 2**k, 128 // 2**k), k
        assert level.min() >= 0 and level.max() <= 1, k
        assert level.std() > 1e-3, k  # an actual image, not a constant


def test_forward_uses_the_original_conventions_and_matches_an_independent_implementation(original_keys):
    """The converter's functional re-implementation of the original forward (original tensor names, unchunked
    attention, [-1, 1] with holes filled +1) agrees with the module on a tiny width, both chunked and not."""
    model = widened(PENNetConfig.tiny().replace(attention_chunk_elements=1))
    ours = model.state_dict()
    original = {key: ours[rename_key(key)] for key in original_keys["keys"]}
    image, mask = torch.rand(2, 3, 64, 128), box_masks(2, 64, 128)
    reference = original_pennet_forward(original, image, mask)
    with torch.no_grad():
        out = model(image, mask)
    torch.testing.assert_close(out.predicted * 2 - 1, reference["output"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.inpainted * 2 - 1, reference["comp"], atol=1e-5, rtol=0)
    for k, level in enumerate(out.pyramid):
        torch.testing.assert_close(level * 2 - 1, reference[f"pyramid_{k}"], atol=1e-5, rtol=0)


@pytest.mark.parametrize(("height", "width"), [(96, 128), (64, 96), (32, 32), (200, 256)])
def test_forward_rejects_sizes_that_are_not_multiples_of_64(height, width):
    model = PENNetModel(PENNetConfig.tiny())
    assert model.size_multiple == 64
    with pytest.raises(ValueError, match=f"divisible by 64, got {height}x{width}"):
        model(torch.rand(1, 3, height, width), torch.zeros(1, 1, height, width))


def test_attention_chunking_in_the_generator_does_not_change_the_output(monkeypatch):
    small = widened(PENNetConfig.tiny().replace(attention_chunk_elements=1))
    large = PENNetModel(PENNetConfig.tiny().replace(attention_chunk_elements=2**40)).eval()
    large.load_state_dict(small.state_dict())
    image, mask = torch.rand(2, 3, 128, 192), box_masks(2, 128, 192)

    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs["chunk_elements"])
        return attention_transfer(*args, **kwargs)

    monkeypatch.setattr(modeling_pennet, "attention_transfer", spy)
    with torch.no_grad():
        a, b = small(image, mask), large(image, mask)
    assert seen == [1] * 5 + [2**40] * 5  # the config value reaches all five transfers
    torch.testing.assert_close(a.predicted, b.predicted, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.inpainted, b.inpainted, atol=1e-5, rtol=0)
    for level_a, level_b in zip(a.pyramid, b.pyramid):
        torch.testing.assert_close(level_a, level_b, atol=1e-5, rtol=0)
    assert a.predicted.std() > 1e-2  # the weights are wide enough for 1e-5 to mean something


def test_training_step_with_the_discriminator_gives_finite_gradients():
    config = PENNetConfig.tiny()
    model, disc = widened(config).train(), PENNetDiscriminator(config).train()
    image, mask = torch.rand(2, 3, 64, 64), box_masks(2, 64, 64)
    out = model(image, mask)
    logits = disc(out.inpainted * 2 - 1)  # the discriminator sees [-1, 1]
    assert logits.shape == (2, 1, 3, 3)
    # hinge D loss on the real and the composite, plus the generator's hinge and pyramid L1 terms
    real = disc(image * 2 - 1)
    pyramid = sum(
        (level - F.interpolate(image, size=level.shape[-2:], mode="bilinear", align_corners=True)).abs().mean()
        for level in out.pyramid
    )
    loss = F.relu(1 - real).mean() + F.relu(1 + logits).mean() - logits.mean() + (out.predicted - image).abs().mean()
    (loss + pyramid).backward()
    for name, p in list(model.named_parameters()) + [("D." + n, p) for n, p in disc.named_parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} received no gradient"


# ------------------------------------------------------------------------------------------------- config


def test_config_validation():
    with pytest.raises(ValidationError, match="cannot split evenly"):
        PENNetConfig(fuse_dilations=(1, 2, 4))  # 32 channels into 3 branches
    with pytest.raises(ValidationError, match="level 1 has 4 channels"):
        PENNetConfig.tiny().replace(fuse_dilations=(1, 2, 4))
    for size in (2, 4):
        with pytest.raises(ValidationError, match=f"attention_patch_size must be odd, got {size}"):
            PENNetConfig(attention_patch_size=size)
    with pytest.raises(ValidationError, match="extra"):
        PENNetConfig(cnum=32)  # the original's name is not ours
    with pytest.raises(ValidationError):
        PENNetConfig().base_channels = 16  # frozen
    assert PENNetConfig(fuse_dilations=(1, 2)).fuse_dilations == (1, 2)  # 2 branches divide every level
    assert PENNetConfig.model_validate(PENNetConfig.tiny().to_dict()) == PENNetConfig.tiny()
    assert all(field.description for field in PENNetConfig.model_fields.values())
    assert PENNetConfig().level_channels == (32, 64, 128, 256, 512, 512)
