"""Tests of inpaint_hub.image_processing: the pixel conventions of DESIGN.md ("Pixels")."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from image_helpers import png_header_only
from PIL import Image, ImageFile

from inpaint_hub.image_processing import (
    DEFAULT_MAX_PIXELS,
    PAD_MODES,
    ImageInput,
    composite,
    dilate_mask,
    feather_mask,
    load_image,
    load_mask,
    mask_to_tensor,
    pad_to_multiple,
    resize_mask,
    resize_rgb,
    to_tensor,
    to_uint8,
    unpad,
)


RNG = np.random.default_rng(0)


def random_uint8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------- padding

SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17]
MULTIPLES = [1, 2, 3, 4, 8, 16, 32]
NUMPY_MODE = {"symmetric": "symmetric", "reflect": "reflect", "replicate": "edge"}


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("multiple", MULTIPLES)
def test_pad_to_multiple_matches_numpy_for_every_size(mode, multiple):
    for height in SIZES:
        for width in SIZES:
            x = torch.from_numpy(RNG.random((2, 3, height, width)).astype(np.float32))
            padded, size = pad_to_multiple(x, multiple, mode)
            pad_h, pad_w = -height % multiple, -width % multiple
            expected = np.pad(x.numpy(), ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode=NUMPY_MODE[mode])
            assert size == (height, width)
            assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
            np.testing.assert_array_equal(padded.numpy(), expected, err_msg=f"{mode} {height}x{width} -> {multiple}")
            assert torch.equal(unpad(padded, size), x)


def test_symmetric_pad_larger_than_image_repeats_the_mirror():
    x = torch.tensor([[[[1.0, 2.0, 3.0]]]])
    padded, _ = pad_to_multiple(x, 10, "symmetric")
    assert padded[0, 0, 0].tolist() == [1, 2, 3, 3, 2, 1, 1, 2, 3, 3]
    one_pixel_wide = torch.arange(5.0).reshape(1, 1, 5, 1)
    padded, size = pad_to_multiple(one_pixel_wide, 8, "symmetric")
    assert padded.shape == (1, 1, 8, 8) and size == (5, 1)
    np.testing.assert_array_equal(
        padded.numpy(), np.pad(one_pixel_wide.numpy(), ((0, 0), (0, 0), (0, 3), (0, 7)), "symmetric")
    )


def test_reflect_pad_equals_torch_where_torch_allows_it():
    x = torch.rand(1, 3, 9, 6)
    padded, _ = pad_to_multiple(x, 8, "reflect")
    assert torch.equal(padded, F.pad(x, (0, 2, 0, 7), mode="reflect"))
    padded, _ = pad_to_multiple(x, 8, "replicate")
    assert torch.equal(padded, F.pad(x, (0, 2, 0, 7), mode="replicate"))


def test_pad_keeps_dtype_and_returns_input_when_already_a_multiple():
    x = torch.from_numpy(random_uint8(1, 1, 5, 3))
    padded, size = pad_to_multiple(x, 4)
    assert padded.dtype == torch.uint8 and padded.shape == (1, 1, 8, 4) and size == (5, 3)
    y = torch.rand(1, 3, 8, 16)
    assert pad_to_multiple(y, 8)[0] is y


def test_pad_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown pad mode 'circular'"):
        pad_to_multiple(torch.rand(1, 3, 4, 4), 8, "circular")
    with pytest.raises(ValueError, match="multiple must be a positive integer"):
        pad_to_multiple(torch.rand(1, 3, 4, 4), 0)
    with pytest.raises(ValueError, match="cannot unpad"):
        unpad(torch.rand(1, 3, 4, 4), (5, 4))


# ------------------------------------------------------------------------------------------------- tensors


def test_to_tensor_and_to_uint8_round_trip_every_value():
    array = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=-1)
    tensor = to_tensor(array)
    assert tensor.dtype == torch.float32 and tensor.shape == (1, 3, 16, 16)
    assert tensor.min() == 0 and tensor.max() == 1
    torch.testing.assert_close(tensor[0, 0], torch.from_numpy(array[..., 0].astype(np.float32) / 255))
    np.testing.assert_array_equal(to_uint8(tensor), array)


def test_to_uint8_clips_and_rounds_to_nearest():
    tensor = torch.tensor([-0.5, 0.0, 0.4 / 255, 0.6 / 255, 1.0, 1.7, float("nan")]).reshape(1, 1, 1, 7)
    assert to_uint8(tensor)[0, :, 0].tolist() == [0, 0, 0, 1, 255, 255, 0]


def test_mask_to_tensor():
    mask = np.zeros((3, 5), bool)
    mask[1, 2] = True
    tensor = mask_to_tensor(mask)
    assert tensor.dtype == torch.float32 and tensor.shape == (1, 1, 3, 5)
    assert tensor.sum() == 1 and tensor[0, 0, 1, 2] == 1


# ------------------------------------------------------------------------------------------------- load_image


def test_load_image_pil_rgb_path_and_bytes(tmp_path):
    array = random_uint8(7, 11, 3)
    path = tmp_path / "x.png"
    Image.fromarray(array).save(path)
    for source in (Image.fromarray(array), path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes())):
        loaded = load_image(source)
        assert isinstance(loaded, ImageInput)
        assert loaded.size == (11, 7) and loaded.mode == "RGB" and loaded.kind == "pil" and loaded.alpha is None
        np.testing.assert_array_equal(loaded.color, array)
        np.testing.assert_array_equal(loaded.to_model_rgb(), array.astype(np.float32) / 255)


def test_load_image_rgba_and_grayscale_modes():
    rgba = random_uint8(5, 6, 4)
    loaded = load_image(Image.fromarray(rgba))
    assert loaded.mode == "RGBA"
    np.testing.assert_array_equal(loaded.color, rgba[..., :3])
    np.testing.assert_array_equal(loaded.alpha, rgba[..., 3])
    np.testing.assert_array_equal(np.asarray(loaded.to_pil()), rgba)

    gray = random_uint8(5, 6)
    loaded = load_image(Image.fromarray(gray))
    assert loaded.mode == "L" and loaded.grayscale and loaded.color.shape == (5, 6)
    rgb = loaded.to_model_rgb()
    assert rgb.shape == (5, 6, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])
    assert loaded.to_pil().mode == "L"

    la = Image.fromarray(gray).convert("LA")
    assert load_image(la).mode == "LA"


@pytest.mark.parametrize(
    ("make", "expected_mode"),
    [
        (lambda a: Image.fromarray(a).convert("P"), "RGB"),
        (lambda a: Image.fromarray(a).convert("CMYK"), "RGB"),
        (lambda a: Image.fromarray(a).convert("1"), "L"),
        (lambda a: Image.fromarray(a).convert("YCbCr"), "RGB"),
        (lambda a: Image.fromarray(a).convert("HSV"), "RGB"),
        (lambda a: Image.fromarray(a).convert("RGBX"), "RGB"),
        (lambda a: Image.fromarray(a).convert("LAB"), "RGB"),
        (lambda a: Image.fromarray(a).convert("RGBa"), "RGBA"),
        (lambda a: Image.fromarray(a).convert("La"), "LA"),
        (lambda a: Image.fromarray(a).convert("PA"), "RGBA"),
    ],
)
def test_load_image_converts_other_pil_modes(make, expected_mode):
    array = random_uint8(6, 4, 3)
    loaded = load_image(make(array))
    assert loaded.mode == expected_mode and loaded.size == (4, 6)
    assert loaded.color.dtype == np.uint8
    assert (loaded.alpha is not None) == (expected_mode in ("RGBA", "LA"))


def test_lab_is_converted_to_rgb_not_mistaken_for_rgba():
    """LAB's a* band is named "A": alpha must come from the mode, and the colours must be converted properly."""
    array = RNG.integers(48, 208, size=(8, 8, 3), dtype=np.uint8)  # well inside the sRGB gamut
    lab = Image.fromarray(array).convert("LAB")
    assert "A" in lab.getbands()
    loaded = load_image(lab)
    assert loaded.mode == "RGB" and loaded.alpha is None and loaded.color.shape == (8, 8, 3)
    assert np.abs(loaded.color.astype(int) - array).max() <= 16  # LittleCMS's LAB (D50) <-> sRGB round trip
    white_black = load_image(Image.frombytes("LAB", (2, 1), bytes([255, 0, 0, 0, 0, 0]))).color
    assert (white_black[0, 0] >= 250).all() and (white_black[0, 1] <= 5).all()
    assert load_image(lab).to_pil().mode == "RGB"


