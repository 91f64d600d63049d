"""Evaluate inpainting models on fixed, reproducible masks, reported per hole-area bucket.

The protocol (what ``inpaint-hub eval`` does, and what the README's tables were made with):

1. Every image of ``--images`` (recursive, sorted, found as ``inpaint-hub run`` finds them) is read with
   :func:`~inpaint_hub.image_processing.load_image` (EXIF orientation applied; 16-bit and float images quantised to
   8-bit RGB). With ``resize=N`` it is
   resized with Pillow's bicubic filter so its short side is ``N`` and centre-cropped to ``N x N`` (LaMa's evaluation
   sets are made the same way, except that LaMa crops around the mask; a centre crop keeps the image independent
   of the mask).
2. Its mask comes either from ``--masks`` (matched by name as in ``inpaint-hub run``, read with
   :func:`~inpaint_hub.image_processing.load_mask`, brought to the image's size and then through the image's own
   resize and crop) or from
   a protocol of :mod:`inpaint_hub.masks`, drawn with ``numpy.random.default_rng([seed, crc32(relative path)])``:
   each image's mask depends only on the seed and the image's name, not on the order, the number of images or
   the machine, so a table can be reproduced from the command line that made it.
3. Each model inpaints through :class:`~inpaint_hub.pipeline.InpaintPipeline` (``hd_strategy`` as given, the
   same seed for stochastic models), given the image with its hole blanked to black so that no method can read the
   ground truth, and the result is compared with the original on uint8 pixels
   (:mod:`inpaint_hub.metrics`): PSNR of the whole image and of the hole, SSIM of the whole image, L1 in the
   hole; LPIPS and FID/KID when their backbone files are given.
4. Rows are grouped by model x protocol x hole bucket (:data:`inpaint_hub.masks.HOLE_BUCKETS`), with an ``all`` row
   per model x protocol. Per-image PSNR is capped at :data:`PSNR_CAP` dB before averaging (a perfect hole would
   otherwise make the mean infinite).
"""

from __future__ import annotations

import logging
import math
import platform
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .batch import IMAGE_EXTENSIONS, find_images, pair_images_and_masks
from .image_processing import load_image, load_mask, resize_mask, to_tensor, to_uint8
from .masks import HOLE_BUCKETS, get_mask_protocol, hole_bucket, hole_ratio, make_mask
from .metrics import SSIM_WINDOW
from .utils import atomic_write_text


if TYPE_CHECKING:
    from .pipeline import InpaintPipeline

logger = logging.getLogger(__name__)

__all__ = [
    "HD_OPTIONS",
    "PSNR_CAP",
    "EvalRun",
    "EvalSample",
    "ImageResult",
    "build_report",
    "evaluate",
    "load_eval_samples",
    "mask_seed",
    "prepare_image",
    "results_to_markdown",
    "summarize",
    "write_model_index",
]

PSNR_CAP = 100.0
# The keyword arguments of the pipeline's high-resolution strategies that :func:`evaluate` passes on.
HD_OPTIONS = ("resize_limit", "crop_trigger_size", "crop_margin")
"""Per-image PSNR values are capped at this many dB before averaging (identical pixels give infinity)."""

_METRIC_COLUMNS = ("psnr", "psnr_hole", "ssim", "l1_hole", "lpips")
_CARD_METRICS = (
    ("psnr", "PSNR"),
    ("psnr_hole", "PSNR (hole)"),
    ("ssim", "SSIM"),
    ("l1_hole", "L1 (hole)"),
    ("lpips", "LPIPS"),
    ("fid", "FID"),
    ("kid", "KID"),
)


# ------------------------------------------------------------------------------------------------- samples


@dataclass
class EvalSample:
    """One evaluation input.

    Attributes:
        name: the image path relative to the images folder, with ``/`` separators (stable across machines).
        image: ``uint8 [H, W, 3]`` RGB ground truth (after the resize/crop).
        mask: ``uint8 [H, W]``, 1 = hole.
    """

    name: str
    image: np.ndarray
    mask: np.ndarray

    @property
    def hole_ratio(self) -> float:
        return hole_ratio(self.mask)

    @property
    def bucket(self) -> str:
        return hole_bucket(self.hole_ratio)


