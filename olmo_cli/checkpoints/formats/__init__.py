"""The format registry: one module per checkpoint format, each registering a `FormatEntry`.

A format module says whether a directory is in its format (`claims`), turns its config into a
ModelSpec (`read_spec`) and opens its weights (`open_checkpoint`). Detection, conversion,
inspect and verify iterate `registry()` instead of comparing format strings.

`open_checkpoint(path, fmt)` returns a `Checkpoint`: the spec, a tensor reader, and which key
naming the reader uses ("native" for native and hf_olmo, "hf" for transformers and OLMo-core).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from olmo_cli.checkpoints.kinds import Format
from olmo_cli.checkpoints.spec import ModelSpec
from olmo_cli.checkpoints.tensors import TensorReader


@dataclass
class Checkpoint:
    path: Path
    format: str  # a Format value: native | hf_olmo | hf | olmo-core
    spec: ModelSpec
    reader: TensorReader
    keys: str  # "native" or "hf": the key naming of `reader`
    architecture: str  # olmo | olmo2 | olmo3


@dataclass(frozen=True)
class FormatEntry:
    format: Format
    # True when `path` (an existing directory) is in this format; may raise the error that says
    # why a directory that looks like this format cannot be read (unsupported, or broken).
    claims: Callable[[Path], bool]
    read_spec: Callable[[Path], ModelSpec]
    open_checkpoint: Callable[[Path], Checkpoint]
    description: str


_REGISTRY: dict[Format, FormatEntry] = {}
# The built-in format modules, in detection order (the first that claims a directory wins).
_MODULES = ("native", "olmo_core", "hf_olmo", "hf")


def register(entry: FormatEntry) -> FormatEntry:
    _REGISTRY[entry.format] = entry
    return entry


def registry() -> list[FormatEntry]:
    """Every registered format, built-in ones first, in detection order."""
    for name in _MODULES:
        importlib.import_module(f"{__name__}.{name}")  # each registers itself on import
    builtin = [Format(name.replace("_core", "-core")) for name in _MODULES]
    return sorted(_REGISTRY.values(), key=lambda e: builtin.index(e.format) if e.format in builtin else len(builtin))


def entry(fmt: str) -> FormatEntry:
    registry()
    try:
        return _REGISTRY[Format(fmt)]
    except ValueError:
        raise ValueError(fmt) from None


def open_checkpoint(path: Path, fmt: str) -> Checkpoint:
    return entry(fmt).open_checkpoint(Path(path))
