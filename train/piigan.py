#!/usr/bin/env python
"""Train or fine-tune PiiGAN (Cai & Wei, IEEE Access 2020) with Hugging Face Accelerate.

    accelerate launch train/piigan.py --config train/configs/piigan-celeba.yaml \\
        --train-data /data/celeba/train --val-data /data/celeba/val --output-dir runs/piigan-celeba

The objective is the paper's, as the released code computes it (``vivitsai/PiiGAN@dcdd3be``, ``model.py:
build_graph_with_losses``, ``setting.yml``, ``train.py``; the numbers are in ``../shared/MODELS.md`` §4.3). Images in
[-1, 1]; ``x1``, ``x2`` are the coarse and refined outputs; ``m`` the hole; the *local patch* of an image is its hole's
bounding box resized to ``style_size`` (the paper's fixed 64 x 64 box at 128 px):

* a random style map ``z`` (``N(0, 1)`` on a ``style_size`` grid spread over the hole's box, as at inference:
  ``PiiGANModel.sample_z``) gives ``x1, x2`` and the completion ``c = x2 * m + x * (1 - m)``;
* the style extractor encodes the *real* local patch into ``(mu, logvar)``, ``z_real = mu + exp(logvar / 2) * eps``,
  pasted (resized) into the hole's box of an all-zero map; the generator run with ``z_real`` gives ``x1', x2'``;
* generator loss = ``0.001 * (wgan_global(c) + wgan_local(c_patch))`` (``gan``)
  + ``0.1 * KL(N(mu, exp(logvar)) || N(0, I))``, summed over the batch and every value of the map (``kl``;
  ``--kl-reduction mean`` averages instead, so that the term does not grow with the batch and the map)
  + ``1.44 * (|x_patch - x1'_patch| + |x_patch - x2'_patch|)`` (``consistency``: ``z_real`` must reproduce the real
  patch; the original's 1.2 inside times 1.2 outside)
  + ``1.2 * (1.2 |x - x1'| + |x - x2'|)`` over known pixels, normalised by their share (``consistency_known``)
  + ``1.2 * (1.2 |x - x1| + |x - x2|)`` over known pixels, normalised likewise (``known``)
  + ``1.44 * |mu(c_patch) - z_patch|`` (``regress``: the code of a generated patch regresses to the ``z`` that made
  it, so different ``z`` must give tellably different fills);
* WGAN-GP critics, local (on the patch) and global (on the image), RGB only (``GAN_WITH_MASK: False``): critic loss
  ``wgan(local) + wgan(global) + 10 * (gp_local + gp_global)``, the gradient penalties masked to the hole as
  neuralgym's; **5 critic steps per generator step**, each on a fresh batch, fresh masks and a fresh ``z`` (the
  original's ``SecondaryTrainer(pstep=1, max_iters=5)`` dequeues a batch per iteration);
* Adam, lr 1e-4, betas (0.5, 0.9), for the generator, the critics and the extractor; no decay, no clipping;
* batch 13 of 128 px crops, the centre box with jitter (``piigan-center``), one mask per batch (the original draws
  one mask per step).

Deviations, all deliberate:

* **The style extractor is trained**, jointly with the generator (its own Adam, the same settings), by the KL, the
  consistency and the regression terms. The released code never updates it: its variables (scope
  ``build_extractor``) are in neither optimiser's ``var_list``, so the KL term had nothing to train (MODELS.md §4.3).
  We read that as a slip; the paper describes an extractor learned with those losses.
* ``z_real`` is sampled with the standard reparameterisation (see ``PiiGANStyleExtractor.reparameterize``; the
  released ``build_encode_z`` adds ``mu`` twice and reuses ``eps``).
* Free-form holes: the local patch is the bounding box of each image's own hole, resized (bilinear) to
  ``style_size``; the regression target is ``z * m`` cropped and resized the same way (outside the hole ``z`` has no
  effect, so its values there cannot be recovered). For the paper's centre box that box is the jittered hole itself
  (the original crops the fixed 64 x 64 box around it, 0-4 px wider on each side).
* The critic steps run the generator without gradients (``no_grad``); the original builds the full graph.
* On several processes each draws its own ``z`` (seed + process index), and a summed KL is multiplied by the number
  of processes, so that the averaged gradient is the one of the whole batch.

Options beyond the paper: ``--weight-sample-hole W`` adds ``W * (1.2 |x - x1| + |x - x2|)`` over the hole, normalised
by its share, for the fill made from the *random* ``z`` (``sample_hole``). PiiGAN has no such term: its random-code
fills learn the image only through the codes the extractor makes of real patches (and, in the paper, from the
critics), which on a small CPU budget without critics left them below Telea's hole-PSNR. The term pulls every
sample towards the truth (mean-seeking) while the regression term keeps them apart (different ``z`` must stay
tellable from the fill); it trades some diversity for fidelity, and is off by default.
``--weight-adversarial 0`` skips the critics (never run or updated, kept in the
checkpoints); every loss weight, ``--critic-steps``, ``--model-overrides`` for other widths, ``--init-from`` to
fine-tune, ``--max-grad-norm``, mixed precision through Accelerate. Checkpoints, resumption and ``--config`` work as
in the other scripts (``inpaint_hub/training.py``); the critics and the extractor are saved with the generator's
state (``accelerator.register_for_checkpointing``). With several processes the generator is wrapped in DDP; the
extractor and the critics are used several times per backward pass (gradient penalty, two patches), so their
gradients are averaged over processes explicitly instead.
"""