def mask_seed(seed: int, name: str) -> list[int]:
    """The ``numpy.random.default_rng`` seed of an image's protocol mask: ``[seed, crc32(name)]``."""
    return [int(seed), zlib.crc32(name.encode("utf-8"))]


def _resize_crop_geometry(size: tuple[int, int], resize: int) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """``(new_size, crop_box)`` of the short-side resize to ``resize`` + centre crop, for a ``(width, height)``."""
    width, height = size
    scale = resize / min(width, height)
    new_size = (max(resize, round(width * scale)), max(resize, round(height * scale)))
    left, top = (new_size[0] - resize) // 2, (new_size[1] - resize) // 2
    return new_size, (left, top, left + resize, top + resize)


def prepare_image(image: Image.Image, resize: int | None) -> Image.Image:
    """RGB, and with ``resize``: bicubic resize so the short side is ``resize``, then centre crop ``resize^2``."""
    image = image.convert("RGB")
    if resize is None:
        return image
    new_size, box = _resize_crop_geometry(image.size, resize)
    if new_size != image.size:
        image = image.resize(new_size, Image.Resampling.BICUBIC)
    return image.crop(box)


def _prepare_mask(hole: np.ndarray, original_size: tuple[int, int], resize: int | None, name: str) -> np.ndarray:
    """A user mask brought onto the prepared image: to the original's size first, then the image's resize + crop.

    Resizing uses :func:`~inpaint_hub.image_processing.resize_mask` (nearest when enlarging, max-pooling when
    shrinking: no hole pixel is lost), as ``inpaint-hub run`` does.
    """
    if hole.shape != (original_size[1], original_size[0]):
        logger.info(
            "%s: mask of %dx%d resized to the image's %dx%d", name, hole.shape[1], hole.shape[0], *original_size
        )
        hole = resize_mask(hole, original_size)
    if resize is not None:
        new_size, (left, top, right, bottom) = _resize_crop_geometry(original_size, resize)
        hole = resize_mask(hole, new_size)[top:bottom, left:right]
    return hole.astype(np.uint8)


def load_eval_samples(
    images: str | Path,
    *,
    protocol: str | None = None,
    masks: str | Path | None = None,
    seed: int = 0,
    resize: int | None = None,
    limit: int | None = None,
) -> tuple[list[EvalSample], list[str]]:
    """Read the evaluation images and give each its mask.

    Args:
        images: folder of images (recursive) or one image file.
        protocol: a mask protocol name (:func:`inpaint_hub.masks.list_mask_protocols`); exclusive with ``masks``.
        masks: folder of masks matched by stem (or one mask file for every image); exclusive with ``protocol``.
        seed: base seed of the protocol masks (see :func:`mask_seed`).
        resize: short side + centre crop size, or ``None`` to keep the images' own sizes.
        limit: use only the first ``limit`` images (sorted by name).

    Returns:
        ``(samples, problems)``: the samples, and one message per image that was skipped (unreadable file,
        missing or empty mask).

    Raises:
        ValueError: neither or both of ``protocol`` and ``masks``; unknown protocol; no images.
    """
    if (protocol is None) == (masks is None):
        raise ValueError("give exactly one of a mask protocol (--protocol) or a masks folder (--masks)")
    if protocol is not None:
        get_mask_protocol(protocol)  # fail on a typo before reading anything
    if resize is not None and (isinstance(resize, bool) or resize < 8):
        raise ValueError(f"resize must be an integer >= 8, got {resize!r}")
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if masks is not None:
        # The same rules as ``inpaint-hub run``: same relative name, else <name>_mask; or one mask for all.
        pairs = [(item.image, item.mask) for item in pair_images_and_masks(images, masks)]
        root = find_images(images)[1]
    else:
        files, root = find_images(images)
        pairs = [(path, None) for path in files]
    if not pairs:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {images}")
    if limit is not None:
        pairs = pairs[:limit]

    samples, problems = [], []
    for path, mask_file in pairs:
        name = path.relative_to(root).as_posix()
        try:
            # The library's own readers: EXIF orientation, 16-bit and float images, alpha-painted masks and the
            # decompression-bomb guard behave exactly as in the pipeline and ``inpaint-hub run``.
            source = load_image(path)
            rgb = to_uint8(to_tensor(source.to_model_rgb()))  # 16-bit / float images quantised to 8 bits
            image = prepare_image(Image.fromarray(rgb), resize)
            if min(image.size) < SSIM_WINDOW:
                raise ValueError(
                    f"{image.width}x{image.height} is smaller than SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window"
                )
            if protocol is not None:
                rng = np.random.default_rng(mask_seed(seed, name))
                mask = make_mask(protocol, image.height, image.width, rng)
            else:
                if mask_file is None:
                    raise ValueError(f"no mask for it in {masks} (looked for the same name and <name>_mask)")
                mask = _prepare_mask(load_mask(mask_file), source.size, resize, name)
                if not mask.any():
                    raise ValueError(f"its mask {mask_file} is empty")
        except (OSError, ValueError) as err:
            problems.append(f"{name}: {err}")
            logger.warning("skipping %s: %s", name, err)
            continue
        samples.append(EvalSample(name=name, image=np.asarray(image, dtype=np.uint8).copy(), mask=mask))
    return samples, problems


