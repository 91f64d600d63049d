"""Tests of InpaintPipeline: the pixel contract end to end, HD strategies, seeding, errors."""

from __future__ import annotations

import io
import logging
from typing import Literal

import numpy as np
import pytest
import torch
from image_helpers import png_header_only
from PIL import Image
from pydantic import Field

from inpaint_hub import modeling_utils
from inpaint_hub.configuration_utils import InpaintConfig
from inpaint_hub.image_processing import DEFAULT_MAX_PIXELS, dilate_mask
from inpaint_hub.modeling_utils import InpaintModel, InpaintOutput
from inpaint_hub.pipeline import InpaintPipeline, InpaintPipelineOutput


RNG = np.random.default_rng(0)
FILL = (0.2, 0.6, 0.9)
FILL_UINT8 = np.rint(np.array(FILL, np.float32) * np.float32(255)).astype(np.uint8)  # [51, 153, 230]


class FakeConfig(InpaintConfig):
    model_type: Literal["fake"] = Field("fake", description="registry key")
    size_multiple: int = Field(1, description="height/width multiple the model needs")
    fill: Literal["constant", "mean", "noise"] = Field("constant", description="what the fake predicts")


class FakeModel(InpaintModel):
    """Predicts a constant colour, the mean known colour, or generator-driven noise; records every call."""

    config_class = FakeConfig
    pad_mode = "symmetric"

    def __init__(self, config: FakeConfig) -> None:
        super().__init__(config)
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.calls: list[dict] = []

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    def forward(self, image, mask, *, generator=None) -> InpaintOutput:
        self._check_inputs(image, mask)
        self.calls.append(
            {
                "image": image.clone(),
                "mask": mask.clone(),
                "generator": generator,
                "inference_mode": torch.is_inference_mode_enabled(),
            }
        )
        if self.config.fill == "constant":
            predicted = torch.tensor(FILL, dtype=image.dtype).view(1, 3, 1, 1).expand_as(image)
        elif self.config.fill == "mean":
            known = 1 - mask
            mean = (image * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp(min=1)
            predicted = mean.expand_as(image)
        else:
            predicted = torch.rand(image.shape, generator=generator, dtype=image.dtype)
        predicted = predicted * self.scale
        return InpaintOutput(inpainted=mask * predicted + (1 - mask) * image, predicted=predicted)


def make_pipe(size_multiple: int = 1, fill: str = "constant") -> InpaintPipeline:
    return InpaintPipeline(FakeModel(FakeConfig(size_multiple=size_multiple, fill=fill)))


def random_uint8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def box_mask(height: int, width: int, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[top:bottom, left:right] = 255
    return mask


def assert_outside_identical(result: np.ndarray, original: np.ndarray, hole: np.ndarray) -> None:
    assert result.shape == original.shape and result.dtype == original.dtype
    np.testing.assert_array_equal(result[~hole], original[~hole])


# ------------------------------------------------------------------------------------------------- pixel contract


def test_rgb_pil_known_pixels_bit_identical_and_hole_filled():
    pipe = make_pipe(size_multiple=8)
    array = random_uint8(21, 30, 3)
    mask = box_mask(21, 30, 5, 7, 12, 19)
    out = pipe(Image.fromarray(array), Image.fromarray(mask))
    assert isinstance(out, InpaintPipelineOutput) and len(out.images) == 1
    assert out.image.mode == "RGB" and out.image.size == (30, 21)
    result = np.asarray(out.image)
    hole = mask > 0
    assert_outside_identical(result, array, hole)
    assert (result[hole] == FILL_UINT8).all()
    call = pipe.model.calls[0]
    assert call["image"].shape == (1, 3, 24, 32) and call["inference_mode"]


def test_rgba_keeps_alpha_exactly():
    pipe = make_pipe(size_multiple=4)
    rgba = random_uint8(13, 9, 4)
    mask = box_mask(13, 9, 2, 2, 8, 6)
    out = pipe(Image.fromarray(rgba), mask).image
    assert out.mode == "RGBA"
    result = np.asarray(out)
    np.testing.assert_array_equal(result[..., 3], rgba[..., 3])  # alpha everywhere, hole included
    assert_outside_identical(result, rgba, mask > 0)
    assert (result[mask > 0][:, :3] == FILL_UINT8).all()


def test_grayscale_stays_grayscale():
    pipe = make_pipe(size_multiple=4)
    gray = random_uint8(11, 14)
    mask = box_mask(11, 14, 3, 3, 6, 9)
    out = pipe(Image.fromarray(gray), Image.fromarray(mask))
    assert out.image.mode == "L" and out.image.size == (14, 11)
    result = np.asarray(out.image)
    assert_outside_identical(result, gray, mask > 0)
    luma = np.float32(0.299) * FILL[0] + np.float32(0.587) * FILL[1] + np.float32(0.114) * FILL[2]
    assert (result[mask > 0] == np.rint(np.float32(luma) * 255)).all()
    # the model saw three identical channels
    seen = pipe.model.calls[0]["image"][0]
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[1], seen[2])
    # an HxW uint8 array comes back as an HxW array
    native = pipe(gray, mask).native[0]
    assert native.shape == gray.shape and native.dtype == np.uint8
    assert_outside_identical(native, gray, mask > 0)


def test_16_bit_grayscale_png_comes_back_16_bit(tmp_path):
    pipe = make_pipe(size_multiple=4)
    gray = RNG.integers(0, 65536, size=(9, 10), dtype=np.uint16)
    gray[0, :3] = (200, 60000, 65535)  # scaled by the bit depth, never by the content
    path = tmp_path / "depth.png"
    Image.fromarray(gray).save(path)
    assert Image.open(path).mode == "I;16"
    mask = box_mask(9, 10, 3, 3, 7, 8)
    out = pipe(path, mask)
    assert out.image.mode == "I;16" and out.image.size == (10, 9)
    result = np.asarray(out.image)
    assert_outside_identical(result, gray, mask > 0)
    luma = np.float32(0.299) * FILL[0] + np.float32(0.587) * FILL[1] + np.float32(0.114) * FILL[2]
    assert (result[mask > 0] == np.rint(np.float32(luma) * np.float32(65535))).all()
    seen = pipe.model.calls[0]["image"][0, 0, :9, :10].numpy()
    np.testing.assert_array_equal(seen[mask == 0], (gray.astype(np.float32) / np.float32(65535))[mask == 0])
    # mode I (32-bit) holding 16-bit values is written back as I
    as_i = pipe(Image.fromarray(gray.astype(np.int32)), mask).image
    assert as_i.mode == "I"
    assert_outside_identical(np.asarray(as_i), gray.astype(np.int32), mask > 0)
    with pytest.raises(ValueError, match=r"mode I.*0\.\.65535"):
        pipe(Image.fromarray(np.full((9, 10), 70000, np.int32)), mask)


@pytest.mark.parametrize("shape", [(9, 10), (9, 10, 3)])
def test_uint16_arrays_are_16_bit(shape):
    pipe = make_pipe()
    array = RNG.integers(0, 256, size=shape, dtype=np.uint16)  # values <= 255, still 16-bit: the dtype decides
    mask = box_mask(9, 10, 2, 2, 6, 6) > 0
    native = pipe(array, mask).native[0]
    assert native.dtype == np.uint16 and native.shape == shape
    assert_outside_identical(native, array, mask)
    if len(shape) == 3:
        assert (native[mask] == np.rint(np.array(FILL, np.float32) * np.float32(65535))).all()
    seen = pipe.model.calls[0]["image"][0, 0].numpy()
    first = array if array.ndim == 2 else array[..., 0]
    np.testing.assert_array_equal(seen[~mask], (first.astype(np.float32) / np.float32(65535))[~mask])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("shape", [(10, 12, 3), (10, 12), (10, 12, 4)])
def test_float_arrays_known_pixels_bit_identical_in_their_own_values(dtype, shape):
    pipe = make_pipe(size_multiple=8)
    array = RNG.random(shape).astype(dtype)
    mask = box_mask(10, 12, 2, 3, 7, 9)
    hole = mask > 0
    out = pipe(array, mask > 0)
    native = out.native[0]
    assert isinstance(native, np.ndarray) and native.dtype == array.dtype and native.shape == array.shape
    assert_outside_identical(native, array, hole)
    if len(shape) == 3 and shape[-1] == 4:
        np.testing.assert_array_equal(native[..., 3], array[..., 3])
    # the PIL image is the same result quantised to 8 bits
    expected_pil = np.rint(np.clip(array.astype(np.float32), 0, 1) * np.float32(255)).astype(np.uint8)
    assert_outside_identical(np.asarray(out.image), expected_pil, hole)
    # the model saw the exact float values, not 8-bit ones
    seen = pipe.model.calls[0]["image"][0, 0, :10, :12].numpy()
    first = array if array.ndim == 2 else array[..., 0]
    np.testing.assert_array_equal(seen[~hole], first.astype(np.float32)[~hole])


@pytest.mark.parametrize("shape", [(3, 10, 12), (1, 3, 10, 12), (10, 12), (1, 10, 12)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_tensors_known_pixels_bit_identical(shape, dtype):
    pipe = make_pipe(size_multiple=4)
    tensor = torch.rand(shape).to(dtype)
    mask = torch.zeros(10, 12)
    mask[3:6, 4:9] = 1
    native = pipe(tensor, mask).native[0]
    assert isinstance(native, torch.Tensor) and native.shape == tensor.shape and native.dtype == dtype
    known = (mask == 0).expand(tensor.shape)
    assert torch.equal(native[known], tensor[known])
    assert not torch.equal(native, tensor)


@pytest.mark.parametrize("size", [(1, 1), (1, 37), (37, 1), (33, 65), (65, 33), (2, 3)])
@pytest.mark.parametrize("size_multiple", [1, 8])
def test_output_size_equals_input_size(size, size_multiple):
    width, height = size
    pipe = make_pipe(size_multiple=size_multiple, fill="mean")
    array = random_uint8(height, width, 3)
    mask = np.zeros((height, width), bool)
    mask[height // 2, width // 2] = True
    if height * width > 1:
        mask[0, 0] = True
    out = pipe(Image.fromarray(array), Image.fromarray(mask))
    assert out.image.size == (width, height)
    assert_outside_identical(np.asarray(out.image), array, mask)
    seen = pipe.model.calls[0]["image"]
    assert seen.shape[-2] % size_multiple == 0 and seen.shape[-1] % size_multiple == 0


class DefaultPadModel(FakeModel):
    pad_mode = InpaintModel.pad_mode  # InpaintModel's default ("reflect")

    @property
    def min_size(self) -> int:
        return 6


def test_padding_follows_the_model_defaults_and_only_inpaint_models_are_accepted():
    pipe = InpaintPipeline(DefaultPadModel(FakeConfig(size_multiple=4)))
    assert pipe.model.pad_mode == "reflect"
    array = random_uint8(5, 3, 3)
    pipe(array, box_mask(5, 3, 1, 1, 2, 2))
    seen = pipe.model.calls[0]["image"][0].numpy()
    # to the multiple of 4 and at least min_size 6 (rounded up to 8), with reflect padding
    expected = np.pad(array.transpose(2, 0, 1).astype(np.float32) / 255, ((0, 0), (0, 3), (0, 5)), mode="reflect")
    np.testing.assert_array_equal(seen, expected)
    with pytest.raises(TypeError, match="model must be an inpaint_hub InpaintModel.*got Linear"):
        InpaintPipeline(torch.nn.Linear(2, 2))


def test_padding_uses_the_model_pad_mode():
    pipe = make_pipe(size_multiple=8)
    array = random_uint8(5, 3, 3)
    mask = box_mask(5, 3, 1, 1, 2, 2)
    pipe(array, mask)
    seen = pipe.model.calls[0]
    expected = np.pad(array.transpose(2, 0, 1).astype(np.float32) / 255, ((0, 0), (0, 3), (0, 5)), mode="symmetric")
    np.testing.assert_array_equal(seen["image"][0].numpy(), expected)
    expected_mask = np.pad((mask > 0).astype(np.float32), ((0, 3), (0, 5)), mode="symmetric")
    np.testing.assert_array_equal(seen["mask"][0, 0].numpy(), expected_mask)


def test_mask_polarity_white_is_hole_and_any_non_zero_counts():
    pipe = make_pipe()
    array = np.full((6, 6, 3), 10, np.uint8)
    mask = np.zeros((6, 6), np.uint8)
    mask[1, 1] = 255  # white
    mask[4, 4] = 1  # barely non-zero
    result = np.asarray(pipe(array, Image.fromarray(mask)).image)
    changed = (result != array).any(axis=-1)
    np.testing.assert_array_equal(changed, mask > 0)


# ------------------------------------------------------------------------------------------------- EXIF


def test_exif_orientation_applied_and_mask_matched_to_rotated_image(tmp_path):
    stored = random_uint8(20, 40, 3)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "photo.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    displayed = np.asarray(Image.open(path).transpose(Image.Transpose.ROTATE_270))
    assert displayed.shape == (40, 20, 3)

    mask = box_mask(40, 20, 5, 2, 15, 10)  # drawn on the displayed (portrait) image
    out = make_pipe(size_multiple=8)(path, Image.fromarray(mask))
    assert out.image.size == (20, 40)
    assert_outside_identical(np.asarray(out.image), displayed, mask > 0)
    with pytest.raises(ValueError, match="mask size 40x20 does not match image size 20x40"):
        make_pipe()(path, np.zeros((20, 40), np.uint8))


# ------------------------------------------------------------------------------------------------- mask options


def test_mask_dilate_grows_hole_by_a_disk():
    pipe = make_pipe()
    array = np.full((21, 21, 3), 7, np.uint8)
    mask = np.zeros((21, 21), bool)
    mask[10, 10] = True
    result = np.asarray(pipe(array, mask, mask_dilate=3).image)
    changed = (result != array).any(axis=-1)
    yy, xx = np.mgrid[:21, :21] - 10
    np.testing.assert_array_equal(changed, yy**2 + xx**2 <= 9)
    assert pipe.model.calls[0]["mask"].sum() == (yy**2 + xx**2 <= 9).sum()


def test_mask_feather_keeps_outside_of_effective_mask_identical():
    pipe = make_pipe()
    array = random_uint8(31, 31, 3)
    mask = box_mask(31, 31, 12, 12, 18, 18) > 0
    result = np.asarray(pipe(array, mask, mask_dilate=1, mask_feather=4).image)
    effective = dilate_mask(dilate_mask(mask, 1), 4)
    assert_outside_identical(result, array, effective)
    assert (result[dilate_mask(mask, 1)] == FILL_UINT8).all()  # the (dilated) hole is fully replaced
    # the model was asked to inpaint the whole effective region
    np.testing.assert_array_equal(pipe.model.calls[0]["mask"][0, 0].numpy() > 0, effective)
    # the band is a blend strictly between the original and the fill (where they differ enough)
    band = effective & ~dilate_mask(mask, 1)
    assert (result[band] != array[band]).any()


def test_empty_mask_returns_input_unchanged_with_warning(caplog):
    pipe = make_pipe()
    image = Image.fromarray(random_uint8(9, 7, 3)).convert("P")
    with caplog.at_level(logging.WARNING, logger="inpaint_hub.pipeline"):
        out = pipe(image, np.zeros((9, 7), np.uint8), num_samples=2)
    assert "mask is empty" in caplog.text
    assert not pipe.model.calls
    assert len(out.images) == 2
    for result in out.images:
        assert result.mode == "P" and result.size == image.size
        assert result.tobytes() == image.tobytes() and result.getpalette() == image.getpalette()
    array = RNG.random((4, 5)).astype(np.float32)
    native = pipe(array, np.zeros((4, 5))).native[0]
    assert native.dtype == np.float32 and np.array_equal(native, array)


# ------------------------------------------------------------------------------------------------- HD strategies


def test_resize_strategy_runs_model_at_reduced_size(caplog):
    pipe = make_pipe()
    array = random_uint8(60, 100, 3)
    mask = np.zeros((60, 100), bool)
    mask[20:30, 40:55] = True
    mask[59, 99] = True  # a single corner pixel must survive the downscale
    with caplog.at_level(logging.INFO, logger="inpaint_hub.pipeline"):
        out = pipe(array, mask, hd_strategy="resize", resize_limit=50)
    assert "hd_strategy=resize" in caplog.text
    call = pipe.model.calls[0]
    assert len(pipe.model.calls) == 1 and call["image"].shape == (1, 3, 30, 50)
    assert call["mask"][0, 0, 29, 49] == 1
    result = np.asarray(out.image)
    assert out.image.size == (100, 60)
    assert_outside_identical(result, array, mask)
    # away from the hole's edge the upscaled constant fill is that constant (at the edge bicubic mixes in context)
    assert (result[23:27, 43:52] == FILL_UINT8).all()


def test_resize_strategy_leaves_small_images_alone():
    pipe = make_pipe()
    pipe(random_uint8(30, 40, 3), box_mask(30, 40, 1, 1, 4, 4), hd_strategy="resize", resize_limit=40)
    assert pipe.model.calls[0]["image"].shape == (1, 3, 30, 40)


def test_crop_strategy_runs_once_per_region_with_bounded_crops(caplog):
    pipe = make_pipe(size_multiple=1, fill="mean")
    height, width, margin = 100, 120, 6
    array = random_uint8(height, width, 3)
    mask = np.zeros((height, width), bool)
    boxes = [(10, 10, 20, 25), (60, 80, 70, 90), (40, 95, 45, 119)]  # top, left, bottom, right (exclusive)
    for top, left, bottom, right in boxes:
        mask[top:bottom, left:right] = True
    mask[62, 100] = True  # close to region 2: its crop overlaps region 2's crop
    with caplog.at_level(logging.INFO, logger="inpaint_hub.pipeline"):
        out = pipe(
            Image.fromarray(array), Image.fromarray(mask), hd_strategy="crop", crop_trigger_size=50, crop_margin=margin
        )
    assert "hd_strategy=crop" in caplog.text
    assert len(pipe.model.calls) == 4
    # each crop is its region's bounding box grown by the margin on every side, clipped to the image
    expected = [(22, 27), (17, 31), (22, 22), (13, 13)]  # (rows, columns) in label (raster) order
    assert [tuple(call["image"].shape[-2:]) for call in pipe.model.calls] == expected
    regions_in_raster_order = [boxes[0], boxes[2], boxes[1], (62, 100, 63, 101)]
    for (top, left, bottom, right), (rows, columns) in zip(regions_in_raster_order, expected):
        assert rows <= bottom - top + 2 * margin and columns <= right - left + 2 * margin
    result = np.asarray(out.image)
    assert_outside_identical(result, array, mask)
    assert (result[mask] != array[mask]).any()
    # every pixel of one region received the same (mean) fill from its own crop
    for top, left, bottom, right in boxes:
        patch = result[top:bottom, left:right].reshape(-1, 3)
        assert (patch == patch[0]).all()


def test_hd_defaults_are_1280_800_and_128():
    pipe = make_pipe()
    # resize_limit=1280: a 1281-pixel-long image is inpainted at 1280, a 1280-pixel one as it is
    for width, seen_width in ((1281, 1280), (1280, 1280)):
        array = random_uint8(4, width, 3)
        pipe(array, box_mask(4, width, 1, 600, 3, 700), hd_strategy="resize")
        assert pipe.model.calls[-1]["image"].shape == (1, 3, 4, seen_width)
        if width == 1280:
            seen = pipe.model.calls[-1]["image"][0].numpy().transpose(1, 2, 0)
            np.testing.assert_array_equal(seen, array.astype(np.float32) / np.float32(255))
    # crop_trigger_size=800: 801 pixels crop, 800 do not; crop_margin=128 grows the crop by 128 on each side
    for width, seen in ((801, (257, 257)), (800, (300, 800))):
        array = random_uint8(300, width, 3)
        mask = np.zeros((300, width), bool)
        mask[150, 400] = True
        pipe(array, mask, hd_strategy="crop")
        call = pipe.model.calls[-1]
        assert tuple(call["image"].shape[-2:]) == seen
        if width == 801:  # rows 150-128 .. 150+128, columns 400-128 .. 400+128
            crop = array[22:279, 272:529].transpose(2, 0, 1).astype(np.float32) / np.float32(255)
            np.testing.assert_array_equal(call["image"][0].numpy(), crop)


def test_crop_strategy_below_trigger_behaves_like_original():
    pipe = make_pipe(fill="mean")
    array = random_uint8(40, 30, 3)
    mask = box_mask(40, 30, 2, 2, 5, 5) | box_mask(40, 30, 30, 20, 35, 25)
    crop = pipe(array, mask, hd_strategy="crop", crop_trigger_size=40).image
    assert len(pipe.model.calls) == 1 and pipe.model.calls[0]["image"].shape == (1, 3, 40, 30)
    original = pipe(array, mask, hd_strategy="original").image
    assert np.array_equal(np.asarray(crop), np.asarray(original))


# ------------------------------------------------------------------------------------------------- seeding


def test_num_samples_and_seed_determinism():
    pipe = make_pipe(fill="noise")
    array = random_uint8(16, 16, 3)
    mask = box_mask(16, 16, 4, 4, 12, 12)
    first = pipe(array, mask, num_samples=3, seed=3)
    again = pipe(array, mask, num_samples=3, seed=3)
    assert first.seeds == [3, 4, 5]
    pixels = [np.asarray(image) for image in first.images]
    for a, b in zip(pixels, again.images):
        assert np.array_equal(a, np.asarray(b))
    assert not np.array_equal(pixels[0], pixels[1]) and not np.array_equal(pixels[1], pixels[2])
    shifted = pipe(array, mask, num_samples=1, seed=4)
    assert np.array_equal(np.asarray(shifted.image), pixels[1])  # sample i uses seed + i
    other = pipe(array, mask, seed=1000)
    assert not np.array_equal(np.asarray(other.image), pixels[0])
    generators = [call["generator"] for call in pipe.model.calls[:3]]
    assert [g.initial_seed() for g in generators] == [3, 4, 5]
    for image in first.images:
        assert_outside_identical(np.asarray(image), array, mask > 0)


def test_random_seed_when_none_and_caller_generator():
    pipe = make_pipe(fill="noise")
    array = random_uint8(8, 8, 3)
    mask = box_mask(8, 8, 2, 2, 6, 6)
    out = pipe(array, mask)
    assert isinstance(out.seeds[0], int)
    replay = pipe(array, mask, seed=out.seeds[0])
    assert np.array_equal(np.asarray(out.image), np.asarray(replay.image))
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a = pipe(array, mask, generator=g1, num_samples=2)
    b = pipe(array, mask, generator=g2, num_samples=2)
    assert a.seeds == [None, None]
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a.images, b.images))
    assert not np.array_equal(np.asarray(a.images[0]), np.asarray(a.images[1]))


def test_seed_range_is_checked_up_front():
    pipe = make_pipe(fill="noise")
    array = random_uint8(4, 4, 3)
    mask = box_mask(4, 4, 1, 1, 3, 3)
    for seed, num_samples in ((2**64, 1), (2**63, 1), (2**63 - 1, 2), (2**63 - 3, 4)):
        with pytest.raises(ValueError, match=r"seed must be below 2\*\*63 - num_samples \+ 1"):
            pipe(array, mask, seed=seed, num_samples=num_samples)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        pipe(array, mask, seed=-1)
    with pytest.raises(ValueError, match="seed must be an integer"):
        pipe(array, mask, seed=1.5)
    assert not pipe.model.calls
    assert pipe(array, mask, seed=2**63 - 2, num_samples=2).seeds == [2**63 - 2, 2**63 - 1]
    assert pipe(array, mask, seed=np.int64(2**63 - 1)).seeds == [2**63 - 1]


def test_random_seed_leaves_room_for_every_sample(monkeypatch):
    from inpaint_hub import pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module.secrets, "randbelow", lambda bound: bound - 1)  # the largest draw
    out = make_pipe(fill="noise")(random_uint8(4, 4, 3), box_mask(4, 4, 1, 1, 3, 3), num_samples=3)
    assert out.seeds == [2**63 - 3, 2**63 - 2, 2**63 - 1]


def test_deterministic_model_repeats():
    out = make_pipe()(random_uint8(8, 8, 3), box_mask(8, 8, 2, 2, 6, 6), num_samples=3, seed=0)
    assert len(out.images) == 3
    assert all(np.array_equal(np.asarray(out.images[0]), np.asarray(image)) for image in out.images)


# ------------------------------------------------------------------------------------------------- errors


def test_errors_are_value_errors_naming_the_problem(tmp_path):
    pipe = make_pipe()
    array = random_uint8(8, 10, 3)
    mask = box_mask(8, 10, 2, 2, 5, 5)
    with pytest.raises(ValueError, match="mask size 8x10 does not match image size 10x8"):
        pipe(array, np.zeros((10, 8), np.uint8))
    with pytest.raises(ValueError, match="unknown hd_strategy 'tile'"):
        pipe(array, mask, hd_strategy="tile")
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        pipe(array, mask, num_samples=0)
    with pytest.raises(ValueError, match="seed or generator"):
        pipe(array, mask, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="mask_dilate must be >= 0"):
        pipe(array, mask, mask_dilate=-2)
    with pytest.raises(ValueError, match="too many pixels"):
        pipe(array, mask, max_pixels=50)
    with pytest.raises(ValueError, match="mask contains NaN"):
        pipe(array, np.where(mask > 0, np.nan, 0.0))

    text = tmp_path / "image.png"
    text.write_bytes(b"GIF? no, plain text")
    with pytest.raises(ValueError, match=r"image\.png.*not an image"):
        pipe(text, mask)

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ValueError, match=r"truncated\.jpg.*truncated"):
        pipe(truncated, mask)
    mask_file = tmp_path / "mask.png"
    mask_file.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match=r"cannot read mask .*mask\.png"):
        pipe(array, mask_file)
    assert not pipe.model.calls


