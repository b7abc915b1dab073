"""torch.distributed.checkpoint (DCP) directories, read without torch.distributed or olmo_core.

A DCP directory holds `.metadata` (a pickle: every entry's shape, dtype and chunks, and where each
chunk's bytes lie) and `__{rank}_{k}.distcp` files. `.metadata` is read by an unpickler that maps
exactly the names DCP and OLMo-core write (REFERENCE 3.4) to stand-ins (olmo_cli/dcp_metadata.py);
a pickle naming anything else is refused, never run. Each stored chunk is a complete `torch.save` zip at
(offset, length) inside a `.distcp` file; its tensor is located through the zip's own index
(the torch-zip index reader, no code) and memory-mapped, or, for anything unusual, loaded with
`torch.load(weights_only=True)`. A tensor written by N ranks is reassembled from its chunks'
offsets, one tensor at a time.
"""

from __future__ import annotations

import io
import mmap
import pickle
import struct
import warnings
import zipfile
from pathlib import Path

from olmo_cli.checkpoints.primitives import ITEMSIZE, FileRange, TensorInfo
from olmo_cli.checkpoints.tensors import TensorReader, _short
from olmo_cli.dcp_metadata import Chunk, StoredTensor, read_metadata
from olmo_cli.errors import BadInputError


def check_chunks(fqn: str, tensor: StoredTensor) -> None:
    """The chunks tile the tensor exactly: each inside it, none overlapping, together all of it."""
    shape = tensor.shape
    boxes = []
    for chunk in tensor.chunks:
        if len(chunk.offsets) != len(shape) or len(chunk.sizes) != len(shape):
            raise BadInputError(f"{fqn}: a chunk has {len(chunk.sizes)} dimensions, the tensor {len(shape)}")
        if any(o + s > n for o, s, n in zip(chunk.offsets, chunk.sizes, shape, strict=True)):
            raise BadInputError(
                f"{fqn}: a chunk at {list(chunk.offsets)} reaches past the tensor's shape {list(shape)}"
            )
        boxes.append(chunk)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if all(
                ao < bo + bs and bo < ao + as_
                for ao, as_, bo, bs in zip(a.offsets, a.sizes, b.offsets, b.sizes, strict=True)
            ):
                raise BadInputError(f"{fqn}: chunks at {list(a.offsets)} and {list(b.offsets)} overlap")
    volume = sum(_numel(c.sizes) for c in boxes)
    if volume != _numel(shape):
        raise BadInputError(
            f"{fqn}: its chunks hold {volume} of {_numel(shape)} elements (a chunk is missing)",
            hint="the checkpoint is incomplete: copy it again",
        )


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


