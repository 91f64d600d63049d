"""Convert a DeepFill v2 generator checkpoint holding the official TF weights (nipponjo/deepfillv2-pytorch).

The authors (JiahuiYu/generative_inpainting, branch ``v2.0.0``) released TensorFlow 1 checkpoints only. The one
public conversion of them to PyTorch is nipponjo's, for his ``model/networks_tf.py`` port (``README.md``,
``download_files.py``; Google Drive)::

    pretrained/states_tf_places2.pth    {'G': generator state dict}   (84 plain tensors, flat names: conv1.conv.weight,
    pretrained/states_tf_celebahq.pth    conv13_upsample.conv.conv.weight, ..., allconv17.conv.bias)

(``states_pt_*.pth`` are his own fine-tuned weights for a different module tree, ``networks.py``; they are refused.)
Both releases use the same generator (cnum = 48, 4,052,478 parameters), so no config file is needed::

    python -m inpaint_hub.models.deepfill_v2.convert_deepfill_v2_original \\
        --checkpoint pretrained/states_tf_places2.pth --output converted/deepfill-v2-places2 \\
        [--push-to-hub ORG/deepfill-v2-places2] [--private] \\
        [--channel-order rgb|bgr] [--fuse | --no-fuse] [--attention-mask-resize one_step|two_step]

The written config defaults to the settings of nipponjo's port, which the golden vectors of his code verify
(``../shared/MODELS.md`` section 3.3): RGB input (``--channel-order rgb``), contextual attention without score
propagation (``--no-fuse``) and the attention mask downsampled in one step (``--attention-mask-resize one_step``).
The TF original differs in all three (BGR, fuse, two steps); the flags write those instead. Whether nipponjo's
conversion reversed the channels of the first and last layers is not documented (section 3.3, item 3); the model card
says how to check it. What the converter does, in order:

1. reads the file without executing pickled code (:func:`inpaint_hub.conversion_utils.load_original_checkpoint`);
   ``{'G': sd}``, the training-state dict ``{'G', 'D', 'G_optim', 'D_optim', 'n_iter'}``, a bare state dict and
   DataParallel's ``module.`` prefix are accepted;
2. infers the width (``base_channels`` = cnum = the filters of ``conv1``) from the tensor shapes;
3. renames every tensor to our names, each original key used exactly once and every model tensor filled, then loads
   strictly;
4. proves the port: runs our model and an independent functional implementation of the port's forward pass that reads
   the *original* tensor names (:func:`original_deepfill_forward`) on random inputs with the port's conventions, and
   requires max |difference| <= 3e-3 on ``x_stage1``, ``x_stage2`` and ``inpainted`` -- with the port's settings, and
   again with the written ones when the flags changed them;
5. ``save_pretrained`` with the model card (``model_cards/deepfill-v2-places2.md`` for the released width) and a
   conversion record (source sha256, settings, parity numbers);
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
from .configuration_deepfill_v2 import DeepFillV2Config
from .modeling_deepfill_v2 import DeepFillV2Model


logger = logging.getLogger(__name__)

# max |ours - original| in [-1, 1]: the golden fixture's tolerance (original-vs-original noise, CPU kernels: 5.7e-4)
PARITY_TOLERANCE = 3e-3
MODEL_CARDS = Path(__file__).resolve().parents[3] / "model_cards"
RELEASED_BASE_CHANNELS = 48
RELEASED_DATASETS = ("places2", "celebahq")
# nipponjo networks_tf.py: Generator(...) builds ContextualAttention(fuse=False) and downsamples the mask H -> H/8 in
# one step (downsampling_nn_tf(mask, n=8)); its test.py feeds PIL RGB images. The golden vectors verify these.
PORT_SETTINGS = {"channel_order": "rgb", "fuse": False, "attention_mask_resize": "one_step"}
# the TF original (inpaint_model.py, inpaint_ops.py): cv2 BGR images, contextual_attention(fuse=True), two-step mask
TF_ORIGINAL_SETTINGS = {"channel_order": "bgr", "fuse": True, "attention_mask_resize": "two_step"}

# original layer-name prefix -> our sub-module
_GROUPS = {"": "stage1", "x": "stage2_conv", "pm": "stage2_attention", "all": "stage2_merge"}


# ------------------------------------------------------------------------------------------------- reading


def load_generator_state_dict(checkpoint: str | Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The ``G`` tensors of ``states_tf_<dataset>.pth`` (or of a training-state file saved by nipponjo's train.py).

    Returns:
        ``(state_dict, file)``. A bare state dict (no ``G`` wrapper) and DataParallel's ``module.`` prefix are
        accepted too.
    """
    path = Path(checkpoint)
    if path.is_dir():
        candidates = sorted(path.glob("states_tf_*.pth"))
        if len(candidates) != 1:
            found = ", ".join(p.name for p in candidates) or "none"
            raise FileNotFoundError(
                f"{path} is a folder; pass the checkpoint file itself (states_tf_places2.pth; states_tf_*.pth found: "
                f"{found})"
            )
        path = candidates[0]
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found (expected nipponjo's pretrained/states_tf_places2.pth)")
    loaded = load_original_checkpoint(path)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} holds a {type(loaded).__name__}, not the {{'G': state_dict}} of DeepFill v2")
    if "G" in loaded:
        state = loaded["G"]
    elif "D" in loaded:
        raise ValueError(f"{path} holds a discriminator ('D') but no generator ('G'); convert the generator file")
    else:
        state = loaded
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: 'G' is not a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith(("stage1.", "stage2.")) for k in state):
        raise ValueError(
            f"{path} holds a generator with stage1.* / stage2.* names: nipponjo's networks.py ('pt') weights "
            "(states_pt_*.pth, his own fine-tuned models) or an inpaint-hub model. This converter reads the "
            "conversions of the official TF weights for networks_tf.py: states_tf_places2.pth / states_tf_celebahq.pth"
        )
    return state, path