def test_colour_space_conversion_drops_the_icc_profile_of_the_old_space():
    cmyk = Image.fromarray(random_uint8(4, 4, 3)).convert("CMYK")
    cmyk.info["icc_profile"] = b"a CMYK profile"
    assert load_image(cmyk).info == {}
    rgb = Image.fromarray(random_uint8(4, 4, 3))
    rgb.info["icc_profile"] = b"an RGB profile"
    assert load_image(rgb).to_pil().info["icc_profile"] == b"an RGB profile"


# ------------------------------------------------------------------------------------------------- 16-bit

SIXTEEN_BIT = np.array([[0, 1, 200, 255], [256, 257, 60000, 65535]], np.uint16)


def sixteen_bit_pil(mode: str) -> Image.Image:
    if mode == "I":
        return Image.fromarray(SIXTEEN_BIT.astype(np.int32))
    byte_order = ">" if mode == "I;16B" else "<"
    return Image.frombytes(mode, (4, 2), SIXTEEN_BIT.astype(f"{byte_order}u2").tobytes())


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I"])
def test_16_bit_grayscale_pil_is_read_as_v_over_65535_and_written_back_in_its_mode(mode):
    image = sixteen_bit_pil(mode)
    assert image.mode == mode
    loaded = load_image(image)
    assert loaded.mode == mode and loaded.grayscale and loaded.alpha is None and loaded.max_value == 65535
    np.testing.assert_array_equal(loaded.color, SIXTEEN_BIT)
    # scaled by the bit depth, not by the content: 200 is 200 / 65535, 60000 is 60000 / 65535
    np.testing.assert_array_equal(loaded.to_model_rgb()[..., 1], SIXTEEN_BIT.astype(np.float32) / np.float32(65535))
    out = loaded.to_pil()
    assert out.mode == mode
    np.testing.assert_array_equal(np.asarray(out), SIXTEEN_BIT)
    # known pixels bit-identical after a merge, the hole quantised to 16 bits
    alpha = np.zeros((2, 4), np.float32)
    alpha[1, 2] = 1
    merged = np.asarray(loaded.to_pil(loaded.merge(np.full((2, 4, 3), 0.5, np.float32), alpha)))
    np.testing.assert_array_equal(merged[alpha == 0], SIXTEEN_BIT[alpha == 0])
    assert merged[1, 2] == np.rint(np.float32(0.5) * 65535)


