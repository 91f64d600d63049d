"""The model base class, the output type, and the registry behind :class:`AutoInpaintModel`.

Every model in inpaint-hub is an :class:`InpaintModel`: a ``torch.nn.Module`` built from one pydantic
:class:`~inpaint_hub.configuration_utils.InpaintConfig`, saved as ``config.json`` + ``model.safetensors`` and loaded
with ``from_pretrained`` from a local folder or a Hugging Face Hub repository, through
``huggingface_hub.PyTorchModelHubMixin``. What this module adds to the mixin:

* the config travels through the mixin's documented ``coders=`` hook, so ``config.json`` is the flat pydantic dump;
* loading is strict by default: a missing, unexpected or mis-shaped tensor raises :class:`WeightsMismatchError`
  naming every offending key (the mixin's default is a silent ``strict=False``);
* ``device=`` and ``dtype=`` arguments on ``from_pretrained``;
* ``model_card=`` on ``save_pretrained``/``push_to_hub`` (the cards live in ``model_cards/``);
* atomic writes of both files;
* :class:`AutoInpaintModel`, which reads ``model_type`` from ``config.json`` and picks the class.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from huggingface_hub import HfApi, PyTorchModelHubMixin, hf_hub_download
from safetensors.torch import load_file, save_file
from torch import nn

from .configuration_utils import CONFIG_NAME, InpaintConfig
from .utils import atomic_write, atomic_write_text


logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
MODEL_CARD_NAME = "README.md"

# model_type -> (module, config class, model class). An explicit table rather than import-time registration:
# it can be read at a glance, and a model module is imported only when it is asked for.
_MODEL_TYPES: dict[str, tuple[str, str, str]] = {
    "deepfill_v2": ("inpaint_hub.models.deepfill_v2", "DeepFillV2Config", "DeepFillV2Model"),
    "dgi": ("inpaint_hub.models.dgi", "DGIConfig", "DGIModel"),
    "lama": ("inpaint_hub.models.lama", "LamaConfig", "LamaModel"),
    "opencv": ("inpaint_hub.models.opencv", "OpenCVInpaintConfig", "OpenCVInpaintModel"),
    "pennet": ("inpaint_hub.models.pennet", "PENNetConfig", "PENNetModel"),
    "piigan": ("inpaint_hub.models.piigan", "PiiGANConfig", "PiiGANModel"),
}

# Built-in models that need no files: name -> (model_type, config fields). ``AutoInpaintModel.from_pretrained`` and
# everything built on it (pipelines, ``inpaint-hub run`` / ``eval``, the demo) accept these names like a checkpoint.
# A local folder of the same name takes precedence.
BUILTIN_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "cv2-telea": ("opencv", {"method": "telea"}),
    "cv2-ns": ("opencv", {"method": "ns"}),
}


# ------------------------------------------------------------------------------------------------- outputs


@dataclass
class InpaintOutput:
    """What every model's ``forward`` returns.

    Attributes:
        inpainted: ``[B, 3, H, W]`` in [0, 1]: ``mask * predicted + (1 - mask) * image``. Pixels outside the hole
            are bit-identical to the input image.
        predicted: ``[B, 3, H, W]`` in [0, 1]: the raw generator output over the whole image.
    """

    inpainted: torch.Tensor
    predicted: torch.Tensor

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class WeightsMismatchError(ValueError):
    """The tensors in a weights file do not match the model built from its config."""


def state_dict_mismatches(
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    *,
    ignored: Collection[str] = (),
    optional: Collection[str] = (),
) -> dict[str, list[str]]:
    """Compare a loaded state dict with a module's: ``{"missing": [...], "unexpected": [...], "wrong shape": [...]}``.

    Args:
        state: the tensors read from a file.
        expected: ``module.state_dict()``.
        ignored: keys of ``state`` that are allowed and dropped (e.g. a classifier head).
        optional: keys of ``expected`` that may be absent (e.g. ``num_batches_tracked``).

    Returns:
        Sorted key lists; a mis-shaped entry reads ``"key (file shape) (expected shape)"``.
    """
    return {
        "missing": sorted(k for k in expected if k not in state and k not in optional),
        "unexpected": sorted(k for k in state if k not in expected and k not in ignored),
        "wrong shape": [
            f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
            for k in sorted(set(state) & set(expected))
            if state[k].shape != expected[k].shape
        ],
    }


# ------------------------------------------------------------------------------------------------- base model


def _config_encoder(config: InpaintConfig) -> dict[str, Any]:
    return config.to_dict()


class InpaintModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="inpaint-hub",
    repo_url="https://github.com/inpaint-hub/inpaint-hub",
    pipeline_tag="image-to-image",
    tags=["image-inpainting", "inpaint-hub"],
    coders={InpaintConfig: (_config_encoder, InpaintConfig.from_dict)},
):
    """Base class of every inpainting model.

    Subclasses set ``config_class``, take the config as their only ``__init__`` argument
    (``def __init__(self, config: LamaConfig)`` -- the annotation is how ``from_pretrained`` knows what to decode
    ``config.json`` into), implement ``forward(image, mask, *, generator=None) -> InpaintOutput`` and report their
    size constraint in ``size_multiple``.

    Class attributes:
        config_class: the pydantic config type.
        pad_mode: how :mod:`inpaint_hub.image_processing` pads inputs up to ``size_multiple`` for this model
            (``"symmetric"`` = numpy's symmetric mode, as LaMa's predict script does; ``"reflect"``; ``"replicate"``).
        supports_sampling: ``True`` when different ``generator`` states give different results (pluralistic models);
            tools use it to decide whether several samples are worth computing.
    """

    config_class: ClassVar[type[InpaintConfig]] = InpaintConfig
    pad_mode: ClassVar[str] = "reflect"
    supports_sampling: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The mixin resets its coders for every subclass, so hand each subclass the coder of its own config class.
        config_class = cls.__dict__.get("config_class", getattr(cls, "config_class", InpaintConfig))
        kwargs.setdefault("coders", {config_class: (_config_encoder, config_class.from_dict)})
        super().__init_subclass__(**kwargs)

    def __init__(self, config: InpaintConfig) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config

    # --------------------------------------------------------------------------------------------- properties

    @property
    def size_multiple(self) -> int:
        """Height and width given to ``forward`` must be multiples of this (the pipeline pads to it)."""
        return 1

    @property
    def min_size(self) -> int:
        """Smallest height and width ``forward`` accepts (after padding); the pipeline pads small images up to it."""
        return self.size_multiple

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def _check_inputs(self, image: torch.Tensor, mask: torch.Tensor) -> None:
        """Raise a ``ValueError`` naming the problem if ``image``/``mask`` break the tensor contract."""
        if not isinstance(image, torch.Tensor) or not isinstance(mask, torch.Tensor):
            raise TypeError("image and mask must be torch tensors; use InpaintPipeline for PIL images or arrays")
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be [B, 3, H, W] RGB, got shape {tuple(image.shape)}")
        if mask.ndim != 4 or mask.shape[1] != 1:
            raise ValueError(f"mask must be [B, 1, H, W], got shape {tuple(mask.shape)}")
        if mask.shape[0] != image.shape[0] or mask.shape[-2:] != image.shape[-2:]:
            raise ValueError(
                f"mask {tuple(mask.shape)} does not match image {tuple(image.shape)} (batch, height, width must agree)"
            )
        m = self.size_multiple
        h, w = image.shape[-2:]
        if h % m or w % m:
            raise ValueError(
                f"{type(self).__name__} needs height and width divisible by {m}, got {h}x{w}; "
                "pad with inpaint_hub.image_processing.pad_to_multiple (InpaintPipeline does this for you)"
            )
        if min(h, w) < self.min_size:
            raise ValueError(
                f"{type(self).__name__} needs height and width of at least {self.min_size}, got {h}x{w}; "
                "pad the input (InpaintPipeline does this for you)"
            )

    # --------------------------------------------------------------------------------------------- saving

    def _save_pretrained(self, save_directory: Path) -> None:
        """Write ``model.safetensors`` and ``config.json``, each atomically."""
        state_dict = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        metadata = {"format": "pt", "model_type": self.config.model_type}
        atomic_write(save_directory / WEIGHTS_NAME, lambda tmp: save_file(state_dict, tmp, metadata=metadata))
        atomic_write_text(save_directory / CONFIG_NAME, self.config.to_json_string())

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        model_card: str | os.PathLike | None = None,
        model_card_kwargs: dict[str, Any] | None = None,
        push_to_hub: bool = False,
        repo_id: str | None = None,
        **push_to_hub_kwargs: Any,
    ) -> str | None:
        """Save ``config.json``, ``model.safetensors`` and a ``README.md`` model card to ``save_directory``.

        Every file is written atomically, so a crash while re-saving leaves the previous files intact.

        Args:
            save_directory: folder to write (created if needed).
            model_card: a path to a Markdown card (normally one of ``model_cards/*.md``) or the card's text. Without
                it, an existing ``README.md`` is kept, or the Hub mixin's generic card is written.
            model_card_kwargs: values for the generic card's template (when no ``model_card`` is given).
            push_to_hub: also upload the folder with :meth:`push_to_hub` (to ``repo_id``, default: the folder name).
            **push_to_hub_kwargs: passed to :meth:`push_to_hub` (``private``, ``token``, ``branch``...).

        Returns:
            The commit URL when pushing, else ``None``.
        """
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        self._save_pretrained(save_directory)
        card_path = save_directory / MODEL_CARD_NAME
        if model_card is not None:
            atomic_write_text(card_path, _read_model_card(model_card))
        elif not card_path.exists():
            atomic_write_text(card_path, str(self.generate_model_card(**(model_card_kwargs or {}))))
        if push_to_hub:
            return self.push_to_hub(repo_id or save_directory.name, model_card=card_path, **push_to_hub_kwargs)
        return None

    def push_to_hub(
        self,
        repo_id: str,
        *,
        model_card: str | os.PathLike | None = None,
        commit_message: str = "Upload model with inpaint-hub",
        private: bool | None = None,
        token: str | None = None,
        branch: str | None = None,
        create_pr: bool | None = None,
        allow_patterns: list[str] | str | None = None,
        ignore_patterns: list[str] | str | None = None,
        delete_patterns: list[str] | str | None = None,
        model_card_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """Save to a temporary folder (with ``model_card``) and upload it as one commit to ``repo_id``.

        The arguments after ``model_card`` are those of ``huggingface_hub.HfApi.create_repo`` / ``upload_folder``.
        Returns the commit URL.
        """
        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, model_card=model_card, model_card_kwargs=model_card_kwargs)
            return api.upload_folder(
                repo_id=repo_id,
                repo_type="model",
                folder_path=tmp,
                commit_message=commit_message,
                revision=branch,
                create_pr=create_pr,
                allow_patterns=allow_patterns,
                ignore_patterns=ignore_patterns,
                delete_patterns=delete_patterns,
            )

    # --------------------------------------------------------------------------------------------- loading

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: InpaintConfig | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        strict: bool = True,
        **kwargs: Any,
    ) -> InpaintModel:
        """Build the model from its config and load ``model.safetensors`` (strictly by default).

        Called by ``from_pretrained(repo_id_or_dir, *, revision=None, cache_dir=None, local_files_only=False,
        token=None, force_download=False, device=None, dtype=None, strict=True)``.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments to {cls.__name__}.from_pretrained: {sorted(kwargs)}")
        hub_kwargs = dict(
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
        if config is None:
            # The mixin swallows Hub errors on config.json (logging them at INFO). Ask again so that the real
            # reason -- repository not found, gated, offline -- reaches the caller.
            path = _resolve_file(model_id, CONFIG_NAME, **hub_kwargs)
            raise FileNotFoundError(f"{path} could not be read as an inpaint-hub config.json")
        if not isinstance(config, InpaintConfig):
            config = cls.config_class.from_dict(config)
        model_class = get_model_class(config.model_type)
        if not issubclass(model_class, cls):
            raise ValueError(
                f"{model_id} holds a {config.model_type!r} model ({model_class.__name__}), not a {cls.__name__}; "
                "load it with AutoInpaintModel.from_pretrained"
            )
        model_file = _resolve_file(model_id, WEIGHTS_NAME, **hub_kwargs)
        model = model_class(config)
        state_dict = load_file(model_file, device="cpu")
        model.load_weights(state_dict, strict=strict, source=model_file)
        model.to(device=device, dtype=_resolve_dtype(dtype))
        model.eval()
        return model

    def load_weights(self, state_dict: dict[str, torch.Tensor], *, strict: bool = True, source: str = "") -> None:
        """Load ``state_dict`` after checking names and shapes against this model.

        Raises:
            WeightsMismatchError: a tensor is mis-shaped (always), or missing / unexpected (when ``strict``).
        """
        expected = self.state_dict()
        missing = sorted(set(expected) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(expected))
        mis_shaped = [
            f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
            for k in expected
            if k in state_dict and state_dict[k].shape != expected[k].shape
        ]
        where = f" in {source}" if source else ""
        problems = []
        if mis_shaped:
            problems.append(f"{len(mis_shaped)} mis-shaped tensor(s): " + "; ".join(mis_shaped[:20]))
        if strict and missing:
            problems.append(f"{len(missing)} missing tensor(s): {', '.join(missing[:20])}")
        if strict and unexpected:
            problems.append(f"{len(unexpected)} unexpected tensor(s): {', '.join(unexpected[:20])}")
        if problems:
            raise WeightsMismatchError(
                f"the weights{where} do not fit {type(self).__name__}({self.config!r}): " + " | ".join(problems)
            )
        if missing or unexpected:
            logger.warning("non-strict load%s: missing %s, unexpected %s", where, missing, unexpected)
        self.load_state_dict(state_dict, strict=strict)


# ------------------------------------------------------------------------------------------------- helpers


def _read_model_card(model_card: str | os.PathLike) -> str:
    if isinstance(model_card, os.PathLike) or (isinstance(model_card, str) and "\n" not in model_card):
        path = Path(model_card)
        if not path.is_file():
            raise FileNotFoundError(f"model card {path} does not exist")
        return path.read_text(encoding="utf-8")
    return model_card


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None:
        return None
    resolved = dtype if isinstance(dtype, torch.dtype) else getattr(torch, str(dtype).replace("torch.", ""), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype such as torch.float16, got {dtype!r}")
    return resolved


def _resolve_file(model_id: str, filename: str, **hub_kwargs: Any) -> str:
    """Path of ``filename`` in a local folder, or in a Hub repository (downloaded or taken from the cache)."""
    if os.path.isdir(model_id):
        path = os.path.join(model_id, filename)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{filename} not found in {model_id}")
        return path
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(str(model_id))
    except ValueError:  # HFValidationError: neither a folder here nor a possible Hub id, e.g. runs/x/checkpoint-5
        raise FileNotFoundError(
            f"{model_id} is not a folder (relative to {os.getcwd()}) and not a valid Hub repository id "
            "(ORG/NAME); give a folder written by save_pretrained, a Hub id, or a built-in name"
        ) from None
    return hf_hub_download(repo_id=model_id, filename=filename, **hub_kwargs)


def list_model_types() -> list[str]:
    """The ``model_type`` values :class:`AutoInpaintModel` knows, sorted."""
    return sorted(_MODEL_TYPES)


def _lookup(model_type: str) -> tuple[type[InpaintConfig], type[InpaintModel]]:
    if model_type not in _MODEL_TYPES:
        raise ValueError(f"unknown model_type {model_type!r}; known model types: {', '.join(list_model_types())}")
    module_name, config_name, model_name = _MODEL_TYPES[model_type]
    module = importlib.import_module(module_name)
    return getattr(module, config_name), getattr(module, model_name)


def get_config_class(model_type: str) -> type[InpaintConfig]:
    return _lookup(model_type)[0]


def get_model_class(model_type: str) -> type[InpaintModel]:
    return _lookup(model_type)[1]


class AutoInpaintModel:
    """Load any inpaint-hub model: reads ``model_type`` from ``config.json`` and dispatches to its class.

    Example::

        model = AutoInpaintModel.from_pretrained("org/lama-big", device="cpu")
    """

    def __init__(self) -> None:
        raise OSError("AutoInpaintModel is not instantiated; use AutoInpaintModel.from_pretrained(...)")

    @staticmethod
    def _builtin(name: str | os.PathLike) -> InpaintConfig | None:
        """The config of a built-in model (``cv2-telea``...) when ``name`` is one and no such folder exists."""
        name = str(name)
        if name not in BUILTIN_MODELS or Path(name).is_dir():
            return None
        model_type, fields_ = BUILTIN_MODELS[name]
        return get_config_class(model_type)(**fields_)

    @staticmethod
    def load_config(
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        force_download: bool = False,
    ) -> InpaintConfig:
        """Read and validate the ``config.json`` of a local folder or Hub repository into its config class.

        Built-in model names (:data:`BUILTIN_MODELS`: ``cv2-telea``, ``cv2-ns``) give their config without any file.
        """
        builtin = AutoInpaintModel._builtin(pretrained_model_name_or_path)
        if builtin is not None:
            return builtin
        path = _resolve_file(
            str(pretrained_model_name_or_path),
            CONFIG_NAME,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            force_download=force_download,
        )
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        return InpaintConfig.from_dict(data)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        force_download: bool = False,
        **kwargs: Any,
    ) -> InpaintModel:
        """Load a model from a local folder or a Hub repo id (``"org/name"``), whatever its model type.

        Args:
            pretrained_model_name_or_path: folder written by ``save_pretrained``, a Hub repository id, or a built-in
                model name from :data:`BUILTIN_MODELS` (``cv2-telea``, ``cv2-ns``: OpenCV baselines, no files).
            revision, cache_dir, local_files_only, token, force_download: as in ``huggingface_hub.hf_hub_download``.
            **kwargs: ``device=``, ``dtype=``, ``strict=`` (default ``True``).
        """
        builtin = cls._builtin(pretrained_model_name_or_path)
        if builtin is not None:
            model = cls.from_config(builtin)
            device, dtype = kwargs.get("device"), _resolve_dtype(kwargs.get("dtype"))
            if device is not None or dtype is not None:
                model = model.to(device=device, dtype=dtype)
            return model.eval()
        hub_kwargs = dict(
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            force_download=force_download,
        )
        config = cls.load_config(pretrained_model_name_or_path, **hub_kwargs)
        model_class = get_model_class(config.model_type)
        return model_class.from_pretrained(pretrained_model_name_or_path, **hub_kwargs, **kwargs)

    @staticmethod
    def from_config(config: InpaintConfig) -> InpaintModel:
        """A freshly initialised model (random weights) for ``config``."""
        return get_model_class(config.model_type)(config)
