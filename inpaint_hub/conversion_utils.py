"""Helpers shared by the checkpoint converters.

* :func:`load_original_checkpoint` reads the authors' released ``torch.save`` checkpoints without executing pickled
  code, including PyTorch-Lightning files whose ``hyper_parameters`` pickle custom classes.
* :func:`load_yaml_config` reads a training config and resolves its OmegaConf-style ``${a.b.c}`` interpolations.
* :func:`extract_state_dict` pulls one sub-module's tensors out of a checkpoint, with the key prefix stripped.

Safety model of :func:`load_original_checkpoint`
-------------------------------------------------
A pickle can run code only by *calling* something it names: the ``REDUCE``, ``INST``, ``OBJ`` and ``NEWOBJ`` opcodes
call objects that the unpickler's ``find_class`` returned for a ``GLOBAL``/``STACK_GLOBAL``/``EXT`` opcode, and
``BUILD`` calls ``__setstate__`` on (or sets attributes of) an object on the stack. Every file is read through
:class:`RestrictedUnpickler` (as the ``pickle_module`` of ``torch.load``), whose ``find_class`` never imports anything.
It returns

* real objects only for a short allow-list (see :func:`allowed_globals`): scalar builtin types, torch dtypes and
  ``device``, ``torch.nn.Parameter``, and wrapped, argument-checking versions of the container constructors
  (``bytes``, ``list``, ``dict``, ``OrderedDict``, ``torch.Size``, ...) and of torch's tensor-rebuild helpers;
* for every other name, an inert placeholder class (a subclass of :class:`UnpickledPlaceholder`, made per name).
  ``NEWOBJ``/``NEWOBJ_EX`` + ``BUILD`` (how protocol 2+ pickles plain class instances) give a placeholder instance
  that records the name, the ``__new__`` arguments and the state, so Lightning hyper-parameters load as inert data.
  *Calling* a placeholder class (``REDUCE``, ``INST``/``OBJ`` with arguments) raises :class:`UnsafeCheckpointError`,
  so ``os.system``, ``builtins.eval``, ``subprocess.Popen`` & co. are refused before anything runs.

Memory: the wrapped constructors accept only data the file itself holds (``bytes``/``str``, already-built lists,
tuples and dicts), never an integer size (``bytearray(10**9)``) or a lazy iterable (``list(range(10**12))``), so a
tiny pickle cannot make the loader allocate gigabytes; storages are sized by the archive's own records. This is why
the restricted unpickler reads every file: ``torch.load(weights_only=True)`` itself calls ``bytearray(n)`` and
``torch.Tensor(n)`` for any ``n`` the pickle gives. (An attacker can always force the restricted path by naming one
custom class, so reading plain files with it too costs no safety.) After loading, containers that ``BUILD`` gave
instance attributes (an ``OrderedDict`` whose ``items`` returns ``[]``) are refused; only the ``_metadata`` that
``nn.Module.state_dict()`` attaches is accepted.

Files that need a torch helper outside the allow-list (sparse, quantized or nested tensors, legacy typed-tensor
constructors) are refused with a ``ValueError``. With ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` set, torch refuses any custom
unpickler, so files are then read with ``torch.load(weights_only=True)`` (torch's own checks, without the memory
checks above), and a file that needs the restricted unpickler gets a ``ValueError`` that says to unset the variable.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import collections
import copy
import hashlib
import logging
import os
import pickle
import re
import tarfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
import yaml


logger = logging.getLogger(__name__)

__all__ = [
    "RestrictedUnpickler",
    "UnpickledPlaceholder",
    "UnsafeCheckpointError",
    "allowed_globals",
    "extract_state_dict",
    "load_original_checkpoint",
    "load_yaml_config",
    "map_state_dict",
    "resolve_interpolations",
]

_SANDBOX_ADVICE = (
    "If you trust the file, load it once inside a throwaway sandbox (a container or VM without credentials or "
    "network), keep only the tensors, e.g. torch.save(torch.load(path, weights_only=False)['state_dict'], "
    "'tensors_only.ckpt'), and convert the re-saved file instead."
)


class UnsafeCheckpointError(ValueError):
    """The checkpoint's pickle tries to run code at load time (calls something that is not allow-listed), to make
    the loader allocate unbounded memory, or to disguise a container (instance attributes on a dict)."""


class _UnsupportedTensorHelper(ValueError):
    """The pickle calls a torch helper that ``torch.load(weights_only=True)`` knows but this loader does not."""


def _short_repr(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception:  # a repr that fails must not hide the refusal itself
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refusal_message(target: str, args: tuple = (), kwargs: Mapping[str, Any] | None = None) -> str:
    shown = [_short_repr(a) for a in args] + [f"{k}={_short_repr(v)}" for k, v in (kwargs or {}).items()]
    return (
        f"the checkpoint tries to run code at load time: its pickle calls {target}({', '.join(shown)}), which is not "
        "one of the allow-listed tensor-rebuilding functions, so the file is refused (nothing was executed). "
        + _SANDBOX_ADVICE
    )


_TORCH_WEIGHTS_ONLY_NAMES: frozenset[str] | None = None


def _torch_weights_only_names() -> frozenset[str]:
    """``module.name`` of the globals torch's own weights-only unpickler accepts (empty if torch hides them)."""
    global _TORCH_WEIGHTS_ONLY_NAMES
    if _TORCH_WEIGHTS_ONLY_NAMES is None:
        try:
            from torch._weights_only_unpickler import _get_allowed_globals

            _TORCH_WEIGHTS_ONLY_NAMES = frozenset(str(name) for name in _get_allowed_globals())
        except Exception:  # a private torch API; without it the refusal message is the generic one
            _TORCH_WEIGHTS_ONLY_NAMES = frozenset()
    return _TORCH_WEIGHTS_ONLY_NAMES


# ---------------------------------------------------------------------------------------------------------------------
# Placeholders for everything the allow-list does not cover.


