"""Read and write PyTorch ``.pth`` checkpoints as numpy, without importing torch.

Converting the official SiamRN/pysot weights must not need torch installed, and unpickling an untrusted
``.pth`` must not run arbitrary code. So the reader is a ``pickle.Unpickler`` that resolves only a fixed
whitelist of globals (everything else raises :class:`PthFormatError`) and rebuilds every tensor as a numpy
array straight from the raw storage bytes. Both container formats are read:

* zip (torch >= 1.6): ``<archive>/data.pkl`` plus one raw little-endian file per storage,
  ``<archive>/data/<key>``;
* legacy (``_use_new_zipfile_serialization=False``): one stream of pickles -- magic number, protocol,
  sys_info, the object, the list of storage keys -- then per key an int64 element count and the raw bytes.

The writer emits the protocol-2 pickle opcodes itself: the standard ``pickle.Pickler`` can only name a global
(``torch._utils._rebuild_tensor_v2``) by importing it, which is exactly what we must not do.
"""

import builtins
import collections
import io
import os
import pickle
import struct
import types
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np

from siamrn_jax.atomic import atomic_output
from siamrn_jax.errors import SiamrnError

__all__ = ["PthFormatError", "load_pth", "save_pth"]

_MAGIC = 0x1950A86A20F9469CFC6C  # legacy format magic number (torch/serialization.py)
# fmt: off
_TABLE = [  # torch storage class, torch dtype, numpy dtype
    ("FloatStorage", "float32", "f4"), ("DoubleStorage", "float64", "f8"), ("HalfStorage", "float16", "f2"),
    ("BFloat16Storage", "bfloat16", ml_dtypes.bfloat16), ("LongStorage", "int64", "i8"),
    ("IntStorage", "int32", "i4"), ("ShortStorage", "int16", "i2"), ("CharStorage", "int8", "i1"),
    ("ByteStorage", "uint8", "u1"), ("BoolStorage", "bool", "?"), ("ComplexFloatStorage", "complex64", "c8"),
    ("ComplexDoubleStorage", "complex128", "c16"),
]
# fmt: on
_STORAGE_NAMES = {np.dtype(d): storage for storage, _, d in _TABLE}
_DTYPES = {name: np.dtype(d) for storage, dtype, d in _TABLE for name in (storage, dtype)}
_DTYPES["UntypedStorage"] = np.dtype("u1")  # torch >= 2 storages saved on their own are untyped bytes


class PthFormatError(SiamrnError, ValueError):
    """The file is not a PyTorch checkpoint this reader can (or may safely) load."""


def _rebuild_tensor(storage, offset, size, stride, *_unused):
    """``torch._utils._rebuild_tensor[_v2]``: a strided view into a storage, copied to C order."""
    if storage is None:  # first pass over a legacy file: storages are not read yet
        return None
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or min((offset, *size, *stride)) < 0:
        raise PthFormatError(f"bad tensor geometry size={size} stride={stride} offset={offset}")
    if 0 not in size and offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) >= storage.size:
        raise PthFormatError(f"tensor size={size} stride={stride} offset={offset} overruns its storage")
    strides = tuple(s * storage.itemsize for s in stride)
    return np.lib.stride_tricks.as_strided(storage[offset:], size, strides, writeable=False).copy()


class _NumpyDtype:
    """What ``numpy.dtype(name, align, copy)`` unpickles to here: the name, plus the byte order that the
    pickle's BUILD (``__setstate__``) adds. Only numeric kinds become real dtypes (``_numpy_scalar``): an
    object dtype could smuggle in arbitrary objects."""

    def __init__(self, name, *_):
        self.name, self.order = str(name), "="

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "=", "|"):
            self.order = state[1]


def _numpy_scalar(dtype, data=b""):
    """``numpy.core.multiarray.scalar``: a NumPy number (e.g. the ``np.float64`` learning rates that
    NanoTrack's checkpoints keep in their optimizer state)."""
    if not isinstance(dtype, _NumpyDtype) or not isinstance(data, bytes):
        raise PthFormatError("bad numpy scalar in pickle")
    dt = np.dtype(dtype.name)
    if dt.kind not in "biufc" or len(data) != dt.itemsize:
        raise PthFormatError(f"unsupported numpy scalar of dtype {dtype.name!r} in pickle")
    return np.frombuffer(data, dt.newbyteorder(dtype.order))[0]