# ------------------------------------------------------------------------------------------------- evaluation


@dataclass
class ImageResult:
    """Metrics of one model on one image."""

    model: str
    protocol: str
    image: str
    hole_ratio: float
    bucket: str
    psnr: float
    psnr_hole: float
    ssim: float
    l1_hole: float
    seconds: float
    lpips: float | None = None
    error: str | None = None
    # With several samples per image (a model with ``supports_sampling``): the metrics above are the means over the
    # samples, ``psnr_hole_best`` the best sample's hole-PSNR, ``diversity`` the mean pairwise distance between the
    # samples (LPIPS when an LPIPS model is given, else the mean absolute difference inside the hole, in [0, 1]).
    num_samples: int = 1
    psnr_hole_best: float | None = None
    diversity: float | None = None


@dataclass
class EvalRun:
    """The per-image results of one model on one protocol, plus set-level metrics (FID/KID)."""

    model: str
    protocol: str
    images: list[ImageResult] = field(default_factory=list)
    set_metrics: dict[str, float] = field(default_factory=dict)


def evaluate(
    pipeline: InpaintPipeline,
    samples: Sequence[EvalSample],
    *,
    model: str,
    protocol: str,
    hd_strategy: str = "original",
    hd_options: Mapping[str, int] | None = None,
    seed: int = 0,
    num_samples: int = 1,
    lpips: Any | None = None,
    fid: Any | None = None,
    progress: bool = True,
) -> EvalRun:
    """Run ``pipeline`` on every sample and measure it.

    Args:
        pipeline: the model (or an OpenCV baseline) behind an :class:`~inpaint_hub.pipeline.InpaintPipeline`.
        samples: from :func:`load_eval_samples`.
        model, protocol: labels for the rows.
        hd_strategy: passed to the pipeline.
        hd_options: the strategy's settings, passed to the pipeline: ``resize_limit``, ``crop_trigger_size``,
            ``crop_margin`` (default: the pipeline's).
        seed: the pipeline seed (matters for stochastic models only); the same for every image.
        num_samples: results per image for a model with ``supports_sampling`` (sample ``k`` with seed ``seed + k``):
            each image's metrics are then the means over its samples, with the best sample's hole-PSNR
            (``psnr_hole_best``) and the samples' mean pairwise distance (``diversity``). Other models run once
            (best = mean, diversity 0). ``seconds`` is the time for the image, all its samples.
        lpips: an :class:`inpaint_hub.metrics.LPIPS` to add LPIPS per image.
        fid: a :class:`inpaint_hub.metrics.FIDKIDAccumulator` factory: called with no argument, it returns a fresh
            accumulator; real images are added from ``samples`` and fake ones from the results (the first sample of
            each image when there are several).
        progress: show a tqdm bar.

    Returns:
        :class:`EvalRun`. An image on which the model fails is recorded with ``error`` set and left out of the
        averages; the run goes on.
    """
    from tqdm.auto import tqdm

    from .metrics import compute_image_metrics, lpips_distance

    unknown = sorted(set(hd_options or {}) - set(HD_OPTIONS))
    if unknown:
        raise ValueError(f"unknown hd_options {', '.join(unknown)}; known: {', '.join(HD_OPTIONS)}")
    run = EvalRun(model=model, protocol=protocol)
    accumulator = fid() if fid is not None else None
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    model_class = type(getattr(pipeline, "model", None))
    count = num_samples if getattr(model_class, "supports_sampling", False) else 1
    for sample in tqdm(samples, desc=f"{model} | {protocol}", unit="img", disable=not progress, leave=False):
        ratio = sample.hole_ratio
        try:
            # The model gets the image with the hole blanked: the ground truth must not reach it through a method
            # that reads hole pixels (a degenerate all-hole mask would otherwise score perfectly).
            known = sample.image * (1 - sample.mask[..., None])
            start = time.perf_counter()
            result = pipeline(
                Image.fromarray(known),
                Image.fromarray(sample.mask * 255),
                hd_strategy=hd_strategy,
                seed=seed,
                num_samples=count,
                **(hd_options or {}),
            )
            seconds = time.perf_counter() - start  # for the image, all its samples
            outputs = [np.asarray(image.convert("RGB"), dtype=np.uint8) for image in result.images]
            hole = sample.mask.astype(bool)
            per_sample = [compute_image_metrics(output, sample.image, hole) for output in outputs]
            for v in per_sample:  # the cap applies to each result, before any mean
                v["psnr"], v["psnr_hole"] = min(v["psnr"], PSNR_CAP), min(v["psnr_hole"], PSNR_CAP)
            values = {key: float(np.mean([v[key] for v in per_sample])) for key in per_sample[0]}
            best = max(min(v["psnr_hole"], PSNR_CAP) for v in per_sample)
            lpips_value = (
                float(np.mean([lpips_distance(lpips, output, sample.image) for output in outputs]))
                if lpips is not None
                else None
            )
            diversity = _diversity(outputs, hole, lpips)
        except Exception as err:  # noqa: BLE001 - one failing image must not end the evaluation
            logger.error("%s failed on %s: %s", model, sample.name, err)
            run.images.append(
                ImageResult(model, protocol, sample.name, ratio, hole_bucket(ratio), *([math.nan] * 4), 0.0,
                            error=f"{type(err).__name__}: {err}")
            )  # fmt: skip
            continue
        run.images.append(
            ImageResult(
                model=model,
                protocol=protocol,
                image=sample.name,
                hole_ratio=ratio,
                bucket=hole_bucket(ratio),
                psnr=min(values["psnr"], PSNR_CAP),
                psnr_hole=min(values["psnr_hole"], PSNR_CAP),
                ssim=values["ssim"],
                l1_hole=values["l1_hole"],
                seconds=seconds,
                lpips=lpips_value,
                num_samples=count,
                psnr_hole_best=best,
                diversity=diversity,
            )
        )
        if accumulator is not None:
            accumulator.update_real([sample.image])
            accumulator.update_fake(outputs[:1])  # FID/KID: the first sample of each image
    if accumulator is not None:
        good = [r for r in run.images if r.error is None]
        if len(good) >= 2:
            run.set_metrics = {k: float(v) for k, v in accumulator.compute().items() if k != "n"}
        else:
            logger.warning("FID/KID need at least 2 images; %s on %s has %d", model, protocol, len(good))
    return run


