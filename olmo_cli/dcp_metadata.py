"""A torch.distributed.checkpoint `.metadata`, read without torch or olmo_core, running no code.

The pickle names DCP's and OLMo-core's classes (REFERENCE 3.4); an unpickler that maps exactly
those names to stand-ins reads it, and a pickle naming anything else is refused, never run. It
sits below every layer: the checkpoint reader (checkpoints/dcp.py) reads tensors through it, and
the Hub download reads it to skip `.distcp` files that hold optimizer state only.
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from olmo_cli.dtypes import ITEMSIZE
from olmo_cli.errors import BadInputError
from olmo_cli.errors import short as _short

_METADATA_CLASSES = (
    "Metadata",
    "MetadataIndex",
    "TensorStorageMetadata",
    "ChunkStorageMetadata",
    "BytesStorageMetadata",
    "TensorProperties",
    "StorageMeta",
)
_STORAGE_INFO_MODULES = ("olmo_core.distributed.checkpoint.filesystem", "torch.distributed.checkpoint.filesystem")


class _Record:
    """Stands in for one of DCP's dataclasses: keeps the state BUILD gives it, runs nothing."""

    kind = ""

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            state = {**(state[0] or {}), **(state[1] or {})}  # (dict, slots) of slotted dataclasses
        if isinstance(state, dict):
            self.fields = {str(k): v for k, v in state.items()}
        else:
            self.fields = {"_state": state}


@dataclass(frozen=True)
class _DType:
    name: str


class _MetadataUnpickler(pickle.Unpickler):
    """Knows exactly the globals of a DCP `.metadata`; each lookup makes a fresh stand-in, so a
    crafted BUILD can only touch throwaway objects."""

    def find_class(self, module, name):
        if module == "torch.distributed.checkpoint.metadata" and name in _METADATA_CLASSES:
            return type(name, (_Record,), {"kind": name})
        if module in _STORAGE_INFO_MODULES and name == "_StorageInfo":
            return type(name, (_Record,), {"kind": name})
        if (module, name) == ("torch.distributed.checkpoint.metadata", "_MEM_FORMAT_ENCODING"):
            return lambda value: ("memory_format", value)
        if (module, name) == ("torch", "Size"):
            return lambda dims=(): ("size", tuple(dims))
        if (module, name) == ("torch.serialization", "_get_layout"):
            return lambda layout: ("layout", layout)
        if module == "torch" and name in ITEMSIZE:
            return _DType(name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a DCP .metadata")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed in a DCP .metadata")


@dataclass(frozen=True)
class Chunk:
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    file: str  # relative to the DCP directory
    offset: int
    length: int


@dataclass(frozen=True)
class StoredTensor:
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[Chunk, ...]


def read_metadata(directory: Path) -> dict[str, StoredTensor]:
    """Every tensor entry of a DCP directory: {fqn: shape, dtype, chunks with their byte ranges}."""
    path = directory / ".metadata"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInputError(f"{directory}: no .metadata (not a complete torch.distributed.checkpoint)") from None
    except OSError as error:
        raise BadInputError(f"{path}: not readable: {error.strerror}") from None
    return parse_metadata(raw, path)


def parse_metadata(raw: bytes, path: Path | str) -> dict[str, StoredTensor]:
    """`read_metadata` of a `.metadata` pickle's bytes (`path` names it in errors)."""
    try:
        metadata = _MetadataUnpickler(io.BytesIO(raw)).load()
    except pickle.UnpicklingError as error:
        raise BadInputError(
            f"{path}: refused: {_short(str(error))}",
            hint="only the names torch.distributed.checkpoint and OLMo-core write are read; code is never run",
        ) from None
    except Exception as error:  # truncated or malformed pickle
        raise BadInputError(f"{path}: not a readable DCP metadata pickle (truncated?): {_short(str(error))}") from None
    try:
        return _tensors(metadata)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise BadInputError(f"{path}: not the DCP metadata layout: {_short(str(error))}") from None


def _record(value, kind: str) -> dict[str, Any]:
    if not (isinstance(value, _Record) and value.kind == kind):
        raise TypeError(f"expected {kind}, found {type(value).__name__}")
    return value.fields


def _size(value) -> tuple[int, ...]:
    if not (isinstance(value, tuple) and len(value) == 2 and value[0] == "size"):
        raise TypeError("expected a torch.Size")
    dims = value[1]
    if not all(type(d) is int and d >= 0 for d in dims):
        raise ValueError(f"bad size {dims!r}")
    return tuple(dims)


def _tensors(metadata) -> dict[str, StoredTensor]:
    fields = _record(metadata, "Metadata")
    where: dict[tuple[str, tuple[int, ...]], tuple[str, int, int]] = {}
    for index, info in dict(fields["storage_data"]).items():
        key, place = _record(index, "MetadataIndex"), _record(info, "_StorageInfo")
        file, offset, length = place["relative_path"], place["offset"], place["length"]
        if not (isinstance(file, str) and type(offset) is int and type(length) is int and offset >= 0 and length > 0):
            raise ValueError(f"bad storage entry for {key.get('fqn')!r}")
        if os.path.isabs(file) or ".." in Path(file).parts:
            raise ValueError(f"storage file {file!r} is outside the checkpoint")
        offsets = () if key.get("offset") is None else _size(key["offset"])
        where[(str(key["fqn"]), offsets)] = (file, offset, length)
    out = {}
    for fqn, entry in dict(fields["state_dict_metadata"]).items():
        if isinstance(entry, _Record) and entry.kind == "BytesStorageMetadata":
            continue
        tensor = _record(entry, "TensorStorageMetadata")
        properties = _record(tensor["properties"], "TensorProperties")
        state = properties.get("_state")
        dtype = state[0] if isinstance(state, tuple) and state else properties.get("dtype")
        if not isinstance(dtype, _DType):
            raise TypeError(f"{fqn}: no dtype")
        chunks = []
        for chunk in tensor["chunks"]:
            c = _record(chunk, "ChunkStorageMetadata")
            offsets, sizes = _size(c["offsets"]), _size(c["sizes"])
            stored = where.get((str(fqn), offsets))
            if stored is None:
                raise ValueError(f"{fqn}: the chunk at offsets {list(offsets)} has no stored bytes (missing chunk)")
            chunks.append(Chunk(offsets, sizes, *stored))
        out[str(fqn)] = StoredTensor(_size(tensor["size"]), dtype.name, tuple(chunks))
    return out


def model_files(directory: Path, prefix: str = "model.") -> set[str]:
    """The `.distcp` files holding any `prefix` entry: the rest hold optimizer state only."""
    return files_holding(read_metadata(directory), prefix)


def files_holding(stored: dict[str, StoredTensor], prefix: str = "model.") -> set[str]:
    return {chunk.file for fqn, t in stored.items() if fqn.startswith(prefix) for chunk in t.chunks}
