"""Writing safetensors as a stream: shards planned from shapes alone, then filled tensor by tensor.

A tensor that needs no cast is copied file-to-file by the kernel (`copy_file_range`) from its
byte range in the source; one that does is cast straight into the memory-mapped output file.
Files get ordinary permissions (0644), unlike safetensors' own writer (0600).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from olmo_cli.checkpoints.primitives import TORCH_TO_SAFETENSORS, FileRange, nbytes
from olmo_cli.errors import BadInputError


@dataclass(frozen=True)
class PlannedTensor:
    key: str
    shape: tuple[int, ...]
    dtype: str  # output dtype name

    @property
    def nbytes(self) -> int:
        return nbytes(self.shape, self.dtype)


def plan_shards(tensors: list[PlannedTensor], shard_size: int) -> list[list[PlannedTensor]]:
    """Greedy, in order: a new shard starts when the next tensor would overflow the current one."""
    shards: list[list[PlannedTensor]] = [[]]
    used = 0
    for t in tensors:
        if shards[-1] and used + t.nbytes > shard_size:
            shards.append([])
            used = 0
        shards[-1].append(t)
        used += t.nbytes
    return shards


def write_safetensors(
    path: Path,
    tensors: list[PlannedTensor],
    fetch: Callable[[str], object],
    advance: Callable[[int], None] = lambda n: None,
    metadata: dict[str, str] | None = None,
) -> int:
    """Write one safetensors file tensor by tensor (`metadata`: extra header metadata). Returns bytes.

    `fetch(key)` gives either a `FileRange` (bytes already in the planned dtype: copied
    file-to-file by the kernel), a list of them (a tensor stored in row chunks, in row order),
    or a tensor of the planned shape in any dtype, which is cast
    straight into the output file's memory map: no output-sized buffer exists in RAM, and the
    output pages are file-backed. The header comes from the plan, so nothing waits for all
    tensors; the next tensor is fetched (read, sliced) in a worker thread meanwhile.
    """
    entries: dict[str, object] = {"__metadata__": {**(metadata or {}), "format": "pt"}}
    total = 0
    for t in tensors:
        entries[t.key] = {
            "dtype": TORCH_TO_SAFETENSORS[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [total, total + t.nbytes],
        }
        total += t.nbytes
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # data starts 8-byte aligned
    data_start = 8 + len(header)
    with open(path, "w+b", buffering=0) as f:
        _write_all(f, struct.pack("<Q", len(header)) + header)
        f.truncate(data_start + total)
        reserve(f, path, data_start + total)
        out = _Output(f, path)
        try:
            position = data_start
            for t, item in zip(tensors, _one_ahead([t.key for t in tensors], fetch), strict=True):
                if isinstance(item, FileRange | list):
                    ranges = item if isinstance(item, list) else [item]  # a list: row chunks, in order
                    if sum(r.nbytes for r in ranges) != t.nbytes:
                        raise AssertionError(f"{t.key}: planned {t.nbytes} bytes, the source ranges differ")
                    at = position
                    for source in ranges:
                        _copy_range(out.at(at), source)
                        at += source.nbytes
                else:
                    if tuple(item.shape) != t.shape:
                        raise AssertionError(f"{t.key}: planned shape {t.shape}, got {tuple(item.shape)}")
                    _write_tensor(out.at(position, t.dtype), item)
                del item
                position += t.nbytes
                advance(t.nbytes)
        finally:
            out.close()
    os.chmod(path, 0o644)
    return data_start + total


def reserve(f, path: Path, size: int) -> None:
    """Allocate the whole file now: a full disk is then an error here, not a SIGBUS (the process
    killed) on the first memory-mapped write that finds no block behind it."""
    from olmo_cli.oserrors import NO_SPACE, no_space

    try:
        os.posix_fallocate(f.fileno(), 0, size)
    except OSError as error:
        if error.errno in NO_SPACE:
            raise no_space(path.parent, size) from None
        # EOPNOTSUPP/EINVAL: a filesystem without allocation (some network mounts); write as before


class _Output:
    """The output file, as a descriptor for kernel copies and (lazily) a shared memory map for casts."""

    def __init__(self, f, path: Path):
        self.f, self.path = f, path
        self._map: mmap.mmap | None = None

    def at(self, offset: int, dtype: str | None = None) -> _Slot:
        return _Slot(self, offset, dtype)

    def mapped(self):
        if self._map is None:
            self._map = mmap.mmap(self.f.fileno(), 0)  # MAP_SHARED: writes land in the file
        return self._map

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a tensor view still alive (an exception mid-copy): let GC unmap it
                pass
            self._map = None


@dataclass(frozen=True)
class _Slot:
    output: _Output
    offset: int
    dtype: str | None


def _write_tensor(slot: _Slot, tensor) -> None:
    """Cast `tensor` into its place in the output's memory map."""
    import torch

    count = tensor.numel()
    if count == 0:
        return
    assert slot.dtype is not None, "a cast needs the output dtype"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        target = torch.frombuffer(
            slot.output.mapped(), dtype=getattr(torch, slot.dtype), count=count, offset=slot.offset
        )
    target.view(tensor.shape).copy_(tensor)
    del target


