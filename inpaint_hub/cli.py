"""The ``inpaint-hub`` command.

inpaint-hub list [--checkpoints-dir DIR]             model types, and the checkpoints found on this machine
inpaint-hub run --model M [--model M2 ...] --images DIR_OR_FILE --masks DIR_OR_FILE --output DIR [--concat] ...
inpaint-hub eval --model M [--model M2 ...] --images DIR (--masks DIR | --protocol lama-thick-512) [--resize 512]
inpaint-hub convert lama --checkpoint big-lama/models/best.ckpt --config big-lama/config.yaml --output DIR
inpaint-hub convert pennet --checkpoint release_model/pennet_places2/gen_00050.pth --output DIR
inpaint-hub convert deepfill_v2 --checkpoint states_tf_places2.pth --output DIR
inpaint-hub push DIR ORG/NAME [--model-card model_cards/big-lama.md]

``run`` under ``accelerate launch --num_processes N -m inpaint_hub run ...`` splits the images between the processes;
each prints its own ``wrote`` / error lines, the main process prints the summary of all of them, and every process
exits with 1 when any image failed on any process.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .utils import atomic_write_text


if TYPE_CHECKING:
    from .batch import BatchEvent
    from .modeling_utils import AutoInpaintModel, InpaintModel

logger = logging.getLogger("inpaint_hub")


def _cmd_list(args: argparse.Namespace) -> int:
    from .checkpoints import find_local_checkpoints
    from .modeling_utils import get_config_class, list_model_types

    checkpoints = find_local_checkpoints(args.checkpoints_dir, args.cache_dir)  # may fail: before any output
    print("model types:")
    for model_type in list_model_types():
        print(f"  {model_type:10s} {get_config_class(model_type).summary}".rstrip())
    print()
    print("checkpoints (give NAME to --model; Hub-cache ones work offline with --local-files-only):")
    rows = [("NAME", "TYPE", "SOURCE", "PATH")] + [
        (c.name + (f" (--revision {c.revision})" if c.revision else ""), c.model_type, c.source, str(c.path or "-"))
        for c in checkpoints
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .batch import BatchOptions, distributed_state, model_folder_names, pair_images_and_masks, run_batch
    from .modeling_utils import AutoInpaintModel
    from .pipeline import InpaintPipeline

    # Everything that can be checked without the models is checked first: a typo in an option or a path should not
    # cost model loads.
    options = BatchOptions(
        hd_strategy=args.hd_strategy,
        resize_limit=args.resize_limit,
        crop_trigger_size=args.crop_trigger_size,
        crop_margin=args.crop_margin,
        concat=args.concat,
        overwrite=args.overwrite,
        output_format=args.format,
        jpeg_quality=args.jpeg_quality,
        num_samples=args.num_samples,
        seed=args.seed,
        mask_dilate=args.dilate,
        mask_feather=args.feather,
    )
    output = _check_output_dir(args.output)
    device = _check_device(args.device)
    model_folder_names(args.model)  # refuses a model given twice
    items = pair_images_and_masks(args.images, args.masks, exclude=output)

    state = distributed_state()
    prefix = ""
    if state is not None and state.num_processes > 1:
        prefix = f"[process {state.process_index}/{state.num_processes}] "
        if device is None:
            device = str(state.device)
    pipelines = {
        name: InpaintPipeline(_load_model(AutoInpaintModel, name, args.revision, args.local_files_only, device))
        for name in args.model
    }
    for name, pipe in pipelines.items():
        model = pipe.model
        logger.info(
            "%sloaded %s: %s (%s) on %s", prefix, name, type(model).__name__, model.config.model_type, pipe.device
        )

    start = time.perf_counter()
    report = run_batch(pipelines, items, output, options, state=state, on_event=lambda e: _print_event(e, prefix))
    elapsed = time.perf_counter() - start
    if state is None or state.is_main_process:
        processes = f", {report.num_processes} processes" if report.num_processes > 1 else ""
        print(f"{report.summary()} ({len(items)} image(s), {len(pipelines)} model(s){processes}, {elapsed:.1f} s)")
    if state is not None and state.num_processes > 1:
        # Tear the process group down explicitly: left to interpreter exit, gloo's threads sometimes abort a rank
        # ("terminate called without an active exception") after all the work is done, failing the launch.
        state.wait_for_everyone()
        state.destroy_process_group()
    return 0 if report.ok else 1


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import (
        build_report,
        evaluate,
        load_eval_samples,
        results_to_markdown,
        summarize,
        write_model_index,
    )
    from .metrics import LPIPS, FIDKIDAccumulator, InceptionFeatures
    from .modeling_utils import AutoInpaintModel
    from .pipeline import SEED_LIMIT, InpaintPipeline

    # Everything that can fail without the models fails first: options, paths, metric weight files, the samples.
    if len(set(args.model)) != len(args.model):
        raise ValueError("a --model is given twice")
    if not 0 <= args.seed < SEED_LIMIT:
        raise ValueError(f"--seed must be in [0, 2**63), got {args.seed}")
    if args.num_samples < 1 or args.seed + args.num_samples > SEED_LIMIT:
        raise ValueError(
            f"--num-samples must be at least 1 (and --seed + --num-samples <= 2**63), got {args.num_samples}"
        )
    hd_options = _hd_options(args)
    for path, flag in ((args.out, "--out"), (args.markdown, "--markdown")):
        if path and not Path(path).resolve().parent.is_dir():
            raise FileNotFoundError(f"{flag}: folder {Path(path).parent} does not exist")
    if args.lpips_lin_weights and not args.lpips_weights:
        raise ValueError("--lpips-lin-weights needs --lpips-weights (the AlexNet backbone file)")
    device = _check_device(args.device)
    lpips = LPIPS.from_files(args.lpips_weights, args.lpips_lin_weights) if args.lpips_weights else None
    fid = None
    if args.fid_weights:
        features = InceptionFeatures.from_file(args.fid_weights)

        def fid() -> FIDKIDAccumulator:
            return FIDKIDAccumulator(features)

    protocols = args.protocol or [None]
    samples, skipped = {}, {}
    for protocol in protocols:
        label = protocol or f"masks:{Path(args.masks).name}"
        samples[label], skipped[label] = load_eval_samples(
            args.images, protocol=protocol, masks=args.masks, seed=args.seed, resize=args.resize, limit=args.limit
        )
        if not samples[label]:
            raise ValueError(f"no usable image/mask pairs for {label}: " + "; ".join(skipped[label][:5]))
    pipelines = {
        name: InpaintPipeline(_load_model(AutoInpaintModel, name, args.revision, args.local_files_only, device))
        for name in args.model
    }

    runs = [
        evaluate(
            pipeline,
            samples[label],
            model=name,
            protocol=label,
            hd_strategy=args.hd_strategy,
            hd_options=hd_options,
            seed=args.seed,
            num_samples=args.num_samples,
            lpips=lpips,
            fid=fid,
            progress=not args.no_progress,
        )
        for label in samples
        for name, pipeline in pipelines.items()
    ]
    rows = summarize(runs)
    table = results_to_markdown(rows)
    print(table, end="")
    for label, problems in skipped.items():
        if problems:
            more = " ..." if len(problems) > 3 else ""
            print(f"{label}: skipped {len(problems)} image(s): " + "; ".join(problems[:3]) + more, file=sys.stderr)

    if args.out:
        settings = {
            "models": args.model,
            "images": str(args.images),
            "protocols": args.protocol,
            "masks": args.masks,
            "seed": args.seed,
            "num_samples": args.num_samples,
            "resize": args.resize,
            "limit": args.limit,
            "hd_strategy": args.hd_strategy,
            **hd_options,
        }
        report = build_report(rows, runs, skipped, settings)
        atomic_write_text(Path(args.out), json.dumps(report, indent=2, allow_nan=False) + "\n")
        print(f"wrote {args.out}")
    if args.markdown:
        atomic_write_text(Path(args.markdown), table)
        print(f"wrote {args.markdown}")
    if args.model_card:
        folder = Path(args.images).resolve().name
        # The first --model is the card's model; any others ran as the comparison in the printed table.
        write_model_index(
            args.model_card,
            [row for row in rows if row["model"] == args.model[0]],
            model_name=Path(args.model[0]).name,
            dataset_name=args.dataset_name or folder,
            dataset_type=args.dataset_type or folder,
        )
        print(f"wrote the results of {args.model[0]} into {args.model_card}")
    failed = sum(result.error is not None for run in runs for result in run.images)
    if failed:
        print(f"{failed} inference(s) failed: see the errors above", file=sys.stderr)
    return 1 if failed else 0


def _add_eval_parser(sub: argparse._SubParsersAction) -> None:
    from .masks import list_mask_protocols

    evaluate = sub.add_parser(
        "eval",
        help="evaluate models on images x masks, per hole-area bucket",
        description=(
            "Evaluate one or more models (folders, Hub repo ids, or the built-in cv2-telea / cv2-ns baselines) on a "
            "folder of images with fixed masks: a protocol drawn from a seed, or a folder of masks. Prints one row "
            "per model x protocol x hole bucket."
        ),
    )
    evaluate.add_argument("--model", action="append", required=True, help="model to evaluate (repeatable)")
    evaluate.add_argument("--images", required=True, help="folder of ground-truth images (recursive) or one image")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--masks", help="folder of masks matched by name (non-zero = hole), or one mask for all")
    source.add_argument(
        "--protocol",
        action="append",
        choices=list_mask_protocols(),
        metavar="NAME",
        help=f"mask protocol (repeatable): {', '.join(list_mask_protocols())}",
    )
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the protocol masks and stochastic models")
    evaluate.add_argument("--num-samples", type=int, default=1,
                          help="results per image for models that sample (PiiGAN; seeds seed .. seed+N-1): the "
                          "table then gives mean-of-N metrics, best-of-N hole-PSNR and the samples' "
                          "diversity")  # fmt: skip
    evaluate.add_argument("--resize", type=int, default=None, help="resize short side to N and centre-crop N x N")
    evaluate.add_argument("--limit", type=int, default=None, help="only the first N images (sorted by name)")
    evaluate.add_argument("--hd-strategy", choices=["original", "resize", "crop"], default="original")
    _add_hd_options(evaluate)
    evaluate.add_argument("--out", default=None, help="write every row and per-image result to this JSON file")
    evaluate.add_argument("--markdown", default=None, help="write the table to this Markdown file")
    evaluate.add_argument("--lpips-weights", default=None, help="AlexNet file for LPIPS (alexnet-owt-7be5be79.pth)")
    evaluate.add_argument("--lpips-lin-weights", default=None, help="LPIPS v0.1 linear layers (lpips alex.pth)")
    evaluate.add_argument("--fid-weights", default=None, help="Inception TorchScript (inception-2015-12-05.pt)")
    evaluate.add_argument(
        "--model-card",
        default=None,
        help="write the first --model's results into this card's model-index (the others are comparisons)",
    )
    evaluate.add_argument("--dataset-name", default=None, help="dataset name in the card (default: folder name)")
    evaluate.add_argument("--dataset-type", default=None, help="dataset id in the card (default: folder name)")
    evaluate.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ...")
    evaluate.add_argument("--revision", default=None, help="Hub branch, tag or commit")
    evaluate.add_argument("--local-files-only", action="store_true", help="use the Hub cache only, never the network")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bars")
    evaluate.set_defaults(func=_cmd_eval)


def _print_event(event: BatchEvent, prefix: str) -> None:
    from tqdm.auto import tqdm

    stream = sys.stderr if event.kind == "failed" else sys.stdout
    with tqdm.external_write_mode(file=stream):  # (tqdm.write, but in one write: lines of processes never mix)
        stream.write(f"{prefix}{event.message}\n")
        stream.flush()


def _check_output_dir(output: str) -> Path:
    from .batch import IMAGE_EXTENSIONS

    path = Path(output)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--output {path} is a file: give the folder to write the results into")
    if not path.exists() and path.suffix.lower() in IMAGE_EXTENSIONS:
        raise ValueError(
            f"--output {path} looks like a file name: --output is the folder the results are written into, "
            f"named after the input images (e.g. {path.parent / 'photo.png'})"
        )
    return path


def _check_device(device: str | None) -> str | None:
    if device is None:
        return None
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown --device {device!r}; use cpu, cuda, cuda:1, mps ...") from err
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available in this PyTorch install")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available on this machine")
    return device


def _load_model(
    auto: type[AutoInpaintModel], name: str, revision: str | None, local_files_only: bool, device: str | None
) -> InpaintModel:
    """``AutoInpaintModel.from_pretrained`` with errors that say which model could not be loaded."""
    if not Path(name).is_dir() and (name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name):
        raise FileNotFoundError(f"model folder {name} does not exist")
    try:
        return auto.from_pretrained(name, revision=revision, local_files_only=local_files_only, device=device)
    except (ValueError, OSError) as err:
        if str(name) in str(err):
            raise
        where = "folder" if Path(name).is_dir() else "Hub repository"
        message = f"cannot load model {name!r} ({where}): {err}"
        raise (OSError(message) if isinstance(err, OSError) else ValueError(message)) from err


# model type -> the module whose ``main(argv)`` converts that model's original release
CONVERTERS = {
    "deepfill_v2": "inpaint_hub.models.deepfill_v2.convert_deepfill_v2_original",
    "lama": "inpaint_hub.models.lama.convert_lama_original",
    "pennet": "inpaint_hub.models.pennet.convert_pennet_original",
}


def _add_hd_options(parser: argparse.ArgumentParser) -> None:
    from .pipeline import DEFAULT_CROP_MARGIN, DEFAULT_CROP_TRIGGER_SIZE, DEFAULT_RESIZE_LIMIT

    parser.add_argument(
        "--resize-limit",
        type=int,
        default=DEFAULT_RESIZE_LIMIT,
        help=f"--hd-strategy resize: inpaint at this longest side (default {DEFAULT_RESIZE_LIMIT})",
    )
    parser.add_argument(
        "--crop-trigger-size",
        type=int,
        default=DEFAULT_CROP_TRIGGER_SIZE,
        help=f"--hd-strategy crop: crop above this longest side (default {DEFAULT_CROP_TRIGGER_SIZE})",
    )
    parser.add_argument(
        "--crop-margin",
        type=int,
        default=DEFAULT_CROP_MARGIN,
        help=f"--hd-strategy crop: context around each hole (default {DEFAULT_CROP_MARGIN})",
    )


def _hd_options(args: argparse.Namespace) -> dict[str, int]:
    """The strategy settings, checked (so a bad value fails before any model is loaded)."""
    options = {
        "resize_limit": args.resize_limit,
        "crop_trigger_size": args.crop_trigger_size,
        "crop_margin": args.crop_margin,
    }
    for name, value in options.items():
        if value < (0 if name == "crop_margin" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be >= {0 if name == 'crop_margin' else 1}, got {value}")
    return options


def _cmd_convert(args: argparse.Namespace) -> int:
    import importlib

    if args.model_type not in CONVERTERS:
        raise ValueError(f"no converter for {args.model_type!r}; known: {', '.join(CONVERTERS)}")
    return importlib.import_module(CONVERTERS[args.model_type]).main(args.rest)


def _cmd_push(args: argparse.Namespace) -> int:
    from .modeling_utils import AutoInpaintModel

    model = AutoInpaintModel.from_pretrained(args.folder)
    card = args.model_card if args.model_card else (Path(args.folder) / "README.md")
    url = model.push_to_hub(args.repo_id, model_card=card if Path(card).is_file() else None, private=args.private)
    print(f"pushed {args.folder} to {url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inpaint-hub", description="Image inpainting models under one API.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO level)")
    sub = parser.add_subparsers(dest="command", required=True)

    listing = sub.add_parser("list", help="list the model types and the checkpoints found locally")
    listing.add_argument(
        "--checkpoints-dir", default=None, help="folder of bundled checkpoints (default: ./checkpoints)"
    )
    listing.add_argument("--cache-dir", default=None, help="Hugging Face Hub cache (default: HF_HUB_CACHE / HF_HOME)")
    listing.set_defaults(func=_cmd_list)

    run = sub.add_parser(
        "run",
        help="inpaint a folder of images (or one image) with one or several models",
        description="Inpaint every image of --images with the mask of the same name in --masks (or <name>_mask; "
        "or one mask file for all) and write the results to --output: <name>.png with one model, "
        "<model>/<name>.png with several, <name>_<k>.png with --num-samples. Existing results are skipped unless "
        "--overwrite. Exit code 1 when any image failed.",
    )
    run.add_argument(
        "--model", action="append", required=True, help="a saved folder, a Hub repo id or cv2-telea / cv2-ns (repeat)"
    )
    run.add_argument("--images", "--image", required=True, help="a folder of images (recursive) or one image")
    run.add_argument(
        "--masks", "--mask", required=True, help="a folder of masks matched by name, or one mask for every image"
    )
    run.add_argument("--output", required=True, help="the folder to write into (created)")
    run.add_argument("--hd-strategy", choices=["original", "resize", "crop"], default="original")
    _add_hd_options(run)
    run.add_argument("--concat", action="store_true", help="one file per image: image | mask | every result")
    run.add_argument("--overwrite", action="store_true", help="replace existing results (default: skip them)")
    run.add_argument("--format", choices=["png", "jpg"], default="png", help="png (lossless, default) or jpg")
    run.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality 1..100 (default 95)")
    run.add_argument("--dilate", type=int, default=0, help="grow the mask by this many pixels")
    run.add_argument("--feather", type=float, default=0, help="soften the mask edge over this many pixels")
    run.add_argument("--num-samples", type=int, default=1, help="several results (stochastic models)")
    run.add_argument("--seed", type=int, default=None, help="base seed (the same for every image)")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cpu; under accelerate launch: "
                     "each process's device)")  # fmt: skip
    run.add_argument("--revision", default=None, help="Hub branch, tag or commit")
    run.add_argument("--local-files-only", action="store_true", help="use the Hub cache only, never the network")
    run.set_defaults(func=_cmd_run)

    _add_eval_parser(sub)

    convert = sub.add_parser("convert", help="convert an original checkpoint (see the model's converter --help)")
    convert.add_argument("model_type", choices=sorted(CONVERTERS))
    convert.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the converter")
    convert.set_defaults(func=_cmd_convert)

    push = sub.add_parser("push", help="upload a saved model folder to the Hub")
    push.add_argument("folder")
    push.add_argument("repo_id")
    push.add_argument("--model-card", default=None, help="Markdown card (default: the folder's README.md)")
    push.add_argument("--private", action="store_true")
    push.set_defaults(func=_cmd_push)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"inpaint-hub {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
