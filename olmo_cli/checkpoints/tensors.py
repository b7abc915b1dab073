"""Tensors on disk, one at a time: lazy readers for every weight file OLMo ships.

Readers never load a whole checkpoint: `model.pt` is memory-mapped by torch
(`mmap=True, weights_only=True`), safetensors files are memory-mapped here, so a tensor's
pages are file-backed (not anonymous memory) until something copies them.
"""

from __future__ import annotations

import base64
import io
import json
import mmap
import pickle
import re
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

from olmo_cli.checkpoints.primitives import (
    ITEMSIZE,
    SAFETENSORS_DTYPES,
    FileRange,
    TensorInfo,
    dtype_name,
    is_zip,
    nbytes,
)
from olmo_cli.errors import BadInputError, short

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit


class TensorReader:
    """keys(), info(key) and get(key) over one checkpoint's weights."""

    description = "weights"

    def file_range(self, key: str) -> FileRange | None:
        """Where the tensor's bytes lie, when they are stored contiguous and uncompressed; else None."""
        return None

    def file_ranges(self, key: str) -> list[FileRange] | None:
        """The tensor's bytes as consecutive ranges (a tensor stored in row chunks); else None."""
        where = self.file_range(key)
        return None if where is None else [where]

    def keys(self) -> list[str]:
        raise NotImplementedError

    def info(self, key: str) -> TensorInfo:
        raise NotImplementedError

    def get(self, key: str):
        raise NotImplementedError


# --- model.pt / pytorch_model.bin -------------------------------------------------------------


class PickleReader(TensorReader):
    """A `torch.save`d flat state dict; code in the pickle is refused, not run.

    Shapes, dtypes and byte offsets come from reading the zip's `data.pkl` with an unpickler that
    knows only the handful of names a plain state dict uses (stand-ins, nothing imported or
    called), so an uncast conversion needs no torch at all. Tensors themselves come from
    `torch.load(mmap=True, weights_only=True)`, on first use. Anything the index reader does not
    recognise falls back to torch's own weights-only loader.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.description = self.path.name
        self._state: dict | None = None
        from olmo_cli.checkpoints.torchzip import NotPlain, read_torch_zip_index

        try:
            # Files from torch < 1.6 are not zips: no index to read, torch's loader reads them whole.
            self._index = read_torch_zip_index(self.path) if is_zip(self.path) else None
        except NotPlain:
            self._index = None
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, struct.error) as error:
            raise BadInputError(
                f"{self.path}: not a readable torch checkpoint (truncated or corrupt?): "
                f"{_short(str(error)) or type(error).__name__}"
            ) from None
        if self._index is None:
            if not is_zip(self.path):
                _refuse_non_torch(self.path)
            self._load()

    def _load(self):
        import torch

        try:
            try:
                state = torch.load(self.path, map_location="cpu", mmap=True, weights_only=True)
            except RuntimeError as error:
                if "mmap" not in str(error) and "zip" not in str(error).lower():
                    raise
                if is_zip(self.path):
                    raise  # a broken zip, not the old non-zip format
                # Files from torch < 1.6 (not zip) cannot be memory-mapped.
                state = torch.load(self.path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            refused = _refused_global(error)
            if refused is None:  # the unpickler met bytes it cannot read, not a name it refuses
                raise BadInputError(
                    f"{self.path}: not a readable torch checkpoint (corrupt?): {_refusal(error)}"
                ) from None
            raise BadInputError(
                f"{self.path}: refused to load: the pickle holds code, not only tensors (global {refused})",
                hint="only plain state dicts are loaded; code in a checkpoint is never run",
            ) from None
        except (RuntimeError, EOFError, OSError, ValueError, struct.error) as error:
            raise BadInputError(
                f"{self.path}: not a readable torch checkpoint (truncated or corrupt?): "
                f"{_short(str(error)) or type(error).__name__}"
            ) from None
        if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
        ):
            raise BadInputError(f"{self.path}: expected a flat state dict of tensors")
        self._state = state
        return state

    def keys(self) -> list[str]:
        return list(self._index) if self._index is not None else list(self._state or {})

    def info(self, key: str) -> TensorInfo:
        if self._index is not None:
            entry = self._index[key]
            return TensorInfo(entry.shape, entry.dtype)
        t = (self._state or {})[key]
        return TensorInfo(tuple(t.shape), dtype_name(t.dtype))

    def get(self, key: str):
        state = self._state if self._state is not None else self._load()
        return state[key]

    def file_range(self, key: str) -> FileRange | None:
        if self._index is None:
            return None
        entry = self._index[key]
        return entry.range if entry.range is not None and entry.range.nbytes > 0 else None


# torch.save's files before 1.6 start with a pickled magic number (protocol 2 by default).
_LEGACY_MAGIC = b"l\xfc\x9cF\xf9 j\xa8P\x19"


def _refuse_non_torch(path: Path) -> None:
    """A file that is neither a torch zip nor a legacy torch pickle is refused before unpickling:
    random bytes are corruption, a bare pickle is not a checkpoint (and is never run)."""
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"\x80") and _LEGACY_MAGIC in head[:32]:
        return
    if head.startswith(b"\x80"):
        raise BadInputError(
            f"{path}: a pickle, but not a torch checkpoint (no torch.save header); refused without unpickling",
            hint="only torch.save'd state dicts are loaded",
        )
    raise BadInputError(f"{path}: not a torch checkpoint (neither a zip archive nor a torch pickle): corrupt?")


def _refused_global(error: Exception) -> str | None:
    """The name torch's weights-only unpickler refused (e.g. "posix.system"), if that is why it failed."""
    found = re.search(r"GLOBAL ([\w.]+)", re.sub(r"\x1b\[[0-9;]*m", "", str(error)))
    return found.group(1) if found else None


