"""Convert an original PEN-Net generator checkpoint (researchmm/PEN-Net-for-Inpainting, branch ``pytorch``).

The authors release one folder per dataset (Places2, CelebA-HQ, DTD, Facade; Google Drive links in their README), to
be unpacked under ``release_model/``::

    release_model/pennet_places2/gen_00050.pth   {'netG': generator state dict}   (plain tensors)
    release_model/pennet_places2/latest.ckpt     text file naming the latest iteration

All four use the same generator (cnum = 32, 10,231,538 parameters), so no config file is needed::

    python -m inpaint_hub.models.pennet.convert_pennet_original \\
        --checkpoint release_model/pennet_places2/gen_00050.pth --output converted/pennet-places2 \\
        [--push-to-hub ORG/pennet-places2]

``--checkpoint`` may also be the folder (the file named by ``latest.ckpt`` is used). What it does, in order:

1. reads the file without executing pickled code (:func:`inpaint_hub.conversion_utils.load_original_checkpoint`);
2. infers the width (``base_channels``, ``max_channels``) from the tensor shapes and checks it against the layout;
3. renames every tensor to our names, each original key used exactly once and every model tensor filled, then loads
   strictly;
4. proves the port: runs our model and an independent functional implementation of the original forward pass that
   reads the *original* tensor names (:func:`original_pennet_forward`) on random inputs, with the original test
   script's conventions, and requires max |difference| <= 5e-4 on the output, the composite and the pyramid;
5. ``save_pretrained`` with the model card (``model_cards/pennet-places2.md`` for the released width) and a
   conversion record (source sha256, parity numbers);
6. optionally pushes the folder to the Hub.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from ...conversion_utils import file_sha256, load_original_checkpoint, map_state_dict
from .configuration_pennet import NUM_LEVELS, PENNetConfig
from .modeling_pennet import PENNetModel


logger = logging.getLogger(__name__)

PARITY_TOLERANCE = 5e-4  # max |ours - original|; the golden fixture measures original-vs-original noise 9.2e-5
MODEL_CARDS = Path(__file__).resolve().parents[3] / "model_cards"
RELEASED_DATASETS = ("places2", "celebahq", "dtd", "facade")


# ------------------------------------------------------------------------------------------------- reading


def load_generator_state_dict(checkpoint: str | Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The ``netG`` tensors of a released ``gen_XXXXX.pth`` (or of the folder's ``latest.ckpt`` iteration).

    Returns:
        ``(state_dict, file)``. A bare state dict (no ``netG`` wrapper) and DataParallel's ``module.`` prefix are
        accepted too.
    """
    path = Path(checkpoint)
    if path.is_dir():
        latest = path / "latest.ckpt"
        if not latest.is_file():
            raise FileNotFoundError(f"{path} is a folder without latest.ckpt; pass the gen_XXXXX.pth file itself")
        iteration = latest.read_text(encoding="utf-8").strip()
        if not iteration.isdigit():
            raise ValueError(f"{latest} should hold an iteration number such as 00050, found {iteration[:40]!r}")
        path = path / f"gen_{int(iteration):05d}.pth"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found (expected release_model/pennet_<dataset>/gen_XXXXX.pth)")
    loaded = load_original_checkpoint(path)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} holds a {type(loaded).__name__}, not the {{'netG': state_dict}} of PEN-Net")
    if "netG" in loaded:
        state = loaded["netG"]
    elif "netD" in loaded:
        raise ValueError(f"{path} is a discriminator checkpoint (netD); convert the gen_XXXXX.pth next to it")
    else:
        state = loaded
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: 'netG' is not a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return state, path