from __future__ import annotations

import argparse
import json
import logging
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
from inpaint_hub.losses import gradient_penalty, wgan_discriminator_loss, wgan_generator_loss
from inpaint_hub.masks import list_mask_protocols
from inpaint_hub.models.piigan import (
    PiiGANConfig,
    PiiGANDiscriminator,
    PiiGANModel,
    PiiGANStyleExtractor,
    crop_patches,
    hole_boxes,
    paste_patches,
)
from inpaint_hub.training import (
    add_mask_size_argument,
    average_gradients,
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


logger = get_logger("train_piigan")

PRESETS = {"celeba": PiiGANConfig.celeba, "tiny": PiiGANConfig.tiny}
LOSS_WEIGHTS = {  # name: (default, what the original calls it)
    "adversarial": (0.001, "GAN_LOSS_ALPHA on the local + global WGAN generator losses"),
    "kl": (0.1, "KL weight (the KL is summed over the batch and the style map, as the original)"),
    "consistency": (1.44, "l1_loss_z_x: 1.2 (COARSE_L1_ALPHA on both stages) x 1.2"),
    "consistency_known": (1.2, "ae_loss_z_x"),
    "known": (1.2, "ae_loss"),
    "regress": (1.44, "l1_regress_z_loss: REGRESSION_Z_LOSS_ALPHA 1.2 x 1.2"),
    "sample_hole": (0.0, "not in PiiGAN (0 = off): L1 of the random-z fill against the truth in the hole"),
}


# ------------------------------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train or fine-tune PiiGAN with Accelerate.")
    p.add_argument("--config", default=None, help="YAML file whose keys set the defaults of the options below")
    data = p.add_argument_group("data")
    data.add_argument("--train-data", nargs="+", default=None, help="training image folders (recursive)")
    data.add_argument("--val-data", default=None, help="held-out image folder for validation")
    data.add_argument("--resolution", type=int, default=128,
                      help="crop size (PiiGAN: 128); a multiple of 16, equal to the config's global_size")  # fmt: skip
    data.add_argument("--mask-protocol", default="piigan-center", choices=list_mask_protocols(),
                      help="piigan-center (the paper's jittered centre box) or lama-train, ...")  # fmt: skip
    data.add_argument("--mask-per-batch", action=argparse.BooleanOptionalAction, default=True,
                      help="one mask per batch as the original (the first item's, on each process); "
                      "--no-mask-per-batch keeps every item's own mask")  # fmt: skip
    data.add_argument("--val-mask-protocol", default="lama-medium-256", choices=list_mask_protocols())
    add_mask_size_argument(data)
    data.add_argument("--jitter", action=argparse.BooleanOptionalAction, default=False,
                      help="LaMa-style colour/geometry jitter (not in PiiGAN)")  # fmt: skip
    data.add_argument("--crop", choices=["random", "resize", "fit"], default="random",
                      help="random: a crop at native scale (the original's random crop of CelebA); resize: the whole "
                      "image resized; fit: the shorter side resized to --resolution, then a random crop")  # fmt: skip
    data.add_argument("--num-workers", type=int, default=0)
    model = p.add_argument_group("model")
    model.add_argument("--model", default="celeba", choices=list(PRESETS), help="architecture preset")
    model.add_argument("--model-overrides", type=json.loads, default=None,
                       help="JSON of PiiGANConfig fields over the preset: '{\"base_channels\": 24}'")  # fmt: skip
    model.add_argument("--init-from", default=None,
                       help="start from these generator weights (folder or Hub id); --model and --model-overrides "
                       "are then ignored (the critics and the extractor start fresh)")  # fmt: skip
    optim = p.add_argument_group("optimisation")
    optim.add_argument("--train-batch-size", type=int, default=13, help="per process (PiiGAN: 13)")
    optim.add_argument("--max-steps", type=int, default=1_000_000, help="generator steps (PiiGAN: MAX_ITERS 1e6)")
    optim.add_argument("--critic-steps", type=int, default=5, help="critic steps per generator step, each on a "
                       "fresh batch (PiiGAN: 5)")  # fmt: skip
    optim.add_argument("--lr-generator", type=float, default=1e-4, help="the generator's and the extractor's")
    optim.add_argument("--lr-discriminator", type=float, default=1e-4)
    optim.add_argument("--adam-betas", type=float, nargs=2, default=(0.5, 0.9))
    optim.add_argument("--max-grad-norm", type=float, default=0.0, help="0 = no clipping (as the original)")
    optim.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default=None,
                       help="default: what `accelerate config` / `accelerate launch` says")  # fmt: skip
    optim.add_argument("--seed", type=int, default=0, help="the original sets none")
    loss = p.add_argument_group("loss weights (PiiGAN's defaults)")
    for name, (default, what) in LOSS_WEIGHTS.items():
        loss.add_argument(f"--weight-{name.replace('_', '-')}", type=float, default=default, help=what)
    loss.add_argument("--kl-reduction", choices=["sum", "mean"], default="sum",
                      help="sum: over the batch and every value of the style map, as the original (its size then "
                      "scales the term); mean: per value, comparable to the L1 terms")  # fmt: skip
    loss.add_argument("--coarse-alpha", type=float, default=1.2, help="COARSE_L1_ALPHA on the coarse output's L1")
    loss.add_argument("--weight-global", type=float, default=1.0, help="GLOBAL_WGAN_LOSS_ALPHA")
    loss.add_argument("--gp-weight", type=float, default=10.0, help="WGAN_GP_LAMBDA")
    out = p.add_argument_group("checkpoints and logging")
    out.add_argument("--output-dir", default="runs/piigan")
    out.add_argument("--checkpointing-steps", type=int, default=5000)
    out.add_argument("--checkpoints-total-limit", type=int, default=None, help="keep only the newest N checkpoints")
    out.add_argument("--resume-from-checkpoint", default=None, help="'latest' or a checkpoint folder")
    out.add_argument("--validation-steps", type=int, default=5000)
    out.add_argument("--num-validation-images", type=int, default=16)
    out.add_argument("--report-to", default="tensorboard", help="tensorboard, wandb, all or none")
    out.add_argument("--logging-steps", type=int, default=10)
    out.add_argument("--model-card", default=None, help="Markdown card written with the final model")
    # Tests only: per-rank weights and sample indices.
    out.add_argument("--dump-rank-state", action="store_true", help=argparse.SUPPRESS)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parse_args_with_config(parser, argv)
    args.gradient_accumulation_steps = 1  # one generator step = critic_steps + 1 batches; no accumulation
    if args.resolution % 16 or args.resolution < 16:
        parser.error(f"--resolution must be a positive multiple of 16 (the global critic's four stride-2 "
                     f"convolutions), got {args.resolution}")  # fmt: skip
    if args.critic_steps < 0:
        parser.error(f"--critic-steps must be >= 0, got {args.critic_steps}")
    if args.critic_steps == 0 and args.weight_adversarial > 0:
        parser.error("--critic-steps 0 would train against critics that never learn: give --critic-steps >= 1, or "
                     "--weight-adversarial 0 to train without the critics")  # fmt: skip
    for name in [*LOSS_WEIGHTS, "coarse_alpha", "weight_global", "gp_weight"]:
        attr = name if name in ("coarse_alpha", "weight_global", "gp_weight") else f"weight_{name}"
        if getattr(args, attr) < 0:
            parser.error(f"--{attr.replace('_', '-')} must be >= 0, got {getattr(args, attr)}")
    if args.model_overrides is not None:
        if not isinstance(args.model_overrides, dict):
            parser.error(f"--model-overrides must be a JSON object, got {args.model_overrides!r}")
        if not args.init_from:
            try:
                PRESETS[args.model]().replace(**args.model_overrides)
            except (pydantic.ValidationError, TypeError, ValueError) as err:
                parser.error(f"--model-overrides {json.dumps(args.model_overrides)}: {err}")
    if not args.init_from:
        config = PRESETS[args.model]().replace(**(args.model_overrides or {}))
        if config.global_size != args.resolution:
            parser.error(
                f"--resolution {args.resolution} differs from the global critic's input size {config.global_size} "
                f"(its dense head is built for one size): add --model-overrides "
                f"'{{\"global_size\": {args.resolution}}}'"
            )
    return args


