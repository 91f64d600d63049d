#!/usr/bin/env python
"""Train or fine-tune LaMa (Suvorov et al., WACV 2022) with Hugging Face Accelerate.

    accelerate launch train/lama.py --config train/configs/lama-fourier.yaml --train-data /data/places/train \\
        --val-data /data/places/val --output-dir runs/lama-fourier

The recipe is the authors' (``advimman/lama``, ``saicinpainting/training/trainers/default.py``; the numbers and
where they come from are in ``../shared/MODELS.md`` §1.3):

* generator input ``[image * (1 - mask), mask]``; the discriminator sees the raw prediction, not the composite;
* generator loss = ``l1_known * mean(|pred - img| * (1 - mask)) + l1_hole * mean(|pred - img| * mask)``
  (LaMa: known 10, hole 0) + ``adversarial * mean(softplus(-D(pred)))`` (10) + ``feature_matching`` * mean over D's
  five feature maps of MSE(D(pred), D(img)) (100) + ``perceptual`` * high-receptive-field perceptual loss (30; needs
  the ADE20k ResNet-50 file, off with a warning without it);
* discriminator loss = non-saturating with R1 (0.001) and the mask as the fake target: hole pixels of the
  prediction are fake, the rest is labelled real; the generator step comes first, and D then sees a fresh
  prediction of the updated generator (LaMa runs the forward pass once per optimiser);
* Adam, lr 1e-3 (G) and 1e-4 (D), betas (0.9, 0.999), gradient norm clipped to 1.

argparse is the source of truth: ``--config FILE.yaml`` only changes the defaults (its keys are the option names
with ``_`` for ``-``; an unknown key is an error), and any flag on the command line wins. Every
``--checkpointing-steps`` the whole training state is saved with ``accelerator.save_state`` (models, optimisers,
RNG, step counters) together with a ``generator/`` folder that ``AutoInpaintModel.from_pretrained`` loads;
``--resume-from-checkpoint latest`` continues exactly: the data order and every augmentation depend only on
(seed, epoch, index), and the batches already seen in the interrupted epoch are skipped. That plumbing (arguments,
checkpoints, resuming, validation, clipping) is shared with the other training scripts: ``inpaint_hub/training.py``.
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

from inpaint_hub import AutoInpaintModel, LamaConfig, LamaModel
from inpaint_hub.data import InpaintDataset, ResumableRandomSampler
from inpaint_hub.losses import (
    PerceptualLoss,
    feature_matching_loss,
    masked_l1_loss,
    non_saturating_discriminator_loss,
    non_saturating_generator_loss,
)
from inpaint_hub.masks import list_mask_protocols
from inpaint_hub.models.lama import LamaDiscriminator
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


logger = get_logger("train_lama")

PRESETS = {"big-lama": LamaConfig.big_lama, "lama-fourier": LamaConfig.lama_fourier, "tiny": LamaConfig.tiny}


# ------------------------------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train or fine-tune LaMa with Accelerate.")
    p.add_argument("--config", default=None, help="YAML file whose keys set the defaults of the options below")
    data = p.add_argument_group("data")
    data.add_argument("--train-data", nargs="+", default=None, help="training image folders (recursive)")
    data.add_argument("--val-data", default=None, help="held-out image folder for validation")
    data.add_argument("--resolution", type=int, default=256, help="training crop size (LaMa: 256)")
    data.add_argument("--mask-protocol", default="lama-train", choices=list_mask_protocols())
    data.add_argument("--val-mask-protocol", default="lama-medium-256", choices=list_mask_protocols())
    add_mask_size_argument(data)
    data.add_argument("--jitter", action=argparse.BooleanOptionalAction, default=False,
                      help="mild colour/geometry jitter (a reduced version of LaMa's 'distortions')")  # fmt: skip
    data.add_argument("--num-workers", type=int, default=0)
    model = p.add_argument_group("model")
    model.add_argument("--model", default="lama-fourier", help=f"preset: {', '.join(PRESETS)}")
    model.add_argument("--model-overrides", type=json.loads, default=None,
                       help='JSON of LamaConfig fields over the preset, e.g. \'{"base_channels": 32}\'')  # fmt: skip
    model.add_argument("--init-from", default=None,
                       help="start from these generator weights (folder or Hub id); --model and --model-overrides "
                       "are then ignored")  # fmt: skip
    optim = p.add_argument_group("optimisation")
    optim.add_argument("--train-batch-size", type=int, default=10, help="per process (LaMa: 10 per GPU)")
    optim.add_argument("--gradient-accumulation-steps", type=int, default=1)
    optim.add_argument("--max-steps", type=int, default=1_000_000, help="optimiser steps")
    optim.add_argument("--lr-generator", type=float, default=1e-3)
    optim.add_argument("--lr-discriminator", type=float, default=1e-4)
    optim.add_argument("--adam-betas", type=float, nargs=2, default=(0.9, 0.999))
    optim.add_argument("--max-grad-norm", type=float, default=1.0, help="0 = no clipping")
    optim.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default=None,
                       help="default: what `accelerate config` / `accelerate launch` says")  # fmt: skip
    optim.add_argument("--seed", type=int, default=0)
    loss = p.add_argument_group("loss weights (LaMa's defaults)")
    loss.add_argument("--weight-l1-known", type=float, default=10.0)
    loss.add_argument("--weight-l1-hole", type=float, default=0.0)
    loss.add_argument("--weight-adversarial", type=float, default=10.0)
    loss.add_argument("--weight-feature-matching", type=float, default=100.0)
    loss.add_argument("--weight-perceptual", type=float, default=30.0)
    loss.add_argument("--perceptual-weights", default=None,
                      help="ade20k-resnet50dilated encoder_epoch_20.pth for the HRF perceptual loss")  # fmt: skip
    loss.add_argument("--r1-weight", type=float, default=0.001)
    out = p.add_argument_group("checkpoints and logging")
    out.add_argument("--output-dir", default="runs/lama")
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
    if args.resolution % 8 or args.resolution < 32:
        parser.error(f"--resolution must be a multiple of 8 and at least 32, got {args.resolution}")
    return args


# ------------------------------------------------------------------------------------------------- helpers


def build_generator(args: argparse.Namespace) -> LamaModel:
    if args.init_from:
        model = AutoInpaintModel.from_pretrained(args.init_from)
        if not isinstance(model, LamaModel):
            raise ValueError(f"--init-from {args.init_from} is a {type(model).__name__}, not a LaMa model")
        return model
    if args.model not in PRESETS:
        raise ValueError(f"unknown --model {args.model!r}; presets: {', '.join(PRESETS)}")
    config = PRESETS[args.model]()
    if args.model_overrides:
        config = config.replace(**args.model_overrides)
    return LamaModel(config)


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
    if accelerator.mixed_precision == "fp16" and args.r1_weight > 0:
        logger.warning(
            "fp16: the R1 penalty's gradient w.r.t. the images is not loss-scaled and can underflow; prefer bf16"
        )
    set_seed(args.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)

    # Models, losses, optimisers.
    generator = build_generator(args)
    discriminator = LamaDiscriminator(generator.config)
    perceptual = PerceptualLoss.from_file(args.perceptual_weights, weight=args.weight_perceptual)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=args.lr_generator, betas=tuple(args.adam_betas))
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=args.lr_discriminator, betas=tuple(args.adam_betas))

    # Data: every augmentation and mask depends on (seed, epoch, index) only; the sampler's order on (seed, epoch).
    train_set = InpaintDataset(
        args.train_data, size=args.resolution, mask_protocol=args.mask_protocol, crop="random", jitter=args.jitter,
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
    perceptual.to(accelerator.device)
    batches_per_epoch = len(loader)
    if batches_per_epoch == 0:
        raise ValueError(
            f"no full batch: {len(train_set)} images over {accelerator.num_processes} process(es) with batch size "
            f"{args.train_batch_size}; lower --train-batch-size"
        )

    # Resume: refused if the run's signature (processes, batch, seed, resolution, masks, data) changed.
    signature = run_signature(args, accelerator, len(train_set))
    step, epoch, batch_in_epoch = resume_from_checkpoint(accelerator, args, signature)

    if accelerator.is_main_process:
        accelerator.init_trackers(
            "lama", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        )
    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"{len(train_set)} training images, {batches_per_epoch} batches per epoch and process, total batch "
        f"{total_batch}, generator {accelerator.unwrap_model(generator).num_parameters():,} parameters"
    )
    progress = tqdm(total=args.max_steps, initial=step, desc="steps", disable=not accelerator.is_local_main_process)
    d_module = accelerator.unwrap_model(discriminator)
    # Both GAN weights 0 means reconstruction-only training: the discriminator is kept (checkpoints keep one layout)
    # but never run, which also saves its share of the compute.
    adversarial = args.weight_adversarial > 0 or args.weight_feature_matching > 0
    seen_indices: list[list[int]] = []
    start = time.perf_counter()

    while step < args.max_steps:
        epoch_loader = accelerator.skip_first_batches(loader, batch_in_epoch) if batch_in_epoch else loader
        # The epoch is set explicitly everywhere it matters (the prepared loader's own counter restarts at 0 on
        # resume): the loader, the sampler's order and the dataset's augmentations.
        epoch_loader.set_epoch(epoch)
        sampler.set_epoch(epoch)  # under several processes the skipping loader does not reach the sampler itself
        train_set.set_epoch(epoch)
        for batch in epoch_loader:
            batch_in_epoch += 1
            image, mask = batch["image"], batch["mask"]
            if args.dump_rank_state:
                seen_indices.append(batch["index"].tolist())
            with accelerator.accumulate(generator, discriminator):
                # ---- generator step.
                predicted = generator(image, mask).predicted
                losses = {
                    "l1": masked_l1_loss(
                        predicted, image, mask, weight_hole=args.weight_l1_hole, weight_known=args.weight_l1_known
                    ),
                    "perceptual": perceptual(predicted, image),
                }
                if adversarial:
                    # D's parameters are frozen and it is called unwrapped: under DDP, a wrapped forward whose
                    # parameters get no gradient would make the next reduction fail.
                    d_module.requires_grad_(False)
                    fake_logits, fake_features = d_module(predicted)
                    with torch.no_grad():
                        _, real_features = d_module(image)
                    losses["adversarial"] = args.weight_adversarial * non_saturating_generator_loss(fake_logits)
                    losses["feature_matching"] = args.weight_feature_matching * feature_matching_loss(
                        fake_features, real_features
                    )
                loss_g = sum(losses.values())
                accelerator.backward(loss_g)
                if accelerator.sync_gradients:
                    clip_gradients(accelerator, generator, optimizer_g, args.max_grad_norm)
                optimizer_g.step()
                optimizer_g.zero_grad(set_to_none=True)

                # ---- discriminator step, skipped when both GAN weights are 0. As LaMa (trainers/base.py: a forward
                # pass per optimiser), D sees the prediction of the generator *after* its update; R1 needs gradients
                # w.r.t. the real images.
                if adversarial:
                    d_module.requires_grad_(True)
                    with torch.no_grad():
                        predicted = generator(image, mask).predicted
                    real = image.detach().requires_grad_(True)
                    real_logits, _ = discriminator(real)
                    fake_logits, _ = discriminator(predicted)
                    loss_d, parts_d = non_saturating_discriminator_loss(
                        real_logits, fake_logits, mask=mask, real_images=real, r1_weight=args.r1_weight
                    )
                    accelerator.backward(loss_d)
                    if accelerator.sync_gradients:
                        clip_gradients(accelerator, discriminator, optimizer_d, args.max_grad_norm)
                    optimizer_d.step()
                    optimizer_d.zero_grad(set_to_none=True)

            if not accelerator.sync_gradients:
                continue
            step += 1
            progress.update(1)
            if step % args.logging_steps == 0 or step == args.max_steps:
                scalars = {f"train/g_{k}": accelerator.reduce(v.detach(), "mean").item() for k, v in losses.items()}
                scalars["train/g_total"] = accelerator.reduce(loss_g.detach(), "mean").item()
                if adversarial:
                    scalars["train/d_total"] = accelerator.reduce(loss_d.detach(), "mean").item()
                    scalars.update(
                        {f"train/d_{k}": accelerator.reduce(v.detach(), "mean").item() for k, v in parts_d.items()}
                    )
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
        dump_rank_state(
            accelerator, output_dir, seen_indices, {"generator": generator, "discriminator": discriminator}
        )
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(generator)
        final.save_pretrained(output_dir / "final", model_card=args.model_card)
        logger.info(f"saved the final generator to {output_dir / 'final'} after {step} steps")
    accelerator.end_training()


if __name__ == "__main__":
    main()