class _PlaceholderMeta(type):
    """Metaclass of the placeholder classes: *calling* a placeholder class is refused."""

    _placeholder_module: str
    _placeholder_qualname: str

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        # Reached by pickle's REDUCE (``func(*args)``) and by INST/OBJ with arguments. NEWOBJ/NEWOBJ_EX do not get
        # here: they call ``cls.__new__`` through the type's tp_new slot, which makes an inert instance.
        if cls.placeholder_name in _torch_weights_only_names():
            raise _UnsupportedTensorHelper(
                f"its pickle calls {cls.placeholder_name}, a torch helper for sparse, quantized or nested tensors (or "
                "a legacy typed-tensor constructor), which this loader does not support; re-save the checkpoint with "
                "plain dense tensors"
            )
        raise UnsafeCheckpointError(_refusal_message(cls.placeholder_name, args, kwargs))

    @property
    def placeholder_name(cls) -> str:
        """``module.qualname`` of the global this placeholder stands for."""
        return f"{cls._placeholder_module}.{cls._placeholder_qualname}"

    def __repr__(cls) -> str:
        return f"<placeholder class for {cls.placeholder_name}>"


class UnpickledPlaceholder(metaclass=_PlaceholderMeta):
    """Inert stand-in for an instance of a class that the restricted unpickler did not import.

    Attributes:
        placeholder_name: ``module.qualname`` of the class the pickle named (the module is never imported).
        args: positional arguments the pickle passed to ``__new__`` (``NEWOBJ``), usually empty.
        kwargs: keyword arguments the pickle passed to ``__new__`` (``NEWOBJ_EX``), usually empty.
        state: what the pickle's ``BUILD`` would have handed to ``__setstate__`` (typically the instance
            ``__dict__``), or ``None`` if there was no ``BUILD``.
    """

    __slots__ = ("_args", "_kwargs", "_state")
    _placeholder_module = "<unknown>"
    _placeholder_qualname = "<unknown>"

    def __new__(cls, *args: Any, **kwargs: Any) -> UnpickledPlaceholder:
        self = object.__new__(cls)
        self._args = args
        self._kwargs = kwargs
        self._state = None
        return self

    def __setstate__(self, state: Any) -> None:
        # pickle's BUILD calls this instead of the real class's __setstate__ / __dict__.update.
        self._state = state

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeCheckpointError(_refusal_message(f"an instance of {self.placeholder_name}", args, kwargs))

    @property
    def placeholder_name(self) -> str:
        return type(self).placeholder_name

    @property
    def args(self) -> tuple:
        return self._args

    @property
    def kwargs(self) -> dict[str, Any]:
        return self._kwargs

    @property
    def state(self) -> Any:
        return self._state

    def __repr__(self) -> str:
        return f"<skipped {self.placeholder_name} object>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"{self!r} is a placeholder for an object that was not loaded; it cannot be pickled")

    def __copy__(self) -> UnpickledPlaceholder:
        new = type(self).__new__(type(self), *self._args, **self._kwargs)
        new._state = self._state
        return new

    def __deepcopy__(self, memo: dict) -> UnpickledPlaceholder:
        new = type(self).__new__(type(self), *copy.deepcopy(self._args, memo), **copy.deepcopy(self._kwargs, memo))
        memo[id(self)] = new
        new._state = copy.deepcopy(self._state, memo)
        return new


class _PlaceholderRegistry:
    """Creates (once per ``module.qualname``) the placeholder classes of one load and remembers which were used."""

    def __init__(self) -> None:
        self._classes: dict[str, type[UnpickledPlaceholder]] = {}

    def get(self, module: str, qualname: str) -> type[UnpickledPlaceholder]:
        full = f"{module}.{qualname}"
        cls = self._classes.get(full)
        if cls is None:
            namespace = {
                "__slots__": (),
                # __module__/__qualname__ point into this module, so pickling the class fails instead of importing
                # the module the checkpoint named.
                "__module__": __name__,
                "__qualname__": f"UnpickledPlaceholder[{full}]",
                "_placeholder_module": module,
                "_placeholder_qualname": qualname,
            }
            cls = _PlaceholderMeta("UnpickledPlaceholder", (UnpickledPlaceholder,), namespace)
            self._classes[full] = cls
        return cls

    @property
    def names(self) -> list[str]:
        return sorted(self._classes)


# ---------------------------------------------------------------------------------------------------------------------
# The allow-list.


class _AllowedCallable:
    """Allow-listed callable handed to the unpickler in place of the real function.

    The wrapper checks arguments, and its ``__setstate__`` refuses a ``BUILD`` aimed at it, which would otherwise
    set attributes (``__defaults__``, caches) on the real, process-wide function.
    """

    __slots__ = ("_name", "_func")

    def __init__(self, name: str, func: Any) -> None:
        self._name = name
        self._func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._func(*args, **kwargs)

    def __setstate__(self, state: Any) -> None:
        raise UnsafeCheckpointError(
            f"the checkpoint's pickle tries to modify the allow-listed function {self._name} at load time, so the "
            "file is refused. " + _SANDBOX_ADVICE
        )

    def __repr__(self) -> str:
        return f"<allow-listed {self._name}>"


class _AllowedType(_AllowedCallable):
    """Allow-listed type handed to the unpickler in place of the real type.

    Calling it checks the arguments and returns an instance of the real type (``real``). It is not a type itself, so
    the ``NEWOBJ`` opcode, which would call ``real.__new__`` unchecked (``bytes.__new__(bytes, 10**9)``), fails.
    """

    __slots__ = ("real",)

    def __init__(self, name: str, real: type, func: Any) -> None:
        super().__init__(name, func)
        self.real = real


def _unwrap_type(value: Any) -> Any:
    return value.real if isinstance(value, _AllowedType) else value


def _memory_refusal(
    target: str, args: tuple, kwargs: Mapping[str, Any] | None, accepted: str
) -> UnsafeCheckpointError:
    shown = [_short_repr(a) for a in args] + [f"{k}={_short_repr(v)}" for k, v in (kwargs or {}).items()]
    return UnsafeCheckpointError(
        f"the checkpoint's pickle calls {target}({', '.join(shown)}), but here {target} accepts only {accepted}: an "
        "integer size, a lazy iterable (range, a tensor) or an arbitrary object could make the loader allocate "
        "unbounded memory, so the file is refused (nothing was allocated)."
    )