def test_16_bit_png_file_round_trips(tmp_path):
    path = tmp_path / "depth.png"
    Image.fromarray(SIXTEEN_BIT).save(path)
    loaded = load_image(path)
    assert loaded.mode == "I;16" and loaded.color.dtype == np.uint16
    loaded.to_pil().save(tmp_path / "again.png")
    again = Image.open(tmp_path / "again.png")
    assert again.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(again), SIXTEEN_BIT)


def test_every_16_bit_value_survives_the_model_scale_and_back():
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    loaded = load_image(values)
    np.testing.assert_array_equal(loaded.color_from_rgb(loaded.to_model_rgb()), values)


def test_mode_i_outside_16_bit_and_mode_f_outside_unit_range_are_refused():
    with pytest.raises(ValueError, match=r"mode I.*\[-1, 5\].*0\.\.65535"):
        load_image(Image.fromarray(np.array([[-1, 5]], np.int32)))
    with pytest.raises(ValueError, match=r"mode I.*70000.*0\.\.65535"):
        load_image(Image.fromarray(np.array([[0, 70000]], np.int32)))
    with pytest.raises(ValueError, match=r"mode F.*must be in \[0, 1\]"):
        load_image(Image.fromarray(np.array([[0.0, 255.0]], np.float32)))
    values = np.array([[0.0, 0.25, 1.0]], np.float32)
    loaded = load_image(Image.fromarray(values))
    assert loaded.mode == "F" and loaded.to_pil().mode == "F"
    np.testing.assert_array_equal(np.asarray(loaded.to_pil()), values)


