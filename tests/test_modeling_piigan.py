"""PiiGAN: parameter counts and layer names of the original, the style map z, sampling through the pipeline, the style
extractor and the critics. The shared model contract (shapes, known pixels, save/load, strict loading, batch
independence, gradients, odd sizes) runs in ``test_model_contract.py`` with a fixed z."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_model_contract import inputs, widen_init

from inpaint_hub import AutoInpaintModel, InpaintModel, InpaintPipeline
from inpaint_hub.models.piigan import (
    PiiGANConfig,
    PiiGANDiscriminator,
    PiiGANModel,
    PiiGANOutput,
    PiiGANStyleExtractor,
)


KEYS = Path(__file__).resolve().parents[2] / "shared" / "official" / "keys_piigan_tf-analytic.json"


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture
def tiny() -> PiiGANModel:
    torch.manual_seed(0)
    return widen_init(PiiGANModel(PiiGANConfig.tiny()), gain=0.8).eval()


# --------------------------------------------------------------------------------------------- the original's shapes


def test_parameter_counts_match_the_original():
    config = PiiGANConfig.celeba()
    assert _count(PiiGANModel(config)) == 3_603_942
    assert _count(PiiGANStyleExtractor(config)) == 36_230_528
    critics = PiiGANDiscriminator(config)
    assert _count(critics.local_convs) + _count(critics.local_fc) == 4_314_753
    assert _count(critics.global_convs) + _count(critics.global_fc) == 2_684_289


def _tf_name(key: str) -> str:
    """``stage1.conv13_upsample.conv.weight`` -> ``conv13_upsample/kernel`` (TF's nested ``_conv`` scope dropped)."""
    layer, _, kind = key.split(".")[-3:]
    return f"{layer}/{'kernel' if kind == 'weight' else 'bias'}"


def test_layer_names_and_shapes_are_the_originals():
    if not KEYS.exists():
        pytest.fail(f"{KEYS} is missing: the shared/ folder must sit beside the checkout")
    official = {}
    for key, shape in json.loads(KEYS.read_text())["generator"].items():
        parts = key.split("/")[1:]  # drop "inpaint_net"
        name = f"{parts[0]}/{parts[-1]}"
        official[name] = tuple(shape[::-1][:2] + shape[:2]) if len(shape) == 4 else tuple(shape)  # HWIO -> OIHW
    ours = {_tf_name(k): tuple(v.shape) for k, v in PiiGANModel(PiiGANConfig()).state_dict().items()}
    assert ours == official


def test_z_is_added_where_the_original_adds_it():
    # Every layer of the encoders and the dilated / merge convolutions before the decoders takes z; the decoders'
    # upsampling tails do not.
    from inpaint_hub.models.piigan.modeling_piigan import _Z_LEVEL

    model = PiiGANModel(PiiGANConfig.tiny())
    names = [
        n
        for stage in ("stage1", "stage2_conv", "stage2_attention_encoder", "stage2_attention_decoder", "stage2_merge")
        for n in getattr(model, stage)
    ]
    assert set(_Z_LEVEL) <= set(names)
    without = sorted(set(names) - set(_Z_LEVEL))
    assert without == sorted(
        f"{p}conv{i}{s}"
        for p in ("", "all")
        for i, s in ((13, "_upsample"), (14, ""), (15, "_upsample"), (16, ""), (17, ""))
    )
    assert {n for n, level in _Z_LEVEL.items() if level == 0} == {"conv1", "xconv1", "pmconv1"}


# ------------------------------------------------------------------------------------------------- z


def test_given_z_reproduces_a_sampled_result_exactly(tiny):
    image, mask = inputs((32, 48))
    with torch.no_grad():
        first = tiny(image, mask, generator=torch.Generator().manual_seed(3))
        again = tiny(image, mask, z=first.z)
    assert isinstance(first, PiiGANOutput) and first.z.shape == (2, 1, 32, 48)
    for name in ("inpainted", "predicted", "coarse", "z"):
        assert torch.equal(getattr(first, name), getattr(again, name)), name


def test_different_z_give_different_fills_and_the_same_known_pixels(tiny):
    image, mask = inputs((32, 48), dots=False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        a, b = tiny(image, mask, generator=g), tiny(image, mask, generator=g)
    hole = mask.expand_as(image) > 0
    assert torch.equal(a.inpainted[~hole], image[~hole]) and torch.equal(b.inpainted[~hole], image[~hole])
    assert (a.inpainted[hole] - b.inpainted[hole]).abs().mean() > 1e-2


def test_z_outside_the_hole_is_ignored(tiny):
    image, mask = inputs((32, 48))
    z = torch.randn(2, 1, 32, 48, generator=torch.Generator().manual_seed(1))
    other = torch.where(mask > 0, z, torch.randn(z.shape, generator=torch.Generator().manual_seed(2)) * 5)
    with torch.no_grad():
        assert torch.equal(tiny(image, mask, z=z).inpainted, tiny(image, mask, z=other).inpainted)


def test_sampled_z_is_a_style_grid_over_the_holes_box(tiny):
    mask = torch.zeros(2, 1, 40, 48)
    mask[0, :, 8:24, 16:32] = 1  # a 16 x 16 box: the tiny config's style_size, so the grid is pasted 1:1
    mask[1, :, 4:10, 2:40] = 1
    mask[1, :, 30:36, 10:12] = 1  # two strokes: one box around both
    z = tiny.sample_z(torch.rand(2, 3, 40, 48), mask, generator=torch.Generator().manual_seed(0))
    assert z.shape == (2, 1, 40, 48)
    expected = torch.randn((2, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    assert torch.equal(z[0, :, 8:24, 16:32], expected[0])
    outside = torch.ones(2, 1, 40, 48, dtype=torch.bool)
    outside[0, :, 8:24, 16:32] = False
    outside[1, :, 4:36, 2:40] = False
    assert (z[outside] == 0).all() and (z[~outside] != 0).all()


def test_every_layer_of_the_table_receives_z_at_its_own_resolution(tiny):
    from inpaint_hub.models.piigan.modeling_piigan import _Z_LEVEL, PiiGANConv

    seen = {}
    for name, layer in tiny.named_modules():
        if isinstance(layer, PiiGANConv):
            short = name.split(".")[-1]
            layer.register_forward_hook(lambda m, args, out, short=short: seen.__setitem__(short, (args, out)))
    image, mask = inputs((32, 48))
    with torch.no_grad():
        tiny(image, mask, generator=torch.Generator().manual_seed(0))
    assert len(seen) == len(list(m for m in tiny.modules() if isinstance(m, PiiGANConv)))
    for short, (args, out) in seen.items():
        z = args[1] if len(args) > 1 else None
        if short in _Z_LEVEL:
            assert z is not None, f"{short} got no z"
            assert z.shape[-2:] == out.shape[-2:] == (32 // 2 ** _Z_LEVEL[short], 48 // 2 ** _Z_LEVEL[short]), short
            assert z.abs().sum() > 0, short
        else:
            assert z is None, f"{short} should not get z"


def test_a_non_finite_z_is_refused(tiny):
    image, mask = inputs((32, 48))
    z = torch.zeros(2, 1, 32, 48)
    z[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="z has non-finite values"):
        tiny(image, mask, z=z)


def test_a_wrong_z_shape_is_refused(tiny):
    image, mask = inputs((32, 48))
    with pytest.raises(ValueError, match=r"z must be \[B, 1, H, W\] = \[2, 1, 32, 48\].*\[2, 3, 32, 48\]"):
        tiny(image, mask, z=torch.zeros(2, 3, 32, 48))


def test_supports_sampling_is_declared_on_the_class():
    assert PiiGANModel.supports_sampling is True
    assert InpaintModel.supports_sampling is False
    assert type(AutoInpaintModel.from_config(PiiGANConfig.tiny())) is PiiGANModel


# ------------------------------------------------------------------------------------------------- several samples


def _photo_and_hole(h: int = 45, w: int = 70):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    hole = np.zeros((h, w), bool)
    hole[10:30, 20:50] = True
    return array, hole


def test_pipeline_samples_agree_outside_differ_inside_and_reproduce(tiny):
    array, hole = _photo_and_hole()
    pipe = InpaintPipeline(tiny)
    out = pipe(array, hole.astype(np.uint8) * 255, num_samples=3, seed=11)
    results = [np.asarray(im).astype(int) for im in out.images]
    assert out.seeds == [11, 12, 13] and len(results) == 3
    for result in results:  # (a) identical outside the hole (and equal to the input there)
        np.testing.assert_array_equal(result[~hole], array[~hole])
    for i in range(3):  # (b) different inside it
        for j in range(i + 1, 3):
            assert np.abs(results[i][hole] - results[j][hole]).mean() > 2, (i, j)
    # (c) reproducible: the same seed gives the same images, however many are asked for at once
    again = pipe(array, hole.astype(np.uint8) * 255, num_samples=3, seed=11)
    for a, b in zip(out.images, again.images):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    alone = pipe(array, hole.astype(np.uint8) * 255, num_samples=1, seed=12)
    np.testing.assert_array_equal(np.asarray(alone.images[0]), np.asarray(out.images[1]))


# ------------------------------------------------------------------------------------------------- extractor, critics


def test_style_extractor_maps_a_patch_to_a_style_map():
    config = PiiGANConfig.tiny()
    extractor = PiiGANStyleExtractor(config)
    patch = torch.rand(3, 3, config.style_size, config.style_size) * 2 - 1
    mu, logvar = extractor(patch)
    assert mu.shape == logvar.shape == (3, 1, config.style_size, config.style_size)
    assert torch.isfinite(mu).all() and torch.isfinite(logvar).all()
    with pytest.raises(ValueError, match=r"style extractor's patch must be \[B, 3, 16, 16\]"):
        extractor(torch.rand(1, 3, 32, 32))


def test_reparameterize_samples_the_given_gaussian():
    mu = torch.full((4000, 1, 4, 4), 0.5)
    logvar = torch.full_like(mu, float(np.log(4.0)))  # std 2
    z = PiiGANStyleExtractor.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    assert abs(z.mean().item() - 0.5) < 0.03 and abs(z.std().item() - 2.0) < 0.03


def test_critics_score_patches_and_images_and_name_a_wrong_size():
    config = PiiGANConfig.tiny()
    critics = PiiGANDiscriminator(config)
    local, whole = critics(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 32, 32))
    assert local.shape == whole.shape == (2, 1)
    with pytest.raises(ValueError, match=r"global critic's image must be \[B, 3, 32, 32\]"):
        critics.score_global(torch.rand(2, 3, 48, 48))


def test_config_validation_and_round_trip(tmp_path):
    config = PiiGANConfig(base_channels=24, global_size=192)
    assert PiiGANConfig.from_dict(json.loads(config.to_json_string())) == config
    with pytest.raises(ValueError, match="base_channels must be even"):
        PiiGANConfig(base_channels=5)
    with pytest.raises(ValueError, match="global_size must be a multiple of 16"):
        PiiGANConfig(global_size=100)
    with pytest.raises(ValueError, match="extra"):
        PiiGANConfig.from_dict({"model_type": "piigan", "cnum": 32})
