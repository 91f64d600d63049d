"""Find the inpaint-hub checkpoints available on this machine without touching the network.

Three places are searched (see :func:`find_local_checkpoints`):

* ``bundled``: a ``checkpoints/`` folder of small demo checkpoints, each a folder written by ``save_pretrained``
  (``config.json`` + ``model.safetensors``);
* ``hub-cache``: the Hugging Face Hub cache (``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
  ``~/.cache/huggingface/hub``), read with ``huggingface_hub.scan_cache_dir``: every cached model repository whose
  snapshot holds a ``config.json`` of one of our model types and a ``model.safetensors``;
* ``builtin``: the models that need no files (:data:`~inpaint_hub.modeling_utils.BUILTIN_MODELS`: ``cv2-telea``,
  ``cv2-ns``).

Every :class:`LocalCheckpoint` carries the ``name`` to give to ``AutoInpaintModel.from_pretrained`` /
``InpaintPipeline.from_pretrained`` / ``inpaint-hub run --model`` (for ``hub-cache`` entries together with
``local_files_only=True`` offline, and ``revision`` when it is set). Discovery never fails because of one bad entry: a
corrupt or invalid ``config.json`` is skipped with a warning.

Example::

    from inpaint_hub.checkpoints import find_local_checkpoints

    for checkpoint in find_local_checkpoints():
        print(checkpoint.name, checkpoint.model_type, checkpoint.source)
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


logger = logging.getLogger(__name__)

__all__ = ["CHECKPOINT_SOURCES", "LocalCheckpoint", "default_checkpoints_dirs", "find_local_checkpoints"]

CHECKPOINT_SOURCES = ("bundled", "hub-cache", "builtin")
"""The values of :attr:`LocalCheckpoint.source`, in the order :func:`find_local_checkpoints` lists them."""

_CONFIG_NAME = "config.json"
_WEIGHTS_NAME = "model.safetensors"
_REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class LocalCheckpoint:
    """One loadable model found on this machine.

    Attributes:
        name: what to pass to ``AutoInpaintModel.from_pretrained``: a folder path (``bundled``), a Hub repository id
            (``hub-cache``; load it with ``local_files_only=True`` to stay offline) or a built-in name (``builtin``).
        model_type: the ``model_type`` of its ``config.json`` (``"lama"``, ``"opencv"``...).
        source: ``"bundled"``, ``"hub-cache"`` or ``"builtin"``.
        path: the folder holding ``config.json`` (for ``hub-cache``: the cached snapshot); ``None`` for built-ins.
        revision: for ``hub-cache`` entries whose cached snapshot is not the one ``main`` points to, the commit hash
            to pass as ``revision=``; ``None`` otherwise.
    """

    name: str
    model_type: str
    source: str
    path: Path | None = None
    revision: str | None = None


def find_local_checkpoints(
    checkpoints_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    include_builtin: bool = True,
) -> list[LocalCheckpoint]:
    """List the checkpoints available locally: bundled folders, the Hub cache, the built-in models.

    Args:
        checkpoints_dir: folder of bundled checkpoints. Every folder below it (at any depth) holding a
            ``config.json`` and a ``model.safetensors`` is one checkpoint. ``None`` searches
            :func:`default_checkpoints_dirs` (``./checkpoints`` and the ``checkpoints/`` folder of the source checkout;
            either may be missing).
        cache_dir: the Hugging Face Hub cache to scan. ``None`` means ``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
            huggingface_hub's default, read from the environment at call time. A missing cache is simply empty.
        include_builtin: also list :data:`~inpaint_hub.modeling_utils.BUILTIN_MODELS`.

    Returns:
        Bundled checkpoints (sorted by path), then Hub-cache repositories (sorted by repo id), then built-ins (in
        their table's order). A Hub-cache repository appears once, with the snapshot ``main`` points to, else the
        most recently modified one.

    Raises:
        FileNotFoundError: ``checkpoints_dir`` was given and is not a folder.
    """
    if checkpoints_dir is not None and not Path(checkpoints_dir).is_dir():
        raise FileNotFoundError(f"checkpoints folder {checkpoints_dir} does not exist")
    folders = [Path(checkpoints_dir)] if checkpoints_dir is not None else default_checkpoints_dirs()
    found: list[LocalCheckpoint] = []
    seen: set[Path] = set()
    for folder in folders:
        for checkpoint in _bundled(folder):
            key = checkpoint.path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(checkpoint)
    found.extend(_hub_cache(cache_dir))
    if include_builtin:
        from .modeling_utils import BUILTIN_MODELS

        found.extend(
            LocalCheckpoint(name=name, model_type=model_type, source="builtin")
            for name, (model_type, _) in BUILTIN_MODELS.items()
        )
    return found


def default_checkpoints_dirs() -> list[Path]:
    """The bundled-checkpoint folders searched by default: ``./checkpoints`` (relative to the current directory)
    and ``checkpoints/`` at the root of the source checkout inpaint_hub was imported from, when they exist."""
    candidates = [Path("checkpoints"), _REPO_ROOT / "checkpoints"]
    folders: list[Path] = []
    for candidate in candidates:
        if candidate.is_dir() and all(candidate.resolve() != f.resolve() for f in folders):
            folders.append(candidate)
    return folders


# ------------------------------------------------------------------------------------------------- bundled


def _bundled(folder: Path) -> list[LocalCheckpoint]:
    found = []
    try:
        configs = sorted(folder.rglob(_CONFIG_NAME))
    except OSError as err:
        logger.warning("cannot list checkpoints folder %s: %s", folder, err)
        return []
    for config in configs:
        checkpoint = config.parent
        if not (checkpoint / _WEIGHTS_NAME).is_file():
            logger.warning("skipping %s: it has a %s but no %s", checkpoint, _CONFIG_NAME, _WEIGHTS_NAME)
            continue
        model_type = _model_type_of(config, warn_foreign=True)
        if model_type is not None:
            found.append(
                LocalCheckpoint(name=str(checkpoint), model_type=model_type, source="bundled", path=checkpoint)
            )
    return found


# ------------------------------------------------------------------------------------------------- Hub cache


def _resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """The Hub cache folder: the argument, else ``HF_HUB_CACHE`` / ``HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``,
    else huggingface_hub's default. Read at call time, so a changed environment is honoured."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def _hub_cache(cache_dir: str | os.PathLike | None) -> list[LocalCheckpoint]:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    folder = _resolve_cache_dir(cache_dir)
    if not folder.is_dir():
        logger.debug("no Hugging Face Hub cache at %s", folder)
        return []
    try:
        info = scan_cache_dir(folder)
    except (CacheNotFound, OSError, ValueError) as err:
        logger.warning("cannot scan the Hugging Face Hub cache %s: %s", folder, err)
        return []
    for warning in info.warnings:
        logger.debug("Hub cache: %s", warning)
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        main = [r for r in repo.revisions if "main" in r.refs]
        revision = main[0] if main else max(repo.revisions, key=lambda r: r.last_modified)
        snapshot = Path(revision.snapshot_path)
        config = snapshot / _CONFIG_NAME
        if not config.is_file():
            continue
        model_type = _model_type_of(config, warn_foreign=False)
        if model_type is None:
            continue
        if not (snapshot / _WEIGHTS_NAME).is_file():
            logger.warning(
                "skipping %s from the Hub cache: its cached snapshot %s has no %s (download it first)",
                repo.repo_id,
                snapshot,
                _WEIGHTS_NAME,
            )
            continue
        found.append(
            LocalCheckpoint(
                name=repo.repo_id,
                model_type=model_type,
                source="hub-cache",
                path=snapshot,
                revision=None if main else revision.commit_hash,
            )
        )
    return found


# ------------------------------------------------------------------------------------------------- configs


def _model_type_of(config: Path, *, warn_foreign: bool) -> str | None:
    """The validated ``model_type`` of an inpaint-hub ``config.json``, or ``None`` (with a warning when it is ours
    but broken) when the file is unreadable, not JSON, not one of our model types, or fails validation."""
    from .configuration_utils import InpaintConfig
    from .modeling_utils import list_model_types

    try:
        data: Any = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        logger.warning("skipping %s: cannot read it as JSON (%s)", config, err)
        return None
    model_type = data.get("model_type") if isinstance(data, dict) else None
    if model_type not in list_model_types():
        if warn_foreign:
            logger.warning(
                "skipping %s: model_type %r is not an inpaint-hub model type (%s)",
                config,
                model_type,
                ", ".join(list_model_types()),
            )
        return None
    try:
        InpaintConfig.from_dict(data)
    except ValueError as err:  # pydantic's ValidationError is a ValueError
        logger.warning("skipping %s: invalid %s config: %s", config, model_type, err)
        return None
    return model_type
