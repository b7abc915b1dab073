"""The primitives every tensor reader and writer shares: dtype names and sizes, and where a
tensor's bytes lie in a file. Kept apart so the readers (tensors.py) and the torch zip index
(torchzip.py) both build on it instead of on each other."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from olmo_cli.dtypes import ITEMSIZE  # used here (nbytes) and re-exported to the readers

# safetensors dtype names <-> torch dtype names (torch imported lazily).
SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}
TORCH_TO_SAFETENSORS = {v: k for k, v in SAFETENSORS_DTYPES.items()}


def dtype_name(dtype) -> str:
    """'float32' for torch.float32 (and for 'float32')."""
    return str(dtype).removeprefix("torch.")


def nbytes(shape: Iterable[int], dtype: str) -> int:
    n = ITEMSIZE[dtype_name(dtype)]
    for s in shape:
        n *= s
    return n


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: str  # torch dtype name, e.g. "float32"


@dataclass(frozen=True)
class FileRange:
    """A tensor's raw bytes as they lie in a file: copied file-to-file by the kernel when no cast is needed."""

    path: Path
    offset: int
    nbytes: int

    def rows(self, start: int, stop: int, total_rows: int) -> FileRange:
        row = self.nbytes // total_rows if total_rows else 0
        return FileRange(self.path, self.offset + start * row, (stop - start) * row)


def is_zip(path: Path) -> bool:
    """A zip archive (torch.save since 1.6, and every DCP item) rather than a bare pickle."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"
