"""What every training script under ``train/`` shares: YAML-backed arguments, checkpoints that resume exactly,
validation, and gradient clipping that is safe with several optimisers.

The scripts (``train/lama.py``, ``train/pennet.py``, ...) stay single files that read top to bottom, as the
Accelerate examples do; only the plumbing that must behave identically in all of them lives here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from accelerate.logging import get_logger

from .data import InpaintDataset, save_image_grid
from .metrics import compute_image_metrics
from .models.opencv import OpenCVInpaintConfig, OpenCVInpaintModel
from .utils import atomic_write_text


logger = get_logger("inpaint_hub.training")


# ------------------------------------------------------------------------------------------------- arguments


def add_mask_size_argument(group: argparse._ArgumentGroup) -> None:
    """``--mask-size N``: draw the training and validation masks at N px, then max-pool them to ``--resolution``.

    Protocols such as ``lama-train`` size their strokes and boxes in pixels, so their hole share depends on the size
    they are drawn at (``lama-train``: 61 % of a 64 px crop, 45 % at 192 px, 32 % at 256 px). Drawing at the size the
    protocol was made for and pooling as the pipeline does keeps the share a model sees in training.
    """
    group.add_argument("--mask-size", type=int, default=None,
                       help="draw the training and validation masks at this size, then max-pool them to --resolution "
                       "(keeps a protocol's hole share at another size; default: drawn at --resolution)")  # fmt: skip


def parse_args_with_config(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; a ``--config FILE.yaml`` only changes the defaults, and any flag on the command line wins.

    The YAML keys are the option names with ``_`` for ``-``; an unknown key, a value of the wrong type or outside an
    option's choices is an error naming the file and the key. Also checks ``--train-data`` and ``--mask-size``.
    """
    pre, _ = parser.parse_known_args(argv)
    if pre.config:
        with open(pre.config, encoding="utf-8") as f:
            defaults = yaml.safe_load(f) or {}
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(defaults) - known)
        if unknown:
            parser.error(f"{pre.config}: unknown option(s) {', '.join(unknown)}; keys are option names with _")
        for action in parser._actions:  # YAML values get the command line's type and choices checks
            if action.dest not in defaults:
                continue
            value = defaults[action.dest]
            if action.type is not None and isinstance(value, str) and action.type is not str:
                try:
                    value = defaults[action.dest] = action.type(value)
                except (TypeError, ValueError) as err:
                    parser.error(f"{pre.config}: {action.dest}: {err}")
            if action.choices is not None and value not in action.choices:
                choices = ", ".join(map(str, action.choices))
                parser.error(f"{pre.config}: {action.dest}: {value!r} is not one of {choices}")
        parser.set_defaults(**defaults)
    args = parser.parse_args(argv)
    if not args.train_data:
        parser.error("--train-data is required (on the command line or in --config)")
    if getattr(args, "mask_size", None) is not None and args.mask_size < 1:
        parser.error(f"--mask-size must be a positive number of pixels, got {args.mask_size}")
    return args


# ------------------------------------------------------------------------------------------------- optimisation


def clip_gradients(accelerator: Accelerator, model, optimizer, max_norm: float | None) -> None:
    """Clip one model's gradients. ``accelerator.clip_grad_norm_`` would unscale *every* optimiser's gradients under
    fp16, corrupting the other model's accumulated gradients; unscale just this optimiser's instead.
    ``max_norm`` ``None`` or <= 0 means no clipping."""
    if max_norm is None or max_norm <= 0:
        return
    accelerator.unscale_gradients(optimizer=optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)


def average_gradients(accelerator: Accelerator, *modules: torch.nn.Module) -> None:
    """Average the gradients of modules that are not DDP-wrapped over the processes (in place of DDP's hooks).

    A trainable parameter without a gradient on this process (a branch its batch did not reach) takes part with
    zeros, so that every process runs the same reductions in the same order; skipping it on one process only
    would pair different tensors across processes, or hang (an optimiser then sees a zero gradient: Adam still
    moves the parameter by its momentum). Frozen parameters (``requires_grad=False``) are left
    out on every process alike. Nothing to do with one process.
    """
    if accelerator.num_processes == 1:
        return
    for module in modules:
        for p in module.parameters():
            if p.requires_grad:
                p.grad = accelerator.reduce(torch.zeros_like(p) if p.grad is None else p.grad, "mean")