def _refusal(error: Exception) -> str:
    """What torch's weights-only loader refused (e.g. "global posix.system"), without its advice on
    how to load the file unsafely."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"global {found.group(1)}"
    found = re.search(r"WeightsUnpickler error: ([^\n]+)", text)
    if found:
        return _short(found.group(1))
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith(("Weights only load failed", "(1)", "(2)", "Check the doc"))
    ]
    return _short(lines[0]) if lines else type(error).__name__


_short = short  # the name the readers use


# --- safetensors ------------------------------------------------------------------------------


class SafetensorsReader(TensorReader):
    """One safetensors file, header validated against the file size, tensors memory-mapped."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.description = self.path.name
        self._header, self._data_start = read_safetensors_header(self.path)
        self._mmap: mmap.mmap | None = None

    def keys(self) -> list[str]:
        return list(self._header)

    def info(self, key: str) -> TensorInfo:
        entry = self._header[key]
        return TensorInfo(tuple(entry["shape"]), SAFETENSORS_DTYPES[entry["dtype"]])

    def get(self, key: str):
        import torch

        entry = self._header[key]
        dtype = getattr(torch, SAFETENSORS_DTYPES[entry["dtype"]])
        shape = tuple(entry["shape"])
        start, end = entry["data_offsets"]
        if end == start:
            return torch.empty(shape, dtype=dtype)
        if self._mmap is None:
            with open(self.path, "rb") as f:
                # Copy-on-write mapping: readable as a writable buffer for torch, never written.
                self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        count = (end - start) // ITEMSIZE[dtype_name(dtype)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flat = torch.frombuffer(self._mmap, dtype=dtype, count=count, offset=self._data_start + start)
        return flat.reshape(shape)

    def file_range(self, key: str) -> FileRange | None:
        start, end = self._header[key]["data_offsets"]
        return FileRange(self.path, self._data_start + start, end - start) if end > start else None


def parse_safetensors_header(raw: bytes, name: str) -> dict:
    """The JSON header of a safetensors file (its bytes after the 8-byte length); BadInputError if damaged."""
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadInputError(f"{name}: the safetensors header is not valid JSON (truncated or corrupt)") from None
    if not isinstance(header, dict):
        raise BadInputError(f"{name}: the safetensors header is not a JSON object")
    return header