@pytest.mark.parametrize("shape", [(2, 4), (2, 4, 1), (2, 4, 3), (2, 4, 4)])
def test_uint16_arrays_are_16_bit_by_dtype(shape):
    """uint16 is 16-bit whatever its values (even all <= 255); other integer dtypes are 8-bit."""
    small = SIXTEEN_BIT % 256  # all values <= 255: still 16-bit, because of the dtype
    array = np.broadcast_to(small.reshape(2, 4, *([1] * (len(shape) - 2))), shape).astype(np.uint16)
    loaded = load_image(array)
    assert loaded.max_value == 65535
    np.testing.assert_array_equal(loaded.to_model_rgb()[..., 0], small.astype(np.float32) / np.float32(65535))
    native = loaded.to_native()
    assert native.dtype == np.uint16 and native.shape == shape
    np.testing.assert_array_equal(native, array)
    pil = loaded.to_pil()
    if len(shape) == 2 or shape[-1] == 1:
        assert pil.mode == "I;16"  # exact
        np.testing.assert_array_equal(np.asarray(pil), small)
    else:  # PIL has no 16-bit colour modes: quantised to 8 bits
        assert pil.mode == ("RGB" if shape[-1] == 3 else "RGBA")
        expected = np.rint(small.astype(np.float32) / np.float32(65535) * np.float32(255)).astype(np.uint8)
        np.testing.assert_array_equal(np.asarray(pil)[..., 0], expected)
    # the same values as int64 (numpy's default integer) are 8-bit
    assert load_image(array.astype(np.int64)).to_model_rgb().max() == np.float32(255) / np.float32(255)


def test_uint16_tensor_is_16_bit():
    tensor = torch.from_numpy(SIXTEEN_BIT.astype(np.int32)).to(torch.uint16)
    loaded = load_image(tensor)
    assert loaded.max_value == 65535 and loaded.mode == "I;16"
    native = loaded.to_native()
    assert native.dtype == torch.uint16 and torch.equal(native, tensor)


def test_palette_with_transparency_keeps_alpha():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    image.info["transparency"] = 0
    loaded = load_image(image)
    assert loaded.mode == "RGBA"
    assert loaded.alpha[1, 1] == 255 and loaded.alpha[0, 0] == 0


@pytest.mark.parametrize(
    ("shape", "mode"), [((5, 7), "L"), ((5, 7, 1), "L"), ((5, 7, 2), "LA"), ((5, 7, 3), "RGB"), ((5, 7, 4), "RGBA")]
)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_load_image_arrays_round_trip_to_native(shape, mode, dtype):
    array = random_uint8(*shape) if dtype == np.uint8 else RNG.random(shape).astype(dtype)
    loaded = load_image(array)
    assert loaded.kind == "numpy" and loaded.mode == mode and loaded.size == (7, 5)
    native = loaded.to_native()
    assert native.dtype == array.dtype and native.shape == array.shape
    np.testing.assert_array_equal(native, array)
    assert loaded.to_pil().mode == mode and loaded.to_pil().size == (7, 5)
    if dtype != np.uint8:
        np.testing.assert_array_equal(
            loaded.to_model_rgb()[..., 0], array.reshape(5, 7, -1)[..., 0].astype(np.float32)
        )


@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 3, 5, 7), (5, 7), (1, 5, 7), (4, 5, 7)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_load_image_tensors_round_trip_to_native(shape, dtype):
    tensor = torch.rand(shape).to(dtype)
    loaded = load_image(tensor)
    assert loaded.kind == "tensor" and loaded.size == (7, 5)
    assert loaded.grayscale == (len(shape) == 2 or shape[-3] == 1)
    native = loaded.to_native()
    assert native.dtype == dtype and native.shape == tensor.shape
    assert torch.equal(native, tensor)