# Containers the pickle itself spelled out, element by element, so their size is bounded by the file's.
_BUILT_DATA = (tuple, list, set, frozenset, dict, str, bytes, bytearray)


def _is_text_encoding(encoding: Any, errors: Any = "strict") -> bool:
    return isinstance(encoding, str) and encoding.lower() in _TEXT_ENCODINGS and errors == "strict"


def _checked_binary(real: type, name: str) -> Any:
    """``bytes``/``bytearray``/``str``: from bytes-like data or ``(str, encoding)``, never from a size or iterable."""
    accepted = "a str, or bytes and an encoding" if real is str else "bytes-like data or a str with a text encoding"

    def construct(*args: Any, **kwargs: Any) -> Any:
        if not kwargs:
            if not args:
                return real()
            source, rest = args[0], args[1:]
            if not rest and (isinstance(source, str) if real is str else isinstance(source, (bytes, bytearray))):
                return real(source)
            encoded_type = (bytes, bytearray) if real is str else str
            if isinstance(source, encoded_type) and 1 <= len(rest) <= 2 and _is_text_encoding(*rest):
                return real(*args)
        raise _memory_refusal(name, args, kwargs, accepted)

    return construct


def _checked_collection(real: type, name: str) -> Any:
    """``tuple``/``list``/``set``/``frozenset``: empty or from data the pickle spelled out."""

    def construct(*args: Any, **kwargs: Any) -> Any:
        if not kwargs and (not args or (len(args) == 1 and isinstance(args[0], _BUILT_DATA))):
            return real(*args)
        raise _memory_refusal(name, args, kwargs, "no argument or an already-built list, tuple, set, dict or str")

    return construct


def _checked_mapping(real: type, name: str) -> Any:
    """``dict``/``OrderedDict``/``Counter``: empty, or from a dict or a list/tuple of pairs (plus keywords)."""

    def construct(*args: Any, **kwargs: Any) -> Any:
        if len(args) <= 1 and (not args or isinstance(args[0], (dict, list, tuple))):
            return real(*args, **kwargs)
        raise _memory_refusal(name, args, kwargs, "no argument, a dict, or a list of key-value pairs")

    return construct


def _check_default_factory(factory: Any, target: str) -> Any:
    """A ``defaultdict`` factory: None, an allow-listed type (unwrapped) or an inert placeholder."""
    factory = _unwrap_type(factory)
    if factory is None or isinstance(factory, (_PlaceholderMeta, UnpickledPlaceholder)) or factory in _FACTORY_TYPES:
        return factory
    raise UnsafeCheckpointError(_refusal_message(target, (factory,)))


def _defaultdict(*args: Any, **kwargs: Any) -> collections.defaultdict:
    name = "collections.defaultdict"
    if len(args) <= 2 and (len(args) < 2 or isinstance(args[1], (dict, list, tuple))):
        factory = _check_default_factory(args[0] if args else None, name)
        return collections.defaultdict(factory, *args[1:], **kwargs)
    raise _memory_refusal(name, args, kwargs, "a default factory plus an optional dict or list of key-value pairs")


def _torch_size(*args: Any, **kwargs: Any) -> torch.Size:
    if not kwargs and (
        not args or (len(args) == 1 and isinstance(args[0], (tuple, list)) and all(type(v) is int for v in args[0]))
    ):
        return torch.Size(*args)
    raise _memory_refusal("torch.Size", args, kwargs, "a tuple or list of ints")


def _torch_tensor(*args: Any, **kwargs: Any) -> torch.Tensor:
    # torch.save rebuilds tensors from storages; the legacy constructor only turns a size into an allocation.
    raise _memory_refusal("torch.Tensor", args, kwargs, "no call at all (tensors are rebuilt from their storages)")


def _check_typed_storage(storage: Any) -> None:
    if not isinstance(storage, torch.storage.TypedStorage):
        raise pickle.UnpicklingError(f"tensor rebuild expected a storage, got {type(storage).__name__}")


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> torch.Tensor:
    _check_typed_storage(storage)
    return torch._utils._rebuild_tensor(storage, storage_offset, size, stride)


# Modern torch never serializes backward hooks (the argument is an empty OrderedDict); whatever a file carries there
# is dropped instead of being installed on the tensor.
def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    metadata: Any = None,
) -> torch.Tensor:
    _check_typed_storage(storage)
    metadata = metadata if isinstance(metadata, dict) else None
    return torch._utils._rebuild_tensor_v2(
        storage, storage_offset, size, stride, bool(requires_grad), collections.OrderedDict(), metadata
    )


def _rebuild_tensor_v3(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    dtype: Any,
    metadata: Any = None,
) -> torch.Tensor:
    _check_typed_storage(storage)
    if not isinstance(dtype, torch.dtype):
        raise pickle.UnpicklingError(f"tensor rebuild expected a dtype, got {type(dtype).__name__}")
    metadata = metadata if isinstance(metadata, dict) else None
    return torch._utils._rebuild_tensor_v3(
        storage, storage_offset, size, stride, bool(requires_grad), collections.OrderedDict(), dtype, metadata
    )


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any) -> torch.nn.Parameter:
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"parameter rebuild expected a tensor, got {type(data).__name__}")
    return torch._utils._rebuild_parameter(data, bool(requires_grad), collections.OrderedDict())


def _apply_tensor_state(tensor: torch.Tensor, state: Any) -> torch.Tensor:
    """Restore Python attributes pickled with a tensor, like ``torch._utils._set_obj_state``.

    Only plain instance attributes are set: names that the tensor class defines (methods, properties such as
    ``data``/``grad``, ``_backward_hooks``) and dunder names are skipped, so a file cannot rewire the tensor.
    """
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        for key, value in part.items():
            if isinstance(key, str) and not key.startswith("__") and not hasattr(type(tensor), key):
                setattr(tensor, key, value)
            else:
                logger.debug("Ignoring pickled tensor attribute %r", key)
    return tensor