def _diversity(outputs: Sequence[np.ndarray], hole: np.ndarray, lpips: Any | None) -> float:
    """Mean pairwise distance between the samples of one image: LPIPS over the image when ``lpips`` is given, else
    the mean absolute difference of the hole pixels in [0, 1]. 0 for a single sample."""
    from .metrics import lpips_distance

    pairs = [(a, b) for i, a in enumerate(outputs) for b in outputs[i + 1 :]]
    if not pairs:
        return 0.0
    if lpips is not None:
        return float(np.mean([lpips_distance(lpips, a, b) for a, b in pairs]))
    return float(np.mean([np.abs(a[hole].astype(np.float64) - b[hole]).mean() / 255.0 for a, b in pairs]))


def summarize(runs: Iterable[EvalRun]) -> list[dict[str, Any]]:
    """Table rows: one per model x protocol x hole bucket (buckets that have images), then an ``all`` row.

    Each row has ``model, protocol, bucket, n, failed, psnr, psnr_hole, ssim, l1_hole, seconds_per_image`` (means
    over the bucket's successful images), ``lpips`` when measured, and on ``all`` rows any set-level metrics
    (``fid``, ``kid``, ``kid_std``). Runs with several samples per image add ``num_samples``, ``psnr_hole_best``
    (mean over images of the best sample's hole-PSNR) and ``diversity`` (see :class:`ImageResult`); the other
    columns are then mean-of-N.
    """
    runs = list(runs)
    sampled = any(r.num_samples > 1 for run in runs for r in run.images)
    rows = []
    for run in runs:
        groups = [(name, [r for r in run.images if r.bucket == name]) for _, _, name in HOLE_BUCKETS]
        groups = [(name, members) for name, members in groups if members] + [("all", run.images)]
        for name, members in groups:
            good = [r for r in members if r.error is None]
            row: dict[str, Any] = {
                "model": run.model,
                "protocol": run.protocol,
                "bucket": name,
                "n": len(good),
                "failed": len(members) - len(good),
            }
            for column in _METRIC_COLUMNS:
                values = [getattr(r, column) for r in good if getattr(r, column) is not None]
                if values:
                    row[column] = float(np.mean(values))
                elif column != "lpips":
                    row[column] = math.nan
            if sampled:
                row["num_samples"] = max((r.num_samples for r in good), default=1)
                for column in ("psnr_hole_best", "diversity"):
                    values = [getattr(r, column) for r in good if getattr(r, column) is not None]
                    row[column] = float(np.mean(values)) if values else math.nan
            row["seconds_per_image"] = float(np.mean([r.seconds for r in good])) if good else math.nan
            if name == "all":
                row.update(run.set_metrics)
            rows.append(row)
    return rows