def config_from_state_dict(original: dict[str, torch.Tensor], **settings) -> DeepFillV2Config:
    """The :class:`DeepFillV2Config` whose width matches the tensors (the released models: cnum = 48).

    ``conv1`` is a gated 5x5 convolution with ``cnum`` filters (``cnum / 2`` output channels after gating) over the
    5-channel input, so its weight is ``[cnum, 5, 5, 5]``. ``settings`` (``channel_order``, ``fuse``,
    ``attention_mask_resize``) default to :data:`PORT_SETTINGS`.
    """
    try:
        first = original["conv1.conv.weight"]
    except KeyError:
        raise ValueError(
            "not a DeepFill v2 (networks_tf.py) generator: tensor 'conv1.conv.weight' is missing"
        ) from None
    if first.ndim != 4 or first.shape[1] != 5:
        raise ValueError(
            f"conv1.conv.weight has shape {tuple(first.shape)}; DeepFill v2's conv1 is [cnum, 5, 5, 5] (5 input "
            "channels: image, ones, mask)"
        )
    cnum = int(first.shape[0])
    if cnum % 4:
        raise ValueError(f"conv1 has {cnum} filters; DeepFill v2's cnum must be a multiple of 4")
    return DeepFillV2Config(base_channels=cnum, **{**PORT_SETTINGS, **settings})


# ------------------------------------------------------------------------------------------------- key renaming

# networks_tf.py: GConv holds `.conv` (nn.Conv2d); GDeConv holds `.conv` (a GConv), hence `.conv.conv` for upsampling.
_PLAIN_KEY = re.compile(r"((x|pm|all)?conv\d+(?:_downsample|_atrous)?)\.conv\.(weight|bias)")
_UPSAMPLE_KEY = re.compile(r"((x|pm|all)?conv\d+_upsample)\.conv\.conv\.(weight|bias)")