def test_max_pixels_none_is_the_default_as_in_load_image_and_zero_is_no_limit():
    pipe = make_pipe()
    # 72,000,000 pixels: over DEFAULT_MAX_PIXELS, under Pillow's limit
    bomb = png_header_only(9_000, 8_000, grayscale=True)
    for max_pixels in (None, DEFAULT_MAX_PIXELS):
        with pytest.raises(ValueError, match=f"72000000 > max_pixels={DEFAULT_MAX_PIXELS}"):
            pipe(bomb, np.zeros((8_000, 9_000), bool), max_pixels=max_pixels)
    array = random_uint8(30, 40, 3)
    with pytest.raises(ValueError, match="too many pixels"):
        pipe(array, box_mask(30, 40, 1, 1, 4, 4), max_pixels=1000)
    assert pipe(array, box_mask(30, 40, 1, 1, 4, 4), max_pixels=0).image.size == (40, 30)  # 0 = no limit
    with pytest.raises(ValueError, match="max_pixels must be a non-negative integer"):
        pipe(array, box_mask(30, 40, 1, 1, 4, 4), max_pixels=-5)


# ------------------------------------------------------------------------------------------------- loading


def test_from_pretrained_round_trip(tmp_path, monkeypatch):
    monkeypatch.setitem(modeling_utils._MODEL_TYPES, "fake", (__name__, "FakeConfig", "FakeModel"))
    model = FakeModel(FakeConfig(size_multiple=4))
    with torch.no_grad():
        model.scale.fill_(0.5)
    model.save_pretrained(tmp_path / "fake")
    pipe = InpaintPipeline.from_pretrained(tmp_path / "fake", device="cpu")
    assert isinstance(pipe.model, FakeModel) and pipe.model.size_multiple == 4
    assert pipe.model.scale.item() == 0.5 and not pipe.model.training
    array = random_uint8(6, 6, 3)
    result = np.asarray(pipe(array, box_mask(6, 6, 1, 1, 3, 3)).image)
    assert (result[1:3, 1:3] == np.rint(np.float32(0.5) * np.array(FILL, np.float32) * 255)).all()


def test_lama_end_to_end_on_odd_sized_image():
    from inpaint_hub.models import lama

    torch.manual_seed(0)
    model = lama.LamaModel(lama.LamaConfig.tiny())
    pipe = InpaintPipeline(model)
    array = random_uint8(37, 29, 3)
    mask = box_mask(37, 29, 9, 5, 20, 17)
    out = pipe(Image.fromarray(array), Image.fromarray(mask), mask_dilate=1)
    assert out.image.size == (29, 37) and out.image.mode == "RGB"
    assert_outside_identical(np.asarray(out.image), array, dilate_mask(mask > 0, 1))


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 37), (37, 1), (5, 3), (33, 65)])
def test_lama_handles_images_smaller_than_its_minimum_size(height, width):
    """LaMa needs >= 2 pixels at its deepest level (min_size); the pipeline pads tiny images up to it."""
    from inpaint_hub.models import lama

    model = lama.LamaModel(lama.LamaConfig.tiny()).eval()
    assert model.min_size == 8
    array = random_uint8(height, width, 3)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 2, width // 2] = 255
    out = InpaintPipeline(model)(array, mask)
    assert out.image.size == (width, height)
    assert_outside_identical(np.asarray(out.image), array, mask > 0)
