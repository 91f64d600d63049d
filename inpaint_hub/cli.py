"""The ``inpaint-hub`` command.

inpaint-hub list [--checkpoints-dir DIR]             model types, and the checkpoints found on this machine
inpaint-hub run --model M [--model M2 ...] --images DIR_OR_FILE --masks DIR_OR_FILE --output DIR [--concat] ...
inpaint-hub eval --model M [--model M2 ...] --images DIR (--masks DIR | --protocol lama-thick-512) [--resize 512]
inpaint-hub convert lama --checkpoint big-lama/models/best.ckpt --config big-lama/config.yaml --output DIR
inpaint-hub push DIR ORG/NAME [--model-card model_cards/big-lama.md]

``run`` under ``accelerate launch --num_processes N -m inpaint_hub run ...`` splits the images between the processes;
each prints its own ``wrote`` / error lines, the main process prints the summary of all of them, and every process
exits with 1 when any image failed on any process.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from .batch import BatchEvent
    from .modeling_utils import AutoInpaintModel, InpaintModel

logger = logging.getLogger("inpaint_hub")

_MODEL_NOTES = {
    "lama": "LaMa (Suvorov et al., WACV 2022): Fast Fourier Convolutions; presets big-lama, lama-fourier",
    "opencv": "OpenCV classical inpainting, no weights: Telea (JGT 2004) and Navier-Stokes (Bertalmio et al., "
    "CVPR 2001); built in as cv2-telea, cv2-ns",
}


def _cmd_list(args: argparse.Namespace) -> int:
    from .checkpoints import find_local_checkpoints
    from .modeling_utils import list_model_types

    print("model types:")
    for model_type in list_model_types():
        print(f"  {model_type:10s} {_MODEL_NOTES.get(model_type, '')}".rstrip())
    checkpoints = find_local_checkpoints(args.checkpoints_dir, args.cache_dir)
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
    return 0 if report.ok else 1


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


def _cmd_convert(args: argparse.Namespace) -> int:
    if args.model_type == "lama":
        from .models.lama.convert_lama_original import main as convert_main

        return convert_main(args.rest)
    raise ValueError(f"no converter for {args.model_type!r}")


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

    from .evaluation import add_eval_subcommand

    add_eval_subcommand(sub)

    convert = sub.add_parser("convert", help="convert an original checkpoint (see the model's converter --help)")
    convert.add_argument("model_type", choices=["lama"])
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
