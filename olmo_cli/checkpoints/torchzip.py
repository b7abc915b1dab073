"""The `torch.save` zip format, read without torch: each tensor's shape, dtype and byte range.

`data.pkl` is read by an unpickler that knows only the names a plain state dict uses
(`torch._utils._rebuild_tensor_v2`, the typed storage classes, `collections.OrderedDict`) and
maps them to stand-ins here: nothing is imported or called. Anything else raises `NotPlain`,
and the caller falls back to torch's own `weights_only` loader, which decides.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from olmo_cli.checkpoints.primitives import ITEMSIZE, FileRange, is_zip
from olmo_cli.errors import BadInputError

_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}


class NotPlain(Exception):
    """The pickle uses something the index reader does not know: let torch's loader decide."""


@dataclass(frozen=True)
class _Storage:
    dtype: str
    key: str
    numel: int


@dataclass(frozen=True)
class _Entry:
    shape: tuple[int, ...]
    dtype: str
    range: FileRange | None  # None when not contiguous


def _rebuild_tensor(storage, storage_offset, size, stride, *rest):
    return ("tensor", storage, int(storage_offset), tuple(size), tuple(stride))


class _PlainDict(dict):
    """Stands in for OrderedDict; takes the `_metadata` attribute a module's state_dict() carries."""


def _ordered_dict(*args):
    if args:
        raise NotPlain("OrderedDict with items")
    return _PlainDict()


class _IndexUnpickler(pickle.Unpickler):
    """Builds (storage, offset, size, stride) tuples for tensors; knows no other globals.

    Each global is a fresh wrapper, so a crafted BUILD opcode (which sets attributes on whatever
    object is on the stack) can only touch throwaway objects, never this module's functions.
    """

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda *args: _rebuild_tensor(*args)
        if (module, name) == ("collections", "OrderedDict"):
            return lambda *args: _ordered_dict(*args)
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise NotPlain(f"{module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise NotPlain("persistent id")
        _, storage_type, key, _location, numel = pid
        if storage_type not in _STORAGE_DTYPES:
            raise NotPlain(str(storage_type))
        return _Storage(_STORAGE_DTYPES[storage_type], str(key), int(numel))


def read_torch_zip_index(path: Path) -> dict[str, _Entry]:
    """{key: shape, dtype, byte range} of a torch.save zip holding a flat dict of tensors."""
    if not is_zip(path):
        raise NotPlain("not a zip")
    size = path.stat().st_size
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise NotPlain("no single data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        try:
            state = _IndexUnpickler(io.BytesIO(archive.read(pickles[0]))).load()
        except NotPlain:
            raise
        except Exception as error:  # malformed pickle: let torch's loader report it
            raise NotPlain(str(error)) from None
        if not isinstance(state, dict):
            raise NotPlain("not a dict")
        index = {}
        for key, value in state.items():
            if not (isinstance(key, str) and _is_tensor_tuple(value)):
                raise NotPlain(f"entry {key!r}")
            _, storage, offset, shape, stride = value
            try:
                info = archive.getinfo(f"{prefix}data/{storage.key}")
            except KeyError:
                raise BadInputError(
                    f"{path}: the storage of tensor {key!r} is missing (truncated or corrupt?)"
                ) from None
            if info.compress_type != zipfile.ZIP_STORED:
                raise NotPlain("compressed storage")
            raw.seek(info.header_offset)
            header = raw.read(30)
            if len(header) < 30 or header[:4] != b"PK\x03\x04":
                raise zipfile.BadZipFile(f"bad local header for {info.filename}")
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            item = ITEMSIZE[storage.dtype]
            if start + storage.numel * item > size or info.file_size != storage.numel * item:
                raise BadInputError(
                    f"{path}: truncated: tensor {key!r} runs past the end of the file",
                    hint="download or copy the file again",
                )
            numel = 1
            for s_ in shape:
                numel *= s_
            contiguous = _is_contiguous(shape, stride)
            if offset + numel > storage.numel:
                raise BadInputError(f"{path}: tensor {key!r} is larger than its storage")
            byte_range = FileRange(path, start + offset * item, numel * item) if contiguous else None
            index[key] = _Entry(tuple(shape), storage.dtype, byte_range)
    return index


def _is_tensor_tuple(value) -> bool:
    """What `_rebuild_tensor` makes, with sane fields (a crafted pickle could put anything there)."""
    if not (isinstance(value, tuple) and len(value) == 5 and value[0] == "tensor"):
        return False
    _, storage, offset, shape, stride = value
    storage_ok = (
        type(storage) is _Storage
        and isinstance(storage.key, str)
        and storage.dtype in ITEMSIZE
        and isinstance(storage.numel, int)
        and storage.numel >= 0
    )
    ints = all(isinstance(n, int) and n >= 0 for n in (offset, *shape, *stride))
    return storage_ok and ints and len(shape) == len(stride)


def _is_contiguous(shape, stride) -> bool:
    expected = 1
    for size_, stride_ in zip(reversed(shape), reversed(stride), strict=True):
        if size_ != 1 and stride_ != expected:
            return False
        expected *= size_
    return True