def _rebuild_parameter_with_state(
    data: Any, requires_grad: Any, backward_hooks: Any, state: Any
) -> torch.nn.Parameter:
    return _apply_tensor_state(_rebuild_parameter(data, requires_grad, backward_hooks), state)


_TENSOR_REBUILDERS = {
    "_rebuild_tensor": _rebuild_tensor,
    "_rebuild_tensor_v2": _rebuild_tensor_v2,
    "_rebuild_tensor_v3": _rebuild_tensor_v3,
    "_rebuild_parameter": _rebuild_parameter,
    "_rebuild_parameter_with_state": _rebuild_parameter_with_state,
}


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> torch.Tensor:
    """Tensors with Python attributes (or of a subclass): ``func(*args)``, then type and attributes."""
    if not (isinstance(func, _AllowedCallable) and func._func in _TENSOR_REBUILDERS.values()):
        raise UnsafeCheckpointError(_refusal_message("torch._tensor._rebuild_from_type_v2", (func, new_type)))
    if not isinstance(args, tuple):
        raise pickle.UnpicklingError("_rebuild_from_type_v2 expected an argument tuple")
    tensor = func(*args)
    new_type = _unwrap_type(new_type)
    if new_type in (torch.Tensor, torch.nn.Parameter):
        if type(tensor) is not new_type:
            tensor = tensor.as_subclass(new_type)
    elif isinstance(new_type, _PlaceholderMeta):
        logger.info("Loading a tensor of subclass %s as a plain torch.Tensor", new_type.placeholder_name)
    else:
        raise UnsafeCheckpointError(_refusal_message("torch._tensor._rebuild_from_type_v2", (func, new_type)))
    return _apply_tensor_state(tensor, state)


def _get_layout(name: Any) -> Any:
    if not isinstance(name, str):
        raise pickle.UnpicklingError("layout name must be a string")
    return torch.serialization._get_layout(name)


_TEXT_ENCODINGS = {"latin1", "latin-1", "iso-8859-1", "ascii", "utf-8", "utf8"}