# ------------------------------------------------------------------------------------------------- checkpoints


def run_signature(args: argparse.Namespace, accelerator: Accelerator, num_images: int) -> dict[str, Any]:
    """What must not change between a run and its resumption for the data stream to continue exactly."""
    signature = {
        "num_processes": accelerator.num_processes,
        "train_batch_size": args.train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "seed": args.seed,
        "resolution": args.resolution,
        "mask_protocol": args.mask_protocol,
        "num_images": num_images,
    }
    if getattr(args, "mask_size", None) is not None:  # only scripts that have the option, and only when it is set
        signature["mask_size"] = args.mask_size
    return signature


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    """Complete ``checkpoint-<step>`` folders (``training_state.json`` is written last), oldest first."""
    found = [
        p
        for p in Path(output_dir).glob("checkpoint-*")
        if re.fullmatch(r"checkpoint-\d+", p.name) and (p / "training_state.json").is_file()
    ]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def save_checkpoint(accelerator: Accelerator, args: argparse.Namespace, generator, state: dict[str, Any]) -> None:
    """Save, mark complete (atomically), and only then remove the oldest: a crash never leaves no checkpoint.

    Writes ``accelerator.save_state`` (every prepared model, optimiser and RNG), a ``generator/`` folder that
    ``AutoInpaintModel.from_pretrained`` loads, and ``training_state.json`` (step, data position, run signature).
    """
    output_dir = Path(args.output_dir)
    target = output_dir / f"checkpoint-{state['step']}"
    accelerator.wait_for_everyone()
    accelerator.save_state(str(target))
    if accelerator.is_main_process:
        accelerator.unwrap_model(generator).save_pretrained(target / "generator")
        atomic_write_text(target / "training_state.json", json.dumps(state, indent=2))
        if args.checkpoints_total_limit is not None:
            complete = checkpoint_dirs(output_dir)
            for stale in complete[: max(0, len(complete) - args.checkpoints_total_limit)]:
                logger.info(f"removing old checkpoint {stale}")
                shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    logger.info(f"saved {target}")


def resume_from_checkpoint(
    accelerator: Accelerator, args: argparse.Namespace, signature: dict[str, Any]
) -> tuple[int, int, int]:
    """Load ``--resume-from-checkpoint`` (``latest`` or a folder); returns ``(step, epoch, batch_in_epoch)``.

    Raises:
        ValueError: the run's signature (processes, batch size, seed, resolution, masks, data) changed, so the data
            stream could not continue exactly.
    """
    if not args.resume_from_checkpoint:
        return 0, 0, 0
    output_dir = Path(args.output_dir)
    if args.resume_from_checkpoint == "latest":
        found = checkpoint_dirs(output_dir)
        resume = found[-1] if found else None
    else:
        resume = Path(args.resume_from_checkpoint)
    if resume is None:
        logger.warning(f"--resume-from-checkpoint latest: no checkpoint in {output_dir}, starting from scratch")
        return 0, 0, 0
    if not (resume / "training_state.json").is_file():
        raise FileNotFoundError(f"{resume} is not a complete checkpoint (no training_state.json)")
    state = json.loads((resume / "training_state.json").read_text())
    changed = {k: (v, signature[k]) for k, v in state.get("run", {}).items() if signature.get(k) != v}
    if changed:
        raise ValueError(
            f"cannot resume {resume} exactly: "
            + ", ".join(f"{k} was {old} and is now {new}" for k, (old, new) in changed.items())
            + "; start a new --output-dir, or restore these settings"
        )
    accelerator.load_state(str(resume))
    step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
    logger.info(f"resumed from {resume}: step {step}, epoch {epoch}, batch {batch_in_epoch}")
    return step, epoch, batch_in_epoch


