"""The contract every inpainting model keeps (DESIGN.md, "Contracts"), checked on a tiny config of each model.

Adding a model (DGI, ...) means adding one row to :data:`CASES`: its tiny config, a valid
non-square input size for ``forward`` and whether its default initialisation has to be widened so that outputs vary
enough for the tolerance checks to mean something. Everything below is written against :class:`InpaintModel` and
:class:`InpaintOutput` only.

Checked for each model: output shapes and value range; known pixels bit-identical; hole content ignored;
save/load round trips (model class and ``AutoInpaintModel``) bit-identical; strict loading; determinism and batch
independence; a training backward reaching every parameter; odd, non-square sizes through ``InpaintPipeline``; sizes
that break ``size_multiple`` rejected by ``forward``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from inpaint_hub import AutoInpaintModel, InpaintModel, InpaintOutput, InpaintPipeline, WeightsMismatchError
from inpaint_hub.configuration_utils import InpaintConfig
from inpaint_hub.models.deepfill_v2 import DeepFillV2Config
from inpaint_hub.models.dgi import DGIConfig
from inpaint_hub.models.lama import LamaConfig
from inpaint_hub.models.pennet import PENNetConfig
from inpaint_hub.models.piigan import PiiGANConfig


@dataclass(frozen=True)
class ModelCase:
    """One row of the contract table.

    Attributes:
        name: test id.
        config: builds the model's tiny config.
        size: a non-square ``(H, W)`` that ``forward`` accepts (multiple of ``size_multiple``, at least ``min_size``).
        widen_init: re-draw conv weights with He-normal std (biases U(-0.1, 0.1)). Use it when the model's own
            initialisation makes a tiny model's output nearly constant (PEN-Net's N(0, 0.02) gives 0.5 +- 1e-7, tiny
            LaMa 0.5 +- 1e-3), which would make the tolerance checks below vacuous.
        init_gain: multiplies the He-normal std of ``widen_init``. Gated convolutions (DeepFill v2) halve the signal
            at every layer (``ELU(x) * sigmoid(g)``); at gain 1 a tiny DeepFill's samples differ by only 3e-3.
        fixed_inputs: for models with ``supports_sampling``, the keyword arguments that pin a result (e.g. PiiGAN's
            style map ``z``) for an image batch ``[B, 3, H, W]``, as tensors with the batch first, so that the
            determinism checks below compare like with like (sampling has its own tests).
    """

    name: str
    config: Callable[[], InpaintConfig]
    size: tuple[int, int]
    widen_init: bool = False
    init_gain: float = 1.0
    fixed_inputs: Callable[[torch.Tensor], dict[str, torch.Tensor]] | None = None


def _style_map(image: torch.Tensor) -> dict[str, torch.Tensor]:
    batch, _, h, w = image.shape
    return {"z": torch.randn(batch, 1, h, w, generator=torch.Generator().manual_seed(7))}


CASES = [
    ModelCase("lama", LamaConfig.tiny, (32, 48), widen_init=True),
    ModelCase("pennet", PENNetConfig.tiny, (64, 128), widen_init=True),
    ModelCase("deepfill_v2", DeepFillV2Config.tiny, (32, 48), widen_init=True, init_gain=1.4),
    # At gain 1 the plain ELU convolutions grow the signal so much that batched and single runs differ by 1.3e-5.
    ModelCase("piigan", PiiGANConfig.tiny, (32, 48), widen_init=True, init_gain=0.8, fixed_inputs=_style_map),
    # Widened only so that the backward check means something: the adaptive convolution's offset head ends in a
    # zero-initialised layer (taps start on the regular grid), so at DGI's own initialisation the layer before it gets
    # an all-zero gradient. At gain 1 the unnormalised per-pixel kernels amplify rounding so much (four completion
    # blocks) that batched and single runs differ by 7e-2; at 0.5 by 2e-6.
    ModelCase("dgi", DGIConfig.tiny, (32, 48), widen_init=True, init_gain=0.5),
]

# odd, non-square, not multiples of any size_multiple; 7x5 is below every min_size, so the pipeline pads it up
PIPELINE_SIZES = [(45, 83), (100, 37), (7, 5)]


# ------------------------------------------------------------------------------------------------- helpers


def widen_init(model: nn.Module, seed: int = 0, gain: float = 1.0) -> nn.Module:
    """He-normal conv / linear weights and small uniform biases, drawn from a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                weight = getattr(module, "weight_orig", module.weight)
                weight.normal_(0.0, gain * math.sqrt(2.0 / weight[0].numel()), generator=g)
                if module.bias is not None:
                    module.bias.uniform_(-0.1, 0.1, generator=g)
    return model


