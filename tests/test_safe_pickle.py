"""The one restricted unpickler: what each policy lets a pickle name, and the limits."""

from __future__ import annotations

import io
import pickle
import sys
import types

import numpy as np
import pytest

from extpose_sdk import safe_pickle
from extpose_sdk.safe_pickle import (
    BODY_MODEL,
    CHECKPOINT,
    DATASET,
    SAMPLE,
    ChumpyStandIn,
    InertObject,
    Policy,
    UnsafePickleError,
)


@pytest.fixture(autouse=True)
def fresh_allow_list(monkeypatch):
    """Each test builds the allow-list's groups again (they are cached per process)."""
    monkeypatch.setattr(safe_pickle, "_BUILT", {})
    monkeypatch.setattr(safe_pickle, "_SPARSE", {})


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _call(module: str, name: str, *args: bytes) -> bytes:
    """A protocol-0 pickle calling ``module.name(*args)`` (args already pickled, no memo)."""
    return _global(module, name) + b"(" + b"".join(args) + b"tR."


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("policy", [DATASET, SAMPLE, BODY_MODEL])
def test_numpy_arrays_and_scalars_of_every_protocol(protocol, policy):
    data = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.float64(2.5),
            "i": np.int64(-3), "name": "x", "l": [1, (2, 3)]}
    loaded = safe_pickle.load(pickle.dumps(data, protocol=protocol), policy)
    np.testing.assert_array_equal(loaded["a"], data["a"])
    assert loaded["a"].dtype == np.float32 and loaded["s"] == 2.5 and loaded["i"] == -3
    assert loaded["name"] == "x" and loaded["l"] == [1, (2, 3)]


@pytest.mark.parametrize("policy", [DATASET, SAMPLE, BODY_MODEL, CHECKPOINT])
@pytest.mark.parametrize("target", [("os", "system"), ("builtins", "eval"), ("posix", "system"),
                                    ("subprocess", "Popen"), ("builtins", "getattr")])
def test_code_is_refused_before_it_is_looked_up(policy, target):
    payload = _call(*target, b"S'touch /tmp/extpose-pwned'\n")
    with pytest.raises(UnsafePickleError) as error:
        safe_pickle.load(payload, policy)
    assert error.value.qualified == ".".join(target)
    assert str(error.value) == f"{'.'.join(target)} is not allowed" and error.value.why == ""


def test_numpy_cannot_allocate_or_decode_on_its_own():
    huge = _call("numpy", "ndarray", b"(I1000000000000\ntp0\n")
    with pytest.raises(UnsafePickleError, match="numpy.ndarray called directly"):
        safe_pickle.load(huge, DATASET)
    reconstruct = _call("numpy.core.multiarray", "_reconstruct", _global("numpy", "ndarray"),
                        b"(I1000000000000\nt", b"S'b'\n")
    with pytest.raises(UnsafePickleError, match="_reconstruct with unexpected arguments"):
        safe_pickle.load(reconstruct, DATASET)
    assert safe_pickle.load(_call("_codecs", "encode", b"V\\u00e9\n", b"S'latin1'\n"),
                            DATASET) == b"\xe9"
    with pytest.raises(UnsafePickleError, match=r"encoding 'rot13'"):
        safe_pickle.load(_call("_codecs", "encode", b"Vx\n", b"S'rot13'\n"), DATASET)
    assert safe_pickle.load(pickle.dumps(b"", protocol=2), DATASET) == b""
    with pytest.raises(UnsafePickleError, match="bytes called with arguments"):
        safe_pickle.load(_call("__builtin__", "bytes", b"I1000000000000\n"), CHECKPOINT)