def results_to_markdown(rows: Sequence[dict[str, Any]], *, buckets: bool = True) -> str:
    """A Markdown table of :func:`summarize` rows (``buckets=False``: the ``all`` rows only)."""
    rows = [r for r in rows if buckets or r["bucket"] == "all"]
    extra = [c for c in ("lpips", "fid", "kid") if any(c in r for r in rows)]
    sampled = any("num_samples" in r for r in rows)
    header = ["model", "protocol", "hole", "n", "PSNR", "PSNR hole", "SSIM", "L1 hole"]
    if sampled:
        header += ["samples", "PSNR hole best-of-N", "diversity"]
    header += [{"lpips": "LPIPS", "fid": "FID", "kid": "KID"}[c] for c in extra] + ["s / image"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    for row in rows:
        cells = [
            f"`{row['model']}`",
            row["protocol"],
            row["bucket"],
            str(row["n"]) + (f" ({row['failed']} failed)" if row.get("failed") else ""),
            _fmt(row["psnr"], 2),
            _fmt(row["psnr_hole"], 2),
            _fmt(row["ssim"], 4),
            _fmt(row["l1_hole"], 4),
        ]
        if sampled:
            cells += [str(row.get("num_samples", 1)), _fmt(row.get("psnr_hole_best"), 2)]
            cells.append(_fmt(row.get("diversity"), 4))
        cells += [_fmt(row.get(c), 4 if c != "fid" else 2) for c in extra]
        cells.append(_fmt(row["seconds_per_image"], 3))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


# ------------------------------------------------------------------------------------------------- model cards


def _card_metrics(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric, label) pairs of a ``summarize`` row for a card. A row of several samples per image says so in
    every label (its metrics are means over the samples) and adds the best-of-N hole-PSNR and the diversity."""
    n = row.get("num_samples", 1)
    if n <= 1:
        return list(_CARD_METRICS)
    distance = "LPIPS" if "lpips" in row else "L1 in the hole"
    return [(metric, f"{label}, mean of {n} samples") for metric, label in _CARD_METRICS] + [
        ("psnr_hole_best", f"PSNR (hole), best of {n} samples"),
        ("diversity", f"diversity (mean pairwise {distance} of {n} samples)"),
    ]


def write_model_index(
    card_path: str | Path,
    rows: Sequence[dict[str, Any]],
    *,
    model_name: str,
    dataset_name: str,
    dataset_type: str,
) -> None:
    """Write the ``all`` rows into a model card's YAML ``model-index`` (``huggingface_hub.ModelCard``).

    Rows of several samples per image (``num_samples`` > 1) are labelled "mean of N samples" and add
    ``psnr_hole_best`` and ``diversity``. Existing results for the same dataset and protocol are replaced; others
    are kept. The card is rewritten atomically.

    Args:
        card_path: a Markdown model card (``model_cards/<name>.md``), created if missing.
        rows: :func:`summarize` rows of one model.
        model_name: the ``model-index`` name.
        dataset_name: a human-readable dataset name (``BSDS500 val``).
        dataset_type: a Hub dataset id or short type (``bsds500``).
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    card_path = Path(card_path)
    if card_path.exists():
        card = ModelCard.load(card_path)
    else:
        card = ModelCard.from_template(ModelCardData(model_name=model_name), template_str=f"# {model_name}\n")
    models = {r["model"] for r in rows}
    if len(models) != 1:
        raise ValueError(f"write_model_index takes the rows of one model, got {sorted(models)}")
    new = []
    for row in (r for r in rows if r["bucket"] == "all" and r["n"] > 0):
        for metric, label in _card_metrics(row):
            if metric in row and not math.isnan(row[metric]):
                new.append(
                    EvalResult(
                        task_type="image-inpainting",
                        task_name="Image Inpainting",
                        dataset_type=dataset_type,
                        dataset_name=dataset_name,
                        dataset_config=row["protocol"],
                        metric_type=metric,
                        metric_name=label,
                        metric_value=round(float(row[metric]), 4),
                    )
                )
    protocols = {r["protocol"] for r in rows}
    kept = [
        r
        for r in (card.data.eval_results or [])
        if not (r.dataset_type == dataset_type and r.dataset_config in protocols)
    ]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or model_name
    atomic_write_text(card_path, str(card))


# ------------------------------------------------------------------------------------------------- report


def _json_safe(value: Any) -> Any:
    """NaN / infinity are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def build_report(
    rows: Sequence[dict[str, Any]], runs: Sequence[EvalRun], skipped: dict[str, list[str]], settings: dict[str, Any]
) -> dict[str, Any]:
    """Everything an evaluation produced, JSON-ready (NaN / infinity written as ``null``): the settings that
    reproduce it, the library versions that drew the masks and computed the metrics, the rows, the skipped images
    and every image's numbers."""
    import cv2
    import PIL
    import skimage
    import torch

    from . import __version__

    report = {
        "inpaint_hub_version": __version__,
        "settings": {**settings, "psnr_cap_db": PSNR_CAP},
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "opencv": cv2.__version__,
            "pillow": PIL.__version__,
            "scikit-image": skimage.__version__,
        },
        "rows": list(rows),
        "skipped": skipped,
        "images": [asdict(r) for run in runs for r in run.images],
    }
    return _json_safe(report)
