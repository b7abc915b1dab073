"""`model.pt` written directly in torch.save's zip layout, tensor by tensor, without torch.save.

torch.save needs every tensor in memory (or memory-mapped) at once; this writer needs only the
plan (keys, shapes, dtypes) up front. Every record's size is known from the plan, so the whole
archive is laid out before any byte is written: the pickle first, then each tensor's bytes are
copied file-to-file by the kernel (`copy_file_range`) when no cast is needed - a fused tensor's
pieces one after another - or cast straight into the file's memory map, one tensor at a time.

The layout is what torch 2.13's writer (PyTorch's patched miniz) produces, so the bytes equal
torch.save's except for the random half of `.data/serialization_id` (tests check this):
- records in order `data.pkl`, `.format_version`, `.storage_alignment`, `byteorder`,
  `data/0..n-1`, `version`, `.data/serialization_id`, all under `<archive name>/`;
- stored (not compressed) entries whose data starts 64-byte aligned: the local header's extra
  field carries "FB" + length + "Z" padding;
- local headers with zero CRC and sizes, flags 0x0808 (a data descriptor follows the data);
  ZIP64 extra fields and 8-byte descriptor sizes once a size or an offset reaches 0xFFFFFFFF;
  a ZIP64 end record always.
CRC-32s are real: each tensor's is computed from its source bytes in the worker thread that
fetches the next tensor, so it overlaps the kernel copy of the current one.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import secrets
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from olmo_cli.checkpoints.primitives import FileRange, nbytes
from olmo_cli.checkpoints.torchzip import _STORAGE_DTYPES
from olmo_cli.checkpoints.writer import PlannedTensor, _copy_range, _one_ahead, _Output, _write_tensor, reserve

ALIGNMENT = 64  # torch's record alignment (also what `.storage_alignment` says)
_FORMAT_VERSION = b"1"
_VERSION = b"3\n"
_U32 = 0xFFFFFFFF
_LOCAL, _CENTRAL, _DESCRIPTOR = b"PK\x03\x04", b"PK\x01\x02", b"PK\x07\x08"
_FLAGS = 0x0808  # bit 3: sizes in a data descriptor; bit 11: UTF-8 names
_FLAGS_EMPTY = 0x0800  # an empty record has no data descriptor
_STORAGE_OF_DTYPE = {dtype: name for name, dtype in _STORAGE_DTYPES.items()}
_CRC_CHUNK = 16 << 20


# --- the pickle ---------------------------------------------------------------------------------


class _Global:
    """A name the pickle refers to (GLOBAL opcode) without importing it: no torch needed."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # the pickler wants a callable in a reduce tuple; never called
        raise TypeError(f"{self.module}.{self.name} is a name in a pickle, not a function")


_GLOBALS: dict[tuple[str, str], _Global] = {}


def _global(module: str, name: str) -> _Global:
    # One object per name, so the pickler's memo refers back to it (BINGET) as torch's does.
    return _GLOBALS.setdefault((module, name), _Global(module, name))


_REBUILD = _global("torch._utils", "_rebuild_tensor_v2")
# torch's persistent id reuses these two string objects, so the pickle memoizes them once.
_STORAGE, _CPU = "storage", "cpu"


@dataclass(frozen=True, eq=False)
class _StorageRef:
    dtype: str
    key: str
    numel: int


@dataclass(eq=False)
class _TensorRef:
    """Pickles as torch pickles a contiguous tensor at offset 0 of its own storage."""

    storage: _StorageRef
    shape: tuple[int, ...]
    _keep: list = field(default_factory=list)

    def __reduce_ex__(self, protocol):
        stride, step = [], 1
        for size in reversed(self.shape):
            stride.append(step)
            step *= size
        hooks: collections.OrderedDict = collections.OrderedDict()  # torch's (empty) backward hooks
        self._keep.append(hooks)  # alive while pickling: the memo keys objects by id
        return _REBUILD, (self.storage, 0, self.shape, tuple(reversed(stride)), False, hooks)


_PurePickler: Any = pickle._Pickler  # the pure-Python pickler (its dispatch table can be extended)