def checkpoint_position(epoch: int, batch_in_epoch: int, batches_per_epoch: int) -> dict[str, int]:
    """Where the data stream continues after this step (the next epoch's start once the epoch is complete)."""
    if batch_in_epoch == batches_per_epoch:
        return {"epoch": epoch + 1, "batch_in_epoch": 0}
    return {"epoch": epoch, "batch_in_epoch": batch_in_epoch}


# ------------------------------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(accelerator: Accelerator, generator, dataset: InpaintDataset, args, step: int) -> dict[str, float]:
    """Metrics on the validation crops (uint8, as ``inpaint-hub eval``) and a sample grid; main process only.

    Also ``val/telea_psnr_hole``: OpenCV's Telea on the same crops and masks, a reference that makes ``val/psnr_hole``
    readable (the bundled checkpoints are judged against Telea), at the cost of a few milliseconds per crop.
    """
    model = accelerator.unwrap_model(generator)
    was_training = model.training
    model.eval()
    telea = OpenCVInpaintModel(OpenCVInpaintConfig(method="telea"))
    rows: dict[str, list[float]] = {}
    grid_inputs, grid_outputs, grid_truth = [], [], []
    for index in range(min(len(dataset), args.num_validation_images)):
        item = dataset[index]
        image = item["image"][None].to(accelerator.device)
        mask = item["mask"][None].to(accelerator.device)
        # A fixed generator per image: a sampling model (PiiGAN) shows the same z at every validation, and the
        # global RNG that training draws from is left alone.
        sample = torch.Generator(device=accelerator.device).manual_seed(index)
        output = model(image, mask, generator=sample).inpainted.clamp(0, 1)
        as_uint8 = lambda t: (t[0].permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8)  # noqa: E731
        for name, value in compute_image_metrics(as_uint8(output), as_uint8(image), item["mask"][0].numpy()).items():
            rows.setdefault(name, []).append(min(value, 100.0))
        reference = telea(item["image"][None], item["mask"][None]).inpainted
        telea_metrics = compute_image_metrics(as_uint8(reference), as_uint8(image), item["mask"][0].numpy())
        rows.setdefault("telea_psnr_hole", []).append(min(telea_metrics["psnr_hole"], 100.0))
        if index < 8:
            grid_inputs.append((image * (1 - mask) + mask).cpu())
            grid_outputs.append(output.cpu())
            grid_truth.append(image.cpu())
    if was_training:
        model.train()
    metrics = {f"val/{name}": float(np.mean(values)) for name, values in rows.items()}
    if grid_inputs:
        path = Path(args.output_dir) / "samples" / f"step-{step:07d}.png"
        save_image_grid([torch.cat(grid_inputs), torch.cat(grid_outputs), torch.cat(grid_truth)], path)
    return metrics


def resolve_report_to(report_to: str) -> str | None:
    """``--report-to`` for ``Accelerator(log_with=...)``: ``none`` -> None; tensorboard only when installed."""
    if report_to == "none":
        return None
    if report_to == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            # Plain logging, from the main process only (RANK is set by the launcher): this runs before the
            # Accelerator, and so accelerate's main_process_only logging, exists.
            if os.environ.get("RANK", "0") == "0":
                logging.getLogger(__name__).warning(
                    "tensorboard is not installed: scalars are only printed (pip install tensorboard)"
                )
            return None
    return report_to


def dump_rank_state(accelerator: Accelerator, output_dir: Path, seen_indices: list, models: dict[str, Any]) -> None:
    """Tests only: each rank writes the sample indices it saw and its weights, to check data sharding and sync."""
    rank = accelerator.process_index
    (output_dir / f"rank{rank}_indices.json").write_text(json.dumps(seen_indices))
    for name, model in models.items():
        weights = {k: v.detach().cpu() for k, v in accelerator.unwrap_model(model).state_dict().items()}
        torch.save(weights, output_dir / f"rank{rank}_{name}.pt")


def log_scalars(accelerator: Accelerator, scalars: dict[str, float], step: int) -> None:
    """``accelerator.log``, and a log line on the main process when no tracker is active (``--report-to none`` or
    tensorboard missing), so the loss terms and learning rates of a run are never lost."""
    accelerator.log(scalars, step=step)
    if not accelerator.trackers:
        logger.info(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in scalars.items()))