def build(case: ModelCase) -> InpaintModel:
    model = AutoInpaintModel.from_config(case.config())
    if case.widen_init:
        widen_init(model, gain=case.init_gain)
    return model.eval()


def inputs(size: tuple[int, int], batch: int = 2, *, dots: bool = True, seed: int = 0):
    """Random images and a different box hole per sample (plus scattered hole pixels when ``dots``)."""
    h, w = size
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, h, w, generator=g)
    mask = torch.zeros(batch, 1, h, w)
    for i in range(batch):
        top, left = (h // 8) * (1 + i % 4), (w // 8) * (4 - i % 4)
        mask[i, :, top : top + h // 3, left : left + w // 3] = 1
    if dots:
        mask[torch.rand(batch, 1, h, w, generator=g) < 0.01] = 1
    return image, mask


def run(case: ModelCase, model: InpaintModel, image: torch.Tensor, mask: torch.Tensor, index: int | None = None):
    """``model(image, mask)`` with the case's fixed inputs; ``index`` runs one sample of the batch alone."""
    extra = case.fixed_inputs(image) if case.fixed_inputs else {}
    if index is not None:
        image, mask = image[index : index + 1], mask[index : index + 1]
        extra = {key: value[index : index + 1] for key, value in extra.items()}
    return model(image, mask, **extra)


def tensors(output: InpaintOutput) -> dict[str, torch.Tensor]:
    """Every tensor of an output, flattened: ``{"inpainted": ..., "predicted": ..., "pyramid.0": ...}``."""
    found = {}
    for f in fields(output):
        value = getattr(output, f.name)
        if isinstance(value, torch.Tensor):
            found[f.name] = value
        elif isinstance(value, (tuple, list)):
            found.update({f"{f.name}.{i}": v for i, v in enumerate(value) if isinstance(v, torch.Tensor)})
    return found


def assert_outputs_equal(a: InpaintOutput, b: InpaintOutput) -> None:
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request) -> ModelCase:
    return request.param


@pytest.fixture
def model(case) -> InpaintModel:
    return build(case)


# ------------------------------------------------------------------------------------------------- tensor contract


def test_output_shapes_range_and_composite(case, model):
    image, mask = inputs(case.size)
    with torch.no_grad():
        out = run(case, model, image, mask)
    assert isinstance(out, InpaintOutput)
    assert out.inpainted.shape == out.predicted.shape == (2, 3, *case.size)
    for name in ("inpainted", "predicted"):
        value = getattr(out, name)
        assert value.dtype == torch.float32, name
        assert value.min() >= 0 and value.max() <= 1, name
    hole = mask.expand_as(image) > 0
    assert torch.equal(out.inpainted[~hole], image[~hole])  # known pixels bit-identical
    assert torch.equal(out.inpainted[hole], out.predicted[hole])


def test_hole_content_is_ignored(case, model):
    image, mask = inputs(case.size)
    hole = mask.expand_as(image) > 0
    other = image.clone()
    other[hole] = 1 - image[hole]  # different pixels under the hole only
    with torch.no_grad():
        assert_outputs_equal(run(case, model, image, mask), run(case, model, other, mask))


def test_deterministic_and_batch_independent(case, model):
    image, mask = inputs(case.size, batch=3)
    with torch.no_grad():
        batched = run(case, model, image, mask)
        again = run(case, model, image, mask)
        singles = [run(case, model, image, mask, index=i) for i in range(3)]
    assert_outputs_equal(batched, again)
    # The tolerance below only means something if the model's outputs vary between samples and over the image.
    assert (batched.predicted[0] - batched.predicted[1]).abs().max() > 1e-2
    assert batched.predicted[0].std() > 1e-3
    full = tensors(batched)
    for i, single in enumerate(singles):
        for key, value in tensors(single).items():
            torch.testing.assert_close(full[key][i : i + 1], value, atol=1e-5, rtol=0, msg=f"sample {i}, {key}")


def test_training_backward_reaches_every_parameter(case, model):
    model.train()
    image, mask = inputs(case.size, dots=False)
    out = run(case, model, image, mask)
    g = torch.Generator().manual_seed(1)
    loss = sum((t * torch.randn(t.shape, generator=g)).mean() for t in tensors(out).values())
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} received no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("axis", ["height", "width"])
def test_forward_rejects_sizes_off_the_size_multiple(case, model, axis):
    multiple = model.size_multiple
    assert multiple >= 2, "the contract table is for models with a size constraint"
    h, w = case.size
    h, w = (h + multiple // 2, w) if axis == "height" else (h, w + multiple // 2)
    with pytest.raises(ValueError, match=f"{h}x{w}"):
        model(torch.rand(1, 3, h, w), torch.zeros(1, 1, h, w))


# ------------------------------------------------------------------------------------------------- saving and loading


def test_save_and_load_round_trip_is_bit_identical(case, model, tmp_path):
    model.save_pretrained(tmp_path / case.name)
    image, mask = inputs(case.size)
    with torch.no_grad():
        expected = run(case, model, image, mask)
    for loader in (type(model), AutoInpaintModel):
        loaded = loader.from_pretrained(tmp_path / case.name)
        assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
        ours, theirs = model.state_dict(), loaded.state_dict()
        assert list(ours) == list(theirs)
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), key
        with torch.no_grad():
            assert_outputs_equal(expected, run(case, loaded, image, mask))