def config_from_state_dict(original: dict[str, torch.Tensor]) -> PENNetConfig:
    """The :class:`PENNetConfig` whose widths match the tensors (the released models: the defaults)."""
    try:
        first = original["dw_conv01.0.weight"]
        deepest = original["dw_conv06.0.weight"]
    except KeyError as err:
        raise ValueError(f"not a PEN-Net generator: tensor {err.args[0]!r} is missing") from None
    base, in_channels = first.shape[0], first.shape[1]
    if in_channels != 4:
        raise ValueError(f"dw_conv01 takes {in_channels} input channels; PEN-Net's generator takes 4")
    fuse = sorted({int(m.group(1)) for k in original if (m := re.fullmatch(r"at_conv01\.conv(\d+)\.0\.weight", k))})
    dilations = tuple(2**i for i in range(len(fuse))) if fuse else (1, 2, 4, 8)
    return PENNetConfig(base_channels=base, max_channels=deepest.shape[0], fuse_dilations=dilations)


# ------------------------------------------------------------------------------------------------- key renaming


def rename_key(original: str) -> str:
    """Our name for one original generator tensor name."""
    rules = (
        (r"dw_conv0([1-6])\.0\.(weight|bias)", lambda m: f"encoder.{int(m[1]) - 1}.0.{m[2]}"),
        (r"at_conv0([1-4])\.conv0(\d)\.0\.(weight|bias)", lambda m: f"attention.{int(m[1]) - 1}.fuse.{m[2]}.0.{m[3]}"),
        (r"up_conv0([1-5])\.0\.(weight|bias)", lambda m: f"decoder.{int(m[1]) - 1}.0.{m[2]}"),
        (r"torgb([1-5])\.0\.(weight|bias)", lambda m: f"to_rgb.{int(m[1]) - 1}.0.{m[2]}"),
        (r"decoder\.([02])\.(weight|bias)", lambda m: f"head.{m[1]}.{m[2]}"),
    )
    for pattern, build in rules:
        match = re.fullmatch(pattern, original)
        if match:
            return build(match)
    raise ValueError(f"unexpected original tensor {original!r}")


def convert_state_dict(original: dict[str, torch.Tensor], config: PENNetConfig) -> dict[str, torch.Tensor]:
    """Rename every original tensor; each is used exactly once and every model tensor must be filled.

    Raises:
        ValueError: a tensor has no place in the model, two map to one place, a shape differs, or a model tensor is
            left without a value (all offenders are named; :func:`inpaint_hub.conversion_utils.map_state_dict`).
    """
    return map_state_dict(original, rename_key, PENNetModel(config).state_dict(), "PEN-Net's generator")


# ------------------------------------------------------------------------------------------------- parity check


def _original_atnconv(sd, name: str, x1, x2, mask, ksize: int, fuse: bool) -> torch.Tensor:
    """``AtnConv.forward`` as the original computes it: one full (L x h x w) score tensor per sample."""
    b, _, h, w = x2.shape
    pad = 0 if ksize == 1 else 1
    raw = F.unfold(x1, 4, padding=1, stride=2)  # [B, C1*16, L]
    raw = raw.transpose(1, 2).reshape(b, h * w, x1.shape[1], 4, 4)
    patches = F.unfold(x2, ksize, padding=pad).transpose(1, 2).reshape(b, h * w, x2.shape[1], ksize, ksize)
    m = F.interpolate(mask, size=(h, w), mode="bilinear", align_corners=True)
    m = F.unfold(m, ksize, padding=pad).mean(dim=1)  # [B, L]: mean of each mask patch
    out = []
    for i in range(b):
        mm = (m[i] == 0).float().view(1, -1, 1, 1)
        wi = patches[i]
        wi = wi / torch.clamp(torch.sqrt((wi**2).sum(dim=(1, 2, 3), keepdim=True)), min=1e-4)
        yi = F.conv2d(x2[i : i + 1], wi, padding=pad) * mm
        yi = (F.softmax(yi * 10.0, dim=1) * mm).clamp(min=1e-8)
        out.append(F.conv_transpose2d(yi, raw[i], stride=2, padding=1) / 4.0)
    y = torch.cat(out)
    if fuse:
        branches = sorted({k.split(".")[1] for k in sd if k.startswith(name + ".conv")})
        y = torch.cat(
            [
                F.relu(F.conv2d(y, sd[f"{name}.{c}.0.weight"], sd[f"{name}.{c}.0.bias"], padding=2**j, dilation=2**j))
                for j, c in enumerate(branches)
            ],
            dim=1,
        )
    return y


