"""Pixel conventions: the one place where images, masks, files and tensors meet.

Everything that knows about pixels lives here; models only see tensors and the pipeline only orchestrates.

Conventions (the "Pixels" contract of ``DESIGN.md``):

* **Images** reach a model as float32 ``[B, 3, H, W]`` RGB in [0, 1] (never BGR). 8-bit values ``v`` become
  ``v / 255``, 16-bit values ``v / 65535``; float inputs are already in [0, 1] and are passed on unchanged.
* **Bit depth is decided by type, never by content**: PIL modes ``I;16*`` (and ``I`` holding 0..65535) and numpy /
  torch ``uint16`` are 16-bit; every other integer dtype is 8-bit (0..255, anything else is refused); floats are
  [0, 1]. A 16-bit input comes back 16-bit (same PIL mode, same dtype).
* **Masks** are binary: any non-zero pixel is a hole (white / 255 / ``True`` = hole, the diffusers convention).
  Masks with a varying alpha channel (a painted layer over a transparent background) use the alpha; see
  :func:`load_mask`.
* **Known pixels are sacred**: :func:`composite` copies every pixel whose alpha is 0 bit for bit from the input, in
  the input's own values (uint8 stays uint8, 16-bit stays 16-bit, float stays the very same floats).
* **Shape is preserved**: output size = input size, RGBA keeps its alpha, grayscale comes back grayscale, EXIF
  orientation is applied on load (so what is inpainted is what the user sees).
* **Quantisation** (:func:`to_uint8`): clip to [0, 1], multiply by 255 (65535 for 16-bit inputs), round to the
  nearest integer with ties to even (``numpy.rint``), so ``to_uint8(to_tensor(a)) == a`` exactly for every uint8
  ``a`` (and every 16-bit value survives ``v / 65535`` and back).
* **Decompression bombs**: ``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`; ``None`` = that default; ``0`` = no
  limit) is checked from the file header before any pixel is decoded, and it is the only limit: Pillow's own
  ``Image.MAX_IMAGE_PIXELS`` is lifted to it while we decode, so ``max_pixels`` may be raised beyond Pillow's default.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from scipy import ndimage


logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "PAD_MODES",
    "ImageInput",
    "composite",
    "dilate_mask",
    "feather_mask",
    "load_image",
    "load_mask",
    "mask_to_tensor",
    "pad_to_multiple",
    "resize_mask",
    "resize_rgb",
    "to_tensor",
    "to_uint8",
    "unpad",
]

DEFAULT_MAX_PIXELS = 8192 * 8192
"""Default decompression-bomb guard: images with more than this many pixels (width * height) are refused.

