"""The format registry: one module per checkpoint format, each registering a `FormatEntry`.

A format module says whether a directory is in its format (`claims`), turns its config into a
ModelSpec (`read_spec`) and opens its weights (`open_checkpoint`). Detection, conversion,
inspect and verify iterate `registry()` instead of comparing format strings.

A format `olmo convert --to` writes also carries a `Writer` (`FormatEntry.writer`); GGUF, written
but never read, registers a writer alone. `writer(target)` looks one up for convert.

`open_checkpoint(path, fmt)` returns a `Checkpoint`: the spec, a tensor reader, and which key
naming the reader uses ("native" for native and hf_olmo, "hf" for transformers and OLMo-core).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from olmo_cli.checkpoints.kinds import Format, Target
from olmo_cli.checkpoints.spec import ModelSpec
from olmo_cli.checkpoints.tensors import TensorReader
from olmo_cli.reporting import NULL_REPORTER, Reporter


@dataclass
class Checkpoint:
    path: Path
    format: str  # a Format value: native | hf_olmo | hf | olmo-core
    spec: ModelSpec
    reader: TensorReader
    keys: str  # "native" or "hf": the key naming of `reader`
    architecture: str  # olmo | olmo2 | olmo3


@dataclass(frozen=True)
class WriteOptions:
    """What `olmo convert` was asked for, as every writer sees it."""

    dst: Path
    source_format: str = ""
    dtype: str = "auto"  # --dtype (auto: the source's)
    shard_bytes: int = 5 * 10**9
    tokenizer: str | None = None
    offline: bool = False
    verify: bool = False
    revision: str | None = None  # a Hub revision name (or the source directory's name)
    outtype: str | None = None  # GGUF's tensor type
    repo: str | None = None  # where a Hub source came from (recorded by GGUF)
    commit: str | None = None
    force: bool = False
    reporter: Reporter = NULL_REPORTER


@dataclass
class Written:
    files: list[str]
    bytes_written: int
    n_tensors: int


@dataclass
class PreparedWrite:
    """A conversion checked and planned, nothing written yet: `write(tmp)` fills the temporary
    output (a directory, or with `Writer.single_file` one file) that convert renames into place."""

    write: Callable[[Path], Written]
    description: str  # the output as the "converting ... -> X" line names it
    dtype: str  # the output dtype (GGUF: the outtype)
    architecture: str  # what ConvertResult reports: the family, "native" or GGUF's arch name
    needed_bytes: int  # the weights' bytes on disk, checked against free space first
    notes: list[str] = field(default_factory=list)  # said after the output is in place


class Writer(Protocol):
    target: Target
    single_file: bool  # GGUF writes one file; the others a directory

    def check_options(self, options: WriteOptions) -> None:
        """Usage errors (flags this target does not take), before the source is read."""

    def prepare(self, checkpoint: Checkpoint, options: WriteOptions) -> PreparedWrite:
        """Everything this target refuses, before any write."""
        ...


@dataclass(frozen=True)
class FormatEntry:
    format: Format
    # True when `path` (an existing directory) is in this format; may raise the error that says
    # why a directory that looks like this format cannot be read (unsupported, or broken).
    claims: Callable[[Path], bool]
    read_spec: Callable[[Path], ModelSpec]
    open_checkpoint: Callable[[Path], Checkpoint]
    description: str
    writer: Writer | None = None  # None: read, never written (hf_olmo)


_REGISTRY: dict[Format, FormatEntry] = {}
_WRITERS: dict[Target, Writer] = {}
# The built-in format modules, in detection order (the first that claims a directory wins).
_MODULES = ("native", "olmo_core", "hf_olmo", "hf")
# Targets written by a module that reads nothing (registered by importing it).
_WRITER_MODULES = ("olmo_cli.checkpoints.gguf.export",)


def register(entry: FormatEntry) -> FormatEntry:
    _REGISTRY[entry.format] = entry
    if entry.writer is not None:
        register_writer(entry.writer)
    return entry


def register_writer(writer: Writer) -> Writer:
    _WRITERS[writer.target] = writer
    return writer


def writer(target: str) -> Writer:
    """The writer of `olmo convert --to target` (ValueError for a target nothing writes)."""
    registry()
    for name in _WRITER_MODULES:
        importlib.import_module(name)
    try:
        return _WRITERS[Target(target)]
    except (ValueError, KeyError):
        raise ValueError(target) from None


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