def rename_key(original: str) -> str:
    """Our name for one original generator tensor name (``conv13_upsample.conv.conv.weight`` ->
    ``stage1.conv13_upsample.conv.weight``). Whether the layer exists is checked by :func:`convert_state_dict`."""
    match = _PLAIN_KEY.fullmatch(original) or _UPSAMPLE_KEY.fullmatch(original)
    if match is None:
        raise ValueError(f"unexpected original tensor {original!r}")
    layer, prefix, kind = match.groups()
    return f"{_GROUPS[prefix or '']}.{layer}.conv.{kind}"


def convert_state_dict(original: dict[str, torch.Tensor], config: DeepFillV2Config) -> dict[str, torch.Tensor]:
    """Rename every original tensor; each is used exactly once and every model tensor must be filled.

    Raises:
        ValueError: a tensor has no place in the model, two map to one place, a shape differs, or a model tensor is
            left without a value (all offenders are named; :func:`inpaint_hub.conversion_utils.map_state_dict`).
    """
    return map_state_dict(original, rename_key, DeepFillV2Model(config).state_dict(), "DeepFill v2's generator")


# ------------------------------------------------------------------------------------------------- parity check
# An independent functional version of nipponjo networks_tf.py's Generator.forward + test.py, reading the original
# tensor names. It shares no code with modeling_deepfill_v2.py: padding, nearest resampling, patch extraction, score
# propagation and the layer sequence are written out again here.

# (name, stride, dilation, activation) in the order of Generator.forward; "_upsample" layers are NN x2 + conv.
_STAGE1 = (
    ("conv1", 1, 1, "elu"),
    ("conv2_downsample", 2, 1, "elu"),
    ("conv3", 1, 1, "elu"),
    ("conv4_downsample", 2, 1, "elu"),
    ("conv5", 1, 1, "elu"),
    ("conv6", 1, 1, "elu"),
    ("conv7_atrous", 1, 2, "elu"),
    ("conv8_atrous", 1, 4, "elu"),
    ("conv9_atrous", 1, 8, "elu"),
    ("conv10_atrous", 1, 16, "elu"),
    ("conv11", 1, 1, "elu"),
    ("conv12", 1, 1, "elu"),
    ("conv13_upsample", 1, 1, "elu"),
    ("conv14", 1, 1, "elu"),
    ("conv15_upsample", 1, 1, "elu"),
    ("conv16", 1, 1, "elu"),
    ("conv17", 1, 1, None),
)
_HALLUCINATION = tuple((f"x{name}", s, d, a) for name, s, d, a in _STAGE1[:10])  # xconv1 .. xconv10_atrous
_ATTENTION_ENCODER = tuple((f"pm{name}", s, d, a) for name, s, d, a in _STAGE1[:5]) + (("pmconv6", 1, 1, "relu"),)
_ATTENTION_DECODER = (("pmconv9", 1, 1, "elu"), ("pmconv10", 1, 1, "elu"))
_MERGE = tuple((f"all{name}", s, d, a) for name, s, d, a in _STAGE1[10:])  # allconv11 .. allconv17


