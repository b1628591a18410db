"""The one restricted unpickler: what each policy lets a pickle name, and the limits."""

from __future__ import annotations

import io
import pickle
import re
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


def test_each_refusal_names_what_was_refused():
    cases = [
        (_call("numpy", "ndarray", b"(I3\ntp0\n"), DATASET, "numpy.ndarray",
         "numpy.ndarray called directly"),
        (_call("numpy._core.multiarray", "_reconstruct", _global("numpy", "ndarray"),
               b"(I5\nt", b"S'b'\n"), DATASET, "numpy._reconstruct",
         "numpy _reconstruct with unexpected arguments"),
        (_call("_codecs", "encode", b"Vx\n", b"S'utf-8'\n"), DATASET, "_codecs.encode",
         "_codecs.encode with encoding 'utf-8'"),
        (_call("__builtin__", "bytes", b"I3\n"), DATASET, "builtins.bytes",
         "bytes called with arguments"),
    ]
    for payload, policy, qualified, message in cases:
        with pytest.raises(UnsafePickleError) as error:
            safe_pickle.load(payload, policy)
        assert (error.value.qualified, str(error.value), error.value.why) == (qualified, message,
                                                                             message)
    too_big = b"x" * 11
    with pytest.raises(UnsafePickleError) as error:
        safe_pickle.load(too_big, SAMPLE, max_bytes=10)
    assert error.value.qualified == "training sample"
    assert str(error.value) == "11 bytes, over the 10-byte limit; it was not read"


def test_latin1_bytes_in_both_spellings_and_by_default():
    assert safe_pickle.load(_call("_codecs", "encode", b"Vx\n"), DATASET) == b"x"
    assert safe_pickle.load(_call("_codecs", "encode", b"Vx\n", b"S'latin-1'\n"), DATASET) == b"x"
    import tempfile
    from pathlib import Path

    from extpose_sdk.datasets.fixtures import write_python2_pickle

    with tempfile.TemporaryDirectory() as folder:  # Python 2 str buffers need latin1 decoding
        path = write_python2_pickle(Path(folder) / "py2.pkl", {"a": np.arange(4.0)})
        with open(path, "rb") as file:
            np.testing.assert_array_equal(safe_pickle.load(file, DATASET)["a"], np.arange(4.0))


def test_sparse_states_old_and_new_and_their_checks(monkeypatch):
    import scipy.sparse

    matrix = scipy.sparse.csc_matrix(np.eye(4, 6))
    for protocol, fix_imports in ((0, True), (1, True), (1, False), (2, True), (4, True)):
        data = pickle.dumps(matrix, protocol=protocol, fix_imports=fix_imports)
        loaded = safe_pickle.load(data, BODY_MODEL)
        assert isinstance(loaded, scipy.sparse.csc_matrix)
        assert (type(loaded).__name__, type(loaded).__module__) == ("csc_matrix", "scipy.sparse")
        np.testing.assert_array_equal(loaded.toarray(), np.eye(4, 6))
    empty = safe_pickle.load(pickle.dumps(scipy.sparse.csr_matrix((0, 5)), protocol=2), BODY_MODEL)
    assert empty.shape == (0, 5)
    checked = safe_pickle._checked_sparse("coo_matrix")
    instance = object.__new__(checked)
    instance.__setstate__({"shape": (2, 3), "row": np.array([0]), "col": np.array([1]),
                           "data": np.array([5.0])})  # an old scipy's state: "shape"
    assert instance.__dict__["shape"] == (2, 3)
    for state, why in (([1, 2], "shape None"), ({"_shape": (2, 3, 4)}, "shape (2, 3, 4)"),
                       ({"_shape": (2.0, 3)}, "shape (2.0, 3)"), ({"_shape": (2, -3)},
                                                                   "shape (2, -3)")):
        with pytest.raises(UnsafePickleError, match=rf"^a sparse matrix with {re.escape(why)}$") as error:
            object.__new__(checked).__setstate__(state)
        assert error.value.qualified == "scipy.sparse.coo_matrix"
    monkeypatch.setattr(safe_pickle, "MAX_SPARSE_ELEMENTS", 29)
    with pytest.raises(UnsafePickleError) as error:
        safe_pickle.load(pickle.dumps(scipy.sparse.csc_matrix((5, 6)), protocol=2), BODY_MODEL)
    assert error.value.qualified == "scipy.sparse.csc_matrix"
    assert str(error.value) == "a 5 x 6 sparse matrix, over the limit of 29 entries"


