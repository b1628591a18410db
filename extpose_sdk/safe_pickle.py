"""Pickles from users' files, read without running code: one restricted unpickler, one allow-list.

A pickle names the globals (classes, functions) it needs, and a plain ``pickle.load`` imports
and calls them: ``os.system`` as easily as ``numpy.ndarray``. Every pickle the SDK reads from a
user's file goes through ``RestrictedUnpickler`` here instead: official checkpoints (inside
torch's zip), SMPL / MANO model files, data-set pickles (3DPW, HO3D) and the training tars'
``.data.pyd``. ``ALLOW_LIST`` is the one list of what may be named, in groups; each reader's
``Policy`` picks the groups its files need. A global outside the policy raises
``UnsafePickleError`` before anything is imported or called.

Groups:
    numpy       arrays, dtypes and scalars (numpy 1 and 2 module names). ``ndarray`` itself is a
                stand-in only ``_reconstruct`` accepts (with the empty shape numpy writes), so a
                pickle cannot allocate ``ndarray(10**12)``.
    builtins    set, frozenset, complex, object; ``copyreg._reconstructor`` (old-style objects)
    codecs      ``_codecs.encode`` for latin-1 text and ``bytes()`` (how protocol 2 stores bytes)
    sparse      scipy.sparse csc / csr / coo matrices, at most ``MAX_SPARSE_ELEMENTS`` entries
                when dense (a forged shape cannot make ``toarray()`` allocate terabytes)
    chumpy      chumpy objects (in SMPL / MANO files) become inert stand-ins holding their state
    torch       torch's tensor rebuild functions, ``torch.Size``, dtypes, devices, Parameters,
                ``OrderedDict`` / ``defaultdict``, plain builtin data types
    config      classes of configuration libraries (omegaconf, typing, pathlib, yacs, argparse,
                enum) become inert stand-ins that keep their arguments and state, run no code

Policies: ``CHECKPOINT`` (torch, config), ``BODY_MODEL`` (numpy, builtins, codecs, sparse,
chumpy), ``DATASET`` (numpy, codecs) and ``SAMPLE`` (numpy, builtins, codecs; at most
``MAX_SAMPLE_BYTES``).
"""

from __future__ import annotations

import builtins
import copyreg
import importlib
import io
import pickle
import types
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

#: Largest dense size (rows x columns) of a sparse matrix in a pickle.
MAX_SPARSE_ELEMENTS = 64 * 1024 * 1024
#: Largest ``.data.pyd`` of a training tar read (bytes); larger ones are refused unread.
MAX_SAMPLE_BYTES = 16 * 1024 * 1024
#: Modules whose classes are configuration data (the ``config`` group).
CONFIG_MODULES = ("omegaconf", "typing", "pathlib", "yacs", "argparse", "enum")
#: Builtin data types a checkpoint may name (the ``torch`` group).
TORCH_BUILTINS = ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int",
                  "float", "bool", "complex", "slice", "range", "object", "NoneType")
