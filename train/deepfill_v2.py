#!/usr/bin/env python
"""Train or fine-tune DeepFill v2 (Yu et al., ICCV 2019) with Hugging Face Accelerate.

    accelerate launch train/deepfill_v2.py --config train/configs/deepfill-v2-places2.yaml \\
        --train-data /data/places2/train --val-data /data/places2/val --output-dir runs/deepfill-v2-places2

The recipe is the authors' (``JiahuiYu/generative_inpainting@v2.0.0``, ``train.py``, ``inpaint.yml`` and
``inpaint_model.py:build_graph_with_losses``, with neuralgym's ``gan_hinge_loss``; the numbers and where they come
from are in ``../shared/MODELS.md`` §3.2):

* images in [-1, 1]; generator input ``[image * (1 - mask), ones, mask]``; two outputs, the coarse ``x1`` and the
  refined ``x2``; ``completed = x2 * mask + image * (1 - mask)``;
* generator loss = ``l1_coarse * mean|image - x1| + l1_refined * mean|image - x2|`` over the whole image, not masked
  (``l1_loss_alpha`` 1 each; v2 does not use v1's discounted mask) + ``adversarial * -mean(D([completed, mask]))``
  (``gan_loss_alpha`` 1);
* SN-PatchGAN discriminator on ``[image, mask]`` (``gan_with_mask``), hinge loss
  ``0.5 * mean relu(1 - D(real)) + 0.5 * mean relu(1 + D(completed))``, real and completed in one forward pass as the
  original's ``batch_pos_neg``; one discriminator step per generator step, the discriminator's first;
* Adam, lr 1e-4, betas (0.5, 0.999), for both; constant learning rate; no gradient clipping;
* batch 16, 256 x 256, the original's masks (``deepfill-freeform``: a random box OR 1-3 brush strokes) with **one
  mask per batch**: the original draws a single mask per step and tiles it across the batch
  (``--mask-per-batch``, the default, uses the first item's mask for every image of the batch on each process;
  ``--no-mask-per-batch`` keeps each item's own mask).

The network sees the channel order of its config (``channel_order``: ``bgr`` by default, what the TF original was
trained on through OpenCV; ``DeepFillV2Model.forward`` flips on the way in and out). The losses compare the RGB
outputs of ``forward`` with the RGB image, which is the same number in either order; the discriminator is fed in the
network's channel order, as the original's was.

Deviations from the original, all deliberate:

* The discriminator step reuses the generator step's batch and mask (its ``completed.detach()``). The original's
  discriminator step (``SecondaryMultiGPUTrainer``) dequeues a fresh batch, draws a fresh mask and runs the generator
  on it. Reusing the batch, as the nipponjo PyTorch port does (MODELS.md §3.3), halves the data cost and saves one
  generator forward pass per step, and one batch per step keeps the data position of a checkpoint simple.
* Two Adam optimisers with the same settings. The original passes one ``tf.train.AdamOptimizer`` to both the
  discriminator and the generator trainer. Its moment estimates are per variable, so that is the same except, as
  we read TF 1's Adam, for the bias-correction powers (``beta1_power``, ``beta2_power``, one pair per graph), which
  both updates then advance: twice per iteration. That only changes the first few thousand steps.
* In the generator step the discriminator runs on the completed images only (the original runs ``batch_pos_neg``
  again and uses only the ``neg`` half); the spectral-norm power iteration advances once per forward either way.
* Data: RGB photos decoded with Pillow (the original: OpenCV, BGR; the model's ``channel_order`` makes that the
  same), random 256 px crops at native scale (the README's ``random_crop: True`` for Places2; ``--crop resize`` for
  the CelebA-HQ setting) with random horizontal flips (ours); validation on centre crops with fixed LaMa
  ``medium`` masks (the original only logs image summaries).
* ``--max-steps`` 1e6 by default (the original's ``max_iters`` 1e8 is open-ended; nipponjo's port uses 1e6).

Options beyond the paper: ``--weight-adversarial 0`` trains on the two L1 terms alone (the discriminator is built so
that checkpoints keep one layout, but never run or updated); ``--model-overrides`` for other widths;
``--init-from`` to fine-tune converted or saved weights; ``--max-grad-norm``; mixed precision through Accelerate.

Checkpoints, resumption and the YAML ``--config`` work as in ``train/pennet.py`` (``inpaint_hub/training.py``): every
``--checkpointing-steps`` the whole state is saved with ``accelerator.save_state`` plus a ``generator/`` folder that
``AutoInpaintModel.from_pretrained`` loads; ``--resume-from-checkpoint latest`` continues exactly.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import pydantic
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from inpaint_hub import AutoInpaintModel
from inpaint_hub.data import InpaintDataset, ResumableRandomSampler
from inpaint_hub.losses import hinge_discriminator_loss, hinge_generator_loss
from inpaint_hub.masks import list_mask_protocols
from inpaint_hub.models.deepfill_v2 import DeepFillV2Config, DeepFillV2Discriminator, DeepFillV2Model
from inpaint_hub.models.deepfill_v2.modeling_deepfill_v2 import GatedConv2d
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


logger = get_logger("train_deepfill_v2")

PRESETS = {"places2": DeepFillV2Config.places2, "tiny": DeepFillV2Config.tiny}


# ------------------------------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train or fine-tune DeepFill v2 with Accelerate.")
    p.add_argument("--config", default=None, help="YAML file whose keys set the defaults of the options below")
    data = p.add_argument_group("data")
    data.add_argument("--train-data", nargs="+", default=None, help="training image folders (recursive)")
    data.add_argument("--val-data", default=None, help="held-out image folder for validation")
    data.add_argument("--resolution", type=int, default=256, help="crop size (DeepFill v2: 256); multiple of 8")
    data.add_argument("--mask-protocol", default="deepfill-freeform", choices=list_mask_protocols(),
                      help="deepfill-freeform (the original's box OR strokes) or lama-train, ...")  # fmt: skip
    data.add_argument("--mask-per-batch", action=argparse.BooleanOptionalAction, default=True,
                      help="one mask per batch as the original (the first item's, on each process); "
                      "--no-mask-per-batch keeps every item's own mask")  # fmt: skip
    data.add_argument("--val-mask-protocol", default="lama-medium-256", choices=list_mask_protocols())
    add_mask_size_argument(data)
    data.add_argument("--jitter", action=argparse.BooleanOptionalAction, default=False,
                      help="LaMa-style colour/geometry jitter (not in DeepFill v2)")  # fmt: skip
    data.add_argument("--crop", choices=["random", "resize", "fit"], default="random",
                      help="random: a crop at native scale (Places2, random_crop True); resize: the whole image "
                      "resized (random_crop False, CelebA-HQ); fit: the shorter side resized to --resolution, then a "
                      "random crop (the scale of `inpaint-hub eval --hd-strategy resize --resize-limit`)")  # fmt: skip
    data.add_argument("--num-workers", type=int, default=0)
    model = p.add_argument_group("model")
    model.add_argument("--model", default="places2", choices=list(PRESETS), help="architecture preset")
    model.add_argument("--model-overrides", type=json.loads, default=None,
                       help="JSON of DeepFillV2Config fields over the preset: '{\"base_channels\": 32}'")  # fmt: skip
    model.add_argument("--weight-init", choices=["original", "gated-kaiming"], default="original",
                       help="original: Glorot-uniform (TensorFlow's default, as the release); gated-kaiming: He "
                       "normal scaled for the gates (see gated_kaiming_init)")  # fmt: skip
    model.add_argument("--init-from", default=None,
                       help="start from these generator weights (folder or Hub id, e.g. a converted release); "
                       "--model and --model-overrides are then ignored")  # fmt: skip
    optim = p.add_argument_group("optimisation")
    optim.add_argument("--train-batch-size", type=int, default=16, help="per process (DeepFill v2: 16)")
    optim.add_argument("--gradient-accumulation-steps", type=int, default=1)
    optim.add_argument("--max-steps", type=int, default=1_000_000,
                       help="optimiser steps (the original's max_iters 1e8 is open-ended)")  # fmt: skip
    optim.add_argument("--lr-generator", type=float, default=1e-4)
    optim.add_argument("--lr-discriminator", type=float, default=1e-4)
    optim.add_argument("--adam-betas", type=float, nargs=2, default=(0.5, 0.999))
    optim.add_argument("--max-grad-norm", type=float, default=0.0, help="0 = no clipping (as the original)")
    optim.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default=None,
                       help="default: what `accelerate config` / `accelerate launch` says")  # fmt: skip
    optim.add_argument("--seed", type=int, default=0, help="the original sets none")
    loss = p.add_argument_group("loss weights (DeepFill v2's defaults)")
    loss.add_argument("--weight-adversarial", type=float, default=1.0,
                      help="gan_loss_alpha; 0 = reconstruction only, D never run")  # fmt: skip
    loss.add_argument("--weight-l1-coarse", type=float, default=1.0, help="l1_loss_alpha on the coarse output")
    loss.add_argument("--weight-l1-refined", type=float, default=1.0, help="l1_loss_alpha on the refined output")
    out = p.add_argument_group("checkpoints and logging")
    out.add_argument("--output-dir", default="runs/deepfill-v2")
    out.add_argument("--checkpointing-steps", type=int, default=5000)
    out.add_argument("--checkpoints-total-limit", type=int, default=None, help="keep only the newest N checkpoints")
    out.add_argument("--resume-from-checkpoint", default=None, help="'latest' or a checkpoint folder")
    out.add_argument("--validation-steps", type=int, default=5000)
    out.add_argument("--num-validation-images", type=int, default=16)
    out.add_argument("--report-to", default="tensorboard", help="tensorboard, wandb, all or none")
    out.add_argument("--logging-steps", type=int, default=10)
    out.add_argument("--model-card", default=None, help="Markdown card written with the final model")
    # Tests only: per-rank weights, sample indices and the masks the generator was given.
    out.add_argument("--dump-rank-state", action="store_true", help=argparse.SUPPRESS)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parse_args_with_config(parser, argv)
    if args.resolution % 8 or args.resolution < 8:
        parser.error(
            f"--resolution must be a positive multiple of 8 (two stride-2 levels, and contextual attention matches "
            f"on a further 2x downsampled grid), got {args.resolution}"
        )
    for name in ("weight_adversarial", "weight_l1_coarse", "weight_l1_refined"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.model_overrides is not None:
        if not isinstance(args.model_overrides, dict):
            parser.error(f"--model-overrides must be a JSON object, got {args.model_overrides!r}")
        if not args.init_from:
            try:
                PRESETS[args.model]().replace(**args.model_overrides)
            except (pydantic.ValidationError, TypeError, ValueError) as err:
                parser.error(f"--model-overrides {json.dumps(args.model_overrides)}: {err}")
    return args


# ------------------------------------------------------------------------------------------------- helpers


def build_generator(args: argparse.Namespace) -> DeepFillV2Model:
    if args.init_from:
        model = AutoInpaintModel.from_pretrained(args.init_from)
        if not isinstance(model, DeepFillV2Model):
            raise ValueError(f"--init-from {args.init_from} is a {type(model).__name__}, not a DeepFill v2 model")
        return model
    config = PRESETS[args.model]()
    if args.model_overrides:
        config = config.replace(**args.model_overrides)
    model = DeepFillV2Model(config)
    if args.weight_init == "gated-kaiming":
        gated_kaiming_init(model)
    return model


GATED_INIT_GAIN = 2.3


def gated_kaiming_init(module: torch.nn.Module, gain: float = GATED_INIT_GAIN) -> None:
    """Variance-preserving initialisation for gated convolutions (our choice, not the paper's).

    A gated layer outputs ``elu(f) * sigmoid(g)``: at initialisation the gate is ~0.5 and the ELU passes about half
    the variance, so a layer keeps only ~1/8 of its input's second moment under He's gain of sqrt(2), and under
    the original's Glorot-uniform (which also counts the doubled filters in its fan-out) ~1/10. Through the 17
    layers of the coarse network that is a factor ~1e-7: the first steps see a constant output and a vanishing
    gradient (on our 2-core budget a Glorot run filled every hole with one dark colour after 250 steps, validation
    hole-PSNR 11.0 dB). Kernels are drawn from ``N(0, (gain^2) / fan_in)`` with ``gain`` 2.3, measured to keep the
    activations' standard deviation roughly constant through the coarse network (2.0 still shrinks it ~10x,
    2.83 grows it ~50x); the ungated RGB heads get a gain of 1. Biases are zero.
    """
    for layer in module.modules():
        if isinstance(layer, GatedConv2d):
            std = (gain if layer.gated else 1.0) / math.sqrt(layer.conv.weight[0].numel())
            torch.nn.init.normal_(layer.conv.weight, 0.0, std)
            if layer.conv.bias is not None:
                torch.nn.init.zeros_(layer.conv.bias)


def batch_mask(mask: torch.Tensor, per_batch: bool) -> torch.Tensor:
    """The masks the generator trains on: ``[B, 1, H, W]``, every image with its own (``per_batch`` False) or the
    first item's mask for the whole batch (``per_batch`` True: the original tiles one mask per step,
    ``inpaint_model.py:build_graph_with_losses``)."""
    return mask[:1].expand_as(mask).contiguous() if per_batch else mask


def to_network_order(x: torch.Tensor, config: DeepFillV2Config) -> torch.Tensor:
    """RGB(+extra channels) -> the channel order the network (and so the discriminator) works in."""
    if config.channel_order == "bgr":
        return torch.cat([x[:, :3].flip(1), x[:, 3:]], dim=1)
    return x


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
    config = generator.config
    discriminator = DeepFillV2Discriminator(config)
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
    # Sharing the mask changes what the generator is trained on, so a resume must keep it.
    signature = {**run_signature(args, accelerator, len(train_set)), "mask_per_batch": args.mask_per_batch}
    step, epoch, batch_in_epoch = resume_from_checkpoint(accelerator, args, signature)

    if accelerator.is_main_process:
        accelerator.init_trackers(
            "deepfill_v2", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        )
    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"{len(train_set)} training images, {batches_per_epoch} batches per epoch and process, total batch "
        f"{total_batch}, generator {accelerator.unwrap_model(generator).num_parameters():,} parameters"
    )
    progress = tqdm(total=args.max_steps, initial=step, desc="steps", disable=not accelerator.is_local_main_process)
    d_module = accelerator.unwrap_model(discriminator)
    # Adversarial weight 0 means reconstruction-only training: D is kept (checkpoints keep one layout) but never run.
    adversarial = args.weight_adversarial > 0
    seen_indices: list[list[int]] = []
    seen_masks: list[torch.Tensor] = []
    start = time.perf_counter()

    while step < args.max_steps:
        epoch_loader = accelerator.skip_first_batches(loader, batch_in_epoch) if batch_in_epoch else loader
        epoch_loader.set_epoch(epoch)
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        for batch in epoch_loader:
            batch_in_epoch += 1
            mask = batch_mask(batch["mask"], args.mask_per_batch)
            if args.dump_rank_state:
                seen_indices.append(batch["index"].tolist())
                seen_masks.append(mask.detach().cpu())
            real = batch["image"] * 2 - 1  # DeepFill v2 works in [-1, 1]
            with accelerator.accumulate(generator, discriminator):
                out = generator(batch["image"], mask)
                coarse, refined = out.coarse * 2 - 1, out.predicted * 2 - 1
                completed = refined * mask + real * (1 - mask)

                # ---- discriminator step first, on the detached completion of this batch (see the module docstring:
                # the original draws a fresh batch for it). Real and completed in one forward, as batch_pos_neg.
                if adversarial:
                    d_module.requires_grad_(True)
                    pairs = torch.cat([torch.cat([real, mask], dim=1), torch.cat([completed.detach(), mask], dim=1)])
                    scores_real, scores_fake = discriminator(to_network_order(pairs, config)).chunk(2)
                    loss_d = hinge_discriminator_loss(scores_real, scores_fake)
                    accelerator.backward(loss_d)
                    if accelerator.sync_gradients:
                        clip_gradients(accelerator, discriminator, optimizer_d, args.max_grad_norm)
                    optimizer_d.step()
                    optimizer_d.zero_grad(set_to_none=True)

                # ---- generator step: whole-image L1 on both stages + hinge on the completed image.
                losses = {
                    "l1_coarse": args.weight_l1_coarse * (real - coarse).abs().mean(),
                    "l1_refined": args.weight_l1_refined * (real - refined).abs().mean(),
                }
                if adversarial:
                    # D frozen and called unwrapped: under DDP a wrapped forward whose parameters get no gradient
                    # would make the next reduction fail.
                    d_module.requires_grad_(False)
                    fake = to_network_order(torch.cat([completed, mask], dim=1), config)
                    losses["adversarial"] = args.weight_adversarial * hinge_generator_loss(d_module(fake))
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
        torch.save(seen_masks, output_dir / f"rank{accelerator.process_index}_masks.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(generator)
        final.save_pretrained(output_dir / "final", model_card=args.model_card)
        logger.info(f"saved the final generator to {output_dir / 'final'} after {step} steps")
    accelerator.end_training()


if __name__ == "__main__":
    main()
