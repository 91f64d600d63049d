"""The pydantic base of every model configuration.

A configuration is the contract of a model: it holds every architectural choice, validates them together,
and serialises to the flat ``config.json`` that sits next to ``model.safetensors``. Configs never import torch,
so they can be read, validated and diffed without building a network.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


CONFIG_NAME = "config.json"


class InpaintConfig(BaseModel):
    """Base class of all model configurations.

    Subclasses add a ``model_type`` ``Literal`` field (the key :class:`~inpaint_hub.AutoInpaintModel` dispatches on),
    typed fields with a ``description`` each, and named presets as classmethods. Instances are immutable
    (``frozen=True``) and reject unknown keys (``extra="forbid"``), so a misspelled key in ``config.json`` is an
    error rather than a silently ignored setting. Use :meth:`replace` to derive a modified copy.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    # One line for ``inpaint-hub list``: the paper and what distinguishes the model; presets.
    summary: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dictionary written to ``config.json`` (tuples become lists)."""
        return self.model_dump(mode="json")

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def replace(self, **changes: Any) -> InpaintConfig:
        """Return a validated copy with some fields changed (the config itself is frozen)."""
        return type(self).model_validate({**self.to_dict(), **changes})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InpaintConfig:
        """Validate a dictionary (e.g. a parsed ``config.json``) into this config class.

        Raises:
            ValueError: if ``data`` was written for a different model type, or fails validation.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a config must be a JSON object, got {type(data).__name__}")
        found = data.get("model_type")
        if "model_type" not in cls.model_fields:  # the base class: pick the concrete config from the registry
            if found is None:
                raise ValueError("this config has no 'model_type', so the model it belongs to is unknown")
            from .modeling_utils import get_config_class

            return get_config_class(found).from_dict(data)
        expected = cls.model_fields["model_type"].default
        if found is not None and found != expected:
            raise ValueError(
                f"this config.json is for model_type {found!r}, but {cls.__name__} expects {expected!r}; "
                "load it with AutoInpaintModel.from_pretrained(...) to pick the right class"
            )
        return cls.model_validate(data)
