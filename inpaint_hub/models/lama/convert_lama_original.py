"""Convert an original LaMa checkpoint (advimman/lama) to inpaint-hub's format.

The authors release each model as a folder::

    big-lama/config.yaml       the hydra-composed training config; its ``generator:`` block is the architecture
    big-lama/models/best.ckpt  a PyTorch-Lightning checkpoint; generator tensors ``generator.model.<i>.*``

Get big-lama from https://huggingface.co/smartywu/big-lama/resolve/main/big-lama.zip (or the authors' Google Drive
folder, which also holds lama-fourier), unzip, then::

    python -m inpaint_hub.models.lama.convert_lama_original \\
        --checkpoint big-lama/models/best.ckpt --config big-lama/config.yaml --output converted/big-lama \\
        [--push-to-hub ORG/lama-big]

What it does, in order:

1. reads the checkpoint without executing pickled code (:func:`inpaint_hub.conversion_utils.load_original_checkpoint`;
   Lightning's pickled hyper-parameters are skipped, a pickle that tries to run code is refused);
2. builds a :class:`LamaConfig` from the ``generator:`` block (big-lama, lama-fourier or any ``ffc_resnet`` block we
   support; anything else is an error that names the option);
3. renames every ``generator.model.*`` tensor to our names, each original key used exactly once and every model
   tensor filled (anything left over or missing is an error), then loads strictly;
4. proves the port: runs our model and an independent functional implementation of the original forward pass that
   reads the *original* tensor names (:func:`original_lama_forward`) on random inputs of several sizes, with the
   original predict script's conventions, and requires max |difference| <= 1e-4;
5. ``save_pretrained`` with the model card (``model_cards/lama-<variant>.md`` when the architecture is a released
   preset), plus a conversion record (source sha256, parity numbers) appended to the card;
6. optionally pushes the folder to the Hub.

Our module names are our own; the original names live only here.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...conversion_utils import (
    extract_state_dict,
    file_sha256,
    load_original_checkpoint,
    load_yaml_config,
    map_state_dict,
)
from .configuration_lama import LamaConfig
from .modeling_lama import LamaModel


logger = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4  # max |ours - original| allowed; the golden fixture measures original-vs-original noise 8.6e-6
MODEL_CARDS = Path(__file__).resolve().parents[3] / "model_cards"

# Generator options we reproduce, with the only values we support for the fixed ones.
_SUPPORTED_FIXED = {
    "kind": "ffc_resnet",
    "add_out_act": "sigmoid",
    "padding_type": "reflect",
    "out_ffc": False,
    "resnet_dilation": 1,
    "spatial_transform_layers": None,
}
_ARCH_KEYS = {
    "input_nc": "in_channels",
    "output_nc": "out_channels",
    "ngf": "base_channels",
    "n_downsampling": "num_downsampling",
    "n_blocks": "num_residual_blocks",
    "max_features": "max_channels",
}
_CONV_KWARGS = ("init_conv_kwargs", "downsample_conv_kwargs", "resnet_conv_kwargs")


# ------------------------------------------------------------------------------------------------- config


def config_from_original(train_config: dict[str, Any]) -> LamaConfig:
    """Build a :class:`LamaConfig` from a LaMa training config (its ``generator:`` and ``discriminator:`` blocks).

    Raises:
        ValueError: the block is missing, or uses an option this port does not implement (named in the message).
    """
    generator = train_config.get("generator")
    if not isinstance(generator, dict):
        raise ValueError("the LaMa config has no 'generator:' block; pass the config.yaml shipped with the checkpoint")
    fields: dict[str, Any] = {}
    for key, value in generator.items():
        if key in _ARCH_KEYS:
            fields[_ARCH_KEYS[key]] = value
        elif key in _SUPPORTED_FIXED:
            if value != _SUPPORTED_FIXED[key]:
                raise ValueError(f"generator.{key} = {value!r} is not supported (only {_SUPPORTED_FIXED[key]!r})")
        elif key not in _CONV_KWARGS:
            raise ValueError(f"generator option {key!r} is not supported by this port of FFCResNetGenerator")

    ratios = {}
    for block in _CONV_KWARGS:
        kwargs = generator.get(block) or {}
        unknown = set(kwargs) - {"ratio_gin", "ratio_gout", "enable_lfu"}
        if unknown:
            raise ValueError(f"generator.{block} options {sorted(unknown)} are not supported")
        if kwargs.get("enable_lfu", False):
            raise ValueError(f"generator.{block}.enable_lfu = true (the local Fourier unit) is not supported")
        ratios[block] = (float(kwargs.get("ratio_gin", 0)), float(kwargs.get("ratio_gout", 0)))
    if ratios["init_conv_kwargs"] != (0.0, 0.0) or ratios["downsample_conv_kwargs"] != (0.0, 0.0):
        raise ValueError(
            "only generators whose stem and downsampling convolutions are purely local (ratio 0) are supported, got "
            f"init {ratios['init_conv_kwargs']}, downsample {ratios['downsample_conv_kwargs']}"
        )
    ratio_in, ratio_out = ratios["resnet_conv_kwargs"]
    if ratio_in != ratio_out:
        raise ValueError(f"resnet_conv_kwargs ratio_gin ({ratio_in}) != ratio_gout ({ratio_out}) is not supported")
    fields["global_ratio"] = ratio_in

    discriminator = train_config.get("discriminator") or {}
    if discriminator:
        if discriminator.get("kind", "pix2pixhd_nlayer") != "pix2pixhd_nlayer":
            raise ValueError(f"discriminator kind {discriminator['kind']!r} is not supported")
        fields["discriminator_base_channels"] = discriminator.get("ndf", 64)
        fields["discriminator_num_layers"] = discriminator.get("n_layers", 4)
    return LamaConfig(**fields)


# ------------------------------------------------------------------------------------------------- key renaming

# Within one FFC_BN_ACT (original prefix -> ours); the 'ffc.' level disappears.
_FFC_RENAMES = [
    ("ffc.convl2l.", "conv_l2l."),
    ("ffc.convl2g.", "conv_l2g."),
    ("ffc.convg2l.", "conv_g2l."),
    ("ffc.convg2g.conv1.0.", "spectral_g2g.reduce."),
    ("ffc.convg2g.conv1.1.", "spectral_g2g.reduce_norm."),
    ("ffc.convg2g.fu.conv_layer.", "spectral_g2g.fourier.conv."),
    ("ffc.convg2g.fu.bn.", "spectral_g2g.fourier.norm."),
    ("ffc.convg2g.conv2.", "spectral_g2g.expand."),
    ("bn_l.", "norm_local."),
    ("bn_g.", "norm_global."),
]


def _rename_ffc(rest: str, original: str) -> str:
    for old, new in _FFC_RENAMES:
        if rest.startswith(old):
            return new + rest[len(old) :]
    raise ValueError(f"unexpected original tensor {original!r}")


def rename_key(original: str, config: LamaConfig) -> str:
    """Our name for one original generator tensor name (without the ``generator.`` prefix).

    The original generator is one ``nn.Sequential`` (``model.<i>``): [pad, stem, downsampling x n_down,
    residual blocks x n_blocks, concat, (conv-transpose, BN, ReLU) x n_down, pad, conv, sigmoid].
    """
    match = re.fullmatch(r"model\.(\d+)\.(.+)", original)
    if not match:
        raise ValueError(f"unexpected original tensor {original!r} (expected 'model.<index>.<...>')")
    index, rest = int(match.group(1)), match.group(2)
    n_down, n_blocks = config.num_downsampling, config.num_residual_blocks
    first_block = 2 + n_down
    first_up = first_block + n_blocks + 1
    head = first_up + 3 * n_down + 1

    if index == 1:
        return "stem." + _rename_ffc(rest, original)
    if 2 <= index < first_block:
        return f"downsample.{index - 2}." + _rename_ffc(rest, original)
    if first_block <= index < first_block + n_blocks:
        block = re.fullmatch(r"(conv[12])\.(.+)", rest)
        if not block:
            raise ValueError(f"unexpected original tensor {original!r} in residual block {index - first_block}")
        return f"blocks.{index - first_block}.{block.group(1)}." + _rename_ffc(block.group(2), original)
    if first_up <= index < head - 1:
        stage, part = divmod(index - first_up, 3)
        if part < 2:
            return f"upsample.{stage}.{('conv', 'norm')[part]}.{rest}"
    if index == head:
        return f"head.{rest}"
    raise ValueError(f"unexpected original tensor {original!r}: layer {index} holds no weights in this architecture")


def convert_state_dict(original: dict[str, torch.Tensor], config: LamaConfig) -> dict[str, torch.Tensor]:
    """Rename every original generator tensor; each is used exactly once and every model tensor must be filled.

    Raises:
        ValueError: an original tensor has no place in the model, two map to the same place, a shape differs, or a
            model tensor is left without a value (all offenders are named;
            :func:`inpaint_hub.conversion_utils.map_state_dict`).
    """
    expected = LamaModel(config).state_dict()
    return map_state_dict(original, lambda key: rename_key(key, config), expected, "the config's architecture")


# ------------------------------------------------------------------------------------------------- parity check


def _original_bn(x: torch.Tensor, sd: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    return F.batch_norm(
        x, sd[prefix + "running_mean"], sd[prefix + "running_var"], sd[prefix + "weight"], sd[prefix + "bias"],
        training=False, eps=1e-5,
    )  # fmt: skip


def _original_conv(x: torch.Tensor, weight: torch.Tensor, stride: int, pad: int) -> torch.Tensor:
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    return F.conv2d(x, weight, stride=stride)


def _original_ffc_bn_act(sd: dict[str, torch.Tensor], p: str, x_l, x_g, stride: int, pad: int):
    """``FFC_BN_ACT`` from its original tensor names; ``x_g`` is the integer 0 when there is no global input."""

    def has(name: str) -> bool:
        return p + name in sd

    out_l = _original_conv(x_l, sd[p + "ffc.convl2l.weight"], stride, pad)
    if has("ffc.convg2l.weight") and not isinstance(x_g, int):
        out_l = out_l + _original_conv(x_g, sd[p + "ffc.convg2l.weight"], stride, pad)
    out_l = torch.relu(_original_bn(out_l, sd, p + "bn_l."))
    if not has("bn_g.weight"):
        return out_l, 0
    out_g = _original_conv(x_l, sd[p + "ffc.convl2g.weight"], stride, pad)
    if has("ffc.convg2g.conv1.0.weight") and not isinstance(x_g, int):
        s = p + "ffc.convg2g."
        y = torch.relu(_original_bn(F.conv2d(x_g, sd[s + "conv1.0.weight"]), sd, s + "conv1.1."))
        b, c, h, w = y.shape
        ff = torch.fft.rfftn(y, dim=(-2, -1), norm="ortho")
        ff = torch.stack((ff.real, ff.imag), dim=-1).permute(0, 1, 4, 2, 3).reshape(b, 2 * c, h, -1)
        ff = torch.relu(_original_bn(F.conv2d(ff, sd[s + "fu.conv_layer.weight"]), sd, s + "fu.bn."))
        ff = ff.reshape(b, c, 2, h, -1).permute(0, 1, 3, 4, 2)
        fu = torch.fft.irfftn(torch.complex(ff[..., 0], ff[..., 1]), s=(h, w), dim=(-2, -1), norm="ortho")
        out_g = out_g + F.conv2d(y + fu, sd[s + "conv2.weight"])
    return out_l, torch.relu(_original_bn(out_g, sd, p + "bn_g."))


@torch.no_grad()
def original_lama_forward(
    generator_state_dict: dict[str, torch.Tensor], config: LamaConfig, image: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The original ``bin/predict.py`` pipeline, computed functionally from the *original* tensor names.

    Written independently of :class:`LamaModel` (no shared modules, original key names and layer indices) so that
    agreement between the two shows the renaming put every tensor in its place.

    Args:
        generator_state_dict: original names without the ``generator.`` prefix (``model.<i>...``).
        image: [3, H, W] float32 in [0, 1]; mask: [1, H, W] float32 (any non-zero = hole).

    Returns:
        ``(inpainted, predicted_image)``, each [3, H, W], cropped back to H x W.
    """
    sd = generator_state_dict
    h, w = image.shape[-2:]
    mod = config.size_multiple

    def pad(a: np.ndarray) -> np.ndarray:  # bottom/right, numpy 'symmetric', as pad_img_to_modulo
        return np.pad(a, ((0, 0), (0, -h % mod), (0, -w % mod)), mode="symmetric")

    img = torch.from_numpy(pad(image))[None]
    m = (torch.from_numpy(pad(mask))[None] > 0).float()
    x = torch.cat([img * (1 - m), m], dim=1)

    n_down, n_blocks = config.num_downsampling, config.num_residual_blocks
    x = F.pad(x, (3, 3, 3, 3), mode="reflect")  # model.0 ReflectionPad2d(3), then the 7x7 conv with padding 0
    x_l, x_g = _original_ffc_bn_act(sd, "model.1.", x, 0, stride=1, pad=0)
    for i in range(n_down):
        x_l, x_g = _original_ffc_bn_act(sd, f"model.{2 + i}.", x_l, x_g, stride=2, pad=1)
    for i in range(n_blocks):
        p = f"model.{2 + n_down + i}."
        y_l, y_g = _original_ffc_bn_act(sd, p + "conv1.", x_l, x_g, stride=1, pad=1)
        y_l, y_g = _original_ffc_bn_act(sd, p + "conv2.", y_l, y_g, stride=1, pad=1)
        x_l, x_g = x_l + y_l, x_g + y_g
    x = x_l if isinstance(x_g, int) else torch.cat([x_l, x_g], dim=1)
    index = 3 + n_down + n_blocks
    for _ in range(n_down):
        p = f"model.{index}."
        x = F.conv_transpose2d(x, sd[p + "weight"], sd[p + "bias"], stride=2, padding=1, output_padding=1)
        x = torch.relu(_original_bn(x, sd, f"model.{index + 1}."))
        index += 3
    x = F.pad(x, (3, 3, 3, 3), mode="reflect")
    p = f"model.{index + 1}."
    predicted = torch.sigmoid(F.conv2d(x, sd[p + "weight"], sd[p + "bias"]))
    inpainted = m * predicted + (1 - m) * img
    return inpainted[0, :, :h, :w].numpy(), predicted[0, :, :h, :w].numpy()


