#!/usr/bin/env python
"""Train or fine-tune PEN-Net (Zeng et al., CVPR 2019) with Hugging Face Accelerate.

    accelerate launch train/pennet.py --config train/configs/pennet-places2.yaml --train-data /data/places2/train \\
        --val-data /data/places2/val --output-dir runs/pennet-places2

The recipe is the authors' (``researchmm/PEN-Net-for-Inpainting@pytorch``, ``core/trainer.py`` and
``configs/places2.json``; the numbers and where they come from are in ``../shared/MODELS.md`` §2.3):

* images in [-1, 1]; generator input ``[image * (1 - mask) + mask, mask]`` (holes are +1); ``comp`` = the
  prediction in the hole, the image elsewhere;
* discriminator step first, on ``comp.detach()``: hinge, ``(mean relu(1 - D(real)) + mean relu(1 + D(comp))) / 2``;
* generator loss = ``adversarial * -mean(D(comp))`` (0.1) + ``hole * L1 in the hole / hole share`` (6)
  + ``valid * L1 outside / valid share`` (1) + ``pyramid * sum over the five pyramid images of L1 against the image
  resized bilinearly`` (0.5); no perceptual loss (the original defines one but never uses it);
* Adam for both, lr 1e-4, betas (0.5, 0.999); the step schedule ``lr * 0.1 ** (min(step, decay_until) //
  decay_every)`` (Places2: 1e-4 up to step 100k, then 1e-5); no gradient clipping;
* batch 16 in total, 256 x 256, the original's random square masks (``pennet-square``); free-form masks with
  ``--mask-protocol lama-train`` or ``deepfill-freeform``.

Checkpoints, resumption and the YAML ``--config`` work as in ``train/lama.py`` (``inpaint_hub/training.py``): every
``--checkpointing-steps`` the whole state is saved with ``accelerator.save_state`` plus a ``generator/`` folder that
``AutoInpaintModel.from_pretrained`` loads; ``--resume-from-checkpoint latest`` continues exactly. The learning rate
is a pure function of the step, so it needs no state of its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from inpaint_hub import AutoInpaintModel, PENNetConfig, PENNetDiscriminator, PENNetModel
from inpaint_hub.data import InpaintDataset, ResumableRandomSampler
from inpaint_hub.losses import (
    hinge_discriminator_loss,
    hinge_generator_loss,
    pyramid_l1_loss,
    region_l1_loss,
    region_mse_loss,
)
from inpaint_hub.masks import list_mask_protocols
from inpaint_hub.training import (
    add_mask_size_argument,
    checkpoint_position,
    clip_gradients,
    dump_rank_state,
    log_scalars,
    parse_args_with_config,
    resolve_report_to,
    resume_from_checkpoint,
    run_signature,
    save_checkpoint,
    validate,
)


logger = get_logger("train_pennet")

PRESETS = {"pennet": PENNetConfig.places2, "tiny": PENNetConfig.tiny}


# ------------------------------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train or fine-tune PEN-Net with Accelerate.")
    p.add_argument("--config", default=None, help="YAML file whose keys set the defaults of the options below")
    data = p.add_argument_group("data")
    data.add_argument("--train-data", nargs="+", default=None, help="training image folders (recursive)")
    data.add_argument("--val-data", default=None, help="held-out image folder for validation")
    data.add_argument("--resolution", type=int, default=256, help="training crop size (PEN-Net: 256); multiple of 64")
    data.add_argument("--mask-protocol", default="pennet-square", choices=list_mask_protocols(),
                      help="pennet-square (the original's), lama-train or deepfill-freeform")  # fmt: skip
    data.add_argument("--val-mask-protocol", default="pennet-center", choices=list_mask_protocols())
    add_mask_size_argument(data)
    data.add_argument("--jitter", action=argparse.BooleanOptionalAction, default=False,
                      help="LaMa-style colour/geometry jitter (rotation, zoom, brightness; stronger than "
                      "PEN-Net's ColorJitter(0.05))")  # fmt: skip
    data.add_argument("--crop", choices=["random", "resize", "fit"], default="random",
                      help="random: a crop at native scale; resize: the whole image resized (PEN-Net); fit: the "
                      "shorter side resized to --resolution, then a random crop (the scale of `inpaint-hub eval "
                      "--hd-strategy resize --resize-limit R`)")  # fmt: skip
    data.add_argument("--num-workers", type=int, default=0)
    model = p.add_argument_group("model")
    model.add_argument("--model", default="pennet", help=f"preset: {', '.join(PRESETS)}")
    model.add_argument("--model-overrides", type=json.loads, default=None,
                       help='JSON of PENNetConfig fields over the preset, e.g. \'{"base_channels": 16}\'')  # fmt: skip
    model.add_argument("--weight-init", choices=["original", "kaiming"], default="original",
                       help="from-scratch initialisation: the original's N(0, 0.02) or He (Kaiming) normal for the "
                       "LeakyReLU(0.2) layers; He trains a small model several times faster early on")  # fmt: skip
    model.add_argument("--init-from", default=None,
                       help="start from these generator weights (folder or Hub id, e.g. a converted release); "
                       "--model and --model-overrides are then ignored")  # fmt: skip
    optim = p.add_argument_group("optimisation")
    optim.add_argument("--train-batch-size", type=int, default=16, help="per process (PEN-Net: 16 in total)")
    optim.add_argument("--gradient-accumulation-steps", type=int, default=1)
    optim.add_argument("--max-steps", type=int, default=1_000_000, help="optimiser steps (Places2: 1e6)")
    optim.add_argument("--lr-generator", type=float, default=1e-4)
    optim.add_argument("--lr-discriminator", type=float, default=1e-4, help="PEN-Net: lr * d2glr = 1e-4")
    optim.add_argument("--adam-betas", type=float, nargs=2, default=(0.5, 0.999))
    optim.add_argument("--lr-decay-every", type=int, default=100_000, help="the original's niter")
    optim.add_argument("--lr-decay-until", type=int, default=150_000,
                       help="the original's niter_steady: no further decay after this step")  # fmt: skip
    optim.add_argument("--max-grad-norm", type=float, default=0.0, help="0 = no clipping (as the original)")
    optim.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default=None,
                       help="default: what `accelerate config` / `accelerate launch` says")  # fmt: skip
    optim.add_argument("--seed", type=int, default=2020, help="PEN-Net: 2020")
    loss = p.add_argument_group("loss weights (PEN-Net's defaults)")
    loss.add_argument("--weight-adversarial", type=float, default=0.1, help="0 = reconstruction only, D never run")
    loss.add_argument("--weight-hole", type=float, default=6.0)
    loss.add_argument("--weight-valid", type=float, default=1.0)
    loss.add_argument("--weight-pyramid", type=float, default=0.5)
    loss.add_argument("--weight-hole-mse", type=float, default=0.0,
                      help="squared error in the hole, images in [-1, 1] (not PEN-Net's: for hole-PSNR on "
                      "small budgets)")  # fmt: skip
    out = p.add_argument_group("checkpoints and logging")
    out.add_argument("--output-dir", default="runs/pennet")
    out.add_argument("--checkpointing-steps", type=int, default=5000)
    out.add_argument("--checkpoints-total-limit", type=int, default=None, help="keep only the newest N checkpoints")
    out.add_argument("--resume-from-checkpoint", default=None, help="'latest' or a checkpoint folder")
    out.add_argument("--validation-steps", type=int, default=5000)
    out.add_argument("--num-validation-images", type=int, default=16)
    out.add_argument("--report-to", default="tensorboard", help="tensorboard, wandb, all or none")
    out.add_argument("--logging-steps", type=int, default=10)
    out.add_argument("--model-card", default=None, help="Markdown card written with the final model")
    out.add_argument("--dump-rank-state", action="store_true", help=argparse.SUPPRESS)  # tests: per-rank weights
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parse_args_with_config(parser, argv)
    if args.resolution % 64 or args.resolution < 64:
        parser.error(f"--resolution must be a multiple of 64 (PEN-Net's six stride-2 levels), got {args.resolution}")
    if args.lr_decay_every < 1:
        parser.error("--lr-decay-every must be at least 1")
    for name in ("weight_adversarial", "weight_hole", "weight_valid", "weight_pyramid", "weight_hole_mse"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    return args


# ------------------------------------------------------------------------------------------------- helpers


def build_generator(args: argparse.Namespace) -> PENNetModel:
    if args.init_from:
        model = AutoInpaintModel.from_pretrained(args.init_from)
        if not isinstance(model, PENNetModel):
            raise ValueError(f"--init-from {args.init_from} is a {type(model).__name__}, not a PEN-Net model")
        return model
    if args.model not in PRESETS:
        raise ValueError(f"unknown --model {args.model!r}; presets: {', '.join(PRESETS)}")
    config = PRESETS[args.model]()
    if args.model_overrides:
        config = config.replace(**args.model_overrides)
    model = PENNetModel(config)
    if args.weight_init == "kaiming":
        kaiming_init(model)
    return model


def kaiming_init(module: torch.nn.Module) -> None:
    """He-normal weights (fan-in, LeakyReLU slope 0.2) and zero biases for every convolution.

    Our choice for small models trained from scratch, not the original's: with N(0, 0.02) the signal shrinks at every
    layer of a narrow network (the standard deviation is multiplied by ~0.02 * sqrt(9 * channels) < 1), and on a
    2-core budget the hole L1 after 60 steps was 0.29 with He against 0.36 with N(0, 0.02) (128 px crops, batch 4).
    """
    for layer in module.modules():
        if isinstance(layer, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(layer.weight, a=0.2, nonlinearity="leaky_relu")
            if layer.bias is not None:
                torch.nn.init.zeros_(layer.bias)


def learning_rate_factor(step: int, decay_every: int, decay_until: int) -> float:
    """PEN-Net's ``adjust_learning_rate``: ``0.1 ** (min(step, decay_until) // decay_every)`` for the ``step``-th
    optimiser step (1-based, as the original increments its iteration counter first)."""
    return 0.1 ** (min(step, decay_until) // decay_every)


def set_learning_rates(optimizers: dict, base: dict, factor: float) -> None:
    for name, optimizer in optimizers.items():
        for group in optimizer.param_groups:
            group["lr"] = base[name] * factor


# ------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=resolve_report_to(args.report_to),
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    set_seed(args.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)

    generator = build_generator(args)
    discriminator = PENNetDiscriminator(generator.config)
    betas = tuple(args.adam_betas)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=args.lr_generator, betas=betas)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=args.lr_discriminator, betas=betas)

    # Data: every augmentation and mask depends on (seed, epoch, index) only; the sampler's order on (seed, epoch).
    train_set = InpaintDataset(
        args.train_data, size=args.resolution, mask_protocol=args.mask_protocol, crop=args.crop, jitter=args.jitter,
        seed=args.seed, mask_size=args.mask_size,
    )  # fmt: skip
    sampler = ResumableRandomSampler(len(train_set), seed=args.seed)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=args.train_batch_size, sampler=sampler, num_workers=args.num_workers, drop_last=True
    )
    val_set = None
    if args.val_data:
        val_set = InpaintDataset(
            args.val_data, size=args.resolution, mask_protocol=args.val_mask_protocol, crop="center", flip=False,
            seed=args.seed, mask_size=args.mask_size,
        )  # fmt: skip

    generator, discriminator, optimizer_g, optimizer_d, loader = accelerator.prepare(
        generator, discriminator, optimizer_g, optimizer_d, loader
    )
    batches_per_epoch = len(loader)
    if batches_per_epoch == 0:
        raise ValueError(
            f"no full batch: {len(train_set)} images over {accelerator.num_processes} process(es) with batch size "
            f"{args.train_batch_size}; lower --train-batch-size"
        )
    signature = run_signature(args, accelerator, len(train_set))
    step, epoch, batch_in_epoch = resume_from_checkpoint(accelerator, args, signature)

    if accelerator.is_main_process:
        accelerator.init_trackers(
            "pennet", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        )
    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"{len(train_set)} training images, {batches_per_epoch} batches per epoch and process, total batch "
        f"{total_batch}, generator {accelerator.unwrap_model(generator).num_parameters():,} parameters"
    )
    progress = tqdm(total=args.max_steps, initial=step, desc="steps", disable=not accelerator.is_local_main_process)
    d_module = accelerator.unwrap_model(discriminator)
    optimizers = {"generator": optimizer_g, "discriminator": optimizer_d}
    base_lr = {"generator": args.lr_generator, "discriminator": args.lr_discriminator}
    # Adversarial weight 0 means reconstruction-only training: D is kept (checkpoints keep one layout) but never run.
    adversarial = args.weight_adversarial > 0
    seen_indices: list[list[int]] = []
    start = time.perf_counter()

    while step < args.max_steps:
        epoch_loader = accelerator.skip_first_batches(loader, batch_in_epoch) if batch_in_epoch else loader
        epoch_loader.set_epoch(epoch)
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        for batch in epoch_loader:
            batch_in_epoch += 1
            if args.dump_rank_state:
                seen_indices.append(batch["index"].tolist())
            # The schedule is a function of the optimiser step, so resuming needs no scheduler state. The original
            # counts the iteration before adjusting the rate: optimiser step number `step + 1` uses factor(step + 1).
            set_learning_rates(
                optimizers, base_lr, learning_rate_factor(step + 1, args.lr_decay_every, args.lr_decay_until)
            )
            mask = batch["mask"]
            real = batch["image"] * 2 - 1  # PEN-Net works in [-1, 1]
            with accelerator.accumulate(generator, discriminator):
                out = generator(batch["image"], mask)
                predicted = out.predicted * 2 - 1
                comp = (1 - mask) * real + mask * predicted

                # ---- discriminator step first, on the detached composite (core/trainer.py).
                if adversarial:
                    d_module.requires_grad_(True)
                    loss_d = hinge_discriminator_loss(discriminator(real), discriminator(comp.detach()))
                    accelerator.backward(loss_d)
                    if accelerator.sync_gradients:
                        clip_gradients(accelerator, discriminator, optimizer_d, args.max_grad_norm)
                    optimizer_d.step()
                    optimizer_d.zero_grad(set_to_none=True)

                # ---- generator step.
                losses = {
                    "hole": args.weight_hole * region_l1_loss(predicted, real, mask),
                    "valid": args.weight_valid * region_l1_loss(predicted, real, 1 - mask),
                    "pyramid": args.weight_pyramid * pyramid_l1_loss([p * 2 - 1 for p in out.pyramid], real),
                }
                if args.weight_hole_mse:
                    losses["hole_mse"] = args.weight_hole_mse * region_mse_loss(predicted, real, mask)
                if adversarial:
                    # D frozen and called unwrapped: under DDP a wrapped forward whose parameters get no gradient
                    # would make the next reduction fail.
                    d_module.requires_grad_(False)
                    losses["adversarial"] = args.weight_adversarial * hinge_generator_loss(d_module(comp))
                loss_g = sum(losses.values())
                accelerator.backward(loss_g)
                if accelerator.sync_gradients:
                    clip_gradients(accelerator, generator, optimizer_g, args.max_grad_norm)
                optimizer_g.step()
                optimizer_g.zero_grad(set_to_none=True)

            if not accelerator.sync_gradients:
                continue
            step += 1
            progress.update(1)
            if step % args.logging_steps == 0 or step == args.max_steps:
                scalars = {f"train/g_{k}": accelerator.reduce(v.detach(), "mean").item() for k, v in losses.items()}
                scalars["train/g_total"] = accelerator.reduce(loss_g.detach(), "mean").item()
                if adversarial:
                    scalars["train/d_total"] = accelerator.reduce(loss_d.detach(), "mean").item()
                scalars["train/lr_generator"] = optimizer_g.param_groups[0]["lr"]
                scalars["train/seconds_per_step"] = (time.perf_counter() - start) / args.logging_steps
                start = time.perf_counter()
                log_scalars(accelerator, scalars, step)
                progress.set_postfix({k.split("/")[1]: f"{v:.3f}" for k, v in scalars.items() if k.endswith("_total")})
            if val_set is not None and (step % args.validation_steps == 0 or step == args.max_steps):
                if accelerator.is_main_process:
                    metrics = validate(accelerator, generator, val_set, args, step)
                    accelerator.log(metrics, step=step)
                    logger.info(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
                accelerator.wait_for_everyone()
            if step % args.checkpointing_steps == 0 or step == args.max_steps:
                position = checkpoint_position(epoch, batch_in_epoch, batches_per_epoch)
                save_checkpoint(accelerator, args, generator, {"step": step, **position, "run": signature})
            if step >= args.max_steps:
                break
        else:
            epoch, batch_in_epoch = epoch + 1, 0
            continue
        break
    progress.close()

    if args.dump_rank_state:
        models = {"generator": generator, "discriminator": discriminator}
        dump_rank_state(accelerator, output_dir, seen_indices, models)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(generator)
        final.save_pretrained(output_dir / "final", model_card=args.model_card)
        logger.info(f"saved the final generator to {output_dir / 'final'} after {step} steps")
    accelerator.end_training()


if __name__ == "__main__":
    main()