#: Callables that rebuild tensors in torch's own pickle format (the ``torch`` group).
TORCH_GLOBALS = (
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"), ("torch", "Size"), ("torch", "Tensor"),
    ("torch.nn.parameter", "Parameter"), ("torch", "device"), ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
)
SPARSE_CLASSES = ("csc_matrix", "csr_matrix", "coo_matrix")


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global outside its policy (``qualified``: ``module.name``), or uses an
    allowed one beyond its limits (``why`` says how); nothing it names was imported or called."""

    def __init__(self, qualified: str, why: str = "") -> None:
        super().__init__(why or f"{qualified} is not allowed")
        self.qualified, self.why = qualified, why


# -- stand-ins -------------------------------------------------------------------------------


class InertObject:
    """Stand-in for a configuration object: keeps its arguments, state and items, runs no code.

    Dict and list subclasses (yacs' ``CfgNode`` is a dict) get their items through
    ``__setitem__`` / ``append`` / ``extend``, as the unpickler delivers them.
    """

    _qualname = "?"

    def __new__(cls, *args, **kwargs):  # the unpickler creates objects with __new__ alone
        self = super().__new__(cls)
        self.args, self.kwargs, self.state = args, kwargs, None
        self.mapping: dict = {}
        self.elements: list = []
        return self

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        self.state = state

    def __setitem__(self, key, value) -> None:
        self.mapping[key] = value

    def append(self, value) -> None:
        self.elements.append(value)

    def extend(self, values) -> None:
        self.elements.extend(values)

    def __repr__(self) -> str:
        return f"<inert {self._qualname}>"


def _inert_class(module: str, name: str) -> type:
    return type(name, (InertObject,), {"_qualname": f"{module}.{name}", "__module__": __name__})


class ChumpyStandIn:
    """Stands in for any chumpy object; holds its pickled ``state`` (``array`` gives the value)."""

    state = None

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    @property
    def array(self) -> Any:
        """The stored value (``x``) of a chumpy array; ``None`` for an expression without one."""
        state = self.state
        if isinstance(state, tuple) and state and isinstance(state[0], dict):
            state = state[0]
        return state.get("x") if isinstance(state, dict) else None


class _NdarrayType:
    """Stands in for ``numpy.ndarray`` in a pickle: only ``_reconstruct`` accepts it, so the
    pickle cannot call ``ndarray(shape)`` itself."""

    __slots__ = ()

    def __call__(self, *args, **kwargs):
        raise UnsafePickleError("numpy.ndarray", "numpy.ndarray called directly")


_NDARRAY = _NdarrayType()


def _numpy_core(name: str):
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray, numeric
    return getattr(numeric if name == "_frombuffer" else multiarray, name)


def _reconstruct(subtype, shape, dtype):
    """numpy's array pickle opener ``_reconstruct(ndarray, (0,), b'b')``: an empty array that
    ``__setstate__`` then fills from the pickle's bytes."""
    if subtype is not _NDARRAY or tuple(shape) != (0,):
        raise UnsafePickleError("numpy._reconstruct", "numpy _reconstruct with unexpected "
                                "arguments")
    return _numpy_core("_reconstruct")(np.ndarray, shape, dtype)


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes (latin-1 only)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafePickleError("_codecs.encode", f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _bytes(*args):
    """``bytes()`` as protocol-2 pickles write an empty bytes object; nothing else (``bytes(n)``
    would allocate n bytes)."""
    if args:
        raise UnsafePickleError("builtins.bytes", "bytes called with arguments")
    return b""


def _copyreg_reconstructor(cls, base, state):
    """``copyreg._reconstructor`` for the classes the policy already allowed (old pickles of
    sparse matrices and plain objects); ``base`` must be ``object``."""
    if base is not object or not isinstance(cls, type):
        raise UnsafePickleError("copyreg._reconstructor", "copyreg._reconstructor with "
                                "unexpected arguments")
    return copyreg._reconstructor(cls, base, state)


_SPARSE: dict[str, type] = {}


def _checked_sparse(name: str) -> type:
    """A subclass of ``scipy.sparse.<name>`` whose unpickled state is checked: a shape of two
    non-negative integers, at most ``MAX_SPARSE_ELEMENTS`` when dense."""
    if name not in _SPARSE:
        import scipy.sparse

        base = getattr(scipy.sparse, name)

        def __setstate__(self, state):
            shape = state.get("_shape", state.get("shape")) if isinstance(state, dict) else None
            if (not isinstance(shape, tuple) or len(shape) != 2
                    or not all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape)):
                raise UnsafePickleError(f"scipy.sparse.{name}",
                                        f"a sparse matrix with shape {shape!r}")
            if int(shape[0]) * int(shape[1]) > MAX_SPARSE_ELEMENTS:
                raise UnsafePickleError(
                    f"scipy.sparse.{name}", f"a {shape[0]} x {shape[1]} sparse matrix, over the "
                    f"limit of {MAX_SPARSE_ELEMENTS} entries")
            self.__dict__.update(state)

        _SPARSE[name] = type(name, (base,), {"__setstate__": __setstate__,
                                              "__module__": "scipy.sparse"})
    return _SPARSE[name]


# -- the allow-list --------------------------------------------------------------------------


def _numpy_group() -> dict[tuple[str, str], Any]:
    found: dict[tuple[str, str], Any] = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        found[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
        found[(f"{core}.multiarray", "scalar")] = _numpy_core("scalar")
        found[(f"{core}.numeric", "_frombuffer")] = _numpy_core("_frombuffer")  # protocol 5
    return found


def _builtins_group() -> dict[tuple[str, str], Any]:
    found: dict[tuple[str, str], Any] = {}
    for name in ("set", "frozenset", "complex", "object"):
        found[("builtins", name)] = found[("__builtin__", name)] = getattr(builtins, name)
    for module in ("copyreg", "copy_reg"):
        found[(module, "_reconstructor")] = _copyreg_reconstructor
    return found


def _torch_group() -> dict[tuple[str, str], Any]:
    import torch

    found: dict[tuple[str, str], Any] = {}
    for module, name in TORCH_GLOBALS:
        found[(module, name)] = getattr(importlib.import_module(module), name)
    for name in TORCH_BUILTINS:
        value = {"NoneType": type(None), "bytes": _bytes}.get(name) or getattr(builtins, name)
        found[("builtins", name)] = found[("__builtin__", name)] = value
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            found[("torch", name)] = getattr(torch, name)
    return found


#: group -> ``{(module, name): what the pickle gets}``, built on first use (the torch and sparse
#: groups import torch / scipy). Patterns (any name of a module) are in ``_pattern``.
_GROUPS: dict[str, Callable[[], dict[tuple[str, str], Any]]] = {
    "numpy": _numpy_group,
    "builtins": _builtins_group,
    "codecs": lambda: {("_codecs", "encode"): _latin1_encode, ("builtins", "bytes"): _bytes,
                       ("__builtin__", "bytes"): _bytes},
    "sparse": lambda: {},
    "chumpy": lambda: {},
    "torch": _torch_group,
    "config": lambda: {},
}
ALLOW_LIST = tuple(_GROUPS)
_BUILT: dict[str, dict[tuple[str, str], Any]] = {}


def _exact(group: str) -> dict[tuple[str, str], Any]:
    if group not in _BUILT:
        _BUILT[group] = _GROUPS[group]()
    return _BUILT[group]


def _pattern(group: str, module: str, name: str) -> Any:
    """Globals a group allows by module rather than one by one, or None."""
    root = module.split(".")[0]
    if group == "sparse" and root == "scipy" and ".sparse" in module and name in SPARSE_CLASSES:
        return _checked_sparse(name)
    if group == "chumpy" and root == "chumpy":
        return ChumpyStandIn
    if group == "config" and root in CONFIG_MODULES:
        return _inert_class(module, name)
    return None


@attrs.frozen
class Policy:
    """The groups of ``ALLOW_LIST`` a kind of file may use, and its size limit (bytes)."""

    name: str
    groups: tuple[str, ...]
    max_bytes: int | None = None

    def __attrs_post_init__(self) -> None:
        unknown = sorted(set(self.groups) - set(ALLOW_LIST))
        if unknown:
            raise ValueError(f"policy {self.name!r}: unknown groups {unknown}; the allow-list "
                             f"has {', '.join(ALLOW_LIST)}")

    def find(self, module: str, name: str) -> Any:
        """What the pickle gets for ``module.name``; ``UnsafePickleError`` outside the policy."""
        for group in self.groups:
            found = _exact(group).get((module, name))
            if found is None:
                found = _pattern(group, module, name)
            if found is not None:
                return found
        raise UnsafePickleError(f"{module}.{name}")


CHECKPOINT = Policy("checkpoint", ("torch", "config"))
BODY_MODEL = Policy("body model", ("numpy", "builtins", "codecs", "sparse", "chumpy"))
DATASET = Policy("data-set pickle", ("numpy", "codecs"))
SAMPLE = Policy("training sample", ("numpy", "builtins", "codecs"), max_bytes=MAX_SAMPLE_BYTES)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come from ``policy`` alone (a class attribute, so that
    torch can subclass it through ``pickle_module``)."""

    policy: Policy = DATASET

    def find_class(self, module: str, name: str) -> Any:
        return self.policy.find(module, name)


def unpickler_for(policy: Policy) -> type[RestrictedUnpickler]:
    """A ``RestrictedUnpickler`` class bound to ``policy``."""
    return type(f"RestrictedUnpickler[{policy.name}]", (RestrictedUnpickler,), {"policy": policy})


def load(file, policy: Policy, *, max_bytes: int | None = None, encoding: str = "latin1") -> Any:
    """Unpickle ``file`` (a binary file or bytes) under ``policy``. Python 2 pickles are read
    with ``encoding="latin1"`` (how their numpy buffers were stored). Bytes over ``max_bytes``
    (default: the policy's) are refused unread (``UnsafePickleError`` named after the policy)."""
    if isinstance(file, (bytes, bytearray, memoryview)):
        limit = policy.max_bytes if max_bytes is None else max_bytes
        if limit is not None and len(file) > limit:
            raise UnsafePickleError(policy.name, f"{len(file)} bytes, over the {limit}-byte "
                                    "limit; it was not read")
        file = io.BytesIO(file)
    return unpickler_for(policy)(file, encoding=encoding).load()


def pickle_module(policy: Policy) -> Any:
    """What ``torch.load(pickle_module=...)`` needs: ``Unpickler`` and ``load`` under ``policy``."""
    unpickler = unpickler_for(policy)
    module = types.ModuleType(f"extpose_safe_pickle_{policy.name.replace(' ', '_')}")
    module.Unpickler = unpickler
    module.load = lambda file, **kwargs: unpickler(file, **kwargs).load()
    return module
