"""Batch inference: a folder of images x masks through one or several models, as ``inpaint-hub run`` does it.

The pieces, usable on their own:

* :func:`find_images` / :func:`pair_images_and_masks`: the images of a folder (or one file) and the mask of each;
* :class:`BatchOptions`: everything that decides what is computed and written, validated before any work;
* :func:`model_folder_names`: a filesystem-safe, unique output folder name per model argument;
* :func:`distributed_state`: ``accelerate.PartialState`` when started by ``accelerate launch`` / ``torchrun``;
* :func:`run_batch`: the loop, robust to bad files, returning a :class:`BatchReport`.

**Mask matching** (``masks`` a folder). An image's *name* is its path relative to the images folder without its
suffix (``sub/photo`` for ``IMAGES/sub/photo.jpg``; for a single image file, its stem). Its mask is the file of the
masks folder whose relative path without suffix is, in this order,

1. the same name (``MASKS/sub/photo.png``), or
2. the name + ``_mask`` (``MASKS/sub/photo_mask.png``),

with any image extension (:data:`IMAGE_EXTENSIONS`, case-insensitive; with several, ``.png`` wins, then the first
in sorted order, with a warning). The masks folder may be the images folder itself: an image is never its own mask,
and files that serve as masks are not inpainted themselves. ``masks`` may instead be ONE file: the mask of every
image. A mask whose size differs from its image's is binarised (any non-zero pixel is a hole) and resized to the
image's size with :func:`~inpaint_hub.image_processing.resize_mask` (nearest neighbour when enlarging; max-pooling
when shrinking, so that no hole pixel is lost), logged at INFO.

**Outputs** (under ``output_dir``): ``<name>.png`` with one model, ``<model folder>/<name>.png`` with several (see
:func:`model_folder_names`), ``<name>_<k>.png`` for ``num_samples > 1`` (``k = 0..N-1``); ``.jpg`` with
``output_format="jpg"``. With ``concat=True`` only one file per image: ``<name>.png`` = ``[image | mask | model 1
samples | model 2 samples | ...]`` side by side. PNG is lossless (16-bit grayscale stays 16-bit); JPEG is written
at ``jpeg_quality`` with 4:4:4 chroma (``subsampling=0``), without alpha. The input's EXIF is copied with its
Orientation set to 1 (the pixels were already rotated on load) and its ICC profile kept. Every file is written
atomically. Two images that would share an output name (``a.jpg`` and ``a.png``) keep their suffix in it
(``a.jpg.png``, ``a.png.png``), with a warning.

**Counting**: ``written`` and ``skipped`` count output files (an existing output is skipped unless ``overwrite``);
``failed`` counts an image that cannot be inpainted at all (no mask, unreadable image or mask) once, and a model
that raises on an image (or a result that cannot be written) once per model.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from .image_processing import ImageInput, load_image, load_mask, resize_mask
from .pipeline import (
    DEFAULT_CROP_MARGIN,
    DEFAULT_CROP_TRIGGER_SIZE,
    DEFAULT_RESIZE_LIMIT,
    HD_STRATEGIES,
    SEED_LIMIT,
    InpaintPipeline,
)
from .utils import atomic_write


if TYPE_CHECKING:
    from accelerate import PartialState


logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "OUTPUT_FORMATS",
    "BatchEvent",
    "BatchItem",
    "BatchOptions",
    "BatchReport",
    "distributed_state",
    "find_images",
    "model_folder_names",
    "pair_images_and_masks",
    "run_batch",
]

IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
"""Suffixes (compared case-insensitively) of the files taken from image and mask folders."""

OUTPUT_FORMATS = {"png": ("PNG", ".png"), "jpg": ("JPEG", ".jpg")}
"""``output_format`` -> (Pillow format, file suffix)."""

_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


# ------------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class BatchItem:
    """One image to inpaint.

    Attributes:
        image: the image file.
        mask: its mask file, or ``None`` when none was found (the item then fails, reported).
        name: the output name without suffix, relative to the output folder, ``/``-separated (``"sub/photo"``).
    """

    image: Path
    mask: Path | None
    name: str


@dataclass(frozen=True)
class BatchOptions:
    """What :func:`run_batch` computes and writes. Validated on creation, so a bad value fails before any model is
    loaded.

    Attributes:
        hd_strategy: ``"original"``, ``"resize"`` or ``"crop"`` (see :meth:`InpaintPipeline.__call__`).
        resize_limit: longest side for ``"resize"``.
        crop_trigger_size: longest side above which ``"crop"`` crops.
        crop_margin: context pixels around each hole region for ``"crop"``.
        concat: write one ``[image | mask | results...]`` strip per image instead of per-model files.
        overwrite: replace existing outputs (default: skip them).
        output_format: ``"png"`` (lossless) or ``"jpg"``.
        jpeg_quality: JPEG quality, 1..100 (Pillow advises at most 95).
        num_samples: results per image and model; sample ``k`` uses seed ``seed + k``.
        seed: base seed (the same for every image and model, so a run is reproducible); ``None`` = random.
        mask_dilate: grow every hole by this many pixels first.
        mask_feather: blend results into their surroundings over this many pixels.

    Raises:
        ValueError: a value out of range (the message names the option).
    """

    hd_strategy: str = "original"
    resize_limit: int = DEFAULT_RESIZE_LIMIT
    crop_trigger_size: int = DEFAULT_CROP_TRIGGER_SIZE
    crop_margin: int = DEFAULT_CROP_MARGIN
    concat: bool = False
    overwrite: bool = False
    output_format: str = "png"
    jpeg_quality: int = 95
    num_samples: int = 1
    seed: int | None = None
    mask_dilate: int = 0
    mask_feather: float = 0

    def __post_init__(self) -> None:
        if self.hd_strategy not in HD_STRATEGIES:
            raise ValueError(f"unknown hd_strategy {self.hd_strategy!r}; choose one of {', '.join(HD_STRATEGIES)}")
        if self.output_format not in OUTPUT_FORMATS:
            choices = ", ".join(OUTPUT_FORMATS)
            raise ValueError(f"unknown output_format {self.output_format!r}; choose one of {choices}")
        _check_int(self.resize_limit, "resize_limit", minimum=1)
        _check_int(self.crop_trigger_size, "crop_trigger_size", minimum=1)
        _check_int(self.crop_margin, "crop_margin", minimum=0)
        _check_int(self.jpeg_quality, "jpeg_quality", minimum=1, maximum=100)
        _check_int(self.num_samples, "num_samples", minimum=1)
        _check_int(self.mask_dilate, "mask_dilate", minimum=0)
        if isinstance(self.mask_feather, bool) or not isinstance(self.mask_feather, (int, float)):
            raise ValueError(f"mask_feather must be a number, got {self.mask_feather!r}")
        if not math.isfinite(self.mask_feather) or self.mask_feather < 0:
            raise ValueError(f"mask_feather must be >= 0, got {self.mask_feather}")
        if self.seed is not None:
            _check_int(self.seed, "seed", minimum=0)
            if self.seed + self.num_samples - 1 >= SEED_LIMIT:
                raise ValueError(
                    f"seed must be below 2**63 - num_samples + 1 = {SEED_LIMIT - self.num_samples + 1} (sample k "
                    f"uses seed + k), got {self.seed}"
                )

    @property
    def suffix(self) -> str:
        return OUTPUT_FORMATS[self.output_format][1]

    @property
    def pil_format(self) -> str:
        return OUTPUT_FORMATS[self.output_format][0]


@dataclass(frozen=True)
class BatchEvent:
    """One thing :func:`run_batch` did, handed to its ``on_event`` callback as it happens.

    Attributes:
        kind: ``"written"``, ``"skipped"`` (the output exists) or ``"failed"``.
        path: the output file (written / skipped) or the image that failed.
        message: one line for a person: ``"wrote OUT/x.png"``, ``"skipped OUT/x.png: it exists (overwrite to
            replace it)"`` or ``"IMAGES/x.jpg: <what went wrong>"``.
    """

    kind: Literal["written", "skipped", "failed"]
    path: Path
    message: str


@dataclass
class BatchReport:
    """What :func:`run_batch` did.

    The counts are totals over every process of a distributed run (gathered with ``accelerate.utils.gather_object``);
    the lists hold this process's own files and failures.

    Attributes:
        written: output files written.
        skipped: output files that existed and were kept.
        failed: failures (see the module docstring for what counts once).
        outputs: the files this process wrote.
        skipped_outputs: the existing files this process kept.
        failures: ``(image path, error message)`` of this process's failures.
        num_processes: how many processes shared the work.
    """

    written: int = 0
    skipped: int = 0
    failed: int = 0
    outputs: list[Path] = field(default_factory=list)
    skipped_outputs: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    num_processes: int = 1

    @property
    def ok(self) -> bool:
        """``True`` when nothing failed (on any process)."""
        return self.failed == 0

    def summary(self) -> str:
        """``"N written, S skipped, F failed"``."""
        return f"{self.written} written, {self.skipped} skipped, {self.failed} failed"


# ------------------------------------------------------------------------------------------------- finding files


def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def _walk(folder: Path, exclude: Path | None = None) -> list[Path]:
    """Image files below ``folder`` (recursive), skipping hidden files and folders and anything under ``exclude``
    when that is a folder inside ``folder``."""
    excluded = exclude.resolve() if exclude is not None else None
    if excluded is not None and folder.resolve() not in excluded.parents:
        excluded = None  # only a folder strictly inside ``folder`` is left out
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not _is_image_file(path):
            continue
        if excluded is not None and (path.resolve() == excluded or excluded in path.resolve().parents):
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def find_images(images: str | os.PathLike, *, exclude: str | os.PathLike | None = None) -> tuple[list[Path], Path]:
    """The images to process: every image file below a folder (recursive, sorted), or one file.

    Args:
        images: a folder or an image file (a single file is taken whatever its suffix).
        exclude: the output folder: left out when it lies inside the images folder, refused when it is the images
            folder itself.

    Returns:
        ``(files, root)``: the files sorted by relative path, and the folder names are relative to.

    Raises:
        FileNotFoundError: ``images`` does not exist.
        ValueError: ``exclude`` is the images folder.
    """
    path = Path(images)
    if path.is_file():
        return [path], path.parent
    if not path.is_dir():
        raise FileNotFoundError(f"image folder or file {path} does not exist")
    if exclude is not None and Path(exclude).resolve() == path.resolve():
        raise ValueError(f"the output folder {exclude} is the images folder: write the results somewhere else")
    return _walk(path, Path(exclude) if exclude is not None else None), path


def _name_of(image: Path, root: Path) -> str:
    return image.relative_to(root).with_suffix("").as_posix()


def pair_images_and_masks(
    images: str | os.PathLike,
    masks: str | os.PathLike,
    *,
    exclude: str | os.PathLike | None = None,
) -> list[BatchItem]:
    """Find the images and the mask of each (rules in the module docstring).

    Args:
        images: a folder (searched recursively) or one image file.
        masks: a folder of masks matched by name, or one mask file for every image.
        exclude: the output folder (see :func:`find_images`).

    Returns:
        One :class:`BatchItem` per image, sorted by name; ``mask`` is ``None`` where no mask was found.

    Raises:
        FileNotFoundError: ``images`` or ``masks`` does not exist.
        ValueError: no image was found, or ``exclude`` is the images folder.
    """
    files, root = find_images(images, exclude=exclude)
    masks = Path(masks)
    if not masks.exists():
        raise FileNotFoundError(f"mask folder or file {masks} does not exist")
    image_set = {f.resolve() for f in files}

    pairs: list[tuple[Path, Path | None]] = []
    if masks.is_file():
        pairs = [(image, masks) for image in files]
    else:
        index: dict[str, list[Path]] = {}
        for candidate in _walk(masks):
            index.setdefault(_name_of(candidate, masks), []).append(candidate)
        for image in files:
            pairs.append((image, _find_mask(image, _name_of(image, root), index, image_set)))

    # Files that serve as masks (the masks folder may be the images folder) are not images to inpaint.
    used = {mask.resolve() for _, mask in pairs if mask is not None}
    pairs = [(image, mask) for image, mask in pairs if image.resolve() not in used]
    if not pairs:
        where = f"in {images}" if Path(images).is_dir() else f"at {images}"
        raise ValueError(f"no images found {where} (extensions: {', '.join(IMAGE_EXTENSIONS)})")

    names = [_name_of(image, root) for image, _ in pairs]
    counts = Counter(names)
    items = []
    for (image, mask), name in zip(pairs, names):
        if counts[name] > 1:
            logger.warning("several images are named %s: writing %s with its suffix in the output name", name, image)
            name = image.relative_to(root).as_posix()
        items.append(BatchItem(image=image, mask=mask, name=name))
    return items


def _find_mask(image: Path, name: str, index: dict[str, list[Path]], image_set: set[Path]) -> Path | None:
    for key, exact in ((name, True), (f"{name}_mask", False)):
        # An image is never its own mask, nor (same name) another image of the batch: that only happens when the
        # masks folder is the images folder, where masks are told apart by the _mask suffix.
        candidates = [c for c in index.get(key, []) if not (exact and c.resolve() in image_set)]
        if not candidates:
            continue
        candidates.sort(key=lambda c: (c.suffix.lower() != ".png", c.name))
        if len(candidates) > 1:
            logger.warning("several masks for %s: %s; using %s", image, ", ".join(map(str, candidates)), candidates[0])
        return candidates[0]
    return None


def model_folder_names(models: Iterable[str]) -> dict[str, str]:
    """A filesystem-safe, unique output folder name for each model argument.

    A local folder gives its own name (``converted/big-lama`` -> ``big-lama``), a Hub repository id its ``/`` as
    ``--`` (``org/lama`` -> ``org--lama``, as in the Hub cache), a built-in name itself (``cv2-telea``). Characters
    other than letters, digits, ``.``, ``_`` and ``-`` become ``_``; a name already taken gets ``-2``, ``-3``...

    Raises:
        ValueError: the same model argument is given twice.
    """
    names: dict[str, str] = {}
    taken: set[str] = set()
    for model in models:
        if model in names:
            raise ValueError(f"model {model!r} is given twice")
        text = str(model)
        if Path(text).is_dir() or text.startswith((".", "/", "~")) or "\\" in text:
            base = Path(text).expanduser().resolve().name
        else:
            base = text.replace("/", "--")
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "model"
        name, counter = base, 2
        while name.lower() in taken:  # case-insensitive file systems
            name, counter = f"{base}-{counter}", counter + 1
        taken.add(name.lower())
        names[model] = name
    return names


# ------------------------------------------------------------------------------------------------- distributed


def distributed_state() -> PartialState | None:
    """``accelerate.PartialState()`` when this process was started by a distributed launcher, else ``None``.

    Detected from the environment: ``accelerate launch`` sets ``ACCELERATE_MIXED_PRECISION`` (in every mode, one
    process included), ``torchrun`` and ``accelerate launch --num_processes N`` set ``WORLD_SIZE``. Accelerate is
    imported only then, so plain runs never pay for it. The processes run on CPU (gloo) with
    ``ACCELERATE_USE_CPU=1`` (``accelerate launch --cpu``) or when there is no GPU.
    """
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        world_size = 1
    if world_size <= 1 and "ACCELERATE_MIXED_PRECISION" not in os.environ:
        return None
    from accelerate import PartialState

    # PartialState() runs several CPU processes (gloo) only when asked with cpu=True; without it, on a machine with no
    # GPU, every process would think it is alone. So: cpu=True with ACCELERATE_USE_CPU (accelerate launch --cpu) or
    # when there is no accelerator to distribute over.
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes", "on") or not _has_accelerator()
    return PartialState(cpu=use_cpu)


def _has_accelerator() -> bool:
    import accelerate.utils
    import torch

    if torch.cuda.is_available():
        return True
    checks = ("is_xpu_available", "is_npu_available", "is_mlu_available", "is_musa_available", "is_sdaa_available")
    return any(bool(getattr(accelerate.utils, name, lambda: False)()) for name in checks)


# ------------------------------------------------------------------------------------------------- the loop


def run_batch(
    pipelines: Mapping[str, InpaintPipeline],
    items: Sequence[BatchItem],
    output_dir: str | os.PathLike,
    options: BatchOptions | None = None,
    *,
    state: PartialState | None = None,
    progress: bool = True,
    on_event: Callable[[BatchEvent], None] | None = None,
) -> BatchReport:
    """Inpaint every item with every pipeline and write the results (layout and counting in the module docstring).

    A bad item (no mask, unreadable image or mask, a model raising on it, a write error) is reported and skipped;
    the others go on. Existing outputs are skipped without running the model unless ``options.overwrite``.

    Args:
        pipelines: model argument (``--model``: folder, repo id, built-in name) -> pipeline; the keys name the output
            folders (:func:`model_folder_names`) when there are several.
        items: from :func:`pair_images_and_masks`.
        output_dir: where results go (created).
        options: :class:`BatchOptions` (default: all defaults).
        state: an ``accelerate.PartialState`` (:func:`distributed_state`): each process takes its contiguous share of
            ``items`` (``state.split_between_processes``: every item exactly once), writes its own files, and the
            returned counts are gathered from all processes. Pipelines should already be on ``state.device``.
        progress: show a tqdm bar over this process's images (main process only; hidden when stderr is no terminal).
        on_event: called with each :class:`BatchEvent` as it happens (the CLI prints them). Events are then logged at
            DEBUG only; without a callback they are logged at INFO (written, skipped) and WARNING (failed).

    Returns:
        :class:`BatchReport`.

    Raises:
        ValueError: no pipelines, or a mask file shared by several images cannot be read (checked before any work).
    """
    from tqdm.auto import tqdm

    options = options or BatchOptions()
    if not pipelines:
        raise ValueError("no models to run")
    output_dir = Path(output_dir)
    folders = model_folder_names(pipelines) if len(pipelines) > 1 and not options.concat else {}
    distributed = state is not None and state.num_processes > 1
    rank, world = (state.process_index, state.num_processes) if distributed else (0, 1)

    # A mask file shared by several images (one mask for all) is read once, up front: if it is unreadable nothing
    # can be done, so say so before any work.
    shared = {mask for mask, count in Counter(item.mask for item in items if item.mask).items() if count > 1}
    shared_masks = {mask: load_mask(mask) for mask in sorted(shared)}

    mine = list(items)
    if distributed:
        with state.split_between_processes(mine) as share:
            mine = list(share)
    if distributed:
        preview = _preview(item.image for item in mine)
        logger.info("process %d/%d handles %d of %d image(s)%s", rank, world, len(mine), len(items), preview)
    else:
        logger.info("inpainting %d image(s) with %d model(s)", len(items), len(pipelines))

    runner = _Runner(pipelines, folders, output_dir, options, shared_masks, on_event)
    runner.inputs = {path.resolve() for item in items for path in (item.image, item.mask) if path is not None}
    is_main = state is None or state.is_main_process
    bar = tqdm(mine, desc="inpainting", unit="image", disable=None if progress and is_main else True)
    for item in bar:
        runner.process(item)
    bar.close()

    report = runner.report
    report.num_processes = world
    if distributed:
        from accelerate.utils import gather_object

        counts = gather_object([(report.written, report.skipped, report.failed)])
        report.written, report.skipped, report.failed = (sum(c[i] for c in counts) for i in range(3))
        logger.info("process %d/%d: %s", rank, world, _local_summary(runner.report_local))
    return report


def _preview(paths: Iterable[Path], limit: int = 10) -> str:
    paths = [str(p) for p in paths]
    if not paths:
        return ""
    more = f", ... ({len(paths) - limit} more)" if len(paths) > limit else ""
    return ": " + ", ".join(paths[:limit]) + more


def _local_summary(counts: tuple[int, int, int]) -> str:
    return f"{counts[0]} written, {counts[1]} skipped, {counts[2]} failed"


class _Runner:
    """The per-item work of :func:`run_batch`, with its report and event plumbing."""

    def __init__(
        self,
        pipelines: Mapping[str, InpaintPipeline],
        folders: dict[str, str],
        output_dir: Path,
        options: BatchOptions,
        shared_masks: dict[Path, np.ndarray],
        on_event: Callable[[BatchEvent], None] | None,
    ) -> None:
        self.pipelines = pipelines
        self.folders = folders
        self.output_dir = output_dir
        self.options = options
        self.shared_masks = shared_masks
        self.on_event = on_event
        self.report = BatchReport()
        self._warned_alpha = False
        self.inputs: set[Path] = set()  # never written over, whatever the options

    @property
    def report_local(self) -> tuple[int, int, int]:
        return len(self.report.outputs), len(self.report.skipped_outputs), len(self.report.failures)

    # --------------------------------------------------------------------------------------------- events

    def _emit(self, event: BatchEvent, level: int) -> None:
        if self.on_event is not None:
            logger.debug("%s", event.message)
            self.on_event(event)
        else:
            logger.log(level, "%s", event.message)

    def _written(self, path: Path) -> None:
        self.report.written += 1
        self.report.outputs.append(path)
        self._emit(BatchEvent("written", path, f"wrote {path}"), logging.INFO)

    def _skipped(self, path: Path) -> None:
        self.report.skipped += 1
        self.report.skipped_outputs.append(path)
        self._emit(BatchEvent("skipped", path, f"skipped {path}: it exists (overwrite to replace it)"), logging.INFO)

    def _failed(self, image: Path, error: str) -> None:
        self.report.failed += 1
        self.report.failures.append((image, error))
        self._emit(BatchEvent("failed", image, f"{image}: {error}"), logging.WARNING)

    # --------------------------------------------------------------------------------------------- paths

    def _path(self, item: BatchItem, model: str | None, sample: int | None) -> Path:
        name = item.name if sample is None else f"{item.name}_{sample}"
        folder = self.output_dir / self.folders[model] if model in self.folders else self.output_dir
        return folder / (name + self.options.suffix)

    def _sample_paths(self, item: BatchItem, model: str | None) -> list[Path]:
        n = self.options.num_samples
        return [self._path(item, model, None if n == 1 else k) for k in range(n)]

    # --------------------------------------------------------------------------------------------- one item

    def process(self, item: BatchItem) -> None:
        options = self.options
        if item.mask is None:
            self._failed(item.image, "no mask found (looked for the same name, then <name>_mask, in the masks folder)")
            return

        # What is left to do: models with a missing output (or all, with overwrite); existing files are skipped.
        if options.concat:
            target = self._path(item, None, None)
            if target.exists() and not options.overwrite:
                self._skipped(target)
                return
            todo = list(self.pipelines)
        else:
            todo = [
                model
                for model in self.pipelines
                if options.overwrite or not all(p.exists() for p in self._sample_paths(item, model))
            ]
            for model in self.pipelines:
                if model not in todo:
                    for path in self._sample_paths(item, model):
                        self._skipped(path)
            if not todo:
                return

        try:
            source = load_image(item.image)
            hole = self._load_mask(item, source.size)
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
            logger.debug("reading %s failed", item.image, exc_info=True)
            self._failed(item.image, str(err))
            return
        exif = _exif_bytes(source)

        results: dict[str, list[Image.Image]] = {}
        for model in todo:
            try:
                output = self.pipelines[model](
                    source,
                    hole,
                    hd_strategy=options.hd_strategy,
                    resize_limit=options.resize_limit,
                    crop_trigger_size=options.crop_trigger_size,
                    crop_margin=options.crop_margin,
                    mask_dilate=options.mask_dilate,
                    mask_feather=options.mask_feather,
                    num_samples=options.num_samples,
                    seed=options.seed,
                )
            except Exception as err:  # noqa: BLE001 - a model failing on one image must not stop the batch
                logger.debug("model %s failed on %s", model, item.image, exc_info=True)
                self._failed(item.image, f"model {model} failed: {type(err).__name__}: {err}")
                continue
            if options.concat:
                results[model] = output.images
                continue
            for image, path in zip(output.images, self._sample_paths(item, model)):
                if path.exists() and not options.overwrite:
                    self._skipped(path)
                else:
                    self._save(item, image, path, exif)

        if options.concat and len(results) == len(self.pipelines):
            strip = _concat(source, hole, [image for images in results.values() for image in images])
            self._save(item, strip, self._path(item, None, None), exif)

    def _load_mask(self, item: BatchItem, size: tuple[int, int]) -> np.ndarray:
        """The item's mask as bool ``[H, W]`` at ``size``, resized (and logged) when its own size differs."""
        if item.mask is None:  # pragma: no cover - process() checks this first
            raise ValueError(f"{item.image} has no mask")
        hole = self.shared_masks.get(item.mask)
        if hole is None:
            hole = load_mask(item.mask)
        if hole.shape != (size[1], size[0]):
            logger.info(
                "mask %s is %dx%d, image %s is %dx%d: resizing the mask (nearest neighbour / max-pooling)",
                item.mask,
                hole.shape[1],
                hole.shape[0],
                item.image,
                size[0],
                size[1],
            )
            hole = resize_mask(hole, size)
        return hole

    def _save(self, item: BatchItem, image: Image.Image, path: Path, exif: bytes | None) -> None:
        options = self.options
        if path.resolve() in self.inputs:
            self._failed(item.image, f"refusing to write {path}: it is one of the input images or masks")
            return
        try:
            icc, family = image.info.get("icc_profile"), _family(image.mode)
            image = self._fit_format(image, item)
            params: dict[str, Any] = {}
            if exif:
                params["exif"] = exif
            if icc and family is not None and _family(image.mode) == family:  # a profile describes one colour space
                params["icc_profile"] = icc
            if options.pil_format == "JPEG":
                params.update(quality=options.jpeg_quality, subsampling=0)
            atomic_write(path, lambda tmp: image.save(tmp, format=options.pil_format, **params))
        except Exception as err:  # noqa: BLE001 - a full disk or a bad path fails this file, not the batch
            logger.debug("writing %s failed", path, exc_info=True)
            self._failed(item.image, f"cannot write {path}: {err}")
            return
        self._written(path)

    def _fit_format(self, image: Image.Image, item: BatchItem) -> Image.Image:
        """Bring a result to a mode the output format stores: PNG keeps 8-bit, 16-bit grayscale and alpha; JPEG
        gets 8-bit ``L`` or ``RGB`` (alpha dropped, with one warning per run)."""
        if image.mode in ("PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
            image = image.convert("LA" if image.mode == "La" else "RGBA")
        elif image.mode not in ("1", "L", "LA", "RGB", "RGBA", "P", *_SIXTEEN_BIT_MODES, "F"):
            image = image.convert("RGB")  # CMYK, YCbCr... (only an unchanged input, from an empty mask, gets here)
        if self.options.pil_format == "JPEG":
            if image.mode in ("RGBA", "LA"):
                if not self._warned_alpha:
                    logger.warning("JPEG cannot store transparency: writing results without their alpha channel")
                    self._warned_alpha = True
                return image.convert(image.mode[:-1])
            if image.mode in (*_SIXTEEN_BIT_MODES, "F"):
                logger.info("JPEG stores 8 bits: writing the result of %s as 8-bit grayscale", item.image)
                return _to_8bit_gray(image)
            return image if image.mode in ("L", "RGB") else image.convert("RGB")
        if image.mode in ("I", "I;16L", "I;16N"):
            return Image.fromarray(np.clip(np.asarray(image), 0, 65535).astype(np.uint16))
        if image.mode == "F":
            return Image.fromarray(np.rint(np.clip(np.asarray(image), 0, 1) * 65535).astype(np.uint16))
        return image


# ------------------------------------------------------------------------------------------------- helpers


def _check_int(value: Any, name: str, *, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")


def _exif_bytes(source: ImageInput) -> bytes | None:
    """The input's EXIF block to copy into its results, Orientation set to 1 (the pixels are already upright)."""
    if not isinstance(source.original, Image.Image):
        return None
    try:
        exif = source.original.getexif()
        if not len(exif):
            return None
        if _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        return exif.tobytes()
    except Exception as err:  # noqa: BLE001 - a broken EXIF block is dropped, not fatal
        logger.warning("not copying the unreadable EXIF data of an input: %s", err)
        return None


def _family(mode: str) -> str | None:
    """``"rgb"`` or ``"gray"``: the colour space an ICC profile of an image of this mode describes."""
    if mode in ("RGB", "RGBA", "RGBa", "RGBX", "P", "PA"):
        return "rgb"
    if mode in ("1", "L", "LA", "La", *_SIXTEEN_BIT_MODES, "F"):
        return "gray"
    return None


def _to_8bit_gray(image: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer grayscale (0..65535) or float grayscale ([0, 1]) as 8-bit ``L``."""
    array = np.asarray(image, dtype=np.float64)
    scale = 255.0 if image.mode == "F" else 255.0 / 65535.0
    return Image.fromarray(np.rint(np.clip(array * scale, 0, 255)).astype(np.uint8), "L")


def _display(image: Image.Image, mode: str) -> Image.Image:
    """Any result or input as an 8-bit ``RGB`` / ``RGBA`` panel."""
    if image.mode in (*_SIXTEEN_BIT_MODES, "F"):
        image = _to_8bit_gray(image)
    return image if image.mode == mode else image.convert(mode)


def _concat(source: ImageInput, hole: np.ndarray, results: list[Image.Image]) -> Image.Image:
    """``[image | mask | result 1 | result 2 | ...]`` side by side, each panel the image's size (8-bit RGB, or RGBA
    when the input has alpha). The mask panel shows the hole in white."""
    original = source.to_pil()
    mode = "RGBA" if source.alpha is not None else "RGB"
    mask = Image.fromarray(np.where(hole, 255, 0).astype(np.uint8), "L")
    panels = [_display(original, mode), _display(mask, mode), *(_display(r, mode) for r in results)]
    width, height = source.size
    strip = Image.new(mode, (width * len(panels), height))
    for index, panel in enumerate(panels):
        strip.paste(panel, (index * width, 0))
    if original.info.get("icc_profile") and original.mode in ("RGB", "RGBA"):
        strip.info["icc_profile"] = original.info["icc_profile"]
    return strip