def _latin1_bytes(text, encoding="latin1"):
    """``_codecs.encode``: how protocol-2 pickles spell ``bytes`` (the raw data of a numpy scalar)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise PthFormatError("unsupported _codecs.encode call in pickle")
    return text.encode("latin1")


_NUMPY = {
    ("_codecs", "encode"): _latin1_bytes,
    **{(m, "scalar"): _numpy_scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "dtype"): _NumpyDtype,
}

_GLOBALS = {
    **_NUMPY,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): lambda data, *_: data,  # nn.Parameter -> its data
    ("torch._utils", "_rebuild_parameter_with_state"): lambda data, *_: data,
    ("torch", "Size"): tuple,
    ("torch.storage", "UntypedStorage"): _DTYPES["UntypedStorage"],
    **{("builtins", n): getattr(builtins, n) for n in ("set", "frozenset", "slice")},
    **{("torch", n): d for n, d in _DTYPES.items()},  # storage classes and dtypes both mean "this dtype"
}


class _Unpickler(pickle.Unpickler):
    """Resolves only whitelisted globals; ``persistent_load`` turns storage ids into flat numpy arrays."""

    def __init__(self, file, read_storage):
        super().__init__(file)
        self._read_storage = read_storage  # (key, dtype, numel) -> np.ndarray, or None in a dry run

    def find_class(self, module, name):
        module = "builtins" if module == "__builtin__" else module  # protocol 2 names it the python 2 way
        if (module, name) not in _GLOBALS:
            raise PthFormatError(f"unsupported global '{module}.{name}' in pickle")
        found = _GLOBALS[module, name]
        # A fresh wrapper per use: a pickle's BUILD opcode could otherwise set attributes on our functions.
        return (lambda *args: found(*args)) if isinstance(found, types.FunctionType) else found

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise PthFormatError(f"unsupported persistent id {str(pid)[:80]!r} (only tensor storages are)")
        dtype, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(dtype, np.dtype):
            raise PthFormatError(f"storage '{key}' has no storage type")
        storage = self._read_storage(key, dtype, numel)
        view = pid[5] if len(pid) == 6 else None  # pre-1.0 legacy files: (view_key, offset, size)
        return storage if view is None or storage is None else storage[view[1] : view[1] + view[2]]


def _load_zip(f):
    with zipfile.ZipFile(f) as zf:
        pkl = next((n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1), None)
        if pkl is None:
            raise PthFormatError("zip archive has no '<archive>/data.pkl' (not a torch.save checkpoint)")
        prefix = pkl[: -len("data.pkl")]
        names, cache = set(zf.namelist()), {}
        if prefix + "byteorder" in names and zf.read(prefix + "byteorder") != b"little":
            raise PthFormatError("big-endian checkpoints are not supported")

        def read_storage(key, dtype, numel):
            if key not in cache:
                name, nbytes = f"data/{key}", numel * dtype.itemsize
                if prefix + name not in names:
                    raise PthFormatError(f"missing storage '{name}'")
                raw = zf.read(prefix + name)
                if len(raw) < nbytes:
                    raise PthFormatError(
                        f"truncated storage '{name}' (expected {nbytes} bytes, found {len(raw)})"
                    )
                cache[key] = np.frombuffer(raw, dtype, numel)
            return cache[key]

        return _Unpickler(io.BytesIO(zf.read(pkl)), read_storage).load()


def _load_legacy(f):
    """Two passes: storage bytes follow the object pickle, and their sizes depend on its storage types."""
    for _ in range(3):  # magic number, protocol version, sys_info
        header = _Unpickler(f, None).load()
    if not header.get("little_endian", True):
        raise PthFormatError("big-endian checkpoints are not supported")
    start, dtypes, storages = f.tell(), {}, {}

    def record_dtype(key, dtype, numel):
        dtypes[key] = dtype  # and return None: the dry run builds no tensors

    _Unpickler(f, record_dtype).load()
    for key in _Unpickler(f, None).load():
        count = f.read(8)
        nbytes = int.from_bytes(count, "little", signed=True) * dtypes[key].itemsize
        raw = f.read(nbytes) if len(count) == 8 and nbytes >= 0 else b""
        if len(raw) != nbytes or len(count) != 8:
            raise PthFormatError(f"truncated storage '{key}' (expected {nbytes} bytes, found {len(raw)})")
        storages[key] = np.frombuffer(raw, dtypes[key])
    f.seek(start)
    return _Unpickler(f, lambda key, dtype, numel: storages[key]).load()


def load_pth(path: str | os.PathLike) -> object:
    """Unpickle a ``.pth`` file, with every tensor (and nn.Parameter) as a C-contiguous numpy array."""
    name = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(32)
        f.seek(0)
        try:
            if head.startswith(b"PK\x03\x04"):
                return _load_zip(f)
            if b"\x8a\x0a" + _MAGIC.to_bytes(10, "little") in head:
                return _load_legacy(f)
        except PthFormatError as e:
            raise PthFormatError(f"{name}: {e}") from None
        except zipfile.BadZipFile as e:
            raise PthFormatError(f"{name}: corrupt or truncated zip archive ({e})") from e
        except Exception as e:  # noqa: BLE001 -- any parse failure of a hostile file is a format error
            raise PthFormatError(f"{name}: corrupt checkpoint ({type(e).__name__}: {e})") from e
    raise PthFormatError(
        f"{name}: not a PyTorch checkpoint (neither a zip archive nor a legacy torch pickle)"
    )


def _global(module, name):
    return f"c{module}\n{name}\n".encode()  # GLOBAL opcode


def _str(text):
    data = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE opcode


_EMPTY_ORDERED_DICT = _global("collections", "OrderedDict") + b")R"  # OrderedDict(), as torch pickles it


class _Writer:
    """Protocol-2 pickle opcodes for plain containers, with numpy arrays written as torch tensors."""

    def __init__(self):
        self.out, self.storages, self._keys = bytearray(), [], {}

    def save(self, obj):
        w = self.out.extend
        if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
            obj = obj.item()  # numpy scalars become python scalars, not 0-d tensors
        if obj is None or isinstance(obj, bool | int | float):
            w(pickle.dumps(obj, protocol=2)[2:-1])  # strip PROTO and STOP; scalars are never memoized
        elif isinstance(obj, str):
            w(_str(obj))
        elif isinstance(obj, tuple | list):
            w(b"(" if isinstance(obj, tuple) else b"](")
            for item in obj:
                self.save(item)
            w(b"t" if isinstance(obj, tuple) else b"e")
        elif isinstance(obj, dict):  # insertion order is kept; OrderedDict stays an OrderedDict
            w((_EMPTY_ORDERED_DICT if isinstance(obj, collections.OrderedDict) else b"}") + b"(")
            for key, value in obj.items():
                self.save(key)
                self.save(value)
            w(b"u")
        elif isinstance(obj, np.ndarray):
            self._save_tensor(obj)
        else:
            raise TypeError(
                f"save_pth cannot store a {type(obj).__name__} (only containers, scalars, arrays)"
            )

    def _save_tensor(self, arr):
        if arr.dtype not in _STORAGE_NAMES:
            raise TypeError(f"save_pth: no torch dtype for numpy {arr.dtype}")
        if id(arr) not in self._keys:  # the same array object twice shares one storage, as in torch
            self._keys[id(arr)] = str(len(self.storages))
            flat = np.ascontiguousarray(arr, arr.dtype.newbyteorder("<")).reshape(-1)
            self.storages.append(flat.view(np.uint8))
        stride, n = [], 1
        for size in reversed(arr.shape):  # torch's contiguous strides (numpy's may differ on size-1 dims)
            stride.insert(0, n)
            n *= max(size, 1)
        w = self.out.extend  # _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)
        w(_global("torch._utils", "_rebuild_tensor_v2") + b"((" + _str("storage"))
        w(_global("torch", _STORAGE_NAMES[arr.dtype]) + _str(self._keys[id(arr)]) + _str("cpu"))
        self.save(arr.size)
        w(b"tQ")  # end of the storage id tuple; BINPERSID
        for item in (0, tuple(arr.shape), tuple(stride), False):
            self.save(item)
        w(_EMPTY_ORDERED_DICT + b"tR")


def save_pth(obj: object, path: str | os.PathLike) -> None:
    """Write ``obj`` like ``torch.save`` does (zip format), atomically: readers never see a partial file.

    Storages are 64-byte aligned like torch's, so ``torch.load(mmap=True)`` maps them aligned. No
    ``.format_version`` record is written: with it, torch may compute storage offsets assuming miniz's zip
    layout (data descriptors) instead of reading them from the headers, and Python's zipfile differs.
    """
    writer = _Writer()
    writer.save(obj)
    path = Path(path)
    records = [("data.pkl", b"\x80\x02" + writer.out + b"."), (".storage_alignment", b"64")]
    records += [("byteorder", b"little"), *((f"data/{i}", a) for i, a in enumerate(writer.storages))]
    with atomic_output(path) as tmp, open(tmp, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        for name, data in [*records, ("version", b"3\n")]:
            info = zipfile.ZipInfo(f"archive/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            # local header + name + our padding field's header + the zip64 field zipfile adds itself
            header = 30 + len(info.filename) + 4 + 20 * (len(data) * 1.05 > zipfile.ZIP64_LIMIT)
            pad = -(f.tell() + header) % 64
            info.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # "FB" padding field, as miniz
            zf.writestr(info, data)