def _codecs_encode(obj: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    # Protocol 2 pickles `bytes` as _codecs.encode(<str>, 'latin1').
    if not (isinstance(obj, str) and isinstance(encoding, str) and encoding.lower() in _TEXT_ENCODINGS):
        raise UnsafeCheckpointError(_refusal_message("_codecs.encode", (obj, encoding)))
    if errors != "strict":
        raise pickle.UnpicklingError("_codecs.encode: only errors='strict' is supported")
    return obj.encode(encoding)


def _check_newobj_class(cls: Any, target: str, args: tuple) -> None:
    if not (isinstance(cls, _PlaceholderMeta) or cls in _SAFE_TYPES):
        raise UnsafeCheckpointError(_refusal_message(target, (cls, *args)))


def _copyreg_newobj(cls: Any, *args: Any) -> Any:
    # Same as the NEWOBJ opcode: cls.__new__(cls, *args), for placeholders and allow-listed types only; a wrapped
    # (argument-checking) type is called instead, as its real __new__ would skip the checks.
    if isinstance(cls, _AllowedType):
        return cls(*args)
    _check_newobj_class(cls, "copyreg.__newobj__", args)
    return cls.__new__(cls, *args)


def _copyreg_newobj_ex(cls: Any, args: Any, kwargs: Any) -> Any:
    if not (isinstance(args, tuple) and isinstance(kwargs, dict)):
        raise pickle.UnpicklingError("copyreg.__newobj_ex__ expected an argument tuple and a keyword dict")
    if isinstance(cls, _AllowedType):
        return cls(*args, **kwargs)
    _check_newobj_class(cls, "copyreg.__newobj_ex__", args)
    return cls.__new__(cls, *args, **kwargs)


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    # Protocol 0/1 pickles of plain instances: copyreg._reconstructor(cls, object, None), then BUILD.
    if isinstance(cls, _PlaceholderMeta):
        return cls.__new__(cls) if state is None else cls.__new__(cls, state)
    raise UnsafeCheckpointError(_refusal_message("copyreg._reconstructor", (cls, base, state)))


# Builtin types handed out as themselves: BUILD cannot set attributes on them, and neither calling them nor their
# __new__ (NEWOBJ) runs pickled code or allocates more than the file holds.
_PLAIN_BUILTINS = ("object", "bool", "int", "float", "complex", "slice", "range")
# Types handed out as argument-checking _AllowedType wrappers: (module, name) -> (type, checked constructor).
_CHECKED_TYPES: dict[tuple[str, str], tuple[type, Any]] = {
    (module, real.__name__): (real, make(real, f"{module}.{real.__name__}"))
    for module, real, make in (
        ("builtins", bytes, _checked_binary),
        ("builtins", bytearray, _checked_binary),
        ("builtins", str, _checked_binary),
        ("builtins", tuple, _checked_collection),
        ("builtins", list, _checked_collection),
        ("builtins", set, _checked_collection),
        ("builtins", frozenset, _checked_collection),
        ("builtins", dict, _checked_mapping),
        ("collections", collections.OrderedDict, _checked_mapping),
        ("collections", collections.Counter, _checked_mapping),
    )
} | {
    ("collections", "defaultdict"): (collections.defaultdict, _defaultdict),
    ("torch", "Size"): (torch.Size, _torch_size),
    # Only an argument of _rebuild_from_type_v2 (unwrapped there); calling it is refused.
    ("torch", "Tensor"): (torch.Tensor, _torch_tensor),
    ("torch._tensor", "Tensor"): (torch.Tensor, _torch_tensor),
}
# Real types that copyreg.__newobj__ may instantiate (wrapped types go through their checks instead).
_SAFE_TYPES: frozenset[type] = frozenset(
    [getattr(builtins, n) for n in _PLAIN_BUILTINS] + [torch.device, torch.nn.Parameter]
)
# Real types a defaultdict may keep as its default factory.
_FACTORY_TYPES: frozenset[type] = _SAFE_TYPES | {real for real, _ in _CHECKED_TYPES.values()}

_ALLOWED: dict[tuple[str, str], Any] | None = None


def allowed_globals() -> dict[tuple[str, str], Any]:
    """The ``(module, name)`` globals that :class:`RestrictedUnpickler` resolves to real objects.

    Returns:
        A new dict mapping ``(module, name)`` to the object handed to the unpickler. Everything else becomes an
        inert :class:`UnpickledPlaceholder` subclass.
    """
    global _ALLOWED
    if _ALLOWED is None:
        allowed: dict[tuple[str, str], Any] = {("builtins", n): getattr(builtins, n) for n in _PLAIN_BUILTINS}
        allowed.update(
            {
                ("torch", "device"): torch.device,
                # A Python class, but it defines __setstate__, so a BUILD aimed at the class fails instead of setting
                # attributes on it; Parameter(data) needs a tensor, and Parameter.__new__ allocates nothing.
                ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
            }
        )
        for (module, name), (real, construct) in _CHECKED_TYPES.items():
            allowed[(module, name)] = _AllowedType(f"{module}.{name}", real, construct)
        # dtypes pickle as references, e.g. GLOBAL torch.float32.
        for value in vars(torch).values():
            if isinstance(value, torch.dtype):
                allowed[("torch", str(value).removeprefix("torch."))] = value
        wrapped = {("torch._utils", name): func for name, func in _TENSOR_REBUILDERS.items()}
        wrapped.update(
            {
                ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
                ("torch.serialization", "_get_layout"): _get_layout,
                ("_codecs", "encode"): _codecs_encode,
                ("copyreg", "__newobj__"): _copyreg_newobj,
                ("copyreg", "__newobj_ex__"): _copyreg_newobj_ex,
                ("copyreg", "_reconstructor"): _copyreg_reconstructor,
            }
        )
        for (module, name), func in wrapped.items():
            allowed[(module, name)] = _AllowedCallable(f"{module}.{name}", func)
        _ALLOWED = allowed
    return dict(_ALLOWED)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that never imports: allow-listed globals or inert placeholder classes.

    Use ``RestrictedUnpickler(file).load()`` for a plain pickle; :func:`load_original_checkpoint` hands it to
    ``torch.load`` as ``pickle_module``. Placeholder classes are shared by all unpicklers with the same
    ``placeholder_registry`` (class attribute; a fresh registry per instance if unset).
    """

    placeholder_registry: _PlaceholderRegistry | None = None

    def __init__(self, file: BinaryIO, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        if self.placeholder_registry is None:
            self.placeholder_registry = _PlaceholderRegistry()
        self._allowed = _ALLOWED if _ALLOWED is not None else allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        # Overriding find_class bypasses the C unpickler's Python 2 name mapping, so apply it here (pure data).
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        found = self._allowed.get((module, name))
        if found is not None:
            return found
        return self.placeholder_registry.get(str(module), str(name))


class _RestrictedPickleModule:
    """What the ``pickle_module`` argument of ``torch.load`` needs: ``Unpickler``, ``load`` and ``__name__``.

    torch's zip loader subclasses ``pickle_module.Unpickler``; its legacy (non-zip) loader also calls
    ``pickle_module.load`` for the magic number, protocol version, sys info and storage keys, so both go through
    :class:`RestrictedUnpickler`.
    """

    __name__ = f"{__name__}.restricted_pickle"
    UnpicklingError = pickle.UnpicklingError

    def __init__(self) -> None:
        self.registry = _PlaceholderRegistry()
        self.Unpickler = type("Unpickler", (RestrictedUnpickler,), {"placeholder_registry": self.registry})

    def load(self, file: BinaryIO, **kwargs: Any) -> Any:
        return self.Unpickler(file, **kwargs).load()


# ---------------------------------------------------------------------------------------------------------------------
# Loading.


def _is_torchscript_archive(f: BinaryIO) -> bool:
    f.seek(0)
    try:
        if not zipfile.is_zipfile(f):
            return False
        f.seek(0)
        with zipfile.ZipFile(f) as archive:
            return any(n.rsplit("/", 1)[-1] == "constants.pkl" for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    finally:
        f.seek(0)


def _is_tar_archive(f: BinaryIO) -> bool:
    f.seek(0)
    try:
        return tarfile.is_tarfile(f)
    except OSError:
        return False
    finally:
        f.seek(0)


def _summarize_error(error: BaseException, limit: int = 300) -> str:
    text = str(error)
    match = re.search(r"GLOBAL (\S+)", text)
    if match:
        return f"unsupported global {match.group(1)}"
    match = re.search(r"Unsupported operand (\d+)", text)
    if match:
        return f"unsupported pickle opcode {int(match.group(1)):#04x}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _not_a_checkpoint(path: Path, error: BaseException) -> ValueError:
    hint = ""
    if path.suffix == ".safetensors":
        hint = " The name suggests a safetensors file; read it with safetensors.torch.load_file instead."
    return ValueError(
        f"Could not load {path} as a PyTorch checkpoint: expected a file written by torch.save (a zip archive, or "
        f"the legacy pickle format), but reading it failed with {_summarize_error(error)}.{hint}"
    )


def _instance_attributes(item: Any) -> dict:
    # The type's __dict__ descriptor wins over an instance attribute of that name; defaultdict has no __dict__.
    attributes = getattr(item, "__dict__", None)
    return attributes if isinstance(attributes, dict) else {}


def _render_path(node: Any) -> str:
    """``the checkpoint['state_dict'].attr`` from the linked path nodes of :func:`_check_loaded` (built on error
    only, so deep nesting does not cost one long string per object)."""
    parts: list[str] = []
    while node is not None:
        node, kind, label = node
        parts.append(f"[{_short_repr(label, 60)}]" if kind == "item" else f".{label}" if kind == "attr" else label)
    text = "the checkpoint" + "".join(reversed(parts))
    return text if len(text) <= 400 else f"{text[:200]} ... {text[-200:]}"


def _check_dict_attributes(item: dict, node: Any) -> None:
    """Refuse a dict subclass (OrderedDict, defaultdict, Counter) to which the pickle's BUILD gave attributes."""
    attributes = _instance_attributes(item)
    extra = sorted(str(name) for name in attributes if name != "_metadata")
    if extra:
        raise UnsafeCheckpointError(
            f"{_render_path(node)} is an instance of {type(item).__name__} whose pickle also sets the instance "
            f"attribute(s) {', '.join(repr(n) for n in extra)}; those would change how the container behaves (e.g. "
            "an items() that hides or swaps tensors), and no torch.save file carries them (only "
            "nn.Module.state_dict()'s _metadata), so the file is refused."
        )
    if "_metadata" in attributes and not isinstance(attributes["_metadata"], dict):
        raise UnsafeCheckpointError(
            f"{_render_path(node)}._metadata is a {type(attributes['_metadata']).__name__}, not the dict that "
            "nn.Module.state_dict() attaches, so the file is refused."
        )
    if isinstance(item, collections.defaultdict):
        # BUILD with a slot state can set default_factory, which is a slot, not an instance attribute.
        try:
            item.default_factory = _check_default_factory(item.default_factory, "collections.defaultdict")
        except UnsafeCheckpointError as error:
            raise UnsafeCheckpointError(f"{_render_path(node)}.default_factory: {error}") from None


def _check_loaded(obj: Any) -> None:
    """Post-load checks on everything reachable from ``obj`` (containers, placeholder data, tensor attributes).

    Refuses dict subclasses that carry instance attributes (see :func:`_check_dict_attributes`) and removes backward
    hooks that a pickle's BUILD may have installed on tensors (never legitimately saved). Iterative, any depth.
    """
    stack: list[tuple[Any, Any]] = [(obj, None)]  # (object, path node: None or (parent node, kind, label))
    seen: set[int] = set()
    while stack:
        item, node = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            if getattr(item, "_backward_hooks", None):
                item._backward_hooks = collections.OrderedDict()
            stack.extend((v, (node, "attr", k)) for k, v in _instance_attributes(item).items())
        elif isinstance(item, dict):
            if type(item) is not dict:
                _check_dict_attributes(item, node)
                stack.extend((v, (node, "attr", k)) for k, v in _instance_attributes(item).items())
            # dict.items, not item.items: the latter could be an instance attribute (refused above, but be sure).
            for key, value in dict.items(item):
                stack.append((key, (node, "text", " (a key)")))
                stack.append((value, (node, "item", key)))
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((v, (node, "item", i)) for i, v in enumerate(item))
        elif isinstance(item, UnpickledPlaceholder):
            node = (node, "text", f" ({item.placeholder_name})")
            stack.extend(((item.args, (node, "attr", "args")), (item.kwargs, (node, "attr", "kwargs"))))
            stack.append((item.state, (node, "attr", "state")))


_TRUE_VALUES = ("1", "y", "yes", "true")


def _torch_forces_weights_only() -> bool:
    # torch.load reads this variable on every call (torch/serialization.py), with these values.
    return os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in _TRUE_VALUES


def _forced_weights_only_error(path: Path, error: BaseException) -> ValueError:
    return ValueError(
        f"Could not load {path}: torch.load(weights_only=True) refuses it ({_summarize_error(error)}), so it needs "
        "this loader's restricted unpickler, but TORCH_FORCE_WEIGHTS_ONLY_LOAD is set in the environment, which "
        "makes torch refuse any custom unpickler. Unset TORCH_FORCE_WEIGHTS_ONLY_LOAD (e.g. `env -u "
        "TORCH_FORCE_WEIGHTS_ONLY_LOAD <command>`) and run again; the restricted unpickler never executes pickled "
        "code either."
    )


def _checked(path: Path, obj: Any) -> Any:
    try:
        _check_loaded(obj)
    except UnsafeCheckpointError as error:
        raise UnsafeCheckpointError(f"Refusing to load {path}: {error}") from None
    return obj


def load_original_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu") -> Any:
    """Load an authors' ``torch.save`` checkpoint without executing any pickled code.

    The file is read by ``torch.load`` with :class:`RestrictedUnpickler` as its pickle module (see the module
    docstring): allow-listed tensor helpers and size-checked container constructors are used, every other class
    becomes an inert :class:`UnpickledPlaceholder` instance (e.g. the OmegaConf ``hyper_parameters`` of a Lightning
    checkpoint), and any attempt to *call* a non-allow-listed object is refused with :class:`UnsafeCheckpointError`.

    Args:
        path: checkpoint file (``best.ckpt``, ``*.pth``; zip or legacy ``torch.save`` format).
        map_location: passed to ``torch.load``; defaults to ``"cpu"`` so CUDA-saved files load anywhere.

    Returns:
        Whatever object the pickle holds, usually a dict (e.g. ``{"state_dict": {...}, "epoch": ...}``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: the pickle tries to run code (a ``__reduce__`` calling ``os.system``, ``eval``, ...),
            to allocate unbounded memory (``bytearray(10**9)``), or to give a dict instance attributes.
        ValueError: ``path`` is not a ``torch.save`` checkpoint (text, random bytes, a plain pickle, a TorchScript
            or legacy tar archive) or is corrupt; it holds sparse/quantized/nested tensors; or
            ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` is set and the file needs the restricted unpickler.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"Checkpoint not found: {path} (expected a file written by torch.save, e.g. best.ckpt or a .pth file)"
        )
    if not path.is_file():
        raise ValueError(f"{path} is not a file; expected a checkpoint file written by torch.save")
    with path.open("rb") as f:
        if _is_torchscript_archive(f):
            # torch.load(weights_only=False) would hand it to torch.jit.load.
            raise ValueError(
                f"{path} is a TorchScript archive (torch.jit.save). Loading one runs its TorchScript code, so it "
                "is not supported; convert from the eager checkpoint (torch.save of a state_dict) instead."
            )
        if _is_tar_archive(f):
            # torch.load(weights_only=False) would extract it with tarfile.
            raise ValueError(f"{path} is a legacy tar checkpoint (torch < 0.4 format), which is not supported")
        if _torch_forces_weights_only():
            return _checked(path, _load_weights_only(path, f, map_location))
        return _checked(path, _load_restricted(path, f, map_location))


def _load_weights_only(path: Path, f: BinaryIO, map_location: Any) -> Any:
    """``torch.load(weights_only=True)``: the only way left when TORCH_FORCE_WEIGHTS_ONLY_LOAD is set."""
    logger.info("%s: TORCH_FORCE_WEIGHTS_ONLY_LOAD is set, so reading it with torch.load(weights_only=True)", path)
    try:
        return torch.load(f, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise _forced_weights_only_error(path, error) from error
    except Exception as error:
        raise _not_a_checkpoint(path, error) from error


def _load_restricted(path: Path, f: BinaryIO, map_location: Any) -> Any:
    pickle_module = _RestrictedPickleModule()
    f.seek(0)
    try:
        # weights_only=False is safe here only because pickle_module is our restricted module: every global the
        # pickle names (zip format: the data.pkl record; legacy format: also the header pickles read with
        # pickle_module.load) is resolved by RestrictedUnpickler.find_class, which imports nothing and returns either
        # an allow-listed object or an inert placeholder class whose call raises UnsafeCheckpointError. The
        # TorchScript and tar branches of torch.load were ruled out by the caller. mmap=False keeps a global mmap
        # default from requiring a path.
        obj = torch.load(f, map_location=map_location, weights_only=False, pickle_module=pickle_module, mmap=False)
    except UnsafeCheckpointError as error:
        raise UnsafeCheckpointError(f"Refusing to load {path}: {error}") from None
    except _UnsupportedTensorHelper as error:
        raise ValueError(f"Cannot load {path}: {error}") from None
    except Exception as error:
        if "pickle_module" in str(error):  # torch refused the custom unpickler (a forced weights-only mode)
            raise _forced_weights_only_error(path, error) from error
        raise _not_a_checkpoint(path, error) from error
    names = pickle_module.registry.names
    if names:
        logger.info(
            "%s: loaded with the restricted unpickler; skipped non-tensor objects: %s (kept as inert placeholders)",
            path,
            ", ".join(names),
        )
    return obj


# ---------------------------------------------------------------------------------------------------------------------
# State dicts.


# Dotted keys grow with the depth, so a pickle of deeply nested dicts would make quadratically long key strings.
_MAX_NESTING = 100


def _flatten_tensors(tree: Mapping, out: dict[str, torch.Tensor], where: str = "the checkpoint") -> None:
    """Add the tensors of ``tree`` to ``out`` with dotted keys, depth first in the checkpoint's order.

    A mapping that contains itself (directly or through its children, e.g. a pickled ``d["self"] = d``) and nesting
    deeper than ``_MAX_NESTING`` are refused with a ``ValueError``.
    """
    stack = [(iter(tree.items()), "", id(tree))]
    open_mappings = {id(tree): where}  # the mappings on the current path, with their names
    while stack:
        items, prefix, ident = stack[-1]
        for key, value in items:
            name = f"{prefix}{key}"
            if isinstance(value, torch.Tensor):
                if name in out:
                    raise ValueError(f"Ambiguous checkpoint: tensor key {name!r} occurs twice after flattening")
                out[name] = value
            elif isinstance(value, Mapping):
                if len(stack) >= _MAX_NESTING:
                    raise ValueError(
                        f"{where} nests mappings more than {_MAX_NESTING} levels deep (at key {_short_repr(name)}); "
                        "a state dict is at most a few levels of dicts of tensors"
                    )
                if id(value) in open_mappings:
                    raise ValueError(
                        f"Reference cycle in {where}: the mapping at key {name!r} is {open_mappings[id(value)]}, "
                        "which contains it, so its tensors cannot be flattened (a state dict is a tree of tensors)"
                    )
                open_mappings[id(value)] = f"the one at key {name!r}"
                stack.append((iter(value.items()), f"{name}.", id(value)))
                break
        else:
            stack.pop()
            del open_mappings[ident]


def extract_state_dict(checkpoint: Mapping[str, Any], prefix: str) -> dict[str, torch.Tensor]:
    """Return the tensors whose key starts with ``prefix``, with the prefix stripped.

    The tensors are taken from ``checkpoint["state_dict"]`` (Lightning) when present, else from the checkpoint
    itself; nested dicts are flattened with dotted keys, so ``{"netG": {"conv.weight": t}}`` gives
    ``"netG.conv.weight"``. Non-tensor values are ignored.

    Args:
        checkpoint: what :func:`load_original_checkpoint` returned.
        prefix: key prefix to select and strip, e.g. ``"generator."``; ``""`` returns all tensors.

    Returns:
        ``{stripped_key: tensor}`` in the checkpoint's order.

    Raises:
        ValueError: the checkpoint is not a mapping, holds no tensors, or no tensor key starts with ``prefix``
            (the message lists the available top-level prefixes).
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"Expected a checkpoint dict, got {type(checkpoint).__name__}")
    source = checkpoint.get("state_dict")
    where = 'checkpoint["state_dict"]'
    if not isinstance(source, Mapping):
        source, where = checkpoint, "the checkpoint"
    tensors: dict[str, torch.Tensor] = {}
    _flatten_tensors(source, tensors, where)
    if not tensors:
        keys = ", ".join(repr(k) for k in list(source)[:20]) or "none"
        raise ValueError(f"No tensors found in {where} (its keys: {keys})")
    selected = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
    if not selected:
        counts = collections.Counter(key.split(".", 1)[0] + ("." if "." in key else "") for key in tensors)
        available = ", ".join(f"{name!r} ({n} tensors)" for name, n in sorted(counts.items()))
        raise ValueError(f"No tensor key in {where} starts with {prefix!r}; available top-level prefixes: {available}")
    return selected