class _Pickler(_PurePickler):
    """The pure-Python pickler (same bytes as the C one) taught to write `_Global`s by name."""

    dispatch: ClassVar[dict] = dict(_PurePickler.dispatch)

    def _save_global_name(self, obj: _Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[_Global] = _save_global_name

    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            return (_STORAGE, _global("torch", _STORAGE_OF_DTYPE[obj.dtype]), obj.key, _CPU, obj.numel)
        return None


def _pickle(obj) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


# --- the zip layout -----------------------------------------------------------------------------


@dataclass
class _Record:
    name: str  # full name inside the archive
    size: int
    header_offset: int = 0
    data_offset: int = 0
    crc: int = 0

    @property
    def flags(self) -> int:
        return _FLAGS if self.size else _FLAGS_EMPTY

    @property
    def zip64(self) -> bool:
        return self.size >= _U32 or self.header_offset >= _U32

    def local_header(self) -> bytes:
        name = self.name.encode()
        extra = self._zip64_extra(local=True)
        start = self.header_offset + 30 + len(name) + len(extra) + 4
        padding = -start % ALIGNMENT
        extra += b"FB" + struct.pack("<H", padding) + b"Z" * padding
        return (
            _LOCAL + struct.pack("<HHHHHIIIHH", 0, self.flags, 0, 0, 0, 0, 0, 0, len(name), len(extra)) + name + extra
        )

    def descriptor(self) -> bytes:
        if not self.size:
            return b""
        if self.zip64:
            return _DESCRIPTOR + struct.pack("<IQQ", self.crc, self.size, self.size)
        return _DESCRIPTOR + struct.pack("<III", self.crc, self.size, self.size)

    def central_header(self) -> bytes:
        name = self.name.encode()
        extra = self._zip64_extra(local=False)
        size = _U32 if self.size >= _U32 else self.size
        offset = _U32 if self.header_offset >= _U32 else self.header_offset
        return (
            _CENTRAL
            + struct.pack(
                "<HHHHHHIIIHHHHHII",
                0,
                0,
                self.flags,
                0,
                0,
                0,
                self.crc,
                size,
                size,
                len(name),
                len(extra),
                0,
                0,
                0,
                0,
                offset,
            )
            + name
            + extra
        )

    def _zip64_extra(self, local: bool) -> bytes:
        values = []
        if self.size >= _U32:
            values += [self.size, 0 if local else self.size]  # the local header leaves the compressed size 0
        if self.header_offset >= _U32:
            values.append(self.header_offset)
        if not values:
            return b""
        return struct.pack("<HH", 1, 8 * len(values)) + struct.pack(f"<{len(values)}Q", *values)

    @property
    def end(self) -> int:
        return self.data_offset + self.size + len(self.descriptor())


def _lay_out(records: list[_Record]) -> int:
    """Place every record; returns the central directory's offset."""
    cursor = 0
    for record in records:
        record.header_offset = cursor
        record.data_offset = cursor + len(record.local_header())
        cursor = record.end
    return cursor


def _end_records(records: list[_Record], directory_offset: int, directory_size: int) -> bytes:
    n = len(records)
    zip64_end = directory_offset + directory_size
    return (
        b"PK\x06\x06"
        + struct.pack("<QHHIIQQQQ", 44, 0x031E, 0x2D, 0, 0, n, n, directory_size, directory_offset)
        + b"PK\x06\x07"
        + struct.pack("<IQI", 0, zip64_end, 1)
        + b"PK\x05\x06"
        + struct.pack("<HHHHIIH", 0, 0, n, n, directory_size, min(directory_offset, _U32), 0)
    )


def _hash_combine(seed: int, value: int) -> int:
    """c10::hash_combine on 64-bit size_t: how torch folds the records' CRCs into the serialization id."""
    mask = (1 << 64) - 1
    return (seed ^ ((value + 0x9E3779B9 + ((seed << 6) & mask) + (seed >> 2)) & mask)) & mask


# --- writing ------------------------------------------------------------------------------------


def write_state_dict(
    path: Path,
    tensors: list[PlannedTensor],
    fetch: Callable[[str], object],
    advance: Callable[[int], None] = lambda n: None,
) -> int:
    """Write `path` as torch.save({key: tensor}) would, fetching one tensor at a time. Returns bytes.

    `fetch(key)` gives the tensor as a `FileRange` of bytes already in the planned dtype (copied
    by the kernel), a tensor of the planned shape in any dtype (cast into the file's memory
    map), or a list of those for a tensor made of row blocks (the fused q/k/v and up/gate),
    written one after another.
    """
    refs = [_StorageRef(t.dtype, str(i), _numel(t.shape)) for i, t in enumerate(tensors)]
    state = {t.key: _TensorRef(ref, t.shape) for t, ref in zip(tensors, refs, strict=True)}
    data_records = [_Record("", t.nbytes) for t in tensors]
    return _write_archive(path, _pickle(state), data_records, tensors, fetch, advance)


def write_plain(path: Path, obj) -> int:
    """torch.save(obj) for plain Python values (ints, strings, lists, dicts): no tensors, no torch."""
    return _write_archive(path, _pickle(obj), [], [], lambda key: None, lambda n: None)


def _write_archive(path, pickled: bytes, data_records, tensors, fetch, advance) -> int:
    prefix = Path(path).stem + "/"  # torch names the archive after the file
    for i, record in enumerate(data_records):
        record.name = f"{prefix}data/{i}"
    head = [
        (_Record(prefix + "data.pkl", len(pickled)), pickled),
        (_Record(prefix + ".format_version", 1), _FORMAT_VERSION),
        (_Record(prefix + ".storage_alignment", len(str(ALIGNMENT))), str(ALIGNMENT).encode()),
        (_Record(prefix + "byteorder", 6), b"little"),
    ]
    version = _Record(prefix + "version", len(_VERSION))
    serialization = _Record(prefix + ".data/serialization_id", 40)
    records = [r for r, _ in head] + data_records + [version, serialization]
    directory_offset = _lay_out(records)
    directory_size = sum(len(r.central_header()) for r in records)  # fixed by sizes and offsets
    total = directory_offset + directory_size + len(_end_records(records, directory_offset, directory_size))

    with open(path, "w+b", buffering=0) as f:
        f.truncate(total)
        reserve(f, Path(path), total)  # a full disk is an error now, not a SIGBUS in a mapped cast
        fd = f.fileno()
        for record, data in [*head, (version, _VERSION)]:
            _put_small(fd, record, data)
        out = _Output(f, Path(path))
        try:
            keyed = [t.key for t in tensors]
            for t, record, (item, crc) in zip(tensors, data_records, _one_ahead(keyed, _with_crc(fetch)), strict=True):
                record.crc = _write_parts(out, record, t, item if isinstance(item, list) else [item], crc)
                os.pwrite(fd, record.local_header(), record.header_offset)
                os.pwrite(fd, record.descriptor(), record.data_offset + record.size)
                del item
                advance(t.nbytes)
        finally:
            out.close()
        combined = 0
        for record in records[:-1]:
            if record.size:  # torch folds in only records with bytes
                combined = _hash_combine(combined, record.crc)
        _put_small(fd, serialization, f"{secrets.randbelow(1 << 64):020d}{combined:020d}".encode())
        tail = b"".join(r.central_header() for r in records) + _end_records(records, directory_offset, directory_size)
        os.pwrite(fd, tail, directory_offset)
    os.chmod(path, 0o644)
    return total


def _put_small(fd: int, record: _Record, data: bytes) -> None:
    record.crc = zlib.crc32(data)
    os.pwrite(fd, record.local_header() + data + record.descriptor(), record.header_offset)


def _with_crc(fetch: Callable[[str], object]):
    """fetch, plus the CRC-32 of the parts that are byte ranges (computed in the fetching thread)."""

    def fetch_and_crc(key: str):
        item = fetch(key)
        parts = item if isinstance(item, list) else [item]
        if all(isinstance(p, FileRange) for p in parts):
            crc = 0
            for part in parts:
                crc = _crc_of_range(part, crc)  # type: ignore[arg-type]
            return item, crc
        return item, None

    return fetch_and_crc


def _crc_of_range(source: FileRange, crc: int) -> int:
    buffer = bytearray(min(_CRC_CHUNK, source.nbytes))
    view = memoryview(buffer)
    with open(source.path, "rb", buffering=0) as f:
        offset, left = source.offset, source.nbytes
        while left > 0:
            n = os.preadv(f.fileno(), [view[: min(left, len(buffer))]], offset)
            if n == 0:
                from olmo_cli.errors import BadInputError

                raise BadInputError(f"{source.path}: ended early (truncated?)")
            crc = zlib.crc32(view[:n], crc)  # releases the GIL: overlaps the copy in the main thread
            offset, left = offset + n, left - n
    return crc


def _write_parts(out: _Output, record: _Record, planned: PlannedTensor, parts: list, crc: int | None) -> int:
    """Each part at the next offset of the record; returns the record's CRC-32."""
    position = record.data_offset
    for part in parts:
        size = part.nbytes if isinstance(part, FileRange) else nbytes(part.shape, planned.dtype)
        if isinstance(part, FileRange):
            _copy_range(out.at(position), part)
        else:
            _write_tensor(out.at(position, planned.dtype), part)
        position += size
    if position != record.data_offset + record.size:
        raise AssertionError(
            f"{planned.key}: planned {record.size} bytes, the parts have {position - record.data_offset}"
        )
    if crc is not None:
        return crc
    if record.size == 0:
        return 0
    view = memoryview(out.mapped())[record.data_offset : record.data_offset + record.size]
    try:
        return zlib.crc32(view)
    finally:
        view.release()


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
