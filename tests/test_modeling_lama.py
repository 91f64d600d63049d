"""LaMa architecture: parameter counts of the released presets, the forward contract, discriminator, gradients."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from inpaint_hub import InpaintOutput, LamaConfig, LamaDiscriminator, LamaModel


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("config", "generator_params", "state_tensors"),
    [
        # MODELS.md section 0/1.1: counted by instantiating the official FFCResNetGenerator
        (LamaConfig.big_lama(), 50_975_875, 989),
        (LamaConfig.lama_fourier(), 27_048_835, 521),
    ],
    ids=["big-lama", "lama-fourier"],
)
def test_parameter_counts_match_the_original(config, generator_params, state_tensors):
    model = LamaModel(config)
    assert count(model) == generator_params
    assert len(model.state_dict()) == state_tensors  # BN buffers and num_batches_tracked included, as the original
    assert count(LamaDiscriminator(config)) == 6_962_369  # pix2pixhd NLayerDiscriminator, n_layers=4


def test_state_dict_shapes_match_the_original_key_table(golden_dir):
    """Every original tensor shape appears in our model as often as in the original (names differ by design)."""
    import json
    from collections import Counter

    keys = json.loads((golden_dir.parent / "keys_lama_big-lama.json").read_text())["keys"]
    original = Counter(tuple(v["shape"]) for v in keys.values())
    ours = Counter(tuple(t.shape) for t in LamaModel(LamaConfig.big_lama()).state_dict().values())
    assert ours == original


@pytest.fixture
def tiny():
    return LamaModel(LamaConfig.tiny()).eval()


def test_forward_contract(tiny):
    image = torch.rand(2, 3, 24, 40)
    mask = (torch.rand(2, 1, 24, 40) > 0.7).float()
    with torch.no_grad():
        out = tiny(image, mask)
    assert isinstance(out, InpaintOutput)
    assert out.inpainted.shape == out.predicted.shape == (2, 3, 24, 40)
    assert out.predicted.min() >= 0 and out.predicted.max() <= 1  # sigmoid output
    known = mask.expand_as(image) == 0
    assert torch.equal(out.inpainted[known], image[known])  # bit-identical outside the hole
    assert torch.equal(out.inpainted[~known], out.predicted[~known])


def test_hole_content_is_ignored(tiny):
    """What was under the hole cannot leak into the result: the generator sees image * (1 - mask)."""
    image = torch.rand(1, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    other = image.clone()
    other[..., 8:24, 8:24] = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(tiny(image, mask).predicted, tiny(other, mask).predicted)


def test_global_branch_sees_the_whole_image(tiny):
    """The Fourier unit gives a global receptive field: a change in one corner moves the prediction everywhere."""
    image = torch.rand(1, 3, 64, 64)
    mask = torch.zeros(1, 1, 64, 64)
    changed = image.clone()
    changed[..., :4, :4] = 1 - changed[..., :4, :4]
    with torch.no_grad():
        diff = (tiny(image, mask).predicted - tiny(changed, mask).predicted).abs()
    assert diff[..., 48:, 48:].max() > 0  # the far corner


def test_deterministic_and_batch_independent(tiny):
    image = torch.rand(3, 3, 16, 16)
    mask = (torch.rand(3, 1, 16, 16) > 0.5).float()
    with torch.no_grad():
        batched = tiny(image, mask).inpainted
        single = tiny(image[1:2], mask[1:2]).inpainted
        again = tiny(image, mask).inpainted
    assert torch.equal(batched, again)
    torch.testing.assert_close(batched[1:2], single, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("image_shape", "mask_shape", "message"),
    [
        ((1, 3, 30, 32), (1, 1, 30, 32), "divisible by 4"),
        ((1, 4, 32, 32), (1, 1, 32, 32), r"image must be \[B, 3, H, W\]"),
        ((1, 3, 32, 32), (1, 3, 32, 32), r"mask must be \[B, 1, H, W\]"),
        ((1, 3, 32, 32), (1, 1, 16, 32), "does not match image"),
        ((3, 32, 32), (1, 32, 32), r"image must be \[B, 3, H, W\]"),
    ],
)
def test_bad_inputs_are_rejected_with_a_clear_message(tiny, image_shape, mask_shape, message):
    with pytest.raises(ValueError, match=message):
        tiny(torch.rand(image_shape), torch.zeros(mask_shape))


def test_training_step_gives_finite_gradients_everywhere():
    config = LamaConfig.tiny()
    model, disc = LamaModel(config).train(), LamaDiscriminator(config).train()
    image = torch.rand(2, 3, 32, 32)
    mask = (torch.rand(2, 1, 32, 32) > 0.5).float()
    out = model(image, mask)
    logits, features = disc(out.predicted)
    assert len(features) == config.discriminator_num_layers + 1
    loss = torch.nn.functional.softplus(-logits).mean() + (out.predicted - image).abs().mean()
    loss.backward()
    for name, p in list(model.named_parameters()) + list(disc.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} received no gradient"


def test_half_precision_forward_runs():
    model = LamaModel(LamaConfig.tiny()).eval().to(torch.bfloat16)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 16, 16, dtype=torch.bfloat16), torch.ones(1, 1, 16, 16, dtype=torch.bfloat16))
    assert out.predicted.dtype == torch.bfloat16 and torch.isfinite(out.predicted.float()).all()


def test_config_is_frozen_strict_and_validated():
    config = LamaConfig.big_lama()
    with pytest.raises(ValidationError):
        config.num_residual_blocks = 3  # frozen
    with pytest.raises(ValidationError, match="extra"):
        LamaConfig(n_blocks=9)  # the original's name is not ours: unknown keys are errors
    with pytest.raises(ValidationError, match="in_channels"):
        LamaConfig(in_channels=3)
    with pytest.raises(ValidationError, match="even number"):
        LamaConfig(base_channels=9, num_downsampling=1, global_ratio=0.5)
    assert LamaConfig.lama_fourier() == config.replace(num_residual_blocks=9)
    assert LamaConfig.model_validate(config.to_dict()) == config
    assert all(field.description for field in LamaConfig.model_fields.values())