@pytest.mark.parametrize("problem", ["missing", "unexpected", "mis-shaped"])
def test_strict_loading_refuses_a_wrong_tensor(case, model, tmp_path, problem):
    folder = tmp_path / case.name
    model.save_pretrained(folder)
    state = load_file(folder / "model.safetensors")
    key = next(name for name, _ in model.named_parameters())
    if problem == "missing":
        del state[key]
        pattern = rf"missing tensor.*{re.escape(key)}"
    elif problem == "unexpected":
        state["not_a_layer.weight"] = torch.zeros(3)
        pattern = r"unexpected tensor.*not_a_layer\.weight"
    else:
        shape = state[key].shape
        state[key] = torch.zeros(*shape[:-1], shape[-1] + 1)
        pattern = rf"mis-shaped.*{re.escape(key)}"
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    for loader in (type(model), AutoInpaintModel):
        with pytest.raises(WeightsMismatchError, match=pattern):
            loader.from_pretrained(folder)


# ------------------------------------------------------------------------------------------------- pipeline


@pytest.mark.parametrize("size", PIPELINE_SIZES, ids=[f"{h}x{w}" for h, w in PIPELINE_SIZES])
def test_pipeline_odd_non_square_sizes_keep_known_pixels(case, model, size):
    h, w = size
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    hole = np.zeros((h, w), bool)
    hole[h // 4 : h // 2, w // 3 : 2 * w // 3] = True
    hole[rng.random((h, w)) < 0.01] = True
    out = InpaintPipeline(model)(array, hole.astype(np.uint8) * 255, seed=0)
    result = np.asarray(out.image)
    assert out.image.size == (w, h) and result.shape == array.shape
    np.testing.assert_array_equal(result[~hole], array[~hole])
