"""Evaluate inpainting models on fixed, reproducible masks, reported per hole-area bucket.

The protocol (what ``inpaint-hub eval`` does, and what the README's tables were made with):

1. Every image of ``--images`` (recursive, sorted) is read as RGB (EXIF orientation applied). With ``resize=N`` it is
   resized with Pillow's bicubic filter so its short side is ``N`` and centre-cropped to ``N x N`` (LaMa's evaluation
   sets are made the same way, except that LaMa crops around the mask; a centre crop keeps the image independent
   of the mask).
2. Its mask comes either from ``--masks`` (matched by file stem; resized nearest if needed; non-zero = hole) or from
   a protocol of :mod:`inpaint_hub.masks`, drawn with ``numpy.random.default_rng([seed, crc32(relative path)])``:
   each image's mask depends only on the seed and the image's name, not on the order, the number of images or
   the machine, so a table can be reproduced from the command line that made it.
3. Each model inpaints through :class:`~inpaint_hub.pipeline.InpaintPipeline` (``hd_strategy`` as given, the
   same seed for stochastic models) and the result is compared with the original on uint8 pixels
   (:mod:`inpaint_hub.metrics`): PSNR of the whole image and of the hole, SSIM of the whole image, L1 in the
   hole; LPIPS and FID/KID when their backbone files are given.
4. Rows are grouped by model x protocol x hole bucket (:data:`inpaint_hub.masks.HOLE_BUCKETS`), with an ``all`` row
   per model x protocol. Per-image PSNR is capped at :data:`PSNR_CAP` dB before averaging (a perfect hole would
   otherwise make the mean infinite).
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .batch import IMAGE_EXTENSIONS, find_images, pair_images_and_masks
from .masks import HOLE_BUCKETS, get_mask_protocol, hole_bucket, hole_ratio, make_mask
from .utils import atomic_write_text


if TYPE_CHECKING:
    import argparse

    from .pipeline import InpaintPipeline

logger = logging.getLogger(__name__)

__all__ = [
    "PSNR_CAP",
    "EvalSample",
    "ImageResult",
    "evaluate",
    "load_eval_samples",
    "mask_seed",
    "prepare_image",
    "results_to_markdown",
    "summarize",
    "write_model_index",
]

PSNR_CAP = 100.0
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


def prepare_image(image: Image.Image, resize: int | None) -> Image.Image:
    """RGB, and with ``resize``: bicubic resize so the short side is ``resize``, then centre crop ``resize^2``."""
    image = image.convert("RGB")
    if resize is None:
        return image
    width, height = image.size
    scale = resize / min(width, height)
    new_size = (max(resize, round(width * scale)), max(resize, round(height * scale)))
    if new_size != image.size:
        image = image.resize(new_size, Image.Resampling.BICUBIC)
    left, top = (new_size[0] - resize) // 2, (new_size[1] - resize) // 2
    return image.crop((left, top, left + resize, top + resize))


def _prepare_mask(
    mask: Image.Image, original_size: tuple[int, int], image: Image.Image, resize: int | None
) -> np.ndarray:
    """A user mask brought to the prepared image: the same resize/crop when it had the original's size."""
    mask = mask.convert("L")
    if resize is not None and mask.size == original_size and mask.size != image.size:
        width, height = mask.size
        scale = resize / min(width, height)
        new_size = (max(resize, round(width * scale)), max(resize, round(height * scale)))
        mask = mask.resize(new_size, Image.Resampling.NEAREST)
        left, top = (new_size[0] - resize) // 2, (new_size[1] - resize) // 2
        mask = mask.crop((left, top, left + resize, top + resize))
    if mask.size != image.size:
        logger.info("mask of %dx%d resized (nearest) to the image's %dx%d", *mask.size, *image.size)
        mask = mask.resize(image.size, Image.Resampling.NEAREST)
    return (np.asarray(mask) > 0).astype(np.uint8)


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
            with Image.open(path) as opened:
                original = ImageOps.exif_transpose(opened)
                original.load()
            image = prepare_image(original, resize)
            if protocol is not None:
                rng = np.random.default_rng(mask_seed(seed, name))
                mask = make_mask(protocol, image.height, image.width, rng)
            else:
                if mask_file is None:
                    raise ValueError(f"no mask for it in {masks} (looked for the same name and <name>_mask)")
                with Image.open(mask_file) as opened_mask:
                    mask = _prepare_mask(opened_mask, original.size, image, resize)
                if not mask.any():
                    raise ValueError(f"its mask {mask_file} is empty")
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError, SyntaxError) as err:
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
    seed: int = 0,
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
        seed: the pipeline seed (matters for stochastic models only); the same for every image.
        lpips: an :class:`inpaint_hub.metrics.LPIPS` to add LPIPS per image.
        fid: a :class:`inpaint_hub.metrics.FIDKIDAccumulator` factory: called with no argument, it returns a fresh
            accumulator; real images are added from ``samples`` and fake ones from the results.
        progress: show a tqdm bar.

    Returns:
        :class:`EvalRun`. An image on which the model fails is recorded with ``error`` set and left out of the
        averages; the run goes on.
    """
    from tqdm.auto import tqdm

    from .metrics import compute_image_metrics, lpips_distance

    run = EvalRun(model=model, protocol=protocol)
    accumulator = fid() if fid is not None else None
    for sample in tqdm(samples, desc=f"{model} | {protocol}", unit="img", disable=not progress, leave=False):
        ratio = sample.hole_ratio
        try:
            start = time.perf_counter()
            result = pipeline(
                Image.fromarray(sample.image), Image.fromarray(sample.mask * 255), hd_strategy=hd_strategy, seed=seed
            )
            seconds = time.perf_counter() - start
            output = np.asarray(result.image.convert("RGB"), dtype=np.uint8)
            values = compute_image_metrics(output, sample.image, sample.mask.astype(bool))
            lpips_value = lpips_distance(lpips, output, sample.image) if lpips is not None else None
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
            )
        )
        if accumulator is not None:
            accumulator.update_real([sample.image])
            accumulator.update_fake([output])
    if accumulator is not None:
        good = [r for r in run.images if r.error is None]
        if len(good) >= 2:
            run.set_metrics = {k: float(v) for k, v in accumulator.compute().items() if k != "n"}
        else:
            logger.warning("FID/KID need at least 2 images; %s on %s has %d", model, protocol, len(good))
    return run


def summarize(runs: Iterable[EvalRun]) -> list[dict[str, Any]]:
    """Table rows: one per model x protocol x hole bucket (buckets that have images), then an ``all`` row.

    Each row has ``model, protocol, bucket, n, failed, psnr, psnr_hole, ssim, l1_hole, seconds_per_image`` (means
    over the bucket's successful images), ``lpips`` when measured, and on ``all`` rows any set-level metrics
    (``fid``, ``kid``, ``kid_std``).
    """
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
            row["seconds_per_image"] = float(np.mean([r.seconds for r in good])) if good else math.nan
            if name == "all":
                row.update(run.set_metrics)
            rows.append(row)
    return rows


def results_to_markdown(rows: Sequence[dict[str, Any]], *, buckets: bool = True) -> str:
    """A Markdown table of :func:`summarize` rows (``buckets=False``: the ``all`` rows only)."""
    rows = [r for r in rows if buckets or r["bucket"] == "all"]
    extra = [c for c in ("lpips", "fid", "kid") if any(c in r for r in rows)]
    header = ["model", "protocol", "hole", "n", "PSNR", "PSNR hole", "SSIM", "L1 hole"]
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
        cells += [_fmt(row.get(c), 4 if c != "fid" else 2) for c in extra]
        cells.append(_fmt(row["seconds_per_image"], 3))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


# ------------------------------------------------------------------------------------------------- model cards


def write_model_index(
    card_path: str | Path,
    rows: Sequence[dict[str, Any]],
    *,
    model_name: str,
    dataset_name: str,
    dataset_type: str,
) -> None:
    """Write the ``all`` rows into a model card's YAML ``model-index`` (``huggingface_hub.ModelCard``).

    Existing results for the same dataset and protocol are replaced; others are kept. The card is rewritten
    atomically.

    Args:
        card_path: a Markdown model card (``model_cards/<name>.md``), created if missing.
        rows: :func:`summarize` rows of one model.
        model_name: the ``model-index`` name.
        dataset_name: a human-readable dataset name (``BSDS500 val``).
        dataset_type: a Hub dataset id or short type (``bsds500``).
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    card_path = Path(card_path)
    card = ModelCard.load(card_path) if card_path.exists() else ModelCard(f"---\n---\n\n# {model_name}\n")
    if card.data is None:  # pragma: no cover - ModelCard always parses some data
        card.data = ModelCardData()
    models = {r["model"] for r in rows}
    if len(models) != 1:
        raise ValueError(f"write_model_index takes the rows of one model, got {sorted(models)}")
    new = []
    for row in (r for r in rows if r["bucket"] == "all" and r["n"] > 0):
        for metric, label in _CARD_METRICS:
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


# ------------------------------------------------------------------------------------------------- CLI


def add_eval_subcommand(subparsers: Any) -> None:
    """Add ``inpaint-hub eval`` to the ``inpaint-hub`` parser's subparsers."""
    from .masks import list_mask_protocols

    parser = subparsers.add_parser(
        "eval",
        help="evaluate models on images x masks, per hole-area bucket",
        description=(
            "Evaluate one or more models (folders, Hub repo ids, or the built-in cv2-telea / cv2-ns baselines) on a "
            "folder of images with fixed masks: a protocol drawn from a seed, or a folder of masks. Prints one row "
            "per model x protocol x hole bucket."
        ),
    )
    parser.add_argument("--model", action="append", required=True, help="model to evaluate (repeatable)")
    parser.add_argument("--images", required=True, help="folder of ground-truth images (recursive) or one image")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--masks", help="folder of masks matched by file stem (non-zero = hole), or one mask")
    source.add_argument(
        "--protocol",
        action="append",
        choices=list_mask_protocols(),
        metavar="NAME",
        help=f"mask protocol (repeatable): {', '.join(list_mask_protocols())}",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the protocol masks and stochastic models")
    parser.add_argument("--resize", type=int, default=None, help="resize short side to N and centre-crop N x N")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--hd-strategy", choices=["original", "resize", "crop"], default="original")
    parser.add_argument("--out", default=None, help="write every row and per-image result to this JSON file")
    parser.add_argument("--markdown", default=None, help="write the table to this Markdown file")
    parser.add_argument("--lpips-weights", default=None, help="AlexNet file for LPIPS (alexnet-owt-7be5be79.pth)")
    parser.add_argument("--lpips-lin-weights", default=None, help="LPIPS v0.1 linear layers (lpips alex.pth)")
    parser.add_argument(
        "--fid-weights", default=None, help="Inception TorchScript for FID/KID (inception-2015-12-05.pt)"
    )
    parser.add_argument("--model-card", default=None, help="write the results into this card's model-index")
    parser.add_argument("--dataset-name", default=None, help="dataset name for the model card (default: folder name)")
    parser.add_argument("--dataset-type", default=None, help="dataset id for the model card (default: folder name)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--local-files-only", action="store_true", help="use the Hub cache only, never the network")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """``inpaint-hub eval``: load everything that can fail first, then evaluate and print the table."""
    from .metrics import LPIPS, FIDKIDAccumulator, InceptionFeatures
    from .pipeline import InpaintPipeline

    if args.model_card and len(args.model) != 1:
        raise ValueError("--model-card takes the results of exactly one --model")
    for path, flag in ((args.out, "--out"), (args.markdown, "--markdown")):
        if path and not Path(path).resolve().parent.is_dir():
            raise FileNotFoundError(f"{flag}: folder {Path(path).parent} does not exist")
    lpips = LPIPS.from_files(args.lpips_weights, args.lpips_lin_weights) if args.lpips_weights else None
    if args.lpips_lin_weights and not args.lpips_weights:
        raise ValueError("--lpips-lin-weights needs --lpips-weights (the AlexNet backbone file)")
    fid = None
    if args.fid_weights:
        features = InceptionFeatures.from_file(args.fid_weights)

        def fid() -> FIDKIDAccumulator:
            return FIDKIDAccumulator(features)

    pipelines = {}
    for name in args.model:
        try:
            pipelines[name] = InpaintPipeline.from_pretrained(
                name, device=args.device, local_files_only=args.local_files_only
            )
        except (OSError, ValueError) as err:
            raise type(err)(f"cannot load model {name!r}: {err}") from err

    protocols = args.protocol or [None]
    runs, problems = [], {}
    for protocol in protocols:
        samples, skipped = load_eval_samples(
            args.images, protocol=protocol, masks=args.masks, seed=args.seed, resize=args.resize, limit=args.limit
        )
        label = protocol or f"masks:{Path(args.masks).name}"
        problems[label] = skipped
        if not samples:
            raise ValueError(f"no usable image/mask pairs for {label}: " + "; ".join(skipped[:5]))
        for name, pipeline in pipelines.items():
            runs.append(
                evaluate(
                    pipeline,
                    samples,
                    model=name,
                    protocol=label,
                    hd_strategy=args.hd_strategy,
                    seed=args.seed,
                    lpips=lpips,
                    fid=fid,
                    progress=not args.no_progress,
                )
            )
    rows = summarize(runs)
    table = results_to_markdown(rows)
    print(table, end="")
    for label, skipped in problems.items():
        if skipped:
            print(
                f"{label}: skipped {len(skipped)} image(s): "
                + "; ".join(skipped[:3])
                + (" ..." if len(skipped) > 3 else "")
            )

    if args.out:
        atomic_write_text(
            Path(args.out), json.dumps(_json_safe(_report(args, rows, runs, problems)), indent=2, allow_nan=False)
        )
        print(f"wrote {args.out}")
    if args.markdown:
        atomic_write_text(Path(args.markdown), table)
        print(f"wrote {args.markdown}")
    if args.model_card:
        folder = Path(args.images).name
        write_model_index(
            args.model_card,
            rows,
            model_name=Path(args.model[0]).name,
            dataset_name=args.dataset_name or folder,
            dataset_type=args.dataset_type or folder,
        )
        print(f"wrote the results into {args.model_card}")
    failed = sum(r.error is not None for run in runs for r in run.images)
    return 1 if failed else 0


def _json_safe(value: Any) -> Any:
    """NaN / infinity are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _report(args: argparse.Namespace, rows: list, runs: list, problems: dict) -> dict[str, Any]:
    import cv2
    import PIL
    import skimage
    import torch

    from . import __version__

    return {
        "inpaint_hub_version": __version__,
        "settings": {
            "models": args.model,
            "images": str(args.images),
            "protocols": args.protocol,
            "masks": args.masks,
            "seed": args.seed,
            "resize": args.resize,
            "limit": args.limit,
            "hd_strategy": args.hd_strategy,
            "psnr_cap_db": PSNR_CAP,
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "opencv": cv2.__version__,
            "pillow": PIL.__version__,
            "scikit-image": skimage.__version__,
        },
        "rows": rows,
        "skipped": problems,
        "images": [asdict(r) for run in runs for r in run.images],
    }