@torch.no_grad()
def ours_forward(model: LamaModel, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Our model through the library's own padding (:mod:`inpaint_hub.image_processing`), same conventions."""
    from ...image_processing import pad_to_multiple, unpad

    img, size = pad_to_multiple(torch.from_numpy(image)[None], model.size_multiple, mode=model.pad_mode)
    m, _ = pad_to_multiple(torch.from_numpy(mask)[None], model.size_multiple, mode=model.pad_mode)
    out = model(img, (m > 0).float())
    return unpad(out.inpainted, size)[0].numpy(), unpad(out.predicted, size)[0].numpy()


def verify_parity(
    model: LamaModel,
    original: dict[str, torch.Tensor],
    sizes: tuple[tuple[int, int], ...] = ((64, 64), (45, 83)),
    seed: int = 0,
) -> float:
    """Max |ours - original| over random images and masks of ``sizes`` (odd sizes exercise the padding).

    Raises:
        ValueError: the difference exceeds :data:`PARITY_TOLERANCE`.
    """
    rng = np.random.default_rng(seed)
    worst = 0.0
    for h, w in sizes:
        image = rng.random((3, h, w), dtype=np.float32)
        mask = np.zeros((1, h, w), dtype=np.float32)
        mask[:, h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = 1.0
        mask[:, rng.random((h, w)) < 0.05] = 1.0
        for a, b in zip(ours_forward(model, image, mask), original_lama_forward(original, model.config, image, mask)):
            worst = max(worst, float(np.abs(a - b).max()))
    if not worst <= PARITY_TOLERANCE:
        raise ValueError(f"converted model differs from the original forward pass by {worst:.3g} > {PARITY_TOLERANCE}")
    return worst


# ------------------------------------------------------------------------------------------------- model card


def preset_name(config: LamaConfig) -> str | None:
    for name, preset in (("big-lama", LamaConfig.big_lama()), ("lama-fourier", LamaConfig.lama_fourier())):
        if config == preset:
            return name
    return None


def model_card(config: LamaConfig, checkpoint: Path, sha256: str, parity: float) -> str:
    name = preset_name(config)
    card_path = MODEL_CARDS / f"{name}.md" if name else None
    if card_path is not None and card_path.is_file():
        card = card_path.read_text(encoding="utf-8")
    else:
        if card_path is not None:
            logger.warning("model card %s not found (run from a source checkout); writing a generic card", card_path)
        card = (
            "---\nlibrary_name: inpaint-hub\nlicense: apache-2.0\npipeline_tag: image-to-image\n"
            "tags:\n- image-inpainting\n- lama\n---\n\n"
            f"# LaMa ({config.num_residual_blocks} FFC blocks), converted from an original checkpoint\n"
        )
    return card.rstrip() + (
        "\n\n## Conversion record\n\n"
        f"- source: `{checkpoint.name}` (sha256 `{sha256}`)\n"
        "- converted with `python -m inpaint_hub.models.lama.convert_lama_original`\n"
        f"- parity with the original forward pass (functional re-implementation on the original tensors, "
        f"random inputs incl. odd sizes): max |diff| = {parity:.2e} (tolerance {PARITY_TOLERANCE:g})\n"
    )


# ------------------------------------------------------------------------------------------------- main


def convert(
    checkpoint: str | Path,
    config: str | Path,
    output: str | Path,
    push_to_hub: str | None = None,
    private: bool | None = None,
) -> tuple[LamaModel, float]:
    """Convert, verify and save. Returns the model and the measured parity (max |diff|)."""
    checkpoint, config, output = Path(checkpoint), Path(config), Path(output)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} not found (expected big-lama/models/best.ckpt)")
    if not config.is_file():
        raise FileNotFoundError(f"config {config} not found (expected big-lama/config.yaml)")
    lama_config = config_from_original(load_yaml_config(config))
    logger.info("architecture: %s", lama_config)

    original = extract_state_dict(load_original_checkpoint(checkpoint), prefix="generator.")
    model = LamaModel(lama_config)
    model.load_weights(convert_state_dict(original, lama_config), strict=True, source=str(checkpoint))
    model.eval()
    parity = verify_parity(model, original)
    logger.info("parity with the original forward pass: max |diff| = %.3g", parity)

    card = model_card(lama_config, checkpoint, file_sha256(checkpoint), parity)
    model.save_pretrained(output, model_card=card)
    logger.info("saved %s", output)
    if push_to_hub:
        url = model.push_to_hub(push_to_hub, model_card=card, private=private)
        logger.info("pushed to %s", url)
    return model, parity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="the released best.ckpt (PyTorch-Lightning checkpoint)")
    parser.add_argument("--config", required=True, help="the config.yaml released next to it (its generator block)")
    parser.add_argument("--output", required=True, help="folder to write config.json, model.safetensors, README.md")
    parser.add_argument("--push-to-hub", metavar="ORG/NAME", help="also upload the folder to this Hub repository")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        _, parity = convert(args.checkpoint, args.config, args.output, args.push_to_hub, args.private or None)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"converted {args.checkpoint} -> {args.output} (parity max |diff| {parity:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