class _Slice(io.RawIOBase):
    """[start, start+length) of an open file, as a seekable file of its own (for zipfile)."""

    def __init__(self, file, start: int, length: int):
        self._file, self._start, self._length, self._pos = file, start, length, 0

    def seekable(self):
        return True

    def readable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, pos, whence=0):
        self._pos = {0: pos, 1: self._pos + pos, 2: self._length + pos}[whence]
        return self._pos

    def readinto(self, buffer):
        n = max(0, min(len(buffer), self._length - self._pos))
        self._file.seek(self._start + self._pos)
        data = self._file.read(n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def locate_item(path: Path, start: int, length: int) -> tuple[tuple[int, ...], str, FileRange] | None:
    """Shape, dtype and byte range of the one contiguous tensor a `torch.save` zip at (start, length)
    of `path` holds; None when the zip is anything else (then torch's weights-only loader decides)."""
    from olmo_cli.checkpoints.torchzip import NotPlain, _IndexUnpickler, _is_contiguous, _is_tensor_tuple

    with open(path, "rb") as raw, zipfile.ZipFile(_Slice(raw, start, length)) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            return None
        prefix = pickles[0][: -len("data.pkl")]
        try:
            value = _IndexUnpickler(io.BytesIO(archive.read(pickles[0]))).load()
        except (NotPlain, Exception):
            return None
        if not _is_tensor_tuple(value):
            return None
        _, storage, offset, shape, stride = value
        if not _is_contiguous(shape, stride):
            return None
        info = archive.getinfo(f"{prefix}data/{storage.key}")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        raw.seek(start + info.header_offset)
        header = raw.read(30)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header for {info.filename}")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        data = start + info.header_offset + 30 + name_len + extra_len
        item = ITEMSIZE[storage.dtype]
        n = _numel(shape)
        if info.file_size != storage.numel * item or offset + n > storage.numel:
            raise zipfile.BadZipFile("storage size disagrees with the tensor")
        if data + info.file_size > start + length:
            raise zipfile.BadZipFile("storage runs past the item")
        return tuple(shape), storage.dtype, FileRange(path, data + offset * item, n * item)


class DCPReader(TensorReader):
    """The tensors under `prefix` (e.g. "model.") of a DCP directory, keys without the prefix.

    Everything else (optimizer state) is listed in the metadata but never read.
    """

    def __init__(self, directory: Path, prefix: str = "model."):
        self.directory = Path(directory)
        self.description = f"{self.directory.name}/.metadata"
        self.prefix = prefix
        stored = read_metadata(self.directory)
        self._tensors = {fqn[len(prefix) :]: t for fqn, t in stored.items() if fqn.startswith(prefix)}
        sizes: dict[str, int] = {}
        for key, tensor in self._tensors.items():
            check_chunks(prefix + key, tensor)
            for chunk in tensor.chunks:
                if chunk.file not in sizes:
                    try:
                        sizes[chunk.file] = (self.directory / chunk.file).stat().st_size
                    except FileNotFoundError:
                        raise BadInputError(
                            f"{self.directory}: {chunk.file}, named by .metadata, is missing",
                            hint="the checkpoint is incomplete: copy it again",
                        ) from None
                if chunk.offset + chunk.length > sizes[chunk.file]:
                    raise BadInputError(
                        f"{self.directory / chunk.file}: truncated: {prefix}{key} ends at byte "
                        f"{chunk.offset + chunk.length}, the file has {sizes[chunk.file]}",
                        hint="the checkpoint is incomplete: copy it again",
                    )
        self._maps: dict[str, mmap.mmap] = {}
        self._ranges: dict[Chunk, FileRange | None] = {}

    def keys(self) -> list[str]:
        return list(self._tensors)

    def info(self, key: str) -> TensorInfo:
        tensor = self._tensors[key]
        return TensorInfo(tensor.shape, tensor.dtype)

    def _range(self, key: str, chunk: Chunk) -> FileRange | None:
        if chunk not in self._ranges:
            path = self.directory / chunk.file
            try:
                found = locate_item(path, chunk.offset, chunk.length)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, struct.error) as error:
                raise BadInputError(
                    f"{path}: {self.prefix}{key} is not a readable torch.save item (corrupt?): {_short(str(error))}"
                ) from None
            if found is not None:
                shape, dtype, _ = found
                if shape != chunk.sizes or dtype != self._tensors[key].dtype:
                    raise BadInputError(
                        f"{path}: {self.prefix}{key} holds {list(shape)} {dtype} where .metadata says "
                        f"{list(chunk.sizes)} {self._tensors[key].dtype}"
                    )
            self._ranges[chunk] = None if found is None else found[2]
        return self._ranges[chunk]

    def file_range(self, key: str) -> FileRange | None:
        tensor = self._tensors[key]
        if len(tensor.chunks) != 1:
            return None
        return self._range(key, tensor.chunks[0])

    def file_ranges(self, key: str) -> list[FileRange] | None:
        """Row chunks (FSDP cuts along dim 0) in row order, each whole rows: their bytes, concatenated,
        are the tensor's."""
        tensor = self._tensors[key]
        chunks = sorted(tensor.chunks, key=lambda c: c.offsets[:1])
        if any(c.offsets[1:] != (0,) * (len(c.offsets) - 1) or c.sizes[1:] != tensor.shape[1:] for c in chunks):
            return None
        ranges = [self._range(key, chunk) for chunk in chunks]
        return None if any(r is None for r in ranges) else [r for r in ranges if r is not None]

    def _chunk(self, key: str, chunk: Chunk):
        import torch

        where = self._range(key, chunk)
        dtype = getattr(torch, self._tensors[key].dtype)
        if where is not None:
            if where.nbytes == 0:
                return torch.empty(chunk.sizes, dtype=dtype)
            if chunk.file not in self._maps:
                with open(where.path, "rb") as f:
                    self._maps[chunk.file] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                flat = torch.frombuffer(
                    self._maps[chunk.file],
                    dtype=dtype,
                    count=where.nbytes // ITEMSIZE[self._tensors[key].dtype],
                    offset=where.offset,
                )
            return flat.reshape(chunk.sizes)
        path = self.directory / chunk.file
        with open(path, "rb") as f:
            f.seek(chunk.offset)
            data = f.read(chunk.length)
        try:
            value = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise BadInputError(
                f"{path}: refused to load {self.prefix}{key}: the item holds more than a tensor ({_short(str(error))})",
                hint="only tensors are loaded; code in a checkpoint is never run",
            ) from None
        except (RuntimeError, EOFError, OSError, ValueError, struct.error) as error:
            raise BadInputError(
                f"{path}: {self.prefix}{key} is not readable (corrupt?): {_short(str(error))}"
            ) from None
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != chunk.sizes or value.dtype != dtype:
            raise BadInputError(f"{path}: {self.prefix}{key}: the stored item does not match .metadata")
        return value

    def get(self, key: str):
        import torch

        tensor = self._tensors[key]
        if len(tensor.chunks) == 1:
            return self._chunk(key, tensor.chunks[0])
        out = torch.empty(tensor.shape, dtype=getattr(torch, tensor.dtype))
        for chunk in tensor.chunks:
            index = tuple(slice(o, o + s) for o, s in zip(chunk.offsets, chunk.sizes, strict=True))
            out[index] = self._chunk(key, chunk)
        return out