def _one_ahead(keys: list[str], fetch: Callable[[str], object]):
    """fetch(key) for each key in order, the next one computed while the caller uses the current."""
    from concurrent.futures import ThreadPoolExecutor

    if not keys:
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="olmo-fetch")
    try:
        pending = pool.submit(fetch, keys[0])
        for next_key in keys[1:]:
            current = pending.result()
            pending = pool.submit(fetch, next_key)
            yield current
            del current
        yield pending.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _write_all(f, data) -> None:
    """An unbuffered file may take less than asked (and caps one write near 2 GiB): loop."""
    view = memoryview(data).cast("B")
    while len(view):
        n = f.write(view[: 1 << 30])
        view = view[n:]


def _copy_range(slot: _Slot, source: FileRange) -> None:
    """Copy bytes file-to-file inside the kernel (copy_file_range), falling back to pread/pwrite."""
    out = slot.output.f.fileno()
    with open(source.path, "rb") as src:
        offset, target, left = source.offset, slot.offset, source.nbytes
        try:
            while left > 0:
                n = os.copy_file_range(src.fileno(), out, min(left, 1 << 30), offset, target)
                if n == 0:
                    raise BadInputError(f"{source.path}: ended early (truncated?)")
                offset, target, left = offset + n, target + n, left - n
        except OSError:
            # No copy_file_range here (another filesystem, an old kernel): a plain copy.
            while left > 0:
                chunk = os.pread(src.fileno(), min(left, 64 << 20), offset)
                if not chunk:
                    raise BadInputError(f"{source.path}: ended early (truncated?)") from None
                written = os.pwrite(out, chunk, target)
                offset, target, left = offset + written, target + written, left - written


def write_sharded(
    directory: Path,
    tensors: list[PlannedTensor],
    fetch: Callable[[str], object],
    shard_size: int,
    advance: Callable[[int], None] = lambda n: None,
) -> tuple[list[str], int]:
    """`model.safetensors`, or `model-0000i-of-0000n.safetensors` + index. (file names, bytes)."""
    shards = plan_shards(tensors, shard_size)
    if len(shards) == 1:
        names = ["model.safetensors"]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    written = 0
    for name, shard in zip(names, shards, strict=True):
        written += write_safetensors(directory / name, shard, fetch, advance)
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(t.nbytes for t in tensors)},
            "weight_map": {t.key: name for name, shard in zip(names, shards, strict=True) for t in shard},
        }
        index_path = directory / "model.safetensors.index.json"
        index_path.write_text(json.dumps(index, indent=2) + "\n")
        written += index_path.stat().st_size
        names.append(index_path.name)
    return names, written


def parse_size(text: str | int) -> int:
    """'5GB' -> 5_000_000_000, '500MiB' -> 524288000, '1000' -> 1000 (Hub conventions: GB is decimal)."""
    if isinstance(text, int):
        return text
    units = {
        "": 1,
        "B": 1,
        "KB": 10**3,
        "MB": 10**6,
        "GB": 10**9,
        "TB": 10**12,
        "KIB": 2**10,
        "MIB": 2**20,
        "GIB": 2**30,
        "TIB": 2**40,
    }
    s = text.strip().upper().replace(" ", "")
    number = s.rstrip("KMGTIB")
    unit = s[len(number) :]
    try:
        value = float(number)
    except ValueError:
        value = -1
    if unit not in units or not 0 < value < float("inf"):  # NaN fails this too
        from olmo_cli.errors import UsageError

        raise UsageError(f"bad size {text!r}", hint="use e.g. 5GB, 500MB, 2GiB")
    return int(value * units[unit])
