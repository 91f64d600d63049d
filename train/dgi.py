#!/usr/bin/env python
"""Train DGI (Suin, Purohit & Rajagopalan, ICCV 2021) with Hugging Face Accelerate: the student (inpainting network),
the teacher (auxiliary network), the distillation meta-networks and a PatchGAN critic, jointly.

    accelerate launch train/dgi.py --config train/configs/dgi-paper.yaml \\
        --train-data /data/places2/train --val-data /data/places2/val --output-dir runs/dgi

No code was released, so the recipe is the one ``../shared/DGI_SPEC.md`` reconstructs (sections 4-5; its proposals
where the paper is silent, marked ``[choice]``). Images in [-1, 1] for the losses; ``m`` the hole.

Every step, on one batch:

* **teacher** (AN): reconstructs the whole image, ``L_AN = |AN(x) - x|`` (+ the perceptual term when VGG weights are
  given); it evolves with the student, as the paper's teacher. It is not run when all three distillations are
  switched off (the no-distillation ablation). During ``--teacher-warmup-steps`` the distillation terms are off
  (the teacher's features are not yet worth copying) and the student trains on its own losses [choice: the spec
  proposes 10k steps of warm-up];
* **critic**: non-saturating PatchGAN loss, real images against the student's composites (detached);
* **student** (IN) and the adapters ``gamma``, ``f``: ``L_IN = L_1 + w_perc P(y, x) + w_style S(y, x)
  + w_adv softplus(-D(composite)) + w_cross L_CD + w_self L_SD + w_att L_AT``, the three distillations of
  :mod:`inpaint_hub.models.dgi.distillation_dgi` (each switchable: ``--no-cross-distill``, ``--no-self-distill``,
  ``--no-attention-distill``; a switched-off term is not computed and not logged); ``L_1 = w_l1 |y - x|`` over every
  pixel, or PConv's hole/valid split with ``--weight-l1-hole`` (then ``w_l1`` weighs the known pixels);
* **meta step** (every ``--meta-every`` steps, once distillation is on): the meta-networks ``rho``, ``phi``, ``t``
  learn "what and where to distil" as in L2T-ww (Jang et al., ICML 2019), which the spec proposes for the paper's
  "rho trained in a separate step on the inpainting loss only": from the current student ``theta``, take
  ``--meta-inner-steps`` SGD steps of size ``--meta-lookahead-lr`` on the distillation loss alone (differentiably,
  so they depend on the meta-networks), one more on the task loss ``L_1`` (+ perceptual), then update the
  meta-networks with Adam (``--meta-lr``, ``--meta-weight-decay``) on the task loss of that look-ahead student; the
  student itself is not changed by the look-ahead. ``--no-meta`` keeps the meta-networks at their initialisation
  (``rho``, ``phi`` uniform; ``t`` ~0.5), the spec's "no-meta" control.

Loss weights default to the model config's (``DGIConfig.weight_*``: the spec's proposals), and the trained model's
``config.json`` records the weights it was trained with. The perceptual (LaMa's VGG19 loss, MSE of the 13 ReLU
features up to relu5_1) and style (L1 between Gram matrices of relu2_2, relu3_4, relu4_4, relu5_1; EdgeConnect uses
relu5_2, which that encoder does not compute) terms need torchvision's ``vgg19-dcbb9e9d.pth`` (``--vgg-weights``):
nothing is downloaded, and without the file their weights must be 0.

Several processes: nothing is wrapped in DDP; every network's gradients are averaged over the processes explicitly
(the attention is read twice per step, by the decoder and by the attention-transfer loss, and the meta step uses the
student functionally). Checkpoints hold the student (``generator/``, ``from_pretrained``-loadable), the teacher, the
distiller, the critic and every optimiser; ``--resume-from-checkpoint`` continues exactly.
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
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm

from inpaint_hub import AutoInpaintModel
from inpaint_hub.data import InpaintDataset, ResumableRandomSampler
from inpaint_hub.losses import PerceptualLoss, non_saturating_discriminator_loss, non_saturating_generator_loss
from inpaint_hub.masks import list_mask_protocols
from inpaint_hub.models.dgi import DGIConfig, DGIDiscriminator, DGIDistiller, DGIModel, DGITeacher
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


logger = get_logger("train_dgi")

PRESETS = {"paper": DGIConfig.paper, "small": DGIConfig.small, "tiny": DGIConfig.tiny}
LOSS_WEIGHTS = ("l1", "l1_hole", "perceptual", "style", "adversarial", "cross", "self", "attention")
DISTILLATIONS = ("cross", "self", "attention")
STYLE_LAYERS = (3, 7, 11, 12)  # relu2_2, relu3_4, relu4_4, relu5_1 among the VGG encoder's 13 ReLU outputs


# ------------------------------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train DGI (student, teacher, distillation) with Accelerate.")
    p.add_argument("--config", default=None, help="YAML file whose keys set the defaults of the options below")
    data = p.add_argument_group("data")
    data.add_argument("--train-data", nargs="+", default=None, help="training image folders (recursive)")
    data.add_argument("--val-data", default=None, help="held-out image folder for validation")
    data.add_argument("--resolution", type=int, default=256, help="crop size (spec: 256); multiple of 2^levels")
    data.add_argument("--mask-protocol", default="deepfill-freeform", choices=list_mask_protocols(),
                      help="training masks (spec's proposal: free-form strokes)")  # fmt: skip
    data.add_argument("--val-mask-protocol", default="lama-medium-256", choices=list_mask_protocols())
    add_mask_size_argument(data)
    data.add_argument("--jitter", action=argparse.BooleanOptionalAction, default=False,
                      help="LaMa-style colour/geometry jitter")  # fmt: skip
    data.add_argument("--crop", choices=["random", "resize", "fit"], default="random",
                      help="random: a crop at native scale; resize: the whole image resized; fit: the shorter side "
                      "resized to --resolution, then a random crop")  # fmt: skip
    data.add_argument("--num-workers", type=int, default=0)
    model = p.add_argument_group("model")
    model.add_argument("--model", default="paper", choices=list(PRESETS), help="architecture preset")
    model.add_argument("--model-overrides", type=json.loads, default=None,
                       help="JSON of DGIConfig fields over the preset: '{\"base_channels\": 32}'")  # fmt: skip
    model.add_argument("--init-from", default=None,
                       help="start the student from these weights (folder or Hub id); the teacher, the meta-networks "
                       "and the critic start fresh; --model and --model-overrides are ignored")  # fmt: skip
    optim = p.add_argument_group("optimisation (spec 5.5: proposals)")
    optim.add_argument("--train-batch-size", type=int, default=8, help="per process (spec: 8)")
    optim.add_argument("--max-steps", type=int, default=300_000, help="spec: 200k-1M by dataset")
    optim.add_argument("--lr-generator", type=float, default=1e-4, help="the student's and the adapters'")
    optim.add_argument("--lr-teacher", type=float, default=1e-4)
    optim.add_argument("--lr-discriminator", type=float, default=1e-5, help="0.1 x the generator's (EdgeConnect)")
    optim.add_argument("--adam-betas", type=float, nargs=2, default=(0.0, 0.9), help="EdgeConnect's")
    optim.add_argument("--max-grad-norm", type=float, default=0.0, help="0 = no clipping")
    optim.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default=None,
                       help="default: what `accelerate config` / `accelerate launch` says; the meta step runs in "
                       "float32")  # fmt: skip
    optim.add_argument("--seed", type=int, default=0)
    optim.add_argument("--teacher-warmup-steps", type=int, default=10_000,
                       help="steps before the distillation terms start (spec's proposal: 10k)")  # fmt: skip
    meta = p.add_argument_group("meta-networks rho, phi, t (spec 5.3: L2T-ww)")
    meta.add_argument("--meta", action=argparse.BooleanOptionalAction, default=True,
                      help="--no-meta: never update the meta-networks (uniform channel weights)")  # fmt: skip
    meta.add_argument("--meta-every", type=int, default=1, help="a meta step every N steps")
    meta.add_argument("--meta-inner-steps", type=int, default=2, help="look-ahead steps on the distillation (T)")
    meta.add_argument("--meta-lookahead-lr", type=float, default=1e-3, help="SGD step of the look-ahead (alpha)")
    meta.add_argument("--meta-lr", type=float, default=1e-4)
    meta.add_argument("--meta-weight-decay", type=float, default=1e-4)
    loss = p.add_argument_group("loss weights (default: the model config's, DGIConfig.weight_*)")
    for name in LOSS_WEIGHTS:
        loss.add_argument(f"--weight-{name.replace('_', '-')}", type=float, default=None)
    for name in DISTILLATIONS:
        loss.add_argument(f"--{name}-distill", action=argparse.BooleanOptionalAction, default=True,
                          help=f"the {name}-distillation term (ablation: --no-{name}-distill)")  # fmt: skip
    loss.add_argument("--vgg-weights", default=None,
                      help="torchvision's vgg19-dcbb9e9d.pth for the perceptual and style terms")  # fmt: skip
    out = p.add_argument_group("checkpoints and logging")
    out.add_argument("--output-dir", default="runs/dgi")
    out.add_argument("--checkpointing-steps", type=int, default=5000)
    out.add_argument("--checkpoints-total-limit", type=int, default=None, help="keep only the newest N checkpoints")
    out.add_argument("--resume-from-checkpoint", default=None, help="'latest' or a checkpoint folder")
    out.add_argument("--validation-steps", type=int, default=5000)
    out.add_argument("--num-validation-images", type=int, default=16)
    out.add_argument("--report-to", default="tensorboard", help="tensorboard, wandb, all or none")
    out.add_argument("--logging-steps", type=int, default=10)
    out.add_argument("--model-card", default=None, help="Markdown card written with the final model")
    out.add_argument("--dump-rank-state", action="store_true", help=argparse.SUPPRESS)  # tests only
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parse_args_with_config(parser, argv)
    args.gradient_accumulation_steps = 1
    for name in ("meta_every", "meta_inner_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.teacher_warmup_steps < 0:
        parser.error(f"--teacher-warmup-steps must be >= 0, got {args.teacher_warmup_steps}")
    for name in LOSS_WEIGHTS:
        value = getattr(args, f"weight_{name}")
        if value is not None and value < 0:
            parser.error(f"--weight-{name.replace('_', '-')} must be >= 0, got {value}")
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
        if args.resolution % config.size_multiple or args.resolution < config.min_size:
            parser.error(
                f"--resolution must be a multiple of {config.size_multiple} and at least {config.min_size} for this "
                f"model, got {args.resolution}"
            )
    return args


# ------------------------------------------------------------------------------------------------- helpers


def build_student(args: argparse.Namespace) -> DGIModel:
    """The student, with the loss weights of this run written into its config (given flags over the config's)."""
    if args.init_from:
        model = AutoInpaintModel.from_pretrained(args.init_from)
        if not isinstance(model, DGIModel):
            raise ValueError(f"--init-from {args.init_from} is a {type(model).__name__}, not a DGI model")
    else:
        config = PRESETS[args.model]()
        model = DGIModel(config.replace(**args.model_overrides) if args.model_overrides else config)
    weights = {f"weight_{n}": getattr(args, f"weight_{n}") for n in LOSS_WEIGHTS}
    model.config = model.config.replace(**{k: v for k, v in weights.items() if v is not None})
    return model


def gram_style_loss(perceptual: PerceptualLoss, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``sum_l |Gram(phi_l(prediction)) - Gram(phi_l(target))|_1`` over ``STYLE_LAYERS``, Gram = ``F F^T / (C H W)``
    (EdgeConnect's style loss on our VGG19 encoder)."""

    def grams(images: torch.Tensor) -> list[torch.Tensor]:
        features = perceptual.features(images)
        out = []
        for index in STYLE_LAYERS:
            f = features[index].flatten(2)
            out.append(f @ f.transpose(1, 2) / f.shape[1:].numel())
        return out

    with torch.no_grad():
        target_grams = grams(target)
    return sum((g - t).abs().mean() for g, t in zip(grams(prediction), target_grams, strict=True))


class StudentObjective(nn.Module):
    """The student and the distiller as one module, so that the meta step can run both with look-ahead weights
    (``torch.func.functional_call``: the attention-transfer loss reads the student's attention outside its forward)."""

    def __init__(self, student: DGIModel, distiller: DGIDistiller) -> None:
        super().__init__()
        self.student = student
        self.distiller = distiller

    def forward(self, image, mask, teacher_features, teacher_attention, switches: dict[str, bool]):
        out = self.student(image, mask, output_features=True)
        losses = None
        if any(switches.values()):
            losses = self.distiller(
                out.features, teacher_features, self.student.network.attention, teacher_attention, mask,
                cross=switches["cross"], self_distill=switches["self"], attention=switches["attention"],
            )  # fmt: skip
        return out, losses


def distillation_terms(losses, config: DGIConfig, switches: dict[str, bool]) -> dict[str, torch.Tensor]:
    values = {"cross": losses.cross, "self": losses.self, "attention": losses.attention}
    return {name: getattr(config, f"weight_{name}") * values[name] for name in DISTILLATIONS if switches[name]}


def l1_loss(predicted: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, config: DGIConfig) -> torch.Tensor:
    """``w_l1 |y - x|`` in [-1, 1], mean over every pixel; with ``weight_l1_hole`` set, PConv's split
    ``w_l1 mean((1 - m) |y - x|) + w_l1_hole mean(m |y - x|)`` (both means over every pixel, so the two parts add up
    to the plain L1 at equal weights)."""
    error = ((predicted - image) * 2).abs()
    if config.weight_l1_hole is None:
        return config.weight_l1 * error.mean()
    hole = mask.to(error.dtype)
    return config.weight_l1 * (error * (1 - hole)).mean() + config.weight_l1_hole * (error * hole).mean()


def task_loss(predicted: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, config: DGIConfig,
              perceptual) -> torch.Tensor:  # fmt: skip
    """The inpainting loss the meta step optimises: the L1 of :func:`l1_loss` (+ ``w_perc`` perceptual)."""
    loss = l1_loss(predicted, image, mask, config)
    if perceptual is not None and config.weight_perceptual > 0:
        loss = loss + config.weight_perceptual * perceptual(predicted, image)
    return loss


def meta_step(objective: StudentObjective, teacher_attention, image, mask, teacher_features, args, switches,
              perceptual) -> torch.Tensor:  # fmt: skip
    """L2T-ww's look-ahead: gradients of the meta-networks (left in their ``.grad``); returns the meta loss."""
    config = objective.student.config
    meta_ids = {id(p) for p in objective.distiller.meta_parameters()}
    theta = {n: p.detach().requires_grad_(True) for n, p in objective.named_parameters() if id(p) not in meta_ids}
    names = list(theta)

    def run(weights):
        return functional_call(objective, weights, (image, mask, teacher_features, teacher_attention, switches))

    def sgd(weights, loss):
        grads = torch.autograd.grad(loss, [weights[n] for n in names], create_graph=True, allow_unused=True)
        return {n: w if g is None else w - args.meta_lookahead_lr * g for (n, w), g in zip(weights.items(), grads)}

    for _ in range(args.meta_inner_steps):
        _, losses = run(theta)
        theta = sgd(theta, sum(distillation_terms(losses, config, switches).values()))
    out, _ = run(theta)
    theta = sgd(theta, task_loss(out.predicted, image, mask, config, perceptual))
    out, _ = run(theta)
    meta_loss = task_loss(out.predicted, image, mask, config, perceptual)
    meta_params = objective.distiller.meta_parameters()
    grads = torch.autograd.grad(meta_loss, meta_params, allow_unused=True)
    for p, g in zip(meta_params, grads, strict=True):
        p.grad = None if g is None else g.detach()
    return meta_loss.detach()


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

    student = build_student(args)
    config = student.config
    if args.resolution % config.size_multiple or args.resolution < config.min_size:
        raise ValueError(f"--resolution {args.resolution} does not suit this model (multiple of "
                         f"{config.size_multiple}, at least {config.min_size})")  # fmt: skip
    needs_vgg = config.weight_perceptual > 0 or config.weight_style > 0
    if needs_vgg and not args.vgg_weights:
        raise ValueError(
            f"the perceptual ({config.weight_perceptual}) and style ({config.weight_style}) terms need VGG19 "
            "weights: give --vgg-weights (torchvision's vgg19-dcbb9e9d.pth), or --weight-perceptual 0 --weight-style 0"
        )
    perceptual = PerceptualLoss.from_file(args.vgg_weights, kind="vgg19", weight=1.0) if needs_vgg else None
    switches = {name: getattr(args, f"{name}_distill") for name in DISTILLATIONS}
    teacher, distiller, critic = DGITeacher(config), DGIDistiller(config), DGIDiscriminator(config)
    objective = StudentObjective(student, distiller)
    device = accelerator.device
    for module in (student, teacher, distiller, critic, *([perceptual] if perceptual else [])):
        module.to(device)

    betas = tuple(args.adam_betas)
    optimizer_g = torch.optim.Adam([*student.parameters(), *distiller.inner_parameters()], lr=args.lr_generator,
                                   betas=betas)  # fmt: skip
    optimizer_t = torch.optim.Adam(teacher.parameters(), lr=args.lr_teacher, betas=betas)
    optimizer_d = torch.optim.Adam(critic.parameters(), lr=args.lr_discriminator, betas=betas)
    optimizer_meta = torch.optim.Adam(
        distiller.meta_parameters(), lr=args.meta_lr, weight_decay=args.meta_weight_decay
    )

    train_set = InpaintDataset(
        args.train_data, size=args.resolution, mask_protocol=args.mask_protocol, crop=args.crop, jitter=args.jitter,
        seed=args.seed, mask_size=args.mask_size,
    )  # fmt: skip
    sampler = ResumableRandomSampler(len(train_set), seed=args.seed)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=args.train_batch_size, sampler=sampler, num_workers=args.num_workers, drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
    )  # fmt: skip
    val_set = None
    if args.val_data:
        val_set = InpaintDataset(
            args.val_data, size=args.resolution, mask_protocol=args.val_mask_protocol, crop="center", flip=False,
            seed=args.seed, mask_size=args.mask_size,
        )  # fmt: skip

    # The meta optimiser is not prepared: its gradients come from an unscaled loss (autograd.grad in float32), and a
    # prepared optimiser would unscale them under fp16. It is saved with the checkpoints all the same.
    optimizer_g, optimizer_t, optimizer_d, loader = accelerator.prepare(optimizer_g, optimizer_t, optimizer_d, loader)
    accelerator.register_for_checkpointing(student, teacher, distiller, critic, optimizer_meta)
    trained_by_g = nn.ModuleList([student, distiller.cross_adapters, distiller.self_adapters])
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
            "dgi", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        )
    logger.info(
        f"{len(train_set)} training images, {batches_per_epoch} batches per epoch and process; student "
        f"{student.num_parameters():,} parameters, teacher {sum(p.numel() for p in teacher.parameters()):,}, "
        f"distillation {sum(p.numel() for p in distiller.parameters()):,}, critic "
        f"{sum(p.numel() for p in critic.parameters()):,}; distillation {switches}, meta {args.meta}"
    )
    progress = tqdm(total=args.max_steps, initial=step, desc="steps", disable=not accelerator.is_local_main_process)
    adversarial = config.weight_adversarial > 0
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
            image, mask = batch["image"], batch["mask"]
            real = image * 2 - 1
            distilling = any(switches.values()) and step >= args.teacher_warmup_steps
            active = {name: on and distilling for name, on in switches.items()}

            # ---- teacher: reconstruct the whole image (not run at all when every distillation is switched off:
            # nothing reads it, and the no-distillation ablation then costs what the student alone costs)
            loss_t, teacher_features = torch.zeros((), device=device), None
            if any(switches.values()):
                with accelerator.autocast():
                    reconstruction, teacher_features, _ = teacher(image)
                    loss_t = ((reconstruction - image) * 2).abs().mean()
                    if perceptual is not None and config.weight_perceptual > 0:
                        loss_t = loss_t + config.weight_perceptual * perceptual(reconstruction, image)
                # float32 whatever the autocast: the meta step below runs outside it
                teacher_features = tuple(f.detach().float() for f in teacher_features)

            # ---- student and distillation
            with accelerator.autocast():
                out, distilled = objective(image, mask, teacher_features, teacher.network.attention, active)
                losses = {"l1": l1_loss(out.predicted, image, mask, config)}
                if perceptual is not None:
                    if config.weight_perceptual > 0:
                        losses["perceptual"] = config.weight_perceptual * perceptual(out.predicted, image)
                    if config.weight_style > 0:
                        losses["style"] = config.weight_style * gram_style_loss(perceptual, out.predicted, image)
                if distilled is not None:
                    losses.update(distillation_terms(distilled, config, active))
                completed = out.inpainted * 2 - 1

            # ---- critic, on this batch's composites (detached)
            if adversarial:
                critic.requires_grad_(True)
                with accelerator.autocast():
                    logits_real, logits_fake = critic(torch.cat([real, completed.detach()])).chunk(2)
                    loss_d, _ = non_saturating_discriminator_loss(logits_real, logits_fake)
                accelerator.backward(loss_d)
                average_gradients(accelerator, critic)
                clip_gradients(accelerator, critic, optimizer_d, args.max_grad_norm)
                optimizer_d.step()
                optimizer_d.zero_grad(set_to_none=True)
                critic.requires_grad_(False)
                with accelerator.autocast():
                    losses["adversarial"] = config.weight_adversarial * non_saturating_generator_loss(
                        critic(completed)
                    )

            loss_g = sum(losses.values())
            accelerator.backward(loss_g + loss_t)
            average_gradients(accelerator, student, distiller, *([teacher] if teacher_features is not None else []))
            clip_gradients(accelerator, trained_by_g, optimizer_g, args.max_grad_norm)
            if teacher_features is not None:
                clip_gradients(accelerator, teacher, optimizer_t, args.max_grad_norm)
            optimizer_g.step()
            optimizer_g.zero_grad(set_to_none=True)
            optimizer_meta.zero_grad(set_to_none=True)  # the meta-networks' gradients of this pass are not theirs

            # ---- meta step: the meta-networks learn from the look-ahead student's task loss. Before the teacher's
            # step, so that its attention is the one that made this batch's teacher features.
            meta_loss = None
            if args.meta and distilling and step % args.meta_every == 0:
                # float32 (outside autocast): second-order gradients
                meta_loss = meta_step(objective, teacher.network.attention, image, mask, teacher_features, args,
                                      active, perceptual)  # fmt: skip
                average_gradients(accelerator, *distiller.meta_modules())
                optimizer_meta.step()
                optimizer_meta.zero_grad(set_to_none=True)
            if teacher_features is not None:
                optimizer_t.step()
                optimizer_t.zero_grad(set_to_none=True)

            step += 1
            progress.update(1)
            if step % args.logging_steps == 0 or step == args.max_steps:
                scalars = {f"train/g_{k}": accelerator.reduce(v.detach(), "mean").item() for k, v in losses.items()}
                scalars["train/g_total"] = accelerator.reduce(loss_g.detach(), "mean").item()
                if teacher_features is not None:
                    scalars["train/teacher_l1"] = accelerator.reduce(loss_t.detach(), "mean").item()
                if adversarial:
                    scalars["train/d_total"] = accelerator.reduce(loss_d.detach(), "mean").item()
                if meta_loss is not None:
                    scalars["train/meta_task"] = accelerator.reduce(meta_loss, "mean").item()
                scalars["train/seconds_per_step"] = (time.perf_counter() - start) / args.logging_steps
                start = time.perf_counter()
                log_scalars(accelerator, scalars, step)
                progress.set_postfix({k.split("/")[1]: f"{v:.3f}" for k, v in scalars.items() if k.endswith("_total")})
            if val_set is not None and (step % args.validation_steps == 0 or step == args.max_steps):
                if accelerator.is_main_process:
                    metrics = validate(accelerator, student, val_set, args, step)
                    accelerator.log(metrics, step=step)
                    logger.info(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
                accelerator.wait_for_everyone()
            if step % args.checkpointing_steps == 0 or step == args.max_steps:
                position = checkpoint_position(epoch, batch_in_epoch, batches_per_epoch)
                save_checkpoint(accelerator, args, student, {"step": step, **position, "run": signature})
            if step >= args.max_steps:
                break
        else:
            epoch, batch_in_epoch = epoch + 1, 0
            continue
        break
    progress.close()

    if args.dump_rank_state:
        models = {"student": student, "teacher": teacher, "distiller": distiller, "critic": critic}
        dump_rank_state(accelerator, output_dir, seen_indices, models)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        student.save_pretrained(output_dir / "final", model_card=args.model_card)
        logger.info(f"saved the final student to {output_dir / 'final'} after {step} steps")
    accelerator.end_training()


if __name__ == "__main__":
    main()