# ------------------------------------------------------------------------------------------------- helpers


def build_generator(args: argparse.Namespace) -> PiiGANModel:
    if args.init_from:
        model = AutoInpaintModel.from_pretrained(args.init_from)
        if not isinstance(model, PiiGANModel):
            raise ValueError(f"--init-from {args.init_from} is a {type(model).__name__}, not a PiiGAN model")
        if model.config.global_size != args.resolution:
            raise ValueError(
                f"--init-from {args.init_from} has global_size {model.config.global_size}; train it at "
                f"--resolution {model.config.global_size}"
            )
        return model
    config = PRESETS[args.model]()
    if args.model_overrides:
        config = config.replace(**args.model_overrides)
    return PiiGANModel(config)


def region_l1(real: torch.Tensor, coarse: torch.Tensor, refined: torch.Tensor, region: torch.Tensor, alpha: float):
    """``(alpha * mean|x - x1| r + mean|x - x2| r) / mean(r)`` over a region ``r`` (1 inside)."""
    share = region.mean().clamp_min(1e-8)  # an empty region (an all-hole batch's known pixels): the term is then 0
    return (alpha * ((real - coarse).abs() * region).mean() + ((real - refined).abs() * region).mean()) / share


def known_l1(real: torch.Tensor, coarse: torch.Tensor, refined: torch.Tensor, mask: torch.Tensor, alpha: float):
    """``region_l1`` over the known pixels ``1 - m``: the original's ``ae_loss``."""
    return region_l1(real, coarse, refined, 1 - mask, alpha)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, 1))`` per value: ``-0.5 * (1 + logvar - mu^2 - exp(logvar))``, summed over
    everything (batch included; ``"sum"``, the original) or averaged (``"mean"``)."""
    terms = -0.5 * (1 + logvar - mu.square() - logvar.exp())
    return terms.sum() if reduction == "sum" else terms.mean()


def batch_mask(mask: torch.Tensor, per_batch: bool) -> torch.Tensor:
    """The first item's mask for the whole batch (``per_batch``; the original draws one mask per step) or each
    item's own."""
    return mask[:1].expand_as(mask).contiguous() if per_batch else mask