def test_sparse_matrices_up_to_the_limit_and_only_where_allowed(monkeypatch):
    import scipy.sparse

    regressor = scipy.sparse.csc_matrix(np.eye(4, 6))
    for protocol in (2, 4):
        loaded = safe_pickle.load(pickle.dumps({"J": regressor}, protocol=protocol), BODY_MODEL)
        np.testing.assert_array_equal(loaded["J"].toarray(), np.eye(4, 6))
    with pytest.raises(UnsafePickleError, match=r"scipy\.sparse\._csc\.csc_matrix"):
        safe_pickle.load(pickle.dumps(regressor, protocol=2), DATASET)
    monkeypatch.setattr(safe_pickle, "MAX_SPARSE_ELEMENTS", 24)
    safe_pickle.load(pickle.dumps(regressor, protocol=2), BODY_MODEL)  # 4 x 6 = 24: allowed
    big = scipy.sparse.csc_matrix((5, 5))
    with pytest.raises(UnsafePickleError, match=r"a 5 x 5 sparse matrix, over the limit of 24"):
        safe_pickle.load(pickle.dumps(big, protocol=2), BODY_MODEL)
    forged = pickle.dumps(regressor, protocol=2).replace(b"K\x04K\x06\x86", b"K\x04J\xff\xff\xff\xff\x86")
    with pytest.raises(UnsafePickleError, match=r"a sparse matrix with shape \(4, -1\)"):
        safe_pickle.load(forged, BODY_MODEL)


def _with_module(monkeypatch, module_name: str, class_name: str):
    module = types.ModuleType(module_name)
    cls = type(class_name, (), {"__module__": module_name})
    setattr(module, class_name, cls)
    package = module_name.split(".")[0]
    monkeypatch.setitem(sys.modules, package, sys.modules.get(package, types.ModuleType(package)))
    monkeypatch.setitem(sys.modules, module_name, module)
    return cls


def test_chumpy_and_config_objects_become_inert(monkeypatch):
    Ch = _with_module(monkeypatch, "chumpy.ch", "Ch")
    value = Ch()
    value.__dict__.update({"x": np.arange(3.0), "_dirty_vars": {"x"}})
    loaded = safe_pickle.load(pickle.dumps({"v": value}, protocol=2), BODY_MODEL)["v"]
    assert isinstance(loaded, ChumpyStandIn)
    np.testing.assert_array_equal(loaded.array, np.arange(3.0))
    expression = Ch()
    expression.__dict__.update({"a": 1})
    assert safe_pickle.load(pickle.dumps(expression, protocol=2), BODY_MODEL).array is None
    with pytest.raises(UnsafePickleError, match=r"chumpy\.ch\.Ch"):
        safe_pickle.load(pickle.dumps(value, protocol=2), SAMPLE)

    Config = _with_module(monkeypatch, "omegaconf.dictconfig", "DictConfig")
    config = Config()
    config.content = {"LR": 1e-5}
    inert = safe_pickle.load(pickle.dumps(config, protocol=2), CHECKPOINT)
    assert isinstance(inert, InertObject) and inert.state == {"content": {"LR": 1e-5}}
    assert repr(inert) == "<inert omegaconf.dictconfig.DictConfig>"
    with pytest.raises(UnsafePickleError, match=r"omegaconf\.dictconfig\.DictConfig"):
        safe_pickle.load(pickle.dumps(config, protocol=2), BODY_MODEL)


def test_size_limit_and_policies(monkeypatch):
    small = pickle.dumps([1, 2, 3])
    assert safe_pickle.load(small, SAMPLE) == [1, 2, 3]
    with pytest.raises(UnsafePickleError, match=rf"{len(small)} bytes, over the 10-byte limit"):
        safe_pickle.load(small, SAMPLE, max_bytes=10)
    assert safe_pickle.load(io.BytesIO(small), SAMPLE, max_bytes=10) == [1, 2, 3]  # files: no cap
    assert SAMPLE.max_bytes == safe_pickle.MAX_SAMPLE_BYTES == 16 * 1024 * 1024
    assert safe_pickle.ALLOW_LIST == ("numpy", "builtins", "codecs", "sparse", "chumpy", "torch",
                                      "config")
    assert (CHECKPOINT.groups, DATASET.groups) == (("torch", "config"), ("numpy", "codecs"))
    with pytest.raises(ValueError, match=r"policy 'x': unknown groups \['pickles'\]"):
        Policy("x", ("numpy", "pickles"))
    assert safe_pickle.load(pickle.dumps({1, 2}, protocol=2), SAMPLE) == {1, 2}
    with pytest.raises(UnsafePickleError, match=r"__builtin__\.set is not allowed"):
        safe_pickle.load(pickle.dumps({1, 2}, protocol=2), DATASET)