def _tf_same(x: torch.Tensor, kernel: int, stride: int = 1, dilation: int = 1) -> torch.Tensor:
    """Zero padding of TF ``padding='SAME'``: total ``max((ceil(n/s) - 1) * s + (k - 1) * d + 1 - n, 0)`` per axis,
    the odd pixel at the end."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad order: last axis first
        total = max(((n + stride - 1) // stride - 1) * stride + (kernel - 1) * dilation + 1 - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _nn_resize_align_corners(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """TF ``resize_nearest_neighbor(align_corners=True)``: output index ``i`` reads ``round(i * (n - 1) / (m - 1))``,
    halves rounded up, computed in exact integer arithmetic."""

    def index(n: int, m: int) -> torch.Tensor:
        if m == 1:
            return torch.zeros(1, dtype=torch.long)
        i = torch.arange(m)
        return (2 * i * (n - 1) + (m - 1)) // (2 * (m - 1))

    return x.index_select(-2, index(x.shape[-2], height)).index_select(-1, index(x.shape[-1], width))


def _patches(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """``[B, L, C, k, k]`` patches of TF-SAME padded ``x`` (row-major patch order)."""
    b, c = x.shape[:2]
    cols = F.unfold(_tf_same(x, kernel, stride), kernel, stride=stride)  # [B, C*k*k, L]
    return cols.view(b, c, kernel, kernel, -1).permute(0, 4, 1, 2, 3)


def _propagate(scores: torch.Tensor, k: int, bh: int, bw: int, fh: int, fw: int) -> torch.Tensor:
    """The port's ``fuse``: add the diagonal neighbours of the [sources, targets] score matrix (a k x k identity
    kernel, TF-SAME), once in row-major order and once with both grids transposed. Written as shifted sums."""

    def diagonal_sum(matrix: torch.Tensor) -> torch.Tensor:
        padded = F.pad(matrix, (k // 2, k // 2, k // 2, k // 2))
        rows, cols = matrix.shape
        return sum(padded[a : a + rows, a : a + cols] for a in range(k))

    y = diagonal_sum(scores)
    y = y.view(bh, bw, fh, fw).permute(1, 0, 3, 2).reshape(bw * bh, fw * fh)
    y = diagonal_sum(y)
    return y.view(bw, bh, fw, fh).permute(1, 0, 3, 2).reshape(bh * bw, fh * fw)


def _original_contextual_attention(
    x: torch.Tensor, mask: torch.Tensor, *, fuse: bool, mask_resize: str, ksize: int = 3, rate: int = 2
) -> torch.Tensor:
    """``ContextualAttention(ksize=3, stride=1, rate=2, fuse_k=3, softmax_scale=10)(x, x, mask)`` of the port.

    Valid source patches come from the *first* batch element's mask, as in the port and the TF original.
    """
    b, c, h, w = x.shape
    raw = _patches(x, 2 * rate, rate)  # [B, L, C, 4, 4]: what gets pasted
    small = _nn_resize_align_corners(x, h // rate, w // rate)
    sh, sw = small.shape[-2:]
    sources = _patches(small, ksize, 1)  # [B, L, C, 3, 3]: what gets matched
    if mask_resize == "one_step":  # the port: downsampling_nn_tf(mask, n=8)
        m = _nn_resize_align_corners(mask, mask.shape[-2] // (4 * rate), mask.shape[-1] // (4 * rate))
    elif mask_resize == "two_step":  # the TF original: resize_mask_like(mask, x) to H/4, then 1/rate inside
        m = _nn_resize_align_corners(_nn_resize_align_corners(mask, h, w), sh, sw)
    else:
        raise ValueError(f"mask_resize must be 'one_step' or 'two_step', got {mask_resize!r}")
    valid = (_patches(m[:1], ksize, 1)[0].mean(dim=(1, 2, 3)) == 0).float().view(1, -1, 1, 1)  # [1, L, 1, 1]
    out = []
    for i in range(b):
        wi = sources[i]
        wi = wi / torch.sqrt((wi * wi).sum(dim=(1, 2, 3), keepdim=True)).clamp_min(1e-4)
        yi = F.conv2d(_tf_same(small[i : i + 1], ksize), wi)  # [1, L, sh, sw]
        if fuse:
            yi = _propagate(yi.view(sh * sw, sh * sw), 3, sh, sw, sh, sw).view(1, sh * sw, sh, sw)
        yi = F.softmax(yi * valid * 10.0, dim=1) * valid
        out.append(F.conv_transpose2d(yi, raw[i], stride=rate, padding=1) / 4.0)
    return torch.cat(out)


def _original_layers(sd: dict[str, torch.Tensor], x: torch.Tensor, layers) -> torch.Tensor:
    """``GConv`` / ``GDeConv`` layers of the port, in sequence, from the original tensor names."""
    for name, stride, dilation, activation in layers:
        upsample = name.endswith("_upsample")
        prefix = f"{name}.conv.conv" if upsample else f"{name}.conv"
        weight, bias = sd[prefix + ".weight"], sd[prefix + ".bias"]
        if upsample:  # F.interpolate(scale_factor=2, mode='nearest'): every pixel twice along both axes
            x = x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
        kernel = weight.shape[-1]
        x = F.conv2d(_tf_same(x, kernel, stride, dilation), weight, bias, stride=stride, dilation=dilation)
        if activation is None or weight.shape[0] == 3:  # GConv: cnum_out == 3 or no activation -> plain conv
            continue
        features, gates = x.split(weight.shape[0] // 2, dim=1)
        features = F.elu(features) if activation == "elu" else F.relu(features)
        x = features * torch.sigmoid(gates)
    return x


@torch.no_grad()
def original_deepfill_forward(
    sd: dict[str, torch.Tensor],
    image: torch.Tensor,
    mask: torch.Tensor,
    *,
    bgr: bool = False,
    fuse: bool = False,
    mask_resize: str = "one_step",
) -> dict[str, torch.Tensor]:
    """nipponjo's ``test.py`` + ``networks_tf.py`` ``Generator.forward`` from the *original* tensor names.

    Written independently of :class:`DeepFillV2Model` (no shared modules or helpers, original key names), so that
    agreement shows the renaming put every tensor in its place.

    Args:
        sd: the original generator state dict.
        image: ``[B, 3, H, W]`` RGB in [0, 1], H and W multiples of 8; mask ``[B, 1, H, W]``, 1 = hole (``> 0.5``).
        bgr: feed the channel-reversed image (what the TF original saw); the outputs stay in that order.
        fuse, mask_resize: the contextual-attention variant (the port: ``False``, ``"one_step"``; the TF original:
            ``True``, ``"two_step"``).

    Returns:
        ``{"x_stage1", "x_stage2", "inpainted"}`` in [-1, 1], in the network's channel order (the golden keys).
    """
    if bgr:
        image = image[:, [2, 1, 0]]
    img = image * 2 - 1
    mask = (mask > 0.5).float()
    incomplete = img * (1 - mask)
    ones = torch.ones_like(mask)
    x = torch.cat([incomplete, ones, ones * mask], dim=1)

    stage1 = torch.tanh(_original_layers(sd, x, _STAGE1))
    xnow = stage1 * mask + x[:, 0:3] * (1 - mask)
    hallucinated = _original_layers(sd, xnow, _HALLUCINATION)
    attended = _original_layers(sd, xnow, _ATTENTION_ENCODER)
    attended = _original_contextual_attention(attended, mask, fuse=fuse, mask_resize=mask_resize)
    attended = _original_layers(sd, attended, _ATTENTION_DECODER)
    stage2 = torch.tanh(_original_layers(sd, torch.cat([hallucinated, attended], dim=1), _MERGE))
    return {"x_stage1": stage1, "x_stage2": stage2, "inpainted": img * (1 - mask) + stage2 * mask}


@torch.no_grad()
def ours_forward(model: DeepFillV2Model, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Our model on RGB [0, 1] inputs, its outputs mapped to the original's [-1, 1] keys in the network's channel
    order (reversed back to BGR when the model runs in BGR)."""
    out = model(image, mask)
    result = {"x_stage1": out.coarse * 2 - 1, "x_stage2": out.predicted * 2 - 1, "inpainted": out.inpainted * 2 - 1}
    if model.config.channel_order == "bgr":
        result = {k: v.flip(1) for k, v in result.items()}
    return result