@torch.no_grad()
def original_pennet_forward(sd: dict[str, torch.Tensor], image: torch.Tensor, mask: torch.Tensor) -> dict:
    """The original ``test.py`` + ``InpaintGenerator.forward`` from the *original* tensor names.

    Written independently of :class:`PENNetModel` (no shared modules, unchunked attention, original key names) so
    that agreement shows the renaming put every tensor in its place.

    Args:
        image: ``[B, 3, H, W]`` in [0, 1] (H, W multiples of 64); mask ``[B, 1, H, W]``, 1 = hole.

    Returns:
        ``{"output", "comp", "pyramid_0" ... "pyramid_4"}`` in [-1, 1], the golden fixture's keys.
    """

    def conv(x, name, stride=1, padding=1):
        return F.conv2d(x, sd[name + ".weight"], sd[name + ".bias"], stride=stride, padding=padding)

    def up(t):
        return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=True)

    images = image * 2 - 1
    x = torch.cat([images * (1 - mask) + mask, mask], dim=1)
    xs = []
    for level in range(1, NUM_LEVELS + 1):
        x = conv(x, f"dw_conv0{level}.0", stride=2)
        x = F.relu(x) if level == NUM_LEVELS else F.leaky_relu(x, 0.2)
        xs.append(x)
    x1, x2, x3, x4, x5, x6 = xs
    x5 = _original_atnconv(sd, "at_conv05", x5, x6, mask, ksize=1, fuse=False)
    x4 = _original_atnconv(sd, "at_conv04", x4, x5, mask, ksize=3, fuse=True)
    x3 = _original_atnconv(sd, "at_conv03", x3, x4, mask, ksize=3, fuse=True)
    x2 = _original_atnconv(sd, "at_conv02", x2, x3, mask, ksize=3, fuse=True)
    x1 = _original_atnconv(sd, "at_conv01", x1, x2, mask, ksize=3, fuse=True)
    upx5 = F.relu(conv(up(x6), "up_conv05.0"))
    upx4 = F.relu(conv(up(torch.cat([upx5, x5], 1)), "up_conv04.0"))
    upx3 = F.relu(conv(up(torch.cat([upx4, x4], 1)), "up_conv03.0"))
    upx2 = F.relu(conv(up(torch.cat([upx3, x3], 1)), "up_conv02.0"))
    upx1 = F.relu(conv(up(torch.cat([upx2, x2], 1)), "up_conv01.0"))
    pyramid = [
        torch.tanh(conv(torch.cat([u, s], 1), f"torgb{k}.0", padding=0))
        for k, (u, s) in enumerate(((upx1, x1), (upx2, x2), (upx3, x3), (upx4, x4), (upx5, x5)), start=1)
    ]
    hidden = F.relu(conv(up(torch.cat([upx1, x1], 1)), "decoder.0"))
    output = torch.tanh(conv(hidden, "decoder.2"))
    result = {"output": output, "comp": (1 - mask) * images + mask * output}
    result.update({f"pyramid_{k}": p for k, p in enumerate(pyramid)})
    return result