class _Plain:
    """A class of this test module: never in the allow-list."""


def test_old_style_reconstructor_only_for_allowed_classes():
    plain = _Plain()
    plain.value = 3
    payload = _call("copy_reg", "_reconstructor", _global("__builtin__", "object"),
                    _global("__builtin__", "object"), b"N")
    assert type(safe_pickle.load(payload, BODY_MODEL)) is object
    modern = payload.replace(b"copy_reg", b"copyreg").replace(b"__builtin__", b"builtins")
    assert type(safe_pickle.load(modern, SAMPLE)) is object
    for base in (_global("__builtin__", "set"),):
        with pytest.raises(UnsafePickleError, match="copyreg._reconstructor with unexpected"):
            safe_pickle.load(_call("copy_reg", "_reconstructor", _global("__builtin__", "object"),
                                   base, b"N"), BODY_MODEL)
    with pytest.raises(UnsafePickleError, match="copyreg._reconstructor with unexpected"):
        safe_pickle.load(_call("copy_reg", "_reconstructor", b"I3\n",
                               _global("__builtin__", "object"), b"N"), BODY_MODEL)
    with pytest.raises(UnsafePickleError, match=r"_Plain is not allowed"):
        safe_pickle.load(pickle.dumps(plain, protocol=0), BODY_MODEL)


