"""The logic behind the web demo (``app.py``), kept free of Gradio so that it can be tested and reused.

* :func:`editor_to_image_and_mask`: the value of a Gradio ``ImageEditor`` (a background photo plus painted layers)
  and an optional uploaded mask -> the photo and the binary hole mask handed to the pipeline;
* :func:`discover_models` / :func:`default_selection`: the models the demo offers (bundled ``checkpoints/``, the
  Hugging Face Hub cache, ``--model`` arguments, the OpenCV baselines) and which are ticked at start;
* :class:`ModelCache`: loads each model the first time it is asked for (never downloading) and keeps it, safe to
  share between the server's worker threads;
* :class:`InpaintSettings` and :func:`run_models`: every chosen model on one photo, each timed, a failing model
  reported next to the others' results instead of aborting them.

Nothing here imports Gradio; ``app.py`` turns :class:`DemoInputError` into ``gr.Error`` messages.

Example::

    from inpaint_hub.demo import ModelCache, InpaintSettings, discover_models, editor_to_image_and_mask, run_models

    image, hole = editor_to_image_and_mask({"background": photo, "layers": [strokes], "composite": None})
    choices = discover_models()
    results = run_models(image, hole, choices[:2], ModelCache(), InpaintSettings())
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .checkpoints import find_local_checkpoints
from .image_processing import dilate_mask, load_image, load_mask, resize_mask
from .modeling_utils import BUILTIN_MODELS
from .pipeline import HD_STRATEGIES, SEED_LIMIT, InpaintPipeline


logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_DEMO_MAX_PIXELS",
    "DEFAULT_SELECTED_BUILTINS",
    "MAX_NUM_SAMPLES",
    "DemoInputError",
    "InpaintSettings",
    "ModelCache",
    "ModelChoice",
    "ModelLoadError",
    "ModelResult",
    "default_selection",
    "discover_models",
    "editor_to_image_and_mask",
    "effective_mask",
    "run_models",
]

DEFAULT_DEMO_MAX_PIXELS = 4096 * 4096
"""The demo refuses photos with more pixels than this (16.8 megapixels; ``app.py --max-pixels`` changes it). Lower
than the library's :data:`~inpaint_hub.image_processing.DEFAULT_MAX_PIXELS` (8192 x 8192): a web server shared by
several users runs several models per request, each taking time and memory in proportion to the pixels."""

DEFAULT_SELECTED_BUILTINS = ("cv2-telea",)
"""Built-in baselines ticked when the demo starts, next to every bundled checkpoint and ``--model`` argument."""

MAX_NUM_SAMPLES = 16
"""Upper bound on ``num_samples`` per model (results are kept in memory and sent to the browser)."""

EditorValue = Mapping[str, Any]
"""A Gradio ``ImageEditor`` value: ``{"background": image | None, "layers": [image, ...], "composite": image |
None}``, each image a numpy array, a PIL image or a file path."""


class DemoInputError(ValueError):
    """A problem with what the user gave (no image, empty mask, too many pixels, bad settings); the message is
    meant to be shown to them as it is."""


class ModelLoadError(RuntimeError):
    """A model of the list cannot be loaded; the message names it and gives the underlying error."""


# ------------------------------------------------------------------------------------------------- editor -> inputs


def editor_to_image_and_mask(
    value: EditorValue | None,
    mask_upload: Any = None,
    *,
    max_pixels: int = DEFAULT_DEMO_MAX_PIXELS,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn an ``ImageEditor`` value (and an optional uploaded mask) into the photo and its hole mask.

    **Image**: the editor's ``background`` (the uploaded photo, without the strokes). An ``[H, W, 4]`` background
    whose alpha is fully opaque (what the editor's ``image_mode="RGBA"`` makes of every JPEG) is returned as RGB
    ``[H, W, 3]``; real transparency is kept (the pipeline then keeps the alpha). Grayscale stays ``[H, W]``.

    **Mask** = union of

    * every painted layer: a layer with transparent pixels is a stroke layer, its hole is ``alpha > 0`` whatever the
      brush colour; a fully opaque layer (or one without alpha) is read by colour, any non-zero pixel is a hole (the
      rule of :func:`~inpaint_hub.image_processing.load_mask`);
    * the uploaded mask, when given: any image (path, PIL image or array), any non-zero pixel is a hole (or
      ``alpha > 0`` for a painted, partly transparent mask).

    A layer or uploaded mask of another size than the photo is resized to it (nearest neighbour when enlarging,
    max-pooling when shrinking, so no hole pixel is lost), with a log line: the editor's layers cover the same canvas
    as the photo, so a mismatch means a scaled canvas, not an offset one. The editor's ``composite`` (photo and
    strokes flattened) is never used: strokes are found in the layers, not by colour in the photo.

    Args:
        value: the editor value, ``{"background", "layers", "composite"}``; ``None`` when the editor is empty.
        mask_upload: optional mask image (file path, PIL image, numpy array) or ``None``.
        max_pixels: refuse photos (and masks) with more than this many pixels; ``0`` means no limit.

    Returns:
        ``(image, hole)``: the photo as a numpy array (uint8 ``[H, W, 3]`` / ``[H, W, 4]`` / ``[H, W]``, or the
        dtype the caller gave) and the hole as bool ``[H, W]`` (``True`` = inpaint).

    Raises:
        DemoInputError: no photo, a photo or mask over ``max_pixels``, an unreadable layer or mask, an empty mask.
    """
    if value is not None and not isinstance(value, Mapping):
        raise DemoInputError(
            f"the editor value must be a dict with 'background', 'layers' and 'composite', got {type(value).__name__}"
        )
    background = None if value is None else value.get("background")
    if background is None:
        raise DemoInputError(
            "No image: upload a photo to the editor first (API: set 'background' of the editor value)."
        )
    image = _as_array(background, "the photo")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4)) or 0 in image.shape[:2]:
        raise DemoInputError(f"the photo must be HxW, HxWx3 or HxWx4 and non-empty, got shape {tuple(image.shape)}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    height, width = image.shape[:2]
    _check_pixel_limit(width, height, max_pixels, "The image")
    if image.ndim == 3 and image.shape[-1] in (2, 4) and _fully_opaque(image[..., -1]):
        image = image[..., :-1] if image.shape[-1] == 4 else image[..., 0]
    image = np.ascontiguousarray(image)

    hole = np.zeros((height, width), dtype=bool)
    layers = [] if value is None else (value.get("layers") or [])
    for index, layer in enumerate(layers):
        if layer is None:
            continue
        hole |= _mask_at_size(layer, (width, height), f"painted layer {index + 1}", max_pixels)
    if mask_upload is not None:
        hole |= _mask_at_size(mask_upload, (width, height), "the uploaded mask", max_pixels)
    if not hole.any():
        raise DemoInputError(
            "The mask is empty: paint over what should disappear with the brush, or upload a mask "
            "(white / any non-zero pixel = hole)."
        )
    return image, hole


def _as_array(source: Any, what: str) -> np.ndarray:
    """A numpy array as it is, or a PIL image / path decoded with the library's loader (EXIF applied)."""
    if isinstance(source, np.ndarray):
        return source
    if isinstance(source, (Image.Image, str, os.PathLike, bytes)):
        try:
            loaded = load_image(source, max_pixels=None)  # the library's bomb guard; the demo's limit comes next
        except (ValueError, OSError) as err:
            raise DemoInputError(f"cannot read {what}: {err}") from err
        return np.asarray(loaded.to_pil())
    raise DemoInputError(f"{what} must be an image (array, PIL image or file), got {type(source).__name__}")


def _mask_at_size(source: Any, size: tuple[int, int], what: str, max_pixels: int) -> np.ndarray:
    """Binarise one layer / uploaded mask with :func:`load_mask` and bring it to ``size`` (``(width, height)``)."""
    try:
        hole = load_mask(source, max_pixels=max_pixels)
    except (ValueError, OSError) as err:
        raise DemoInputError(f"cannot use {what}: {err}") from err
    if hole.shape != (size[1], size[0]):
        logger.info(
            "%s is %dx%d, the photo %dx%d: resizing it (nearest neighbour / max-pooling)",
            what,
            hole.shape[1],
            hole.shape[0],
            *size,
        )
        hole = resize_mask(hole, size)
    return hole


def _fully_opaque(alpha: np.ndarray) -> bool:
    if alpha.dtype == bool:
        return bool(alpha.all())
    full = 1.0 if np.issubdtype(alpha.dtype, np.floating) else (65535 if alpha.dtype == np.uint16 else 255)
    return bool(alpha.size) and bool(alpha.min() >= full)


def _check_pixel_limit(width: int, height: int, max_pixels: int, what: str) -> None:
    if max_pixels and width * height > max_pixels:
        raise DemoInputError(
            f"{what} is {width}x{height} = {width * height:,} pixels, over this demo's limit of {max_pixels:,} "
            f"pixels: downscale it first (the server's --max-pixels option sets the limit)."
        )


# ------------------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelChoice:
    """One model the demo offers.

    Attributes:
        key: the label shown in the model list and the value the API takes (``"lama-small-bsds"``, ``"cv2-telea"``,
            ``"org/lama-big"``, or a ``--model`` argument as it was typed).
        name: what ``AutoInpaintModel.from_pretrained`` loads: a folder, a Hub repository id or a built-in name.
        source: ``"bundled"``, ``"hub-cache"``, ``"builtin"`` or ``"command-line"``.
        revision: Hub revision for cached repositories whose snapshot is not ``main``'s.
    """

    key: str
    name: str
    source: str
    revision: str | None = None


def discover_models(
    checkpoints_dir: str | os.PathLike | None = None,
    extra_models: Sequence[str] = (),
    *,
    cache_dir: str | os.PathLike | None = None,
) -> list[ModelChoice]:
    """Every model the demo can offer, without loading any and without network.

    Args:
        checkpoints_dir: folder of bundled checkpoints; ``None`` searches ``./checkpoints`` and the checkout's
            ``checkpoints/`` (see :func:`~inpaint_hub.checkpoints.find_local_checkpoints`). A missing or empty folder
            simply contributes nothing when it is the default; a folder given explicitly must exist.
        extra_models: ``--model`` arguments: folders, cached Hub repository ids or built-in names; listed as given
            (they are only checked when first used), after the discovered models they do not duplicate (a built-in
            named here moves here from the built-ins, so that it is ticked).
        cache_dir: Hugging Face Hub cache to scan (``None``: the usual environment variables / default).

    Returns:
        Bundled checkpoints, Hub-cache repositories, command-line models, then the built-in baselines, with unique
        ``key`` s (a bundled checkpoint is keyed by its folder name, or its path when two share a name).

    Raises:
        FileNotFoundError: ``checkpoints_dir`` was given and is not a folder.
    """
    found = find_local_checkpoints(checkpoints_dir, cache_dir)
    bundled = [c for c in found if c.source == "bundled"]
    names = [Path(c.name).name for c in bundled]
    choices = [
        ModelChoice(key=name if names.count(name) == 1 else c.name, name=c.name, source="bundled")
        for name, c in zip(names, bundled)
    ]
    choices += [
        ModelChoice(key=c.name, name=c.name, source="hub-cache", revision=c.revision)
        for c in found
        if c.source == "hub-cache"
    ]
    known_paths = {Path(c.name).resolve() for c in choices if c.source == "bundled"}
    known_keys = {c.key for c in choices}
    for argument in extra_models:
        argument = str(argument)
        is_folder = Path(argument).is_dir()
        if argument in known_keys or (is_folder and Path(argument).resolve() in known_paths):
            continue
        choices.append(ModelChoice(key=argument, name=argument, source="command-line"))
        known_keys.add(argument)
    # a built-in named on the command line is listed there (and so ticked), not twice
    choices += [ModelChoice(key=n, name=n, source="builtin") for n in BUILTIN_MODELS if n not in known_keys]
    return choices


def default_selection(choices: Sequence[ModelChoice]) -> list[str]:
    """The keys ticked when the demo opens: every bundled checkpoint and ``--model`` argument, plus the baselines
    of :data:`DEFAULT_SELECTED_BUILTINS` (``cv2-telea``), so that the page works with an empty ``checkpoints/``."""
    return [
        c.key
        for c in choices
        if c.source in ("bundled", "command-line") or (c.source == "builtin" and c.key in DEFAULT_SELECTED_BUILTINS)
    ]


class ModelCache:
    """Loads models on first use and keeps them; safe to share between threads.

    Two requests asking for the same model at once load it once (one lock per model); different models load in
    parallel. A model that fails to load is not cached, so a fixed file is picked up by the next request. Nothing is
    ever downloaded: Hub repositories are read from the local cache (``local_files_only=True``).

    Args:
        device: where to run the models (``"cpu"``, ``"cuda"``...); ``None`` means ``"cuda"`` when available, else
            ``"cpu"``.
    """

    def __init__(self, device: str | None = None) -> None:
        self.device = device
        self._pipelines: dict[ModelChoice, InpaintPipeline] = {}
        self._locks: dict[ModelChoice, threading.Lock] = {}
        self._lock = threading.Lock()

    def __contains__(self, choice: ModelChoice) -> bool:
        return choice in self._pipelines

    def get(self, choice: ModelChoice) -> InpaintPipeline:
        """The pipeline of ``choice``, loading the model the first time.

        Raises:
            ModelLoadError: the model cannot be loaded (missing folder, not in the Hub cache, corrupt weights); the
                message names the model and says why.
        """
        pipeline = self._pipelines.get(choice)
        if pipeline is not None:
            return pipeline
        with self._lock:
            lock = self._locks.setdefault(choice, threading.Lock())
        with lock:
            pipeline = self._pipelines.get(choice)
            if pipeline is None:
                pipeline = self._load(choice)
                self._pipelines[choice] = pipeline
        return pipeline

    def _load(self, choice: ModelChoice) -> InpaintPipeline:
        from .modeling_utils import AutoInpaintModel

        device = self.device or _default_device()
        start = time.perf_counter()
        try:
            model = AutoInpaintModel.from_pretrained(
                choice.name, revision=choice.revision, local_files_only=True, device=device
            )
        except Exception as err:
            raise ModelLoadError(f"cannot load model {choice.key!r} ({choice.name}): {err}") from err
        logger.info("loaded %s on %s in %.2f s", choice.key, device, time.perf_counter() - start)
        return InpaintPipeline(model)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ------------------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class InpaintSettings:
    """The demo's settings, validated (the API may send anything).

    Attributes:
        hd_strategy: ``"original"``, ``"resize"`` or ``"crop"`` (see :meth:`InpaintPipeline.__call__`).
        resize_limit: longest side for ``"resize"``.
        crop_trigger_size: longest side above which ``"crop"`` crops.
        crop_margin: context pixels around each hole region for ``"crop"``.
        mask_dilate: grow the hole by this many pixels.
        seed: base seed (sample ``i`` uses ``seed + i``).
        num_samples: results per model, for models with ``supports_sampling`` (others give one).
    """

    hd_strategy: str = "original"
    resize_limit: int = 1280
    crop_trigger_size: int = 800
    crop_margin: int = 128
    mask_dilate: int = 0
    seed: int = 0
    num_samples: int = 1

    def __post_init__(self) -> None:
        if self.hd_strategy not in HD_STRATEGIES:
            raise DemoInputError(f"unknown HD strategy {self.hd_strategy!r}; choose one of {', '.join(HD_STRATEGIES)}")
        for name, minimum, maximum in (
            ("resize_limit", 1, None),
            ("crop_trigger_size", 1, None),
            ("crop_margin", 0, None),
            ("mask_dilate", 0, 1024),
            ("seed", 0, SEED_LIMIT - MAX_NUM_SAMPLES),
            ("num_samples", 1, MAX_NUM_SAMPLES),
        ):
            object.__setattr__(self, name, _as_int(getattr(self, name), name, minimum, maximum))

    @classmethod
    def from_values(cls, **values: Any) -> InpaintSettings:
        """Build from UI / API values, where ``None`` means the default."""
        return cls(**{name: value for name, value in values.items() if value is not None})


def _as_int(value: Any, name: str, minimum: int, maximum: int | None) -> int:
    """An integer setting from an int or an integral float (Gradio numbers arrive as floats)."""
    if isinstance(value, bool):
        raise DemoInputError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    if not isinstance(value, (int, np.integer)):
        raise DemoInputError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise DemoInputError(f"{name} must be {bound}, got {value}")
    return value


@dataclass
class ModelResult:
    """One model's outcome on one photo.

    Attributes:
        choice: the model.
        images: its results (one per sample), the photo's size and mode; empty when it failed.
        seconds: wall time of inference (loading excluded, see ``load_seconds``).
        load_seconds: time spent loading the model for this request (0 when it was cached).
        seeds: the seed of each sample.
        error: ``"<ExceptionType>: <message>"`` when the model failed, else ``None``.
    """

    choice: ModelChoice
    images: list[Image.Image] = field(default_factory=list)
    seconds: float = 0.0
    load_seconds: float = 0.0
    seeds: list[int | None] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_models(
    image: np.ndarray,
    hole: np.ndarray,
    choices: Sequence[ModelChoice],
    cache: ModelCache,
    settings: InpaintSettings,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[ModelResult]:
    """Inpaint ``image`` with every model of ``choices`` in turn; a model that fails does not stop the others.

    Args:
        image: the photo from :func:`editor_to_image_and_mask`.
        hole: bool ``[H, W]``, ``True`` = hole.
        choices: the models, in the order to show them.
        cache: where models are loaded and kept.
        settings: HD strategy, dilation, seed, number of samples.
        progress: called as ``progress(index, total, message)`` before each model.

    Returns:
        One :class:`ModelResult` per choice, in order. Pixels outside the (dilated) hole are the photo's own.
    """
    results = []
    for index, choice in enumerate(choices):
        if progress is not None:
            loading = "" if choice in cache else " (loading)"
            progress(index, len(choices), f"{choice.key}{loading}")
        result = ModelResult(choice=choice)
        try:
            start = time.perf_counter()
            pipeline = cache.get(choice)
            result.load_seconds = time.perf_counter() - start
            samples = settings.num_samples if type(pipeline.model).supports_sampling else 1
            start = time.perf_counter()
            output = pipeline(
                image,
                hole,
                hd_strategy=settings.hd_strategy,
                resize_limit=settings.resize_limit,
                crop_trigger_size=settings.crop_trigger_size,
                crop_margin=settings.crop_margin,
                mask_dilate=settings.mask_dilate,
                max_pixels=0,  # the photo was checked against the demo's limit already
                num_samples=samples,
                seed=settings.seed,
            )
            result.seconds = time.perf_counter() - start
            result.images, result.seeds = list(output.images), list(output.seeds)
        except Exception as err:  # one broken model must not take the others' results with it
            logger.exception("model %s failed", choice.key)
            result.error = f"{type(err).__name__}: {err}"
        results.append(result)
    if progress is not None:
        progress(len(choices), len(choices), "done")
    return results


def effective_mask(hole: np.ndarray, mask_dilate: int) -> Image.Image:
    """The hole the models fill (after dilation) as a black-and-white ``L`` image, white = hole."""
    return Image.fromarray(np.where(dilate_mask(hole, mask_dilate), 255, 0).astype(np.uint8), "L")