# ---------------------------------------------------------------------------------------------------------------------
# YAML configs.

_INTERPOLATION_RE = re.compile(r"\\\$\{|\$\{([^${}]*)\}")
_WHOLE_INTERPOLATION_RE = re.compile(r"\$\{([^${}]*)\}")
_MISSING = object()


def _format_path(path: tuple) -> str:
    return ".".join(str(c) for c in path) if path else "<root>"


def _is_reference(expression: str) -> bool:
    # "${a.b}" references a key; "${env:USER}", "${oc.env:HOME,/tmp}" call resolvers and are left alone.
    expression = expression.strip()
    return bool(expression) and ":" not in expression


class _InterpolationResolver:
    """Resolves ``${a.b.c}`` (and relative ``${.sibling}``/``${..uncle}``) references within one document."""

    def __init__(self, root: dict) -> None:
        self._root = root
        self._resolved: dict[tuple, Any] = {}
        self._active: list[tuple] = []

    def resolve(self) -> dict:
        return self._resolve_path(())

    def _raw(self, path: tuple) -> Any:
        node = self._root
        for key in path:
            node = node[key]
        return node

    def _resolve_path(self, path: tuple) -> Any:
        if path in self._resolved:
            return self._resolved[path]
        if path in self._active:
            cycle = self._active[self._active.index(path) :] + [path]
            raise ValueError("interpolation cycle: " + " -> ".join(_format_path(p) for p in cycle))
        self._active.append(path)
        try:
            node = self._raw(path)
            if isinstance(node, dict):
                value: Any = {key: self._resolve_path((*path, key)) for key in node}
            elif isinstance(node, list):
                value = [self._resolve_path((*path, i)) for i in range(len(node))]
            elif isinstance(node, str):
                value = self._resolve_string(node, path)
            else:
                value = node
        finally:
            self._active.pop()
        self._resolved[path] = value
        return value

    def _target(self, expression: str, path: tuple) -> tuple:
        expression = expression.strip()
        relative = expression.lstrip(".")
        dots = len(expression) - len(relative)
        if dots > len(path):
            raise ValueError(f"${{{expression}}} at {_format_path(path)} points above the document root")
        target = path[:-dots] if dots else ()
        node = self._raw(target)
        for part in (p for p in re.split(r"[.\[\]]", relative) if p):
            key: Any = _MISSING
            if isinstance(node, dict):
                key = part if part in node else next((k for k in node if str(k) == part), _MISSING)
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                key = int(part)
            if key is _MISSING:
                raise ValueError(
                    f"${{{expression}}} at {_format_path(path)}: {part!r} not found under {_format_path(target)}"
                )
            target = (*target, key)
            node = node[key]
        return target

    def _resolve_string(self, text: str, path: tuple) -> Any:
        whole = _WHOLE_INTERPOLATION_RE.fullmatch(text)
        if whole and _is_reference(whole.group(1)):
            value = self._resolve_path(self._target(whole.group(1), path))
            return copy.deepcopy(value) if isinstance(value, (dict, list)) else value

        def substitute(match: re.Match) -> str:
            if match.group(1) is None:  # escaped "\${" stays a literal "${"
                return "${"
            if not _is_reference(match.group(1)):
                return match.group(0)
            return str(self._resolve_path(self._target(match.group(1), path)))

        return _INTERPOLATION_RE.sub(substitute, text)