Every ``max_pixels`` argument takes ``None`` to mean this default and ``0`` to mean no limit at all (trusted input
only: then neither our check nor Pillow's applies)."""

PAD_MODES = ("symmetric", "reflect", "replicate")
"""Padding modes understood by :func:`pad_to_multiple` (``InpaintModel.pad_mode`` is one of these)."""

ImageSource = Image.Image | str | os.PathLike | bytes | bytearray | BinaryIO | np.ndarray | torch.Tensor
"""Anything :func:`load_image` and :func:`load_mask` accept."""

# Pillow reads two module globals while opening and decoding: ImageFile.LOAD_TRUNCATED_IMAGES (forced off so that a
# truncated file is always an error) and Image.MAX_IMAGE_PIXELS (its own decompression-bomb limit, lifted to our
# max_pixels, which we check from the header first). _pillow_decoding sets both and serialises our decodes so that
# they are restored correctly.
_DECODE_LOCK = threading.Lock()
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # length, type and CRC of the last chunk of every PNG

_ALPHA_MODES = {"RGBA": "RGBA", "RGBa": "RGBA", "PA": "RGBA", "LA": "LA", "La": "LA"}
"""PIL modes with an alpha band -> the straight-alpha mode they become. Alpha is decided by the mode, never by band
names (LAB's a* band is also called ``"A"``)."""
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_EXACT_GRAY_MODES = (*_SIXTEEN_BIT_MODES, "I", "F")
"""PIL modes kept as they are (one channel, no alpha, more than 8 bits): the result is written back in that mode."""
_KEPT_MODES = ("1", "L", "LA", "RGB", "RGBA", *_EXACT_GRAY_MODES)
_COLOUR_SPACE_MODES = ("CMYK", "YCbCr", "LAB", "HSV")
"""Modes converted to RGB by a change of colour space: an embedded ICC profile describes the old space, so it is
not carried over to the RGB result."""


# ------------------------------------------------------------------------------------------------- the input record


@dataclass
class ImageInput:
    """An image as it came in, normalised for the model but remembering how to give it back.

    Attributes:
        color: the colour channels in the input's own values: ``[H, W, 3]`` RGB, or ``[H, W]`` for grayscale.
            Integer dtypes hold 0..:attr:`max_value` (255 or 65535), float dtypes hold [0, 1]. Compositing happens
            in this array's dtype, which is what makes known pixels come back bit-identical.
        alpha: ``[H, W]`` alpha channel in the same dtype/range as ``color``, or ``None``. Never inpainted: the result
            carries this exact alpha.
        kind: ``"pil"`` (PIL image, file path, bytes or file object), ``"numpy"`` or ``"tensor"``: what
            :meth:`to_native` gives back.
        mode: PIL mode of the result of :meth:`to_pil`: ``"RGB"``, ``"RGBA"``, ``"L"`` or ``"LA"`` (8 bits per
            channel), or, for grayscale of more than 8 bits, the exact mode ``"I;16"`` / ``"I;16B"`` / ``"I;16L"``
            / ``"I;16N"`` / ``"I"`` / ``"F"`` (a 16-bit PIL image keeps its mode; a ``uint16`` ``[H, W]`` array
            gives ``"I;16"``).
        original: the object as given (for files: the decoded, EXIF-transposed PIL image), returned untouched when
            there is nothing to inpaint.
        shape: shape of the array / tensor given (``None`` for PIL input).
        dtype: numpy or torch dtype of the array / tensor given (``None`` for PIL input).
        device: device of the tensor given (``None`` otherwise).
        info: PIL ``info`` entries worth carrying over to the result (the ICC profile).
        max_value: the value of full intensity in ``color`` and ``alpha``: 255 (8-bit), 65535 (16-bit) or 1.0
            (float). ``None`` (the default) derives it from ``color``'s dtype: float -> 1.0, ``uint16`` -> 65535,
            any other integer -> 255.
    """

    color: np.ndarray
    alpha: np.ndarray | None
    kind: str
    mode: str
    original: Any = None
    shape: tuple[int, ...] | None = None
    dtype: Any = None
    device: torch.device | None = None
    info: dict[str, Any] = field(default_factory=dict)
    max_value: float | None = None

    def __post_init__(self) -> None:
        if self.max_value is None:
            self.max_value = _max_value_of(self.color.dtype)

    @property
    def height(self) -> int:
        return int(self.color.shape[0])

    @property
    def width(self) -> int:
        return int(self.color.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, as PIL's ``Image.size``."""
        return self.width, self.height

    @property
    def grayscale(self) -> bool:
        return self.color.ndim == 2

    @property
    def is_float(self) -> bool:
        return np.issubdtype(self.color.dtype, np.floating)

    def to_model_rgb(self) -> np.ndarray:
        """The image as the model sees it.

        Returns:
            float32 ``[H, W, 3]`` RGB in [0, 1] (grayscale is repeated over the three channels): integer values are
            divided by :attr:`max_value` (255 or 65535), floats passed on.
        """
        rgb = self.color if not self.grayscale else np.repeat(self.color[..., None], 3, axis=-1)
        if self.is_float:
            return np.ascontiguousarray(rgb, dtype=np.float32)
        return rgb.astype(np.float32) / np.float32(self.max_value)

    def color_from_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """Convert a model result into this input's colour space and dtype.

        Args:
            rgb: float ``[H, W, 3]`` RGB in [0, 1] (values outside are clipped).

        Returns:
            An array shaped and typed like :attr:`color`: grayscale inputs get the ITU-R 601-2 luma
            ``0.299 R + 0.587 G + 0.114 B`` (what PIL's ``convert("L")`` uses); integer inputs are quantised as in
            :func:`to_uint8`, to 0..:attr:`max_value`.
        """
        rgb = np.clip(np.nan_to_num(np.asarray(rgb, dtype=np.float32), nan=0.0), 0.0, 1.0)
        if rgb.shape != (self.height, self.width, 3):
            raise ValueError(f"expected an RGB result of shape {(self.height, self.width, 3)}, got {rgb.shape}")
        if self.grayscale:
            rgb = rgb @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
        if self.is_float:
            return rgb.astype(self.color.dtype)
        return _quantize(rgb, self.max_value, self.color.dtype)

    def merge(self, inpainted_rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Composite a model result over this image: pixels where ``alpha == 0`` stay bit-identical.

        Args:
            inpainted_rgb: float ``[H, W, 3]`` RGB in [0, 1].
            alpha: ``[H, W]`` blend weight in [0, 1] (1 = take the result), e.g. from :func:`feather_mask`.

        Returns:
            The new :attr:`color` array (same shape and dtype).
        """
        return composite(self.color, self.color_from_rgb(inpainted_rgb), alpha)

    def to_pil(self, color: np.ndarray | None = None) -> Image.Image:
        """A PIL image of mode :attr:`mode` from ``color`` (default: the input's own colour) and the input's alpha.

        The exact grayscale modes (``I;16*``, ``I``, ``F``) hold ``color`` unchanged; the 8-bit modes hold it
        quantised to 0..255 (floats as in :func:`to_uint8`, 16-bit values ``v`` as ``rint(v / 65535 * 255)``).
        """
        color = self.color if color is None else color
        if self.mode in _EXACT_GRAY_MODES:
            image = _exact_gray_pil(color, self.mode)
        else:
            channels = [color if color.ndim == 3 else color[..., None]]
            if self.alpha is not None:
                channels.append(self.alpha[..., None])
            data = np.concatenate(channels, axis=-1)
            if np.issubdtype(data.dtype, np.floating):
                data = _quantize(data)
            elif self.max_value != 255:
                data = _quantize(data.astype(np.float32) / np.float32(self.max_value))
            else:
                data = data.astype(np.uint8)
            if data.shape[-1] == 1:
                data = data[..., 0]
            image = Image.fromarray(np.ascontiguousarray(data))
        if image.mode != self.mode:  # pragma: no cover - fromarray infers the mode from the channel count
            image = image.convert(self.mode)
        image.info.update(self.info)
        return image

    def to_native(self, color: np.ndarray | None = None) -> Any:
        """The result in the same kind as the input.

        Returns:
            A PIL image (for PIL images, paths, bytes and file objects), a numpy array with the input's shape and
            dtype, or a tensor with the input's shape, dtype and device.
        """
        color = self.color if color is None else color
        if self.kind == "pil":
            return self.to_pil(color)
        channels = [color if color.ndim == 3 else color[..., None]]
        if self.alpha is not None:
            channels.append(self.alpha[..., None])
        data = np.concatenate(channels, axis=-1)  # [H, W, C]
        if self.kind == "numpy":
            return data.astype(self.dtype, copy=False).reshape(self.shape)
        tensor = torch.from_numpy(np.ascontiguousarray(data)).permute(2, 0, 1)  # [C, H, W]
        return tensor.to(dtype=self.dtype, device=self.device).reshape(self.shape)


def _max_value_of(dtype: np.dtype) -> float:
    """Full intensity of an image dtype: 1.0 for floats, 65535 for ``uint16`` (any byte order), else 255."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return 1.0
    if dtype.kind == "u" and dtype.itemsize == 2:
        return 65535
    return 255


def _exact_gray_pil(color: np.ndarray, mode: str) -> Image.Image:
    """An ``I;16*`` / ``I`` / ``F`` PIL image holding ``color`` ([H, W]) exactly."""
    if mode in _SIXTEEN_BIT_MODES:
        byte_order = {"I;16B": ">", "I;16N": "="}.get(mode, "<")
        data = np.ascontiguousarray(color, dtype=f"{byte_order}u2")
        return Image.frombytes(mode, (data.shape[1], data.shape[0]), data.tobytes())
    return Image.fromarray(np.ascontiguousarray(color, dtype=np.int32 if mode == "I" else np.float32))


# ------------------------------------------------------------------------------------------------- loading


def load_image(source: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageInput:
    """Load an image from any supported source into an :class:`ImageInput`.

    Args:
        source: one of

            * a PIL image (EXIF orientation applied);
            * a file path (``str`` / ``os.PathLike``), ``bytes`` or a binary file object: decoded with Pillow,
              EXIF orientation applied;
            * a numpy array ``[H, W]``, ``[H, W, 1]`` (grayscale), ``[H, W, 2]`` (grayscale + alpha), ``[H, W, 3]``
              (RGB) or ``[H, W, 4]`` (RGBA), float in [0, 1] or integer. The bit depth follows the dtype, never the
              content: ``uint16`` is 16-bit (values ``v`` reach the model as ``v / 65535``), every other integer
              dtype is 8-bit and must hold 0..255 (``v / 255``);
            * a torch tensor ``[3, H, W]``, ``[1, 3, H, W]``, ``[H, W]``, ``[1, H, W]`` (or ``[C, H, W]`` /
              ``[1, C, H, W]`` with C in 1..4), float in [0, 1] or integer (same dtype rule: ``torch.uint16`` is
              16-bit, other integers 8-bit).

            PIL modes are mapped as: ``RGB``/``RGBA``/``L``/``LA`` kept; ``1`` -> ``L``; ``P`` -> ``RGBA`` when the
            palette has transparency, else ``RGB``; ``PA`` -> ``RGBA``; ``RGBa``/``La`` (premultiplied) ->
            ``RGBA``/``LA``; 16-bit grayscale ``I;16`` (``I;16B``, ``I;16L``, ``I;16N``) kept, read as ``v / 65535``
            and written back in the same mode; ``I`` (32-bit) read as 16-bit grayscale and written back as ``I``,
            provided every value is in 0..65535; ``F`` (float) kept, provided every value is in [0, 1]; ``LAB`` ->
            ``RGB`` through LittleCMS (``PIL.ImageCms``, CIELAB D50 -> sRGB); ``CMYK``, ``YCbCr``, ``HSV``,
            ``RGBX`` -> ``RGB``. Only ``RGBA``, ``RGBa``, ``LA``, ``La`` and ``PA`` have an alpha channel.
        max_pixels: refuse images with more than this many pixels (width * height); checked from the file header
            before any pixel is decoded, and the only limit: Pillow's own ``Image.MAX_IMAGE_PIXELS`` is lifted to
            it while we decode. ``None`` means :data:`DEFAULT_MAX_PIXELS`; ``0`` means no limit (trusted input only).

    Returns:
        The :class:`ImageInput`.

    Raises:
        ValueError: the file is not an image, is truncated or corrupt, has too many pixels, or an array/tensor has an
            unsupported shape, dtype or value range (also an ``I`` image outside 0..65535, an ``F`` image outside
            [0, 1], a negative ``max_pixels``).
        FileNotFoundError: a path that does not exist.
    """
    if isinstance(source, ImageInput):
        return source
    limit = _resolve_max_pixels(max_pixels)
    if isinstance(source, torch.Tensor):
        return _image_from_tensor(source, limit)
    if isinstance(source, np.ndarray):
        return _image_from_array(source, limit, kind="numpy", original=source)
    if isinstance(source, Image.Image):
        name = f"image {source.filename}" if getattr(source, "filename", "") else "the image"
        _check_pixels(source.size, limit, name)
        with _pillow_decoding(limit):
            _strict_load(source, name)  # a lazily opened PIL image may still hold a truncated file
        image = _exif_transpose(source, name)
        return _image_from_pil(image, original=image, name=name)
    image = _decode(source, limit, what="image")
    return _image_from_pil(image, original=image, name=f"image {_name_of(source)}")


def load_mask(
    source: ImageSource, size: tuple[int, int] | None = None, *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Load a mask and binarise it: any non-zero pixel is a hole.

    Rule for masks with an alpha channel (RGBA, LA, PA, ``[H, W, 4]`` / ``[H, W, 2]`` arrays): if the alpha is not
    fully opaque (some pixel has alpha below 255 -- 65535 for ``uint16``, 1.0 for floats), the mask is a painted layer
    over a transparent background, as drawn by Gradio's ImageEditor, and the hole is ``alpha > 0`` whatever the
    colour of the strokes (black strokes included). A fully opaque mask is decided by its colour channels, like an
    RGB one: a pixel is a hole when any channel is non-zero. Whether a PIL mask has alpha is decided by its mode
    (``RGBA``, ``RGBa``, ``LA``, ``La``, ``PA``), other modes are mapped as in :func:`load_image`.
    Masks given as files or PIL images get their EXIF orientation applied, like images, so a mask made on a phone
    lines up with the (rotated) photo.

    Args:
        source: PIL image, path, bytes, file object, numpy array (``[H, W]``, ``[H, W, C]`` with C in 1..4; bool,
            integer or float) or tensor (``[H, W]``, ``[1, H, W]``, ``[C, H, W]``, ``[1, C, H, W]``).
        size: expected ``(width, height)`` (PIL convention), normally ``ImageInput.size``; ``None`` skips the check.
        max_pixels: decompression-bomb guard, as in :func:`load_image` (``None`` = the default, ``0`` = no limit).

    Returns:
        bool ``[H, W]``, ``True`` = hole.

    Raises:
        ValueError: the mask size differs from ``size`` (``"mask size WxH does not match image size WxH"``), the mask
            holds NaN or infinite values, or the source is unreadable / malformed as in :func:`load_image`.
    """
    limit = _resolve_max_pixels(max_pixels)
    if isinstance(source, torch.Tensor):
        array = _tensor_to_hwc(source, what="mask")
    elif isinstance(source, np.ndarray):
        array = source
    else:
        if isinstance(source, Image.Image):
            name = f"mask {source.filename}" if getattr(source, "filename", "") else "the mask"
            _check_pixels(source.size, limit, name)
            with _pillow_decoding(limit):
                _strict_load(source, name)
            image = _exif_transpose(source, name)
        else:
            name = f"mask {_name_of(source)}"
            image = _decode(source, limit, what="mask")
        array = np.asarray(_standard_pil_mode(image, name))
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (2, 3, 4)):
        raise ValueError(f"mask must be HxW or HxWxC with C in 1..4, got shape {tuple(array.shape)}")
    if array.dtype == object or not (array.dtype == bool or np.issubdtype(array.dtype, np.number)):
        raise ValueError(f"mask must hold bool or numeric values, got dtype {array.dtype}")
    _check_pixels((array.shape[1], array.shape[0]), limit, "the mask")
    if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
        raise ValueError("mask contains NaN or infinite values")
    if array.ndim == 2:
        hole = array != 0
    elif array.shape[-1] in (2, 4):
        colour, alpha = array[..., :-1], array[..., -1]
        full = True if alpha.dtype == bool else _max_value_of(alpha.dtype)
        if alpha.size and alpha.min() < full:
            hole = alpha != 0
        else:
            hole = (colour != 0).any(axis=-1)
    else:
        hole = (array != 0).any(axis=-1)
    if size is not None:
        width, height = int(size[0]), int(size[1])
        if hole.shape != (height, width):
            raise ValueError(f"mask size {hole.shape[1]}x{hole.shape[0]} does not match image size {width}x{height}")
    return np.ascontiguousarray(hole)


def _resolve_max_pixels(max_pixels: int | None) -> int | None:
    """The public ``max_pixels`` -> the limit to apply: ``None`` -> :data:`DEFAULT_MAX_PIXELS`, ``0`` -> ``None``
    (no limit), a positive integer -> itself."""
    if max_pixels is None:
        return DEFAULT_MAX_PIXELS
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 0:
        raise ValueError(
            f"max_pixels must be a non-negative integer (0 = no limit) or None (= DEFAULT_MAX_PIXELS, "
            f"{DEFAULT_MAX_PIXELS}), got {max_pixels!r}"
        )
    return int(max_pixels) or None


def _name_of(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return getattr(source, "name", None) or f"<{type(source).__name__}>"


@contextlib.contextmanager
def _pillow_decoding(limit: int | None) -> Iterator[None]:
    """Hold the decode lock with Pillow's globals set for a strict decode, restoring them afterwards.

    ``ImageFile.LOAD_TRUNCATED_IMAGES`` is forced off (a truncated file is always an error, whatever the user set),
    and ``Image.MAX_IMAGE_PIXELS`` is lifted to ``limit`` (``None`` = no limit): we check ``limit`` from the header
    ourselves, so it is the authority and may exceed Pillow's default. Pillow's value is only ever raised, never
    lowered, so a decode elsewhere in the process meanwhile is never refused because of us.
    """
    with _DECODE_LOCK:
        truncated, pillow_limit = ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        Image.MAX_IMAGE_PIXELS = None if limit is None or pillow_limit is None else max(limit, pillow_limit)
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = truncated
            Image.MAX_IMAGE_PIXELS = pillow_limit


def _decode(source: Any, limit: int | None, *, what: str) -> Image.Image:
    """Decode a path / bytes / file object with Pillow: header checks first, then a strict full decode."""
    name = _name_of(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{what} file {path} does not exist")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, bytes):
            raise ValueError(f"{what} {name}: file object must be opened in binary mode")
    else:
        raise TypeError(
            f"unsupported {what} type {type(source).__name__}: give a PIL image, a path, bytes, a numpy array or a "
            "torch tensor"
        )
    if not data:
        raise ValueError(f"cannot read {what} {name}: the file is empty, not an image")

    with _pillow_decoding(limit), warnings.catch_warnings():
        # Pillow's limit is lifted to ours, so its decompression-bomb warning / error can only come from sizes found
        # while decoding (some formats check again); both are ours.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            # Pillow's limit is at least ours while we decode: what it refuses is over max_pixels too.
            raise ValueError(
                f"{what} {name} has too many pixels (more than max_pixels={limit}): Pillow refused it as a possible "
                f"decompression bomb ({err})"
            ) from err
        except UnidentifiedImageError as err:
            raise ValueError(f"cannot read {what} {name}: not an image file (Pillow cannot identify it)") from err
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise ValueError(f"cannot read {what} {name}: the file is truncated or corrupt ({err})") from err

        # The header is read, no pixel is decoded yet: refuse decompression bombs now.
        _check_pixels(image.size, limit, f"{what} {name}")

        try:
            if image.format == "PNG":
                # A PNG cut after its last pixel row still decodes: verify() walks every chunk and its checksum, and
                # the file must hold the complete IEND chunk.
                Image.open(io.BytesIO(data)).verify()
                if data.rfind(_PNG_IEND) == -1:
                    raise OSError("the PNG file has no complete IEND chunk")
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise ValueError(f"cannot read {what} {name}: the file is truncated or corrupt ({err})") from err
        _strict_load(image, f"{what} {name}")
    return _exif_transpose(image, f"{what} {name}")


def _strict_load(image: Image.Image, name: str) -> None:
    """Decode the pixels of a lazily opened image; call inside :func:`_pillow_decoding` (truncated data refused)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ValueError(
                f"{name} has too many pixels: Pillow refused it as a possible decompression bomb ({err})"
            ) from err
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as err:
            raise ValueError(f"cannot read {name}: the file is truncated or corrupt ({err})") from err


def _exif_transpose(image: Image.Image, name: str) -> Image.Image:
    """Apply the EXIF Orientation tag (a no-op without one); a broken EXIF block is logged, not fatal."""
    try:
        transposed = ImageOps.exif_transpose(image)
    except Exception as err:  # noqa: BLE001 - malformed EXIF must not make a readable image unreadable
        logger.warning("ignoring unreadable EXIF orientation of %s: %s", name, err)
        return image
    if transposed is None:  # pragma: no cover - only with in_place=True
        return image
    if transposed.size != image.size:
        logger.debug("applied EXIF orientation to %s: %s -> %s", name, image.size, transposed.size)
    return transposed


def _check_pixels(size: tuple[int, int], limit: int | None, name: str) -> None:
    """Refuse empty images and, unless ``limit`` is ``None`` (no limit), images of more than ``limit`` pixels."""
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise ValueError(f"{name} is empty ({width}x{height})")
    if limit is not None and width * height > limit:
        raise ValueError(
            f"{name} has too many pixels: {width}x{height} = {width * height} > max_pixels={limit} "
            "(decompression-bomb guard; pass a larger max_pixels to allow it, or 0 for no limit)"
        )


def _standard_pil_mode(image: Image.Image, name: str) -> Image.Image:
    """Bring a PIL image to one of the modes we read directly (the one mode table of :func:`load_image` and
    :func:`load_mask`).

    ``1``, ``L``, ``LA``, ``RGB``, ``RGBA``, ``I;16*``, ``I`` and ``F`` are returned as they are; ``P`` becomes
    ``RGBA`` when its palette has transparency, else ``RGB``; the other alpha modes (``PA``, ``RGBa``, ``La``) become
    ``RGBA`` / ``LA``; ``LAB`` becomes ``RGB`` through LittleCMS; every other mode (``CMYK``, ``YCbCr``, ``HSV``,
    ``RGBX``...) becomes ``RGB``. Alpha is decided by the mode, not by band names (LAB's a* band is named ``"A"``).
    """
    mode = image.mode
    if mode in _KEPT_MODES:
        return image
    if mode == "P":
        converted = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in _ALPHA_MODES:
        converted = image.convert(_ALPHA_MODES[mode])
    elif mode == "LAB":
        converted = _lab_to_rgb(image, name)
    else:
        try:
            converted = image.convert("RGB")
        except ValueError as err:
            raise ValueError(f"{name}: cannot convert PIL mode {mode} to RGB ({err})") from err
    logger.info("converted %s from PIL mode %s to %s", name, mode, converted.mode)
    return converted


def _lab_to_rgb(image: Image.Image, name: str) -> Image.Image:
    """CIELAB (PIL ``LAB``: L* 0..100 scaled to 0..255, a* and b* as signed bytes; D50) -> sRGB with LittleCMS."""
    try:
        from PIL import ImageCms
    except ImportError as err:  # pragma: no cover - Pillow built without LittleCMS
        raise ValueError(
            f"{name} is a LAB image, and this Pillow has no LittleCMS (PIL.ImageCms) to convert it to RGB; "
            "convert it to RGB first"
        ) from err
    transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
    return ImageCms.applyTransform(image, transform)


def _image_from_pil(image: Image.Image, *, original: Any, name: str) -> ImageInput:
    source_mode = image.mode
    info = {k: image.info[k] for k in ("icc_profile",) if image.info.get(k)}
    if source_mode in _COLOUR_SPACE_MODES and info:
        logger.info("dropping the %s ICC profile of %s: the result is RGB", source_mode, name)
        info = {}
    image = _standard_pil_mode(image, name)
    if image.mode == "1":
        image = image.convert("L")
    mode = image.mode
    max_value: float = 255
    if mode in _EXACT_GRAY_MODES:
        array = np.asarray(image)
        max_value = 1.0 if mode == "F" else 65535
        if array.size:
            low, high = array.min(), array.max()
            if mode == "I" and (low < 0 or high > 65535):
                raise ValueError(
                    f"{name} is a 32-bit integer (PIL mode I) image with values in [{low}, {high}]: only 0..65535 "
                    "(16-bit grayscale) is supported"
                )
            if mode == "F" and not (np.isfinite(array).all() and low >= 0.0 and high <= 1.0):
                raise ValueError(
                    f"{name} is a float (PIL mode F) image with values in [{low:g}, {high:g}]: float images must be "
                    "in [0, 1]"
                )
        color, alpha = array, None
    else:
        array = np.asarray(image)
        color, alpha = (array, None) if mode in ("RGB", "L") else (array[..., :-1], array[..., -1])
        if color.ndim == 3 and color.shape[-1] == 1:
            color = color[..., 0]
    return ImageInput(
        color=np.ascontiguousarray(color),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        kind="pil",
        mode=mode,
        original=original,
        info=info,
        max_value=max_value,
    )


def _image_from_array(
    array: np.ndarray,
    limit: int | None,
    *,
    kind: str,
    original: Any,
    shape: tuple[int, ...] | None = None,
    dtype: Any = None,
    device: torch.device | None = None,
) -> ImageInput:
    """``array`` is ``[H, W]`` or ``[H, W, C]`` (channels last)."""
    if array.ndim == 3 and array.shape[-1] in (1, 2, 3, 4):
        channels = array.shape[-1]
    elif array.ndim == 2:
        channels = 1
    else:
        raise ValueError(
            f"image array must be HxW, HxWx1, HxWx2, HxWx3 or HxWx4 (channels last), got shape {tuple(array.shape)}"
        )
    _check_pixels((array.shape[1], array.shape[0]), limit, "the image")
    if array.dtype == bool:
        raise ValueError("image array is boolean: booleans are masks; give uint8 or float in [0, 1] for images")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("image array contains NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(f"float image values must be in [0, 1], got range [{low:g}, {high:g}]")
    elif np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > _max_value_of(array.dtype):  # uint16 cannot be out of range
            raise ValueError(
                f"integer image values must be 8-bit (0..255) for dtype {array.dtype}, got range [{low}, {high}]; "
                "only uint16 is read as 16-bit (0..65535): convert to uint16, uint8 or float in [0, 1]"
            )
    else:
        raise ValueError(f"unsupported image dtype {array.dtype}: give uint8, uint16 or float in [0, 1]")
    if array.ndim == 2:
        array = array[..., None]
    color = array[..., 0] if channels in (1, 2) else array[..., :3]
    alpha = array[..., -1] if channels in (2, 4) else None
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    if mode == "L" and _max_value_of(array.dtype) == 65535:
        mode = "I;16"  # a 16-bit grayscale array gives an exact 16-bit PIL image
    return ImageInput(
        color=np.ascontiguousarray(color),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        kind=kind,
        mode=mode,
        original=original,
        shape=tuple(original.shape) if shape is None else shape,
        dtype=original.dtype if dtype is None else dtype,
        device=device,
    )


def _tensor_to_hwc(tensor: torch.Tensor, *, what: str) -> np.ndarray:
    """``[H, W]``, ``[C, H, W]`` or ``[1, C, H, W]`` (C in 1..4) -> numpy ``[H, W]`` / ``[H, W, C]``."""
    t = tensor.detach()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(
                f"{what} tensor must hold one image, got a batch of {t.shape[0]} (shape {tuple(t.shape)})"
            )
        t = t[0]
    if t.ndim == 3:
        if t.shape[0] not in (1, 2, 3, 4):
            raise ValueError(
                f"{what} tensor must be [H, W], [C, H, W] or [1, C, H, W] with C in 1..4 (channels first), "
                f"got shape {tuple(tensor.shape)}"
            )
        t = t.permute(1, 2, 0)
    elif t.ndim != 2:
        raise ValueError(f"{what} tensor must be [H, W], [C, H, W] or [1, C, H, W], got shape {tuple(tensor.shape)}")
    if t.dtype == torch.bfloat16:
        t = t.float()  # numpy has no bfloat16; float32 holds every bfloat16 value exactly
    return t.cpu().numpy()


def _image_from_tensor(tensor: torch.Tensor, limit: int | None) -> ImageInput:
    array = _tensor_to_hwc(tensor, what="image")
    return _image_from_array(
        array,
        limit,
        kind="tensor",
        original=tensor,
        shape=tuple(tensor.shape),
        dtype=tensor.dtype,
        device=tensor.device,
    )


# ------------------------------------------------------------------------------------------------- masks


def dilate_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grow the hole by ``pixels`` in every direction, with a round (Euclidean disk) structuring element.

    A pixel becomes a hole when its Euclidean distance to the nearest hole pixel is at most ``pixels``: a single-pixel
    hole becomes the disk ``{(dy, dx): dy**2 + dx**2 <= pixels**2}`` (for ``pixels=1`` the 4-neighbour cross).

    Args:
        mask: bool ``[H, W]``, ``True`` = hole.
        pixels: dilation radius, >= 0 (0 returns a copy).

    Returns:
        bool ``[H, W]``.
    """
    mask = _check_mask(mask)
    pixels = _check_radius(pixels, "mask_dilate")
    if pixels == 0 or not mask.any():
        return mask.copy()
    return _distance_to_hole(mask) <= pixels


def feather_mask(mask: np.ndarray, radius: float) -> np.ndarray:
    """Soften the hole's edge outwards into a blend weight.

    Feathering here means: every hole pixel keeps weight 1 (hole content is always fully replaced, nothing of what
    the mask covers leaks back), and known pixels within Euclidean distance ``d <= radius`` of the hole get the
    linearly decaying weight ``1 - d / (radius + 1)``; farther pixels get 0. The *effective mask* (``alpha > 0``) is
    therefore the hole dilated by ``radius`` (as :func:`dilate_mask`); the pipeline asks the model to inpaint that
    whole region and blends the result with :func:`composite`, which keeps every pixel outside it bit-identical.

    Args:
        mask: bool ``[H, W]``, ``True`` = hole.
        radius: feather width in pixels, >= 0 (0 gives the hard 0/1 mask).

    Returns:
        float32 ``[H, W]`` in [0, 1].
    """
    mask = _check_mask(mask)
    radius = _check_radius(radius, "mask_feather")
    if radius == 0 or not mask.any():
        return mask.astype(np.float32)
    distance = _distance_to_hole(mask)
    alpha = np.where(distance <= radius, 1.0 - distance / (radius + 1.0), 0.0).astype(np.float32)
    alpha[mask] = 1.0
    return alpha


def _distance_to_hole(mask: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(~mask)


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D HxW array, got shape {mask.shape}")
    return mask != 0 if mask.dtype != bool else mask


def _check_radius(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number of pixels, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a binary mask so that no hole pixel is lost.

    Downscaling partitions the source rows/columns into ``size`` consecutive blocks and takes the maximum of each
    block: every hole pixel makes the target pixel covering it a hole (max-pooling). Upscaling is nearest-neighbour.

    Args:
        mask: bool ``[H, W]``.
        size: target ``(width, height)``.

    Returns:
        bool ``[height, width]``.
    """
    mask = _check_mask(mask)
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise ValueError(f"target size must be at least 1x1, got {width}x{height}")
    out = mask.astype(np.uint8)
    rows = (np.arange(height) * mask.shape[0]) // height
    cols = (np.arange(width) * mask.shape[1]) // width
    out = np.maximum.reduceat(out, rows, axis=0)
    out = np.maximum.reduceat(out, cols, axis=1)
    return out.astype(bool)


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize float RGB with Pillow's bicubic filter (antialiased when downscaling), clipped back to [0, 1].

    Args:
        rgb: float ``[H, W, 3]`` in [0, 1].
        size: target ``(width, height)``.

    Returns:
        float32 ``[height, width, 3]`` in [0, 1].
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3:
        raise ValueError(f"rgb must be HxWxC, got shape {rgb.shape}")
    size = (int(size[0]), int(size[1]))
    if size == (rgb.shape[1], rgb.shape[0]):
        return rgb.copy()
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., c])).resize(size, Image.Resampling.BICUBIC))
        for c in range(rgb.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------------- tensors


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """``[H, W, C]`` image array -> float32 ``[1, C, H, W]`` in [0, 1].

    Args:
        array: uint8 (divided by 255) or float already in [0, 1] (cast to float32), ``[H, W, 3]`` normally.

    Returns:
        float32 ``[1, C, H, W]``.
    """
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"image array must be HxWxC (channels last), got shape {array.shape}")
    if array.dtype == np.uint8:
        tensor = torch.from_numpy(array.astype(np.float32) / np.float32(255))
    elif np.issubdtype(array.dtype, np.floating):
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    else:
        raise ValueError(f"image array must be uint8 or float in [0, 1], got dtype {array.dtype}")
    return tensor.permute(2, 0, 1).unsqueeze(0).contiguous()


def mask_to_tensor(mask: np.ndarray) -> torch.Tensor:
    """bool ``[H, W]`` (``True`` = hole; any non-zero counts) -> float32 ``[1, 1, H, W]`` in {0, 1}."""
    mask = _check_mask(mask)
    return torch.from_numpy(mask.astype(np.float32))[None, None]


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """float ``[1, C, H, W]`` or ``[C, H, W]`` in [0, 1] -> uint8 ``[H, W, C]``.

    Values are clipped to [0, 1] (NaN becomes 0), multiplied by 255 in float32 and rounded to the nearest integer,
    ties to even (``numpy.rint``); the exact inverse of :func:`to_tensor` on uint8 input.
    """
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"to_uint8 takes one image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    if tensor.ndim != 3:
        raise ValueError(f"tensor must be [1, C, H, W] or [C, H, W], got shape {tuple(tensor.shape)}")
    array = tensor.detach().to(device="cpu", dtype=torch.float32).permute(1, 2, 0).numpy()
    return _quantize(array)


def _quantize(array: np.ndarray, max_value: float = 255, dtype: Any = np.uint8) -> np.ndarray:
    """float in [0, 1] (clipped, NaN -> 0) -> ``rint(x * max_value)`` (ties to even, in float32) as ``dtype``."""
    array = np.nan_to_num(np.asarray(array, dtype=np.float32), nan=0.0)
    return np.rint(np.clip(array, 0.0, 1.0) * np.float32(max_value)).astype(dtype)


def _pad_index(size: int, total: int, mode: str, device: torch.device) -> torch.Tensor:
    """Source index of each of ``total`` output positions when padding a length-``size`` axis at its end."""
    index = torch.arange(total, device=device)
    if mode == "symmetric":  # numpy 'symmetric': edge repeated, period 2 * size (also for pads longer than size)
        period = 2 * size
        index = index % period
        return torch.where(index >= size, period - 1 - index, index)
    if mode == "reflect":  # numpy/torch 'reflect': edge not repeated, period 2 * (size - 1); a 1-pixel axis repeats
        if size == 1:
            return torch.zeros_like(index)
        period = 2 * (size - 1)
        index = index % period
        return torch.where(index >= size, period - index, index)
    return index.clamp(max=size - 1)  # replicate


def pad_to_multiple(
    x: torch.Tensor, multiple: int, mode: str = "symmetric", *, min_size: int = 0
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two dimensions at the bottom and right up to the next multiple of ``multiple``
    (and to at least ``min_size``, itself rounded up to the multiple).

    Implemented by index gathering, so every mode works for any pad size, even larger than the image:

    * ``"symmetric"``: numpy's ``symmetric`` (edge pixel repeated: ``abc|cba|abc...``), exactly
      ``numpy.pad(x, ..., mode="symmetric")`` -- what LaMa's predict script uses;
    * ``"reflect"``: numpy's / torch's ``reflect`` (``abc|ba|bc...``), equal to ``torch.nn.functional.pad`` where
      torch allows it (pad < size) and continued periodically beyond (a 1-pixel axis is replicated);
    * ``"replicate"``: the edge pixel repeated.

    Args:
        x: ``[B, C, H, W]`` (any tensor with at least 2 dimensions; any dtype and device).
        multiple: target multiple, >= 1.
        mode: one of :data:`PAD_MODES`.
        min_size: smallest height and width of the result (a model's ``min_size``); 0 = no minimum.

    Returns:
        ``(padded, (H, W))``: the padded tensor (``x`` itself when nothing is needed) and the original size for
        :func:`unpad`.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        raise ValueError(
            f"pad_to_multiple needs a tensor [..., H, W], got {type(x).__name__} {getattr(x, 'shape', '')}"
        )
    if isinstance(multiple, bool) or not isinstance(multiple, (int, np.integer)) or multiple < 1:
        raise ValueError(f"multiple must be a positive integer, got {multiple!r}")
    if mode not in PAD_MODES:
        raise ValueError(f"unknown pad mode {mode!r}; choose one of {', '.join(PAD_MODES)}")
    height, width = int(x.shape[-2]), int(x.shape[-1])
    if height < 1 or width < 1:
        raise ValueError(f"cannot pad an empty image ({height}x{width})")
    pad_h, pad_w = -height % multiple, -width % multiple
    floor = min_size + -min_size % multiple
    pad_h, pad_w = max(pad_h, floor - height), max(pad_w, floor - width)
    if pad_h:
        x = x.index_select(-2, _pad_index(height, height + pad_h, mode, x.device))
    if pad_w:
        x = x.index_select(-1, _pad_index(width, width + pad_w, mode, x.device))
    return x, (height, width)


def unpad(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop ``x`` (``[..., H', W']``) back to the ``(H, W)`` returned by :func:`pad_to_multiple`."""
    height, width = int(size[0]), int(size[1])
    if x.shape[-2] < height or x.shape[-1] < width:
        raise ValueError(f"cannot unpad a {x.shape[-2]}x{x.shape[-1]} tensor to the larger size {height}x{width}")
    return x[..., :height, :width]


# ------------------------------------------------------------------------------------------------- compositing


def composite(original: np.ndarray, inpainted: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend ``inpainted`` over ``original`` with per-pixel weight ``alpha``.

    ``out = alpha * inpainted + (1 - alpha) * original``, computed only where ``0 < alpha``: pixels with
    ``alpha == 0`` are copied bit for bit from ``original``, pixels with ``alpha >= 1`` bit for bit from
    ``inpainted``. Partial weights are blended in float64 and, for integer dtypes, rounded half to even.

    Args:
        original: ``[H, W]`` or ``[H, W, C]``, uint8 (or any integer dtype) or float.
        inpainted: same shape and dtype as ``original``.
        alpha: ``[H, W]`` float in [0, 1] or bool (``True`` = take ``inpainted``).

    Returns:
        A new array, same shape and dtype as ``original``.
    """
    original = np.asarray(original)
    inpainted = np.asarray(inpainted)
    alpha = np.asarray(alpha)
    if inpainted.shape != original.shape:
        raise ValueError(f"inpainted shape {inpainted.shape} does not match original shape {original.shape}")
    if inpainted.dtype != original.dtype:
        raise ValueError(f"inpainted dtype {inpainted.dtype} does not match original dtype {original.dtype}")
    if alpha.shape != original.shape[:2]:
        raise ValueError(f"alpha shape {alpha.shape} does not match image size {original.shape[:2]}")
    alpha = alpha.astype(np.float64) if alpha.dtype == bool else np.nan_to_num(alpha.astype(np.float64))
    out = original.copy()
    full = alpha >= 1.0
    out[full] = inpainted[full]
    partial = (alpha > 0.0) & ~full
    if partial.any():
        weight = alpha[partial]
        if original.ndim == 3:
            weight = weight[:, None]
        blend = weight * inpainted[partial].astype(np.float64) + (1.0 - weight) * original[partial].astype(np.float64)
        if np.issubdtype(original.dtype, np.integer):
            info = np.iinfo(original.dtype)
            blend = np.clip(np.rint(blend), info.min, info.max)
        out[partial] = blend.astype(original.dtype)
    return out