def _with_settings(model: DeepFillV2Model, settings: dict) -> DeepFillV2Model:
    config = model.config
    if all(getattr(config, k) == v for k, v in settings.items()):
        return model
    other = DeepFillV2Model(DeepFillV2Config(**{**config.model_dump(), **settings})).to(model.device)
    other.load_state_dict(model.state_dict(), strict=True)
    return other.eval()


def verify_parity(
    model: DeepFillV2Model,
    original: dict[str, torch.Tensor],
    settings: dict | None = None,
    sizes=((64, 64), (48, 80)),
    seed: int = 0,
) -> float:
    """Max |ours - original| over ``x_stage1``, ``x_stage2``, ``inpainted``, on random images with a box hole.

    Args:
        model: the converted model (its weights are used; its settings are replaced by ``settings``).
        original: the original generator tensors.
        settings: ``channel_order`` / ``fuse`` / ``attention_mask_resize`` for both sides; default
            :data:`PORT_SETTINGS`, the port's (and the golden vectors').
        sizes: (H, W) pairs, multiples of 8; batch 1 each (the port takes the valid patches from element 0's mask).

    Raises:
        ValueError: the difference exceeds :data:`PARITY_TOLERANCE`.
    """
    settings = {**PORT_SETTINGS, **(settings or {})}
    ours_model = _with_settings(model, settings)
    rng = torch.Generator().manual_seed(seed)
    worst = 0.0
    for h, w in sizes:
        image = torch.rand(1, 3, h, w, generator=rng)
        mask = torch.zeros(1, 1, h, w)
        mask[..., h // 4 : h // 4 + h // 2, w // 3 : w // 3 + w // 2] = 1
        ours = {k: v.cpu() for k, v in ours_forward(ours_model, image.to(model.device), mask.to(model.device)).items()}
        reference = original_deepfill_forward(
            original,
            image,
            mask,
            bgr=settings["channel_order"] == "bgr",
            fuse=settings["fuse"],
            mask_resize=settings["attention_mask_resize"],
        )
        for key, value in reference.items():
            worst = max(worst, float((ours[key] - value).abs().max()))
    if not worst <= PARITY_TOLERANCE:
        described = ", ".join(f"{k}={v}" for k, v in settings.items())
        raise ValueError(
            f"converted model differs from the original forward pass ({described}) by {worst:.3g} > {PARITY_TOLERANCE}"
        )
    return worst


# ------------------------------------------------------------------------------------------------- card and main


def _settings_line(config: DeepFillV2Config) -> str:
    return (
        f"channel_order={config.channel_order}, fuse={config.fuse}, "
        f"attention_mask_resize={config.attention_mask_resize}"
    )


def model_card(config: DeepFillV2Config, checkpoint: Path, sha256: str, parity: dict[str, float]) -> str:
    """The README: ``model_cards/deepfill-v2-places2.md`` for the released width, else a generic card; plus the
    conversion record. ``parity`` maps a description of the settings checked to the measured max |diff|."""
    card_path = MODEL_CARDS / "deepfill-v2-places2.md"
    released = config.base_channels == RELEASED_BASE_CHANNELS
    if released and card_path.is_file():
        card = card_path.read_text(encoding="utf-8")
        match = re.fullmatch(r"states_tf_(" + "|".join(RELEASED_DATASETS) + r")\.pth", checkpoint.name.lower())
        dataset = match[1] if match else None
        if dataset not in (None, "places2"):
            card += (
                f"\n\n> **Note.** This folder was converted from the `{dataset}` release, not Places2: the "
                "architecture and conversion are the same, but the training data and notes above are those of the "
                f"Places2 model. Edit this card before publishing the `{dataset}` weights.\n"
            )
    else:
        if released:
            logger.warning("model card %s not found (run from a source checkout); writing a generic card", card_path)
        card = (
            "---\nlibrary_name: inpaint-hub\nlicense: cc-by-nc-4.0\npipeline_tag: image-to-image\n"
            "tags:\n- image-inpainting\n- deepfill-v2\n---\n\n"
            f"# DeepFill v2 ({config.base_channels} base channels), converted from an original checkpoint\n\n"
            "DeepFill v2 code and weights by the authors are CC BY-NC 4.0 (non-commercial).\n"
        )
    settings = _settings_line(config)
    if all(getattr(config, k) == v for k, v in PORT_SETTINGS.items()):
        origin = "the PyTorch port's settings, which its golden test vectors verify"
    elif all(getattr(config, k) == v for k, v in TF_ORIGINAL_SETTINGS.items()):
        origin = "the TF original's settings (not the port's, which the golden test vectors verify)"
    else:
        origin = "set with the converter's flags (the port's settings are rgb / False / one_step)"
    checks = "; ".join(f"{name}: max |diff| = {value:.2e}" for name, value in parity.items())
    return card.rstrip() + (
        "\n\n## Conversion record\n\n"
        f"- source: `{checkpoint.name}` (sha256 `{sha256}`)\n"
        "- converted with `python -m inpaint_hub.models.deepfill_v2.convert_deepfill_v2_original`\n"
        f"- settings written to config.json: {settings} ({origin})\n"
        "- parity with the original forward pass (functional re-implementation of nipponjo's networks_tf.py on the "
        f"original tensors, random inputs incl. non-square): {checks} (tolerance {PARITY_TOLERANCE:g})\n"
    )


def convert(
    checkpoint: str | Path,
    output: str | Path,
    push_to_hub: str | None = None,
    private: bool | None = None,
    *,
    channel_order: str = PORT_SETTINGS["channel_order"],
    fuse: bool = PORT_SETTINGS["fuse"],
    attention_mask_resize: str = PORT_SETTINGS["attention_mask_resize"],
) -> tuple[DeepFillV2Model, float]:
    """Convert, verify and save. Returns the model and the measured parity (max |diff| over every check)."""
    original, path = load_generator_state_dict(checkpoint)
    config = config_from_state_dict(
        original, channel_order=channel_order, fuse=fuse, attention_mask_resize=attention_mask_resize
    )
    logger.info("architecture: %s", config)
    model = DeepFillV2Model(config)
    model.load_weights(convert_state_dict(original, config), strict=True, source=str(path))
    model.eval()
    parity = {"port settings (rgb, fuse False, one_step)": verify_parity(model, original, PORT_SETTINGS)}
    if any(getattr(config, k) != v for k, v in PORT_SETTINGS.items()):
        written = {k: getattr(config, k) for k in PORT_SETTINGS}
        parity[f"written settings ({_settings_line(config)})"] = verify_parity(model, original, written)
    for name, value in parity.items():
        logger.info("parity with the original forward pass, %s: max |diff| = %.3g", name, value)
    card = model_card(config, path, file_sha256(path), parity)
    model.save_pretrained(output, model_card=card)
    logger.info("saved %s", output)
    if push_to_hub:
        url = model.push_to_hub(push_to_hub, model_card=card, private=private)
        logger.info("pushed to %s", url)
    return model, max(parity.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="states_tf_places2.pth ({'G': ...}) of nipponjo's port")
    parser.add_argument("--output", required=True, help="folder to write config.json, model.safetensors, README.md")
    parser.add_argument("--push-to-hub", metavar="ORG/NAME", help="also upload the folder to this Hub repository")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    parser.add_argument(
        "--channel-order",
        choices=["rgb", "bgr"],
        default=PORT_SETTINGS["channel_order"],
        help="channel order the weights expect (default rgb, as the port feeds them; the TF original used bgr)",
    )
    parser.add_argument(
        "--fuse",
        action=argparse.BooleanOptionalAction,
        default=PORT_SETTINGS["fuse"],
        help="contextual attention's score propagation (default off, as the port; the TF original has it on)",
    )
    parser.add_argument(
        "--attention-mask-resize",
        choices=["one_step", "two_step"],
        default=PORT_SETTINGS["attention_mask_resize"],
        help="mask downsampling to the attention grid (default one_step, as the port; the TF original: two_step)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        _, parity = convert(
            args.checkpoint,
            args.output,
            args.push_to_hub,
            args.private or None,
            channel_order=args.channel_order,
            fuse=args.fuse,
            attention_mask_resize=args.attention_mask_resize,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"converted {args.checkpoint} -> {args.output} (parity max |diff| {parity:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