def resolve_interpolations(config: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve OmegaConf-style ``${a.b.c}`` references within ``config``; returns a new dict.

    A value that is exactly one interpolation takes the referenced value (with its type: int, float, bool, dict,
    ...); an interpolation embedded in a longer string is substituted as text. References resolve recursively
    (chains), ``${.key}``/``${..key}`` are relative to the containing node, ``\\${...}`` is an escaped literal, and
    resolver calls such as ``${env:USER}`` are left as the literal text.

    Args:
        config: parsed YAML mapping.

    Returns:
        A resolved deep copy of ``config``.

    Raises:
        ValueError: a referenced key does not exist, or references form a cycle.
    """
    return _InterpolationResolver(dict(config)).resolve()


def load_yaml_config(path: str | os.PathLike) -> dict[str, Any]:
    """``yaml.safe_load`` a config file and resolve its ``${...}`` interpolations (see :func:`resolve_interpolations`).

    Args:
        path: YAML file, e.g. LaMa's ``config.yaml``.

    Returns:
        The resolved mapping (``{}`` for an empty file).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: invalid YAML, a top level that is not a mapping, a missing reference or a reference cycle.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Config file not found: {path} (expected a YAML file)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, IsADirectoryError) as error:
        raise ValueError(f"{path} is not a readable YAML config: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level of the YAML config, got {type(data).__name__}")
    try:
        return resolve_interpolations(data)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (converters record it in the model card)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def map_state_dict(
    original: Mapping[str, torch.Tensor],
    rename: Callable[[str], str],
    expected: Mapping[str, torch.Tensor],
    model_name: str,
) -> dict[str, torch.Tensor]:
    """Rename every original tensor with ``rename``; each is used exactly once and every expected tensor is filled.

    Args:
        original: the original checkpoint's tensors.
        rename: original key -> our key; raises ``ValueError`` for a key it does not know.
        expected: our model's ``state_dict()`` (names and shapes).
        model_name: for the error message ("PEN-Net's generator").

    Raises:
        ValueError: a tensor has no place in the model, two map to one place, a shape differs, or a model tensor is
            left without a value -- every offender is named, in one message.
    """
    converted: dict[str, torch.Tensor] = {}
    sources: dict[str, str] = {}
    errors = []
    for key, tensor in original.items():
        try:
            ours = rename(key)
        except ValueError as err:
            errors.append(str(err))
            continue
        if ours in converted:
            errors.append(f"{key!r} and {sources[ours]!r} both map to {ours!r}")
            continue
        converted[ours] = tensor
        sources[ours] = key
    missing = sorted(set(expected) - set(converted))
    if missing:
        errors.append(f"no original tensor for {len(missing)} model tensor(s): {', '.join(missing)}")
    extra = sorted(set(converted) - set(expected))
    if extra:
        errors.append(
            f"{len(extra)} original tensor(s) have no place in the model: {', '.join(sources[k] for k in extra)}"
        )
    for key in sorted(set(converted) & set(expected)):
        if converted[key].shape != expected[key].shape:
            errors.append(
                f"{sources[key]} has shape {tuple(converted[key].shape)}, expected {tuple(expected[key].shape)}"
            )
    if errors:
        raise ValueError(f"the checkpoint does not match {model_name}:\n  " + "\n  ".join(errors))
    return converted
