"""InpaintPipeline: PIL (or path, bytes, array, tensor) in, PIL out, for any :class:`InpaintModel`.

The pipeline owns everything between a user's image and a model's tensors: loading and validation
(:mod:`inpaint_hub.image_processing`), mask dilation and feathering, the high-resolution strategies, padding to the
model's ``size_multiple``, seeding, and compositing so that pixels outside the hole come back bit-identical.

Example::

    from inpaint_hub import InpaintPipeline

    pipe = InpaintPipeline.from_pretrained("org/lama-big", device="cuda")
    result = pipe("photo.jpg", "mask.png", hd_strategy="crop").image
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from .image_processing import (
    DEFAULT_MAX_PIXELS,
    PAD_MODES,
    ImageInput,
    ImageSource,
    dilate_mask,
    feather_mask,
    load_image,
    load_mask,
    mask_to_tensor,
    pad_to_multiple,
    resize_mask,
    resize_rgb,
    to_tensor,
    unpad,
)
from .modeling_utils import InpaintModel


logger = logging.getLogger(__name__)

__all__ = ["HD_STRATEGIES", "SEED_LIMIT", "InpaintPipeline", "InpaintPipelineOutput"]

HD_STRATEGIES = ("original", "resize", "crop")
# Defaults of the high-resolution strategies (IOPaint's): the longest side for "resize", the size above which "crop"
# crops, and the context kept around each hole region by "crop".
DEFAULT_RESIZE_LIMIT = 1280
DEFAULT_CROP_TRIGGER_SIZE = 800
DEFAULT_CROP_MARGIN = 128
"""How the pipeline treats large images: see :meth:`InpaintPipeline.__call__`."""

SEED_LIMIT = 2**63
"""Seeds are integers in ``[0, SEED_LIMIT)``; sample ``i`` uses ``seed + i``, which must stay below it too."""


@dataclass
class InpaintPipelineOutput:
    """What :class:`InpaintPipeline` returns.

    Attributes:
        images: one PIL image per sample, same size as the input; mode ``RGB``, ``RGBA`` (input alpha kept), ``L`` or
            ``LA`` (grayscale in, grayscale out), or the input's own 16-bit / ``I`` / ``F`` grayscale mode (a
            ``uint16`` ``[H, W]`` array gives ``I;16``). Pixels outside the (effective) hole equal the input's.
        native: the same results in the kind of the input: PIL images for PIL images / paths / bytes, numpy arrays
            with the input's shape and dtype, or tensors with the input's shape, dtype and device. For float inputs
            this is where known pixels are bit-identical floats (``images`` are quantised to 8 bits, as are
            ``uint16`` arrays with colour or alpha, which PIL cannot hold at 16 bits).
        seeds: the seed of each sample's ``torch.Generator``, or ``None`` where a caller-supplied generator was used
            or nothing was run (empty mask).
    """

    images: list[Image.Image]
    native: list[Any] = field(default_factory=list)
    seeds: list[int | None] = field(default_factory=list)

    @property
    def image(self) -> Image.Image:
        """The first (usually the only) result."""
        return self.images[0]


class InpaintPipeline:
    """Run an inpainting model on images of any size, mode and source.

    Args:
        model: any :class:`~inpaint_hub.modeling_utils.InpaintModel` (its ``size_multiple``, ``min_size`` and
            ``pad_mode`` decide the padding); it is put in eval mode.
        device: move the model there first (default: leave it where it is).

    Raises:
        TypeError: ``model`` is not an ``InpaintModel``.
    """

    def __init__(self, model: InpaintModel, *, device: str | torch.device | None = None) -> None:
        if not isinstance(model, InpaintModel):
            raise TypeError(
                f"model must be an inpaint_hub InpaintModel (it provides size_multiple, min_size and pad_mode), "
                f"got {type(model).__name__}"
            )
        if device is not None:
            model = model.to(device)
        self.model = model.eval()

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> InpaintPipeline:
        """Load any inpaint-hub model (local folder or Hub repo id) with ``AutoInpaintModel`` and wrap it.

        Args:
            pretrained_model_name_or_path: folder written by ``save_pretrained`` or a Hub repository id.
            device: where to put the model.
            **kwargs: passed on to ``AutoInpaintModel.from_pretrained`` (``revision``, ``cache_dir``,
                ``local_files_only``, ``token``, ``dtype``, ``strict``...).
        """
        from .modeling_utils import AutoInpaintModel

        model = AutoInpaintModel.from_pretrained(pretrained_model_name_or_path, device=device, **kwargs)
        return cls(model)

    def to(self, device: str | torch.device) -> InpaintPipeline:
        """Move the model to ``device``; returns ``self``."""
        self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(iter(self.model.parameters()), torch.empty(0)).device

    @property
    def dtype(self) -> torch.dtype:
        parameter = next(iter(self.model.parameters()), None)
        return parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={type(self.model).__name__}, device={self.device})"

    # --------------------------------------------------------------------------------------------- call

    def __call__(
        self,
        image: ImageSource,
        mask_image: ImageSource,
        *,
        hd_strategy: str = "original",
        resize_limit: int = DEFAULT_RESIZE_LIMIT,
        crop_trigger_size: int = DEFAULT_CROP_TRIGGER_SIZE,
        crop_margin: int = DEFAULT_CROP_MARGIN,
        mask_dilate: int = 0,
        mask_feather: float = 0,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        num_samples: int = 1,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> InpaintPipelineOutput:
        """Inpaint the holes of ``image`` marked by ``mask_image``.

        Args:
            image: PIL image, path, bytes, file object, numpy array or tensor (see
                :func:`~inpaint_hub.image_processing.load_image`). EXIF orientation is applied.
            mask_image: same kinds; any non-zero pixel is a hole (white = hole), see
                :func:`~inpaint_hub.image_processing.load_mask`. Must have the image's (oriented) size.
            hd_strategy: ``"original"``: the whole image at full resolution. ``"resize"``: when the longer side
                exceeds ``resize_limit``, inpaint a copy downscaled to that longer side (bicubic, antialiased; the
                mask max-pooled so no hole pixel is lost), upscale the result (bicubic) and paste only hole pixels.
                ``"crop"``: when the longer side exceeds ``crop_trigger_size``, inpaint each connected hole region
                (8-connectivity) separately in its bounding box grown by ``crop_margin`` on every side (clipped to
                the image), pasting back only that region's hole pixels; otherwise like ``"original"``.
            resize_limit: longest side for ``"resize"``.
            crop_trigger_size: longest side above which ``"crop"`` crops.
            crop_margin: context pixels around each hole region for ``"crop"``.
            mask_dilate: grow the hole by this many pixels first (disk, see
                :func:`~inpaint_hub.image_processing.dilate_mask`).
            mask_feather: blend the result into its surroundings over this many pixels outside the (dilated) hole
                (see :func:`~inpaint_hub.image_processing.feather_mask`); the model inpaints hole + feather band,
                everything beyond is untouched.
            max_pixels: refuse images (and masks) with more pixels than this, checked from the file header; the
                only limit (Pillow's own ``MAX_IMAGE_PIXELS`` does not apply). ``None`` means the default
                :data:`~inpaint_hub.image_processing.DEFAULT_MAX_PIXELS`, as in
                :func:`~inpaint_hub.image_processing.load_image`; ``0`` means no limit (trusted input only).
            num_samples: how many results; sample ``i`` runs with a ``torch.Generator`` seeded ``seed + i``.
                Deterministic models give ``num_samples`` identical results.
            seed: base seed, with ``0 <= seed`` and ``seed + num_samples - 1 <`` :data:`SEED_LIMIT` (``2**63``);
                ``None`` draws a random one in that range (logged, and returned in ``seeds``).
            generator: a caller-owned ``torch.Generator`` used for every sample in turn (instead of ``seed``).

        Returns:
            :class:`InpaintPipelineOutput`.

        Raises:
            ValueError: unreadable / truncated / oversized image or mask, mask size different from the image's,
                unknown ``hd_strategy``, ``num_samples < 1``, negative sizes, a seed out of range, or both ``seed``
                and ``generator``.
        """
        if hd_strategy not in HD_STRATEGIES:
            raise ValueError(f"unknown hd_strategy {hd_strategy!r}; choose one of {', '.join(HD_STRATEGIES)}")
        _check_int(num_samples, "num_samples", minimum=1)
        _check_int(resize_limit, "resize_limit", minimum=1)
        _check_int(crop_trigger_size, "crop_trigger_size", minimum=1)
        _check_int(crop_margin, "crop_margin", minimum=0)
        _check_int(mask_dilate, "mask_dilate", minimum=0)
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        if seed is not None:
            seed = _check_seed(seed, num_samples)

        source = load_image(image, max_pixels=max_pixels)
        hole = load_mask(mask_image, source.size, max_pixels=max_pixels)
        if not hole.any():
            logger.warning("the mask is empty (no non-zero pixel): returning the input image unchanged")
            return InpaintPipelineOutput(
                images=[_unchanged_pil(source) for _ in range(num_samples)],
                native=[
                    _unchanged_pil(source) if source.kind == "pil" else _copy(source.original)
                    for _ in range(num_samples)
                ],
                seeds=[None] * num_samples,
            )

        hole = dilate_mask(hole, mask_dilate)
        alpha = feather_mask(hole, mask_feather)
        effective = alpha > 0
        rgb = source.to_model_rgb()

        if generator is not None:
            seeds: list[int | None] = [None] * num_samples
        else:
            if seed is None:
                seed = secrets.randbelow(SEED_LIMIT - (num_samples - 1))
                logger.info("no seed given: using seed %d", seed)
            seeds = [seed + i for i in range(num_samples)]

        images, native = [], []
        for index in range(num_samples):
            sample_generator = generator
            if sample_generator is None:
                sample_generator = torch.Generator(device=self.device).manual_seed(seeds[index])
            result = self._inpaint(
                rgb, effective, hd_strategy, resize_limit, crop_trigger_size, crop_margin, sample_generator
            )
            color = source.merge(result, alpha)
            images.append(source.to_pil(color))
            native.append(images[-1] if source.kind == "pil" else source.to_native(color))
        return InpaintPipelineOutput(images=images, native=native, seeds=seeds)

    # --------------------------------------------------------------------------------------------- strategies

    def _inpaint(
        self,
        rgb: np.ndarray,
        hole: np.ndarray,
        hd_strategy: str,
        resize_limit: int,
        crop_trigger_size: int,
        crop_margin: int,
        generator: torch.Generator | None,
    ) -> np.ndarray:
        """Inpaint float RGB ``[H, W, 3]`` in [0, 1] where ``hole`` (bool ``[H, W]``); returns float32 ``[H, W, 3]``.

        Only the values at hole pixels matter to the caller (it composites).
        """
        height, width = hole.shape
        longest = max(height, width)
        if hd_strategy == "resize" and longest > resize_limit:
            scale = resize_limit / longest
            small = (max(1, round(width * scale)), max(1, round(height * scale)))
            logger.info("hd_strategy=resize: inpainting at %dx%d instead of %dx%d", *small, width, height)
            small_out = self._run_model(resize_rgb(rgb, small), resize_mask(hole, small), generator)
            return resize_rgb(small_out, (width, height))
        if hd_strategy == "crop" and longest > crop_trigger_size:
            labels, count = ndimage.label(hole, structure=np.ones((3, 3), dtype=bool))
            logger.info("hd_strategy=crop: inpainting %d hole region(s) separately (margin %d)", count, crop_margin)
            out = rgb.copy()
            for index, box in enumerate(ndimage.find_objects(labels), start=1):
                if box is None:  # pragma: no cover - labels are consecutive
                    continue
                top, bottom = max(0, box[0].start - crop_margin), min(height, box[0].stop + crop_margin)
                left, right = max(0, box[1].start - crop_margin), min(width, box[1].stop + crop_margin)
                logger.debug("crop region %d: rows %d:%d, columns %d:%d", index, top, bottom, left, right)
                # Every hole pixel inside the crop is a hole for the model (other regions' content is to be removed
                # too), but only this region's pixels are pasted back: regions are disjoint, so overlapping crops
                # never write the same pixel twice.
                crop_out = self._run_model(rgb[top:bottom, left:right], hole[top:bottom, left:right], generator)
                region = labels[top:bottom, left:right] == index
                out[top:bottom, left:right][region] = crop_out[region]
            return out
        if hd_strategy != "original":
            logger.info("hd_strategy=%s: image %dx%d is small enough, inpainting it whole", hd_strategy, width, height)
        return self._run_model(rgb, hole, generator)

    def _run_model(self, rgb: np.ndarray, hole: np.ndarray, generator: torch.Generator | None) -> np.ndarray:
        """One forward pass: pad to ``size_multiple`` (and ``min_size``) with the model's ``pad_mode``, run, crop back.

        Args:
            rgb: float32 ``[H, W, 3]`` in [0, 1].
            hole: bool ``[H, W]``.

        Returns:
            float32 ``[H, W, 3]`` in [0, 1]: the model's ``inpainted`` output.
        """
        model = self.model
        multiple, min_size, pad_mode = int(model.size_multiple), int(model.min_size), model.pad_mode
        if pad_mode not in PAD_MODES:
            raise ValueError(f"{type(model).__name__}.pad_mode {pad_mode!r} is not one of {', '.join(PAD_MODES)}")
        image = to_tensor(rgb)
        mask = mask_to_tensor(hole)
        image, size = pad_to_multiple(image, multiple, pad_mode, min_size=min_size)
        mask, _ = pad_to_multiple(mask, multiple, pad_mode, min_size=min_size)
        image = image.to(device=self.device, dtype=self.dtype)
        mask = mask.to(device=self.device, dtype=self.dtype)
        with torch.inference_mode():
            output = model(image, mask, generator=generator)
        inpainted = unpad(output.inpainted, size)[0]
        return inpainted.float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


# ------------------------------------------------------------------------------------------------- helpers


def _check_int(value: Any, name: str, *, minimum: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_seed(seed: Any, num_samples: int) -> int:
    """Validate a base seed up front: ``seed + i`` for every sample must be a valid generator seed."""
    _check_int(seed, "seed", minimum=0)
    seed = int(seed)  # a numpy integer would wrap around silently in seed + i
    if seed + num_samples - 1 >= SEED_LIMIT:
        raise ValueError(
            f"seed must be below 2**63 - num_samples + 1 = {SEED_LIMIT - num_samples + 1} (sample i uses seed + i, "
            f"and seeds are 63-bit), got seed={seed} with num_samples={num_samples}"
        )
    return seed


def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    return value.copy() if isinstance(value, Image.Image) else value


def _unchanged_pil(source: ImageInput) -> Image.Image:
    """The input as a PIL image, untouched: the (EXIF-oriented) PIL image itself, or the array's pixels."""
    if source.kind == "pil" and isinstance(source.original, Image.Image):
        return source.original.copy()
    return source.to_pil()