@torch.no_grad()
def ours_forward(model: PENNetModel, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Our model, its outputs mapped back to the original's [-1, 1] keys."""
    out = model(image, mask)
    result = {"output": out.predicted * 2 - 1, "comp": out.inpainted * 2 - 1}
    result.update({f"pyramid_{k}": p * 2 - 1 for k, p in enumerate(out.pyramid)})
    return result


def verify_parity(
    model: PENNetModel, original: dict[str, torch.Tensor], sizes=((128, 128), (64, 192)), seed: int = 0
) -> float:
    """Max |ours - original| over every output key, on random images and masks (non-square included).

    Raises:
        ValueError: the difference exceeds :data:`PARITY_TOLERANCE`.
    """
    rng = torch.Generator().manual_seed(seed)
    worst = 0.0
    for h, w in sizes:
        image = torch.rand(2, 3, h, w, generator=rng)
        mask = torch.zeros(2, 1, h, w)
        mask[0, :, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1
        mask[1, :, h // 8 : h // 2, w // 3 :] = 1
        mask[:, :, torch.rand(h, w, generator=rng) < 0.02] = 1
        ours, reference = ours_forward(model, image, mask), original_pennet_forward(original, image, mask)
        for key, value in reference.items():
            worst = max(worst, float((ours[key] - value).abs().max()))
    if not worst <= PARITY_TOLERANCE:
        raise ValueError(f"converted model differs from the original forward pass by {worst:.3g} > {PARITY_TOLERANCE}")
    return worst


# ------------------------------------------------------------------------------------------------- card and main


def model_card(config: PENNetConfig, checkpoint: Path, sha256: str, parity: float) -> str:
    card_path = MODEL_CARDS / "pennet-places2.md"
    released = config == PENNetConfig.places2()
    if released and card_path.is_file():
        card = card_path.read_text(encoding="utf-8")
        # the release folder's name (release_model/pennet_<dataset>/gen_XXXXX.pth), not the whole path
        match = re.fullmatch(r"pennet[_-](" + "|".join(RELEASED_DATASETS) + ")", checkpoint.parent.name.lower())
        dataset = match[1] if match else None
        if dataset not in (None, "places2"):
            card += (
                f"\n\n> **Note.** This folder was converted from the `{dataset}` release, not Places2: the "
                "architecture and conversion are the same, but the training data, licence notes and reported numbers "
                f"above are those of the Places2 model. Edit this card before publishing the `{dataset}` weights.\n"
            )
    else:
        if released:
            logger.warning("model card %s not found (run from a source checkout); writing a generic card", card_path)
        card = (
            "---\nlibrary_name: inpaint-hub\nlicense: mit\npipeline_tag: image-to-image\n"
            "tags:\n- image-inpainting\n- pennet\n---\n\n"
            f"# PEN-Net ({config.base_channels} base channels), converted from an original checkpoint\n"
        )
    return card.rstrip() + (
        "\n\n## Conversion record\n\n"
        f"- source: `{checkpoint.name}` (sha256 `{sha256}`)\n"
        "- converted with `python -m inpaint_hub.models.pennet.convert_pennet_original`\n"
        "- parity with the original forward pass (functional re-implementation on the original tensors, unchunked "
        f"attention, random inputs incl. non-square): max |diff| = {parity:.2e} (tolerance {PARITY_TOLERANCE:g})\n"
    )


def convert(
    checkpoint: str | Path, output: str | Path, push_to_hub: str | None = None, private: bool | None = None
) -> tuple[PENNetModel, float]:
    """Convert, verify and save. Returns the model and the measured parity (max |diff|)."""
    original, path = load_generator_state_dict(checkpoint)
    config = config_from_state_dict(original)
    logger.info("architecture: %s", config)
    model = PENNetModel(config)
    model.load_weights(convert_state_dict(original, config), strict=True, source=str(path))
    model.eval()
    parity = verify_parity(model, original)
    logger.info("parity with the original forward pass: max |diff| = %.3g", parity)
    card = model_card(config, path, file_sha256(path), parity)
    model.save_pretrained(output, model_card=card)
    logger.info("saved %s", output)
    if push_to_hub:
        url = model.push_to_hub(push_to_hub, model_card=card, private=private)
        logger.info("pushed to %s", url)
    return model, parity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="gen_XXXXX.pth ({'netG': ...}) or its release folder")
    parser.add_argument("--output", required=True, help="folder to write config.json, model.safetensors, README.md")
    parser.add_argument("--push-to-hub", metavar="ORG/NAME", help="also upload the folder to this Hub repository")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        _, parity = convert(args.checkpoint, args.output, args.push_to_hub, args.private or None)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"converted {args.checkpoint} -> {args.output} (parity max |diff| {parity:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