def read_safetensors_header(path: Path) -> tuple[dict, int]:
    """(tensor entries without __metadata__, offset of the data area). BadInputError if damaged."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise BadInputError(f"{path}: not a safetensors file, or truncated (only {len(head)} bytes)")
        (length,) = struct.unpack("<Q", head)
        if length > min(size - 8, MAX_HEADER_BYTES):
            raise BadInputError(
                f"{path}: not a safetensors file, or truncated (header of {length} bytes in a {size}-byte file)"
            )
        raw = f.read(length)
    header = parse_safetensors_header(raw, str(path))
    header.pop("__metadata__", None)
    data_start = 8 + length
    end_of_data = 0
    for key, entry in header.items():
        try:
            dtype = SAFETENSORS_DTYPES[entry["dtype"]]
            shape = [int(s) for s in entry["shape"]]
            start, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise BadInputError(f"{path}: bad safetensors entry for {key!r}") from None
        if end - start != nbytes(shape, dtype) or start < 0:
            raise BadInputError(f"{path}: {key!r} has {end - start} bytes for shape {shape} {dtype}")
        end_of_data = max(end_of_data, end)
    if data_start + end_of_data > size:
        raise BadInputError(
            f"{path}: truncated: the header promises {data_start + end_of_data} bytes, the file has {size}",
            hint="download the file again",
        )
    return header, data_start


class ShardedSafetensorsReader(TensorReader):
    """`model.safetensors.index.json` plus its shards."""

    def __init__(self, index_path: Path):
        self.path = Path(index_path)
        self.description = self.path.name
        try:
            weight_map = json.loads(self.path.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError):
            weight_map = None
        if not _is_weight_map(weight_map):
            raise BadInputError(
                f"{self.path}: not a valid safetensors index (weight_map must map tensor names to "
                "shard files in this directory)"
            )
        self._files: dict[str, SafetensorsReader] = {}
        self._where: dict[str, SafetensorsReader] = {}
        for key, name in weight_map.items():
            shard = self.path.parent / name
            if name not in self._files:
                if not shard.is_file():
                    raise BadInputError(f"{self.path.parent}: shard {name} named by the index is missing")
                self._files[name] = SafetensorsReader(shard)
            if key not in self._files[name].keys():
                raise BadInputError(f"{shard}: has no tensor {key!r} although the index says so")
            self._where[key] = self._files[name]

    def keys(self) -> list[str]:
        return list(self._where)

    def info(self, key: str) -> TensorInfo:
        return self._where[key].info(key)

    def get(self, key: str):
        return self._where[key].get(key)

    def file_range(self, key: str) -> FileRange | None:
        return self._where[key].file_range(key)


def _is_weight_map(weight_map) -> bool:
    """{tensor name: shard file name}, every shard inside the index's directory."""
    return isinstance(weight_map, dict) and all(
        isinstance(key, str)
        and isinstance(name, str)
        and name
        and not Path(name).is_absolute()
        and ".." not in Path(name).parts
        for key, name in weight_map.items()
    )


def shard_names(index: dict) -> list[str]:
    """The shard files a parsed `*.index.json` names; BadInputError if its weight_map is malformed."""
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if weight_map is None or not _is_weight_map(weight_map):
        raise BadInputError(
            "not a valid safetensors index (weight_map must map tensor names to shard files in this directory)"
        )
    return sorted(set(weight_map.values()))


class RenamedReader(TensorReader):
    """Another reader seen through a key mapping (OLMo's encoded keys, hf_olmo's `model.` prefix)."""

    def __init__(self, inner: TensorReader, rename: Callable[[str], str | None]):
        self.inner = inner
        self.description = inner.description
        self._to_inner: dict[str, str] = {}
        for key in inner.keys():
            new = rename(key)
            if new is not None:
                self._to_inner[new] = key

    def keys(self) -> list[str]:
        return list(self._to_inner)

    def info(self, key: str) -> TensorInfo:
        return self.inner.info(self._to_inner[key])

    def get(self, key: str):
        return self.inner.get(self._to_inner[key])

    def file_range(self, key: str) -> FileRange | None:
        return self.inner.file_range(self._to_inner[key])

    def file_ranges(self, key: str) -> list[FileRange] | None:
        return self.inner.file_ranges(self._to_inner[key])


# --- OLMo's own safetensors flavour -----------------------------------------------------------


class _KeysOnlyUnpickler(pickle.Unpickler):
    """Admits only what pickle builds without globals (tuples, str, bool...); no class, no call."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a key")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed in a key")


def decode_olmo_key(encoded: str) -> tuple[str, bool]:
    """OLMo's key encoding: urlsafe base64 of pickle((key_tuple, is_pickled)) -> ('a.b.c', is_pickled)."""
    try:
        raw = base64.urlsafe_b64decode(encoded.encode("ascii"))
        value = _KeysOnlyUnpickler(io.BytesIO(raw)).load()
    except Exception:
        raise BadInputError(
            f"safetensors key {encoded[:40]!r} is neither a tensor name nor an OLMo-encoded key"
        ) from None
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], bool) and isinstance(value[0], tuple):
        parts, pickled = value
    elif isinstance(value, tuple):
        parts, pickled = value, False
    else:
        parts, pickled = None, False
    if not parts or not all(isinstance(p, str) for p in parts):
        raise BadInputError(f"OLMo safetensors key decodes to {type(value).__name__}, not a tuple of strings")
    return ".".join(parts), pickled


def looks_olmo_encoded(keys: list[str]) -> bool:
    """OLMo-encoded keys are base64 of a pickle: they start with 'gA' (protocol 2+ opcode) and have no dots."""
    return bool(keys) and all("." not in k and k.startswith("gA") for k in keys)


def olmo_safetensors_reader(path: Path) -> TensorReader:
    inner = SafetensorsReader(path)

    def rename(encoded: str) -> str:
        key, pickled = decode_olmo_key(encoded)
        if pickled:
            raise BadInputError(f"{path}: entry {key!r} is a pickled object, not a tensor; refused")
        return key

    return RenamedReader(inner, rename)
