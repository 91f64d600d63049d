"""Tests of the OpenCV Telea / Navier-Stokes baselines: built-in names, the model contract, the pipeline, saving."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from inpaint_hub.modeling_utils import BUILTIN_MODELS, AutoInpaintModel, InpaintModel, InpaintOutput
from inpaint_hub.models.lama import LamaConfig, LamaModel
from inpaint_hub.models.opencv import OpenCVInpaintConfig, OpenCVInpaintModel
from inpaint_hub.pipeline import InpaintPipeline


def textured(height: int = 48, width: int = 64, seed: int = 0) -> torch.Tensor:
    """An 8-bit-exact [1, 3, H, W] image with structure (gradients, stripes) and noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    channels = [cols * 255 // max(width - 1, 1), (rows // 4 % 2) * 160 + 40, (rows + cols) * 3 % 256]
    pixels = np.stack(channels).astype(np.int64) + rng.integers(-20, 21, size=(3, height, width))
    return torch.from_numpy(np.clip(pixels, 0, 255).astype(np.float32) / 255)[None]


def hole(height: int = 48, width: int = 64, box: tuple[int, int, int, int] = (12, 30, 20, 44)) -> torch.Tensor:
    top, bottom, left, right = box
    mask = torch.zeros(1, 1, height, width)
    mask[..., top:bottom, left:right] = 1
    return mask


def cv2_reference(image: torch.Tensor, mask: torch.Tensor, radius: float, flag: int) -> torch.Tensor:
    """cv2.inpaint on the 8-bit image, pasted into the hole: what the baseline promises."""
    pixels = np.ascontiguousarray((image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    holes = np.ascontiguousarray((mask[0, 0].numpy() > 0.5).astype(np.uint8))
    filled = torch.from_numpy(cv2.inpaint(pixels, holes, radius, flag)).permute(2, 0, 1)[None].float() / 255
    return torch.where(mask > 0.5, filled, image)


# ------------------------------------------------------------------------------------------------- built-in names


@pytest.mark.parametrize(("name", "method"), [("cv2-telea", "telea"), ("cv2-ns", "ns")])
def test_builtin_names(name, method, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no folder of that name here
    model = AutoInpaintModel.from_pretrained(name)
    assert type(model) is OpenCVInpaintModel
    assert model.config == OpenCVInpaintConfig(method=method)
    assert model.config.radius == 3.0
    assert not model.training
    assert model.num_parameters() == 0
    assert model.device == torch.device("cpu") and model.dtype == torch.float32
    assert AutoInpaintModel.load_config(name) == model.config
    assert BUILTIN_MODELS[name] == ("opencv", {"method": method})


def test_builtin_presets():
    assert OpenCVInpaintConfig.telea() == OpenCVInpaintConfig(method="telea") == OpenCVInpaintConfig()
    assert OpenCVInpaintConfig.ns().method == "ns"


def test_local_folder_takes_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    LamaModel(LamaConfig.tiny()).save_pretrained("cv2-telea")
    OpenCVInpaintModel(OpenCVInpaintConfig(method="telea", radius=7)).save_pretrained("cv2-ns")
    assert type(AutoInpaintModel.from_pretrained("cv2-telea")) is LamaModel
    assert AutoInpaintModel.load_config("cv2-telea") == LamaConfig.tiny()
    local = AutoInpaintModel.from_pretrained("cv2-ns")
    assert local.config == OpenCVInpaintConfig(method="telea", radius=7)
    assert type(InpaintPipeline.from_pretrained("cv2-telea").model) is LamaModel


def test_builtin_accepts_dtype_and_device():
    model = AutoInpaintModel.from_pretrained("cv2-ns", device="cpu", dtype=torch.float64)
    assert type(model) is OpenCVInpaintModel and model.config.method == "ns"


# ------------------------------------------------------------------------------------------------- forward


@pytest.mark.parametrize("method", ["telea", "ns"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("source", ["8-bit", "continuous"])
def test_forward_contract(method, dtype, source):
    model = OpenCVInpaintModel(OpenCVInpaintConfig(method=method))
    image = textured() if source == "8-bit" else torch.rand(1, 3, 48, 64)  # the latter is quantised for cv2
    image, mask = image.to(dtype), hole().to(dtype)
    output = model(image, mask)
    assert isinstance(output, InpaintOutput)
    for tensor in (output.inpainted, output.predicted):
        assert tensor.shape == image.shape and tensor.dtype == dtype and tensor.device == image.device
        assert tensor.min() >= 0 and tensor.max() <= 1
    known = mask.expand_as(image) == 0
    assert torch.equal(output.inpainted[known], image[known])  # bit-identical outside the hole
    assert torch.equal(output.predicted, output.inpainted)


@pytest.mark.parametrize(("method", "flag"), [("telea", cv2.INPAINT_TELEA), ("ns", cv2.INPAINT_NS)])
@pytest.mark.parametrize("radius", [3.0, 9.0])
@pytest.mark.parametrize("source", ["8-bit", "continuous"])
def test_forward_is_cv2_inpaint(method, flag, radius, source):
    """The fill is cv2.inpaint of the image rounded to 8 bits, pasted into the hole."""
    image = textured() if source == "8-bit" else torch.rand(1, 3, 48, 64)
    mask = hole()
    model = OpenCVInpaintModel(OpenCVInpaintConfig(method=method, radius=radius))
    assert torch.equal(model(image, mask).inpainted, cv2_reference(image, mask, radius, flag))


def test_methods_and_radius_matter():
    image, mask = textured(), hole()
    outputs = {
        (method, radius): OpenCVInpaintModel(OpenCVInpaintConfig(method=method, radius=radius))(image, mask).inpainted
        for method in ("telea", "ns")
        for radius in (3.0, 9.0)
    }
    assert not torch.equal(outputs["telea", 3.0], outputs["ns", 3.0])
    assert not torch.equal(outputs["telea", 3.0], outputs["telea", 9.0])
    assert not torch.equal(outputs["ns", 3.0], outputs["ns", 9.0])


# OpenCV's Telea adds a normalised-gradient term that is not zero on flat areas, so a constant image comes back a few
# levels off inside the hole (opencv/opencv#25404, "Telea ... gives unexpected results" on a constant image); the
# Navier-Stokes method reproduces it.
CONSTANT_TOLERANCE = {"ns": (1, 1), "telea": (8, 2)}  # (max, mean) absolute error in 8-bit levels


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_constant_image_is_filled_with_the_constant(method):
    model = OpenCVInpaintModel(OpenCVInpaintConfig(method=method))
    colour = torch.tensor([0.2, 0.6, 0.9]).view(1, 3, 1, 1)
    image = colour.expand(1, 3, 40, 56).clone()
    mask = hole(40, 56, (5, 35, 10, 50))
    error = (model(image, mask).inpainted - image).abs() * 255
    worst, mean = CONSTANT_TOLERANCE[method]
    assert error.max() <= worst + 1e-3
    assert error[mask.expand_as(image) > 0].mean() <= mean


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_horizontal_gradient_stays_between_its_neighbours(method):
    model = OpenCVInpaintModel(OpenCVInpaintConfig(method=method))
    width = 64
    image = (torch.arange(width) * 4 / 255).view(1, 1, 1, width).expand(1, 3, 32, width).clone()
    top, bottom, left, right = 10, 22, 20, 40
    mask = hole(32, width, (top, bottom, left, right))
    filled = model(image, mask).inpainted[0, :, top:bottom, left:right]
    # Both methods fill from known pixels within `radius` (3) of the hole: at most 4 columns out.
    low, high = image[0, 0, 0, left - 4].item(), image[0, 0, 0, right + 3].item()
    assert filled.min() >= low - 1 / 255 and filled.max() <= high + 1 / 255
    # ... and the fill keeps the ramp's direction: left half darker than right half, in every row.
    half = (right - left) // 2
    assert torch.all(filled[..., :half].mean(-1) < filled[..., half:].mean(-1))


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_deterministic_and_blind_to_hole_content(method):
    model = OpenCVInpaintModel(OpenCVInpaintConfig(method=method))
    image, mask = textured(), hole()
    first = model(image, mask, generator=torch.Generator().manual_seed(1)).inpainted
    again = model(image, mask, generator=torch.Generator().manual_seed(2)).inpainted
    assert torch.equal(first, again)
    scribbled = torch.where(mask > 0.5, torch.rand_like(image), image)
    assert torch.equal(model(scribbled, mask).inpainted, first)  # the hole's old pixels are never read


def test_batch_items_are_independent():
    model = OpenCVInpaintModel(OpenCVInpaintConfig(method="telea"))
    images = torch.cat([textured(seed=1), textured(seed=2)])
    masks = torch.cat([hole(), hole(box=(0, 10, 0, 64))])
    batch = model(images, masks).inpainted
    for index in range(2):
        single = model(images[index : index + 1], masks[index : index + 1]).inpainted
        assert torch.equal(batch[index : index + 1], single)


def test_soft_mask_is_thresholded_at_half():
    model = OpenCVInpaintModel(OpenCVInpaintConfig(method="ns"))
    image = textured()
    mask = hole() * 0.9
    mask[..., 9:12, :] = 0.4  # below 0.5: known, right next to the hole (rows 12-29), so cv2 reads them
    output = model(image, mask).inpainted
    assert torch.equal(output[..., 9:12, :], image[..., 9:12, :])
    assert torch.equal(output, model(image, (mask > 0.5).float()).inpainted)


def test_empty_mask_returns_the_image():
    model = OpenCVInpaintModel(OpenCVInpaintConfig())
    image = textured()
    assert torch.equal(model(image, torch.zeros(1, 1, 48, 64)).inpainted, image)


def test_input_errors():
    model = OpenCVInpaintModel(OpenCVInpaintConfig())
    with pytest.raises(ValueError, match="RGB"):
        model(torch.rand(1, 4, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="does not match"):
        model(torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 9))
    with pytest.raises(TypeError):
        model(np.zeros((1, 3, 8, 8), np.float32), torch.zeros(1, 1, 8, 8))


# ------------------------------------------------------------------------------------------------- pipeline


def test_pipeline_on_odd_sized_pil_image():
    pipe = InpaintPipeline.from_pretrained("cv2-ns")
    assert isinstance(pipe.model, OpenCVInpaintModel) and pipe.model.config.method == "ns"
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(53, 37, 3), dtype=np.uint8)
    mask = np.zeros((53, 37), np.uint8)
    mask[20:35, 8:25] = 255
    result = pipe(Image.fromarray(pixels), Image.fromarray(mask), seed=0).image
    assert result.size == (37, 53) and result.mode == "RGB"
    out = np.asarray(result)
    assert np.array_equal(out[mask == 0], pixels[mask == 0])
    assert not np.array_equal(out[mask > 0], pixels[mask > 0])


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_pipeline_fills_a_constant_image_with_its_colour(method):
    pipe = InpaintPipeline.from_pretrained(f"cv2-{method}")
    pixels = np.full((53, 37, 3), (51, 153, 230), np.uint8)
    mask = np.zeros((53, 37), np.uint8)
    mask[10:40, 5:30] = 255
    out = np.asarray(pipe(Image.fromarray(pixels), Image.fromarray(mask)).image).astype(int)
    error = np.abs(out - pixels)
    worst, mean = CONSTANT_TOLERANCE[method]
    assert error.max() <= worst and error[mask > 0].mean() <= mean


@pytest.fixture(scope="module")
def large_case() -> tuple[np.ndarray, np.ndarray]:
    """A 600 x 900 image with two holes far apart."""
    rng = np.random.default_rng(4)
    rows, cols = np.mgrid[0:600, 0:900]
    pixels = np.stack([cols * 255 // 899, rows * 255 // 599, (rows + cols) % 256], -1)
    pixels = np.clip(pixels + rng.integers(-10, 11, size=pixels.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((600, 900), np.uint8)
    mask[100:160, 100:180] = 255
    mask[400:470, 650:760] = 255
    return pixels, mask


@pytest.mark.parametrize("method", ["cv2-ns", "cv2-telea"])
def test_pipeline_hd_strategies_keep_known_pixels(method, large_case):
    pixels, mask = large_case
    pipe = InpaintPipeline.from_pretrained(method)
    results = {
        strategy: np.asarray(
            pipe(Image.fromarray(pixels), Image.fromarray(mask), hd_strategy=strategy, resize_limit=512).image
        )
        for strategy in ("original", "crop", "resize")
    }
    for result in results.values():
        assert result.shape == pixels.shape
        assert np.array_equal(result[mask == 0], pixels[mask == 0])
        assert not np.array_equal(result[mask > 0], pixels[mask > 0])
    # Both methods only look `radius` pixels around the hole, and the crops keep 128 px of context around each
    # region, so inpainting the regions one at a time changes nothing.
    assert np.array_equal(results["crop"], results["original"])


# ------------------------------------------------------------------------------------------------- saving, config


def test_save_and_load_round_trip(tmp_path):
    model = OpenCVInpaintModel(OpenCVInpaintConfig(method="ns", radius=5.5))
    model.save_pretrained(tmp_path / "ns")
    assert json.loads((tmp_path / "ns" / "config.json").read_text()) == {
        "model_type": "opencv",
        "method": "ns",
        "radius": 5.5,
    }
    loaded = AutoInpaintModel.from_pretrained(tmp_path / "ns")
    assert type(loaded) is OpenCVInpaintModel
    assert loaded.config == model.config
    assert isinstance(OpenCVInpaintModel.from_pretrained(tmp_path / "ns"), InpaintModel)
    image, mask = textured(), hole()
    assert torch.equal(loaded(image, mask).inpainted, model(image, mask).inpainted)
    pipe = InpaintPipeline.from_pretrained(tmp_path / "ns")
    assert pipe.model.config == model.config


@pytest.mark.parametrize("method", ["TELEA", "fmm", "", None])
def test_unknown_method_rejected(method):
    with pytest.raises(ValidationError):
        OpenCVInpaintConfig(method=method)


@pytest.mark.parametrize("radius", [0, -1, -0.5, float("nan")])
def test_non_positive_radius_rejected(radius):
    with pytest.raises(ValidationError):
        OpenCVInpaintConfig(radius=radius)


def test_infinite_radius_rejected():
    """cv2.inpaint rounds the radius to an int and clamps it to [1, 100]; an infinite radius overflows the rounding
    and silently becomes 1, and config.json gets the non-standard JSON token Infinity."""
    with pytest.raises(ValidationError):
        OpenCVInpaintConfig(radius=float("inf"))


def test_config_rejects_unknown_keys_and_other_model_types():
    with pytest.raises(ValidationError):
        OpenCVInpaintConfig(method="ns", inpaint_radius=3)
    with pytest.raises(ValueError, match="model_type"):
        OpenCVInpaintConfig.from_dict({"model_type": "lama", "method": "ns"})
    assert OpenCVInpaintConfig.from_dict({"model_type": "opencv", "method": "ns"}).method == "ns"


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_an_all_hole_mask_does_not_return_the_hidden_pixels(method: str) -> None:
    model = OpenCVInpaintModel(OpenCVInpaintConfig(method=method))
    image = torch.rand(1, 3, 16, 16)
    out = model(image, torch.ones(1, 1, 16, 16))
    assert not torch.allclose(out.inpainted, image, atol=0.05)