def test_load_image_rejects_bad_arrays_and_tensors():
    with pytest.raises(ValueError, match=r"float image values must be in \[0, 1\]"):
        load_image(np.full((4, 4, 3), 2.0, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        load_image(np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="boolean"):
        load_image(np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match=r"8-bit \(0\.\.255\) for dtype int32.*only uint16"):
        load_image(np.full((4, 4, 3), 1000, np.int32))
    with pytest.raises(ValueError, match="8-bit"):
        load_image(np.full((4, 4, 3), -1, np.int16))
    with pytest.raises(ValueError, match="image array must be HxW"):
        load_image(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="batch of 2"):
        load_image(torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="channels first"):
        load_image(torch.rand(6, 4, 3))
    with pytest.raises(ValueError, match="empty"):
        load_image(np.zeros((0, 4, 3), np.uint8))


# ------------------------------------------------------------------------------------------------- bad files


def test_non_image_file_is_rejected_with_its_name(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(ValueError, match=r"notes\.png.*not an image"):
        load_image(path)
    with pytest.raises(ValueError, match=r"notes\.png.*not an image"):
        load_mask(path, (4, 4))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image(tmp_path / "missing.png")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("keep", [0.5, -1, -12])
def test_truncated_files_are_rejected(tmp_path, fmt, keep, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # a user's global setting must not hide truncation
    image = Image.fromarray(random_uint8(48, 40, 3))
    data = jpeg_bytes(image) if fmt == "JPEG" else png_bytes(image)
    cut = int(len(data) * keep) if isinstance(keep, float) else len(data) + keep
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=r"cut\.(jpeg|png).*truncated"):
        load_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored
    if keep == 0.5 or fmt == "JPEG":  # pixel data missing: caught in a lazily opened PIL image of the file too
        with pytest.raises(ValueError, match=r"cut\.(jpeg|png).*truncated"):
            load_image(Image.open(path))
    load_image(data)  # the intact file loads


def test_decompression_bomb_is_rejected_from_the_header(monkeypatch):
    data = png_header_only(5000, 5000)

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ValueError, match=r"too many pixels: 5000x5000 = 25000000 > max_pixels=1000000"):
        load_image(data, max_pixels=1_000_000)
    with pytest.raises(ValueError, match="too many pixels"):
        load_mask(data, (5000, 5000), max_pixels=1_000_000)


def test_pillow_decompression_bomb_error_becomes_a_value_error_naming_max_pixels():
    # 10^10 pixels: Pillow's own check (lifted to max_pixels, never below its default) fires inside Image.open
    with pytest.raises(ValueError, match=f"too many pixels \\(more than max_pixels={DEFAULT_MAX_PIXELS}\\).*bomb"):
        load_image(png_header_only(100_000, 100_000))


def test_max_pixels_is_the_only_limit_pillows_own_is_lifted(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 40 * 40 = 1600: Pillow alone would refuse it
    data = png_bytes(Image.new("RGB", (40, 40)))
    with pytest.warns(Image.DecompressionBombWarning):
        opened = Image.open(io.BytesIO(data))
    assert load_image(data).size == (40, 40)
    assert load_image(opened).size == (40, 40)
    assert load_mask(data, (40, 40)).shape == (40, 40)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored
    with pytest.raises(ValueError, match=r"too many pixels.*max_pixels=1500"):
        load_image(data, max_pixels=1500)


def test_max_pixels_can_be_raised_above_pillows_default(monkeypatch):
    pillow_default = Image.MAX_IMAGE_PIXELS
    data = png_header_only(10_000, 9_000)  # 90,000,000 pixels > Pillow's 89,478,485 (it would warn = refuse)
    assert 10_000 * 9_000 > pillow_default
    limits_while_decoding = []

    def no_decoding(self, *args, **kwargs):
        limits_while_decoding.append(Image.MAX_IMAGE_PIXELS)
        raise OSError("stopped before decoding")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ValueError, match="stopped before decoding"):  # past every size check
        load_image(data, max_pixels=100_000_000)
    with pytest.raises(ValueError, match="stopped before decoding"):
        load_image(data, max_pixels=0)  # 0 = no limit
    assert limits_while_decoding == [100_000_000, None]
    assert Image.MAX_IMAGE_PIXELS == pillow_default


def test_max_pixels_none_means_the_default_and_bad_values_are_refused(monkeypatch):
    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    data = png_header_only(9_000, 8_000)  # 72,000,000 pixels: over our default, under Pillow's
    for load in (lambda **kw: load_image(data, **kw), lambda **kw: load_mask(data, **kw)):
        with pytest.raises(ValueError, match=f"9000x8000 = 72000000 > max_pixels={DEFAULT_MAX_PIXELS}"):
            load(max_pixels=None)
        with pytest.raises(ValueError, match=f"> max_pixels={DEFAULT_MAX_PIXELS}"):
            load()
        with pytest.raises(ValueError, match="max_pixels must be a non-negative integer"):
            load(max_pixels=-1)
    assert load_image(np.zeros((100, 100, 3), np.uint8), max_pixels=0).size == (100, 100)


def test_arrays_are_limited_too():
    with pytest.raises(ValueError, match="too many pixels"):
        load_image(np.zeros((100, 100, 3), np.uint8), max_pixels=5000)
    with pytest.raises(ValueError, match="too many pixels"):
        load_image(Image.new("RGB", (100, 100)), max_pixels=5000)


# ------------------------------------------------------------------------------------------------- EXIF


def exif_jpeg(array: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg_bytes(Image.fromarray(array), exif=exif, quality=95)


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high as stored: left half red, right half blue
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    path = tmp_path / "rotated.jpg"
    path.write_bytes(exif_jpeg(stored, orientation=6))  # 6 = rotate 90 degrees clockwise to display
    loaded = load_image(path)
    assert loaded.size == (20, 40)  # portrait after rotation
    top, bottom = loaded.color[5, 10].astype(int), loaded.color[35, 10].astype(int)
    assert top[0] > 200 and top[2] < 60, "the stored left (red) half must be on top"
    assert bottom[2] > 200 and bottom[0] < 60, "the stored right (blue) half must be at the bottom"
    assert load_image(Image.open(path)).size == (20, 40)  # a PIL image straight from Image.open too

    # masks are matched against the rotated image
    assert load_mask(Image.new("L", (20, 40), 255), loaded.size).all()
    with pytest.raises(ValueError, match="mask size 40x20 does not match image size 20x40"):
        load_mask(Image.new("L", (40, 20), 255), loaded.size)
    # a mask with the same EXIF tag is rotated the same way
    mask_stored = np.zeros((20, 40, 3), np.uint8)
    mask_stored[:, :20] = 255
    mask = load_mask(exif_jpeg(mask_stored, orientation=6), loaded.size)
    assert mask.shape == (40, 20) and mask[5, 10] and not mask[35, 10]


# ------------------------------------------------------------------------------------------------- load_mask


def test_mask_polarity_white_and_any_non_zero_is_hole():
    values = np.array([[0, 1, 128, 255]], np.uint8)
    assert load_mask(Image.fromarray(values), (4, 1)).tolist() == [[False, True, True, True]]
    assert load_mask(values, (4, 1)).tolist() == [[False, True, True, True]]
    assert load_mask(np.array([[0.0, 0.001, 1.0]]), (3, 1)).tolist() == [[False, True, True]]
    assert load_mask(np.array([[False, True]]), (2, 1)).tolist() == [[False, True]]
    assert load_mask(torch.tensor([[[0.0, 0.5]]]), (2, 1)).tolist() == [[False, True]]
    assert load_mask(torch.tensor([[[[0.0, 1.0]]]]), (2, 1)).tolist() == [[False, True]]
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 1, 1] = 3  # only the green channel: still a hole
    assert load_mask(rgb, (3, 1)).tolist() == [[False, True, False]]
    assert load_mask(Image.fromarray(rgb), (3, 1)).tolist() == [[False, True, False]]
    bilevel = Image.fromarray(np.array([[False, True, True]]))
    assert bilevel.mode == "1" and load_mask(bilevel, (3, 1)).tolist() == [[False, True, True]]


def test_mask_from_file_and_bytes(tmp_path):
    mask = np.zeros((6, 5), np.uint8)
    mask[2:4, 1:3] = 255
    path = tmp_path / "mask.png"
    Image.fromarray(mask).save(path)
    for source in (path, str(path), path.read_bytes()):
        np.testing.assert_array_equal(load_mask(source, (5, 6)), mask > 0)


def test_rgba_mask_rule():
    # a painted layer over a transparent background: alpha decides, whatever the stroke colour (black here)
    layer = np.zeros((4, 4, 4), np.uint8)
    layer[1, 1] = (0, 0, 0, 255)
    layer[2, 2] = (255, 255, 255, 40)
    expected = np.zeros((4, 4), bool)
    expected[1, 1] = expected[2, 2] = True
    np.testing.assert_array_equal(load_mask(layer, (4, 4)), expected)
    np.testing.assert_array_equal(load_mask(Image.fromarray(layer), (4, 4)), expected)
    # transparent white everywhere except the strokes is still the strokes
    layer[..., :3] = 255
    np.testing.assert_array_equal(load_mask(layer, (4, 4)), expected)
    # a fully opaque RGBA mask is decided by its colour, like RGB
    opaque = np.zeros((4, 4, 4), np.uint8)
    opaque[..., 3] = 255
    opaque[3, 0, :3] = 255
    assert load_mask(opaque, (4, 4)).sum() == 1 and load_mask(opaque, (4, 4))[3, 0]
    # LA the same way
    la = np.zeros((2, 2, 2), np.uint8)
    la[0, 1, 1] = 255
    assert load_mask(la, (2, 2)).tolist() == [[False, True], [False, False]]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_mask_with_nan_or_inf_is_refused_like_an_image(bad):
    values = np.zeros((3, 4), np.float32)
    values[1, 2] = bad
    with pytest.raises(ValueError, match="mask contains NaN or infinite values"):
        load_mask(values, (4, 3))
    with pytest.raises(ValueError, match="mask contains NaN or infinite values"):
        load_mask(torch.from_numpy(values), (4, 3))
    with pytest.raises(ValueError, match="mask contains NaN or infinite values"):
        load_mask(Image.fromarray(values), (4, 3))  # a PIL "F" mask
    with pytest.raises(ValueError, match="image array contains NaN or infinite values"):
        load_image(values)


def test_16_bit_masks():
    values = np.array([[0, 1, 65535]], np.uint16)
    assert load_mask(Image.fromarray(values), (3, 1)).tolist() == [[False, True, True]]
    painted = np.zeros((1, 2, 2), np.uint16)
    painted[0, 1] = (0, 300)  # a partly transparent 16-bit stroke: alpha decides
    assert load_mask(painted, (2, 1)).tolist() == [[False, True]]


def test_mask_size_mismatch_message():
    with pytest.raises(ValueError, match="mask size 5x3 does not match image size 4x3"):
        load_mask(np.zeros((3, 5), np.uint8), (4, 3))
    with pytest.raises(ValueError, match="mask must be HxW"):
        load_mask(np.zeros((3, 5, 7), np.uint8), (5, 3))


# ------------------------------------------------------------------------------------------------- dilate / feather


def disk(radius: int, size: int = 21) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - size // 2
    return yy**2 + xx**2 <= radius**2


@pytest.mark.parametrize("pixels", [0, 1, 2, 3, 5])
def test_dilate_single_pixel_becomes_disk(pixels):
    mask = np.zeros((21, 21), bool)
    mask[10, 10] = True
    dilated = dilate_mask(mask, pixels)
    np.testing.assert_array_equal(dilated, disk(pixels))
    if pixels == 1:
        assert dilated.sum() == 5  # the 4-neighbour cross
    # grows by exactly N along the axes
    assert dilated[10, 10 + pixels] and not dilated[10, 10 + pixels + 1]


def test_dilate_at_the_border_and_errors():
    mask = np.zeros((5, 5), bool)
    mask[0, 0] = True
    assert dilate_mask(mask, 2).sum() == 6  # the quarter disk: (0,0),(0,1),(0,2),(1,0),(1,1),(2,0)
    assert not dilate_mask(np.zeros((3, 3), bool), 4).any()
    with pytest.raises(ValueError, match="mask_dilate must be >= 0"):
        dilate_mask(mask, -1)


def test_feather_semantics():
    mask = np.zeros((31, 31), bool)
    mask[13:18, 13:18] = True
    alpha = feather_mask(mask, 4)
    assert alpha.dtype == np.float32
    assert (alpha[mask] == 1).all(), "hole pixels are always fully replaced"
    effective = alpha > 0
    np.testing.assert_array_equal(
        effective, dilate_mask(mask, 4), err_msg="effective mask = hole dilated by the radius"
    )
    ring = effective & ~mask
    assert ((alpha[ring] > 0) & (alpha[ring] < 1)).all()
    # decays with distance along a row
    row = alpha[15, 17:24]
    assert row.tolist() == sorted(row.tolist(), reverse=True) and row[0] == 1 and row[-1] == 0
    np.testing.assert_array_equal(feather_mask(mask, 0), mask.astype(np.float32))


def test_feather_keeps_outside_of_effective_mask_bit_identical():
    original = random_uint8(31, 31, 3)
    inpainted = random_uint8(31, 31, 3)
    mask = np.zeros((31, 31), bool)
    mask[10:14, 20:22] = True
    alpha = feather_mask(dilate_mask(mask, 2), 3)
    out = composite(original, inpainted, alpha)
    outside = alpha == 0
    np.testing.assert_array_equal(out[outside], original[outside])
    np.testing.assert_array_equal(out[mask], inpainted[mask])
    np.testing.assert_array_equal(outside, ~dilate_mask(dilate_mask(mask, 2), 3))


# ------------------------------------------------------------------------------------------------- composite


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("channels", [None, 3, 4])
def test_composite_keeps_alpha_zero_pixels_bit_identical(dtype, channels):
    shape = (9, 8) if channels is None else (9, 8, channels)
    if dtype == np.uint8:
        original, inpainted = random_uint8(*shape), random_uint8(*shape)
    else:
        original, inpainted = RNG.random(shape).astype(dtype), RNG.random(shape).astype(dtype)
    alpha = np.zeros((9, 8), np.float32)
    alpha[2:5, 3:6] = 1.0
    alpha[6, 1:4] = (0.25, 0.5, 0.75)
    out = composite(original, inpainted, alpha)
    assert out.dtype == original.dtype and out.shape == original.shape
    zero, one = alpha == 0, alpha == 1
    assert np.array_equal(out[zero], original[zero]) and np.array_equal(out[one], inpainted[one])
    blended = 0.5 * original[6, 2].astype(np.float64) + 0.5 * inpainted[6, 2].astype(np.float64)
    expected = np.rint(blended) if dtype == np.uint8 else blended
    np.testing.assert_allclose(out[6, 2].astype(np.float64), expected, atol=1e-6)
    assert np.array_equal(composite(original, inpainted, alpha > 0)[zero], original[zero])


def test_composite_rejects_mismatches():
    with pytest.raises(ValueError, match="does not match original shape"):
        composite(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="alpha shape"):
        composite(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="dtype"):
        composite(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.float32), np.zeros((4, 4)))


def test_image_input_merge_in_own_values():
    gray = random_uint8(6, 6)
    loaded = load_image(gray)
    alpha = np.zeros((6, 6), np.float32)
    alpha[2, 3] = 1
    color = loaded.merge(np.full((6, 6, 3), (1.0, 0.0, 0.0), np.float32), alpha)
    assert color.shape == (6, 6) and color.dtype == np.uint8
    assert color[2, 3] == round(0.299 * 255)
    assert np.array_equal(color[alpha == 0], gray[alpha == 0])


# ------------------------------------------------------------------------------------------------- resize helpers


def test_resize_mask_never_loses_a_hole_pixel():
    for y, x in [(0, 0), (99, 63), (50, 31), (1, 62)]:
        mask = np.zeros((100, 64), bool)
        mask[y, x] = True
        small = resize_mask(mask, (7, 11))
        assert small.shape == (11, 7) and small.sum() == 1
        assert small[y * 11 // 100, x * 7 // 64]
    assert resize_mask(np.ones((3, 3), bool), (6, 6)).all()


def test_resize_rgb_keeps_range_and_constants():
    rgb = np.full((40, 30, 3), 0.25, np.float32)
    out = resize_rgb(rgb, (10, 13))
    assert out.shape == (13, 10, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 0.25, atol=1e-6)
    noisy = RNG.random((40, 30, 3)).astype(np.float32)
    out = resize_rgb(noisy, (61, 83))
    assert out.min() >= 0 and out.max() <= 1


def test_pad_to_multiple_respects_min_size():
    x = torch.arange(3.0).reshape(1, 1, 1, 3)
    padded, size = pad_to_multiple(x, 4, "symmetric", min_size=8)
    assert padded.shape[-2:] == (8, 8) and size == (1, 3)
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (0, 7), (0, 5)), mode="symmetric")
    assert np.array_equal(padded.numpy(), expected)
    assert torch.equal(unpad(padded, size), x)
    big, _ = pad_to_multiple(torch.zeros(1, 1, 20, 9), 4, min_size=6)  # min_size 6 rounds up to 8
    assert big.shape[-2:] == (20, 12)