# ------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:  # noqa: C901 - one training loop, read top to bottom
    args = parse_args(argv)
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
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
    critics = PiiGANDiscriminator(config).to(accelerator.device)
    extractor = PiiGANStyleExtractor(config).to(accelerator.device)
    # Every process starts from the same weights (built above) but draws its own z, noise and penalty mixing.
    torch.manual_seed(args.seed + accelerator.process_index)
    betas = tuple(args.adam_betas)
    # One optimiser for the generator and the extractor, which one loss trains: one gradient unscale under fp16.
    optimizer_g = torch.optim.Adam(
        [{"params": generator.parameters()}, {"params": extractor.parameters()}], lr=args.lr_generator, betas=betas
    )
    optimizer_d = torch.optim.Adam(critics.parameters(), lr=args.lr_discriminator, betas=betas)

    train_set = InpaintDataset(
        args.train_data, size=args.resolution, mask_protocol=args.mask_protocol, crop=args.crop, jitter=args.jitter,
        seed=args.seed, mask_size=args.mask_size,
    )  # fmt: skip
    sampler = ResumableRandomSampler(len(train_set), seed=args.seed)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=args.train_batch_size, sampler=sampler, num_workers=args.num_workers, drop_last=True,
        # A DataLoader iterator draws a seed from this generator (the global RNG when None); training draws z from
        # the global RNG, so a resumed run's extra iterator must not touch it. The dataset uses no torch randomness.
        generator=torch.Generator().manual_seed(args.seed),
    )  # fmt: skip
    val_set = None
    if args.val_data:
        val_set = InpaintDataset(
            args.val_data, size=args.resolution, mask_protocol=args.val_mask_protocol, crop="center", flip=False,
            seed=args.seed, mask_size=args.mask_size,
        )  # fmt: skip

    generator, optimizer_g, optimizer_d, loader = accelerator.prepare(generator, optimizer_g, optimizer_d, loader)
    accelerator.register_for_checkpointing(critics, extractor)
    batches_per_epoch = len(loader)
    if batches_per_epoch == 0:
        raise ValueError(
            f"no full batch: {len(train_set)} images over {accelerator.num_processes} process(es) with batch size "
            f"{args.train_batch_size}; lower --train-batch-size"
        )
    adversarial = args.weight_adversarial > 0
    critic_steps = args.critic_steps if adversarial else 0
    signature = {
        **run_signature(args, accelerator, len(train_set)),
        "mask_per_batch": args.mask_per_batch,
        "critic_steps": critic_steps,
    }
    step, epoch, batch_in_epoch = resume_from_checkpoint(accelerator, args, signature)

    if accelerator.is_main_process:
        accelerator.init_trackers(
            "piigan", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        )
    g_module = accelerator.unwrap_model(generator)
    trained_by_g = torch.nn.ModuleList([g_module, extractor])  # what optimizer_g updates, for clipping
    # A summed KL grows with the per-process batch; gradients are averaged over processes, so scale it back up.
    kl_scale = accelerator.num_processes if args.kl_reduction == "sum" else 1
    logger.info(
        f"{len(train_set)} training images, {batches_per_epoch} batches per epoch and process, batch "
        f"{args.train_batch_size * accelerator.num_processes}, {critic_steps} critic step(s) per generator step, "
        f"generator {g_module.num_parameters():,} parameters, extractor "
        f"{sum(p.numel() for p in extractor.parameters()):,}, critics {sum(p.numel() for p in critics.parameters()):,}"
    )
    progress = tqdm(total=args.max_steps, initial=step, desc="steps", disable=not accelerator.is_local_main_process)
    size = config.style_size
    phase = 0  # batches since the last generator step; checkpoints are taken right after one, so a resume starts at 0
    seen_indices: list[list[int]] = []
    losses: dict[str, torch.Tensor] = {}
    loss_d = torch.zeros((), device=accelerator.device)
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
            image = batch["image"]
            mask = batch_mask(batch["mask"], args.mask_per_batch)
            real = image * 2 - 1  # PiiGAN works in [-1, 1]
            boxes = hole_boxes(mask)
            real_patch = crop_patches(real, boxes, size)

            if phase < critic_steps:
                # ---- a critic step: its own batch, masks and z; the generator only makes the fakes.
                with torch.no_grad():
                    completed = generator(image, mask).inpainted * 2 - 1
                fake_patch = crop_patches(completed, boxes, size)
                mask_patch = crop_patches(mask, boxes, size)
                scores_local = critics.score_local(torch.cat([real_patch, fake_patch]))
                scores_global = critics.score_global(torch.cat([real, completed]))
                loss_d = (
                    wgan_discriminator_loss(*scores_local.chunk(2))
                    + wgan_discriminator_loss(*scores_global.chunk(2))
                    + args.gp_weight * gradient_penalty(critics.score_local, real_patch, fake_patch, mask=mask_patch)
                    + args.gp_weight * gradient_penalty(critics.score_global, real, completed, mask=mask)
                )
                accelerator.backward(loss_d)
                average_gradients(accelerator, critics)
                clip_gradients(accelerator, critics, optimizer_d, args.max_grad_norm)
                optimizer_d.step()
                optimizer_d.zero_grad(set_to_none=True)
                phase += 1
            else:
                # ---- a generator (+ extractor) step. One generator pass over [random z; z encoded from the truth].
                mu_real, logvar_real = extractor(real_patch)
                z_real = paste_patches(extractor.reparameterize(mu_real, logvar_real), boxes, *image.shape[-2:])
                z = g_module.sample_z(image, mask)
                out = generator(torch.cat([image, image]), torch.cat([mask, mask]), z=torch.cat([z, z_real]))
                coarse, refined = (out.coarse * 2 - 1).chunk(2), (out.predicted * 2 - 1).chunk(2)
                completed = out.inpainted[: len(image)] * 2 - 1
                fake_patch = crop_patches(completed, boxes, size)
                mu_fake, _ = extractor(fake_patch)
                losses = {
                    "known": args.weight_known * known_l1(real, coarse[0], refined[0], mask, args.coarse_alpha),
                    "consistency_known": args.weight_consistency_known
                    * known_l1(real, coarse[1], refined[1], mask, args.coarse_alpha),
                    "consistency": args.weight_consistency
                    * sum((real_patch - crop_patches(x[1], boxes, size)).abs().mean() for x in (coarse, refined)),
                    "regress": args.weight_regress * (mu_fake - crop_patches(z * mask, boxes, size)).abs().mean(),
                    "kl": args.weight_kl * kl_scale * kl_divergence(mu_real, logvar_real, args.kl_reduction),
                }
                if args.weight_sample_hole > 0:
                    losses["sample_hole"] = args.weight_sample_hole * region_l1(
                        real, coarse[0], refined[0], mask, args.coarse_alpha
                    )
                if adversarial:
                    critics.requires_grad_(False)
                    losses["adversarial"] = args.weight_adversarial * (
                        args.weight_global * wgan_generator_loss(critics.score_global(completed))
                        + wgan_generator_loss(critics.score_local(fake_patch))
                    )
                    critics.requires_grad_(True)
                loss_g = sum(losses.values())
                accelerator.backward(loss_g)
                average_gradients(accelerator, extractor)
                clip_gradients(accelerator, trained_by_g, optimizer_g, args.max_grad_norm)
                optimizer_g.step()
                optimizer_g.zero_grad(set_to_none=True)
                optimizer_d.zero_grad(set_to_none=True)  # the adversarial term's graph never reached the critics
                phase = 0
                step += 1
                progress.update(1)

                if step % args.logging_steps == 0 or step == args.max_steps:
                    scalars = {
                        f"train/g_{k}": accelerator.reduce(v.detach(), "mean").item() for k, v in losses.items()
                    }
                    scalars["train/g_total"] = accelerator.reduce(loss_g.detach(), "mean").item()
                    if critic_steps:
                        scalars["train/d_total"] = accelerator.reduce(loss_d.detach(), "mean").item()
                    scalars["train/seconds_per_step"] = (time.perf_counter() - start) / args.logging_steps
                    start = time.perf_counter()
                    log_scalars(accelerator, scalars, step)
                    progress.set_postfix(
                        {k.split("/")[1]: f"{v:.3f}" for k, v in scalars.items() if k.endswith("_total")}
                    )
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
        models = {"generator": generator, "discriminator": critics, "extractor": extractor}
        dump_rank_state(accelerator, output_dir, seen_indices, models)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(generator)
        final.save_pretrained(output_dir / "final", model_card=args.model_card)
        logger.info(f"saved the final generator to {output_dir / 'final'} after {step} steps")
    accelerator.end_training()


if __name__ == "__main__":
    main()