def test_checkpoints_through_torch_with_the_checkpoint_policy(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    Config = _with_module(monkeypatch, "omegaconf.listconfig", "ListConfig")
    module = types.ModuleType("yacs.config")
    module.CfgList = type("CfgList", (list,), {"__module__": "yacs.config"})
    monkeypatch.setitem(sys.modules, "yacs", types.ModuleType("yacs"))
    monkeypatch.setitem(sys.modules, "yacs.config", module)
    config = Config()
    config.items = [1, 2]
    entries = module.CfgList([1, 2, 3])
    saved = {"w": torch.arange(4.0), "dtype": torch.float16, "span": slice(1, 5), "cfg": config,
             "list": entries, "size": torch.Size([2, 3]), "none": None}
    for protocol in (2, 4):
        path = tmp_path / f"c{protocol}.pt"
        torch.save(saved, path, pickle_protocol=protocol)
        loaded = torch.load(path, weights_only=False,
                            pickle_module=safe_pickle.pickle_module(CHECKPOINT))
        assert torch.equal(loaded["w"], torch.arange(4.0)) and loaded["dtype"] is torch.float16
        assert loaded["span"] == slice(1, 5) and loaded["size"] == torch.Size([2, 3])
        assert loaded["none"] is None
        assert isinstance(loaded["cfg"], InertObject) and loaded["cfg"].state == {"items": [1, 2]}
        assert loaded["list"].elements == [1, 2, 3]
        assert type(loaded["cfg"]).__module__ == "extpose_sdk.safe_pickle"
    assert safe_pickle.pickle_module(CHECKPOINT).__name__ == "extpose_safe_pickle_checkpoint"


def test_policies_check_their_groups_and_the_sample_limit():
    with pytest.raises(ValueError) as error:
        Policy("x", ("numpy", "pickles", "eggs"))
    assert str(error.value) == ("policy 'x': unknown groups ['eggs', 'pickles']; the allow-list "
                                "has numpy, builtins, codecs, sparse, chumpy, torch, config")
    at_limit = pickle.dumps([1, 2, 3])
    assert safe_pickle.load(at_limit, SAMPLE, max_bytes=len(at_limit)) == [1, 2, 3]  # read
    over = pickle.dumps(b"y" * safe_pickle.MAX_SAMPLE_BYTES)
    with pytest.raises(UnsafePickleError, match="over the 16777216-byte limit"):
        safe_pickle.load(over, SAMPLE)
    assert len(safe_pickle.load(over, DATASET)) == safe_pickle.MAX_SAMPLE_BYTES  # no limit there


def test_each_refused_reconstructor_is_named():
    payloads = (_call("copy_reg", "_reconstructor", _global("__builtin__", "object"),
                      _global("__builtin__", "set"), b"N"),
                _call("copy_reg", "_reconstructor", b"I3\n", _global("__builtin__", "object"),
                      b"N"))
    for payload in payloads:
        with pytest.raises(UnsafePickleError) as error:
            safe_pickle.load(payload, BODY_MODEL)
        assert error.value.qualified == "copyreg._reconstructor"
        assert str(error.value) == "copyreg._reconstructor with unexpected arguments"


def test_config_dicts_and_lists_keep_their_items(monkeypatch):
    module = types.ModuleType("yacs.config")
    module.CfgNode = type("CfgNode", (dict,), {"__module__": "yacs.config"})
    module.CfgList = type("CfgList", (list,), {"__module__": "yacs.config"})
    monkeypatch.setitem(sys.modules, "yacs", types.ModuleType("yacs"))
    monkeypatch.setitem(sys.modules, "yacs.config", module)
    saved = [module.CfgNode(LR=1e-5), module.CfgNode(LR=1e-5, DEPTH=2), module.CfgList([1]),
             module.CfgList([1, "two", 3.0])]  # one item (SETITEM, APPEND), then in batches
    for protocol in (2, 4):
        loaded = safe_pickle.load(pickle.dumps(saved, protocol=protocol), CHECKPOINT)
        assert repr(loaded[0]) == "<inert yacs.config.CfgNode>"
        assert [loaded[0].mapping, loaded[1].mapping] == [{"LR": 1e-5}, {"LR": 1e-5, "DEPTH": 2}]
        assert [loaded[2].elements, loaded[3].elements] == [[1], [1, "two", 3.0]]

    class PythonUnpickler(pickle._Unpickler):  # pure Python: items one by one through append
        def find_class(self, module, name):
            return CHECKPOINT.find(module, name)

    loaded = PythonUnpickler(io.BytesIO(pickle.dumps(saved, protocol=2))).load()
    assert [loaded[2].elements, loaded[3].elements] == [[1], [1, "two", 3.0]]
    assert loaded[1].mapping == {"LR": 1e-5, "DEPTH": 2}


def test_the_pickle_module_loads_under_its_policy_with_its_arguments(tmp_path):
    from extpose_sdk.datasets.fixtures import write_python2_pickle

    assert safe_pickle.pickle_module(SAMPLE).__name__ == "extpose_safe_pickle_training_sample"
    module = safe_pickle.pickle_module(DATASET)
    assert module.load(io.BytesIO(pickle.dumps([1, (2, 3.5)]))) == [1, (2, 3.5)]
    path = write_python2_pickle(tmp_path / "py2.pkl", {"a": np.arange(4.0)})
    with open(path, "rb") as file:  # a Python 2 buffer: only latin1 reads it
        np.testing.assert_array_equal(module.load(file, encoding="latin1")["a"], np.arange(4.0))
    with open(path, "rb") as file, pytest.raises(UnicodeDecodeError):
        module.load(file, encoding="ascii")
    with pytest.raises(UnsafePickleError, match=r"^builtins\.eval is not allowed$"):
        module.load(io.BytesIO(_call("builtins", "eval", b"V1\n")))
