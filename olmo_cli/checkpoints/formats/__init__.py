"""One module per checkpoint format; each turns its config into a ModelSpec and opens its weights.

`open_checkpoint(path, fmt)` returns a `Checkpoint`: the spec, a tensor reader, and which key
naming the reader uses ("native" for native and hf_olmo, "hf" for transformers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from olmo_cli.checkpoints.spec import ModelSpec
from olmo_cli.checkpoints.tensors import TensorReader


@dataclass
class Checkpoint:
    path: Path
    format: str  # native | hf_olmo | hf
    spec: ModelSpec
    reader: TensorReader
    keys: str  # "native" or "hf": the key naming of `reader`
    architecture: str  # olmo | olmo2 | olmo3


def open_checkpoint(path: Path, fmt: str) -> Checkpoint:
    if fmt == "native":
        from olmo_cli.checkpoints.formats import native as module
    elif fmt == "hf_olmo":
        from olmo_cli.checkpoints.formats import hf_olmo as module
    elif fmt == "hf":
        from olmo_cli.checkpoints.formats import hf as module
    else:
        raise ValueError(fmt)
    return module.open_checkpoint(Path(path))
