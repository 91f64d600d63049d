"""The ``inpaint-hub`` command.

inpaint-hub list                                   the model types this install knows
inpaint-hub run --model DIR_OR_REPO --image photo.jpg --mask mask.png --output out.png
inpaint-hub convert lama --checkpoint big-lama/models/best.ckpt --config big-lama/config.yaml --output DIR
inpaint-hub push DIR ORG/NAME [--model-card model_cards/big-lama.md]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from PIL import Image

    from .modeling_utils import AutoInpaintModel, InpaintModel

logger = logging.getLogger("inpaint_hub")

_MODEL_NOTES = {
    "lama": "LaMa (Suvorov et al., WACV 2022): Fast Fourier Convolutions; presets big-lama, lama-fourier",
}


def _cmd_list(args: argparse.Namespace) -> int:
    from .modeling_utils import list_model_types

    for model_type in list_model_types():
        print(f"{model_type:12s} {_MODEL_NOTES.get(model_type, '')}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .modeling_utils import AutoInpaintModel
    from .pipeline import InpaintPipeline
    from .utils import atomic_write

    # Everything that can be checked without the model is checked first: a typo in --output or --device should not
    # cost a model load and a forward pass.
    output = Path(args.output)
    output_format = _format_for(output)
    device = _check_device(args.device)
    model = _load_model(AutoInpaintModel, args.model, args.revision, args.local_files_only, device)
    pipe = InpaintPipeline(model)
    start = time.perf_counter()
    result = pipe(
        image=args.image,
        mask_image=args.mask,
        hd_strategy=args.hd_strategy,
        mask_dilate=args.dilate,
        mask_feather=args.feather,
        num_samples=args.num_samples,
        seed=args.seed,
    )
    elapsed = time.perf_counter() - start
    paths = [output] if len(result.images) == 1 else [
        output.with_name(f"{output.stem}_{i}{output.suffix}") for i in range(len(result.images))
    ]  # fmt: skip
    for image, path in zip(result.images, paths):
        image = _fit_format(image, output_format)
        atomic_write(path, lambda tmp, image=image: image.save(tmp, format=output_format))
        print(f"wrote {path}")
    print(f"{type(model).__name__} ({model.config.model_type}) took {elapsed:.2f} s")
    return 0


def _format_for(path: Path) -> str:
    from PIL import Image

    Image.init()
    fmt = Image.EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the image format from {path.name!r}; use .png, .jpg or .webp")
    return fmt


def _fit_format(image: Image.Image, fmt: str) -> Image.Image:
    """JPEG has no alpha channel: drop it (with a warning) instead of failing after the model has run."""
    if fmt == "JPEG" and image.mode in ("RGBA", "LA"):
        logger.warning("JPEG cannot store transparency: writing the result without its alpha channel")
        return image.convert(image.mode[:-1])
    return image


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

    sub.add_parser("list", help="list the model types").set_defaults(func=_cmd_list)

    run = sub.add_parser("run", help="inpaint one image")
    run.add_argument("--model", required=True, help="a folder written by save_pretrained, or a Hub repo id")
    run.add_argument("--image", required=True, help="the photo")
    run.add_argument("--mask", required=True, help="the mask: white (any non-zero) = fill")
    run.add_argument("--output", required=True, help="where to write the result (.png, .jpg, .webp)")
    run.add_argument("--hd-strategy", choices=["original", "resize", "crop"], default="original")
    run.add_argument("--dilate", type=int, default=0, help="grow the mask by this many pixels")
    run.add_argument("--feather", type=float, default=0, help="soften the mask edge over this many pixels")
    run.add_argument("--num-samples", type=int, default=1, help="several results (stochastic models)")
    run.add_argument("--seed", type=int, default=None)
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ...")
    run.add_argument("--revision", default=None, help="Hub branch, tag or commit")
    run.add_argument("--local-files-only", action="store_true", help="use the Hub cache only, never the network")
    run.set_defaults(func=_cmd_run)

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
