"""Describe a checkpoint without loading its weights: format, family, architecture, parameters, dtypes, tokenizer.

Parameter counts and dtypes come from tensor headers only: a safetensors file's JSON header (8-byte
length + JSON), or the `data.pkl` index of a `model.pt`/`pytorch_model.bin` zip (read without torch;
anything unusual goes to `torch.load(mmap=True, weights_only=True)`), whose tensors are never read.
For a Hub repo the safetensors headers are read with HTTP range requests, so inspecting a 7B
revision downloads a few kilobytes of weights, not 27 GB.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from olmo_cli.checkpoints.detect import detect_format, weight_files
from olmo_cli.checkpoints.formats import entry as format_entry
from olmo_cli.checkpoints.kinds import Format
from olmo_cli.checkpoints.primitives import SAFETENSORS_DTYPES
from olmo_cli.checkpoints.spec import ModelSpec
from olmo_cli.checkpoints.tensors import MAX_HEADER_BYTES, parse_safetensors_header, read_safetensors_header
from olmo_cli.errors import BadInputError
from olmo_cli.reporting import NULL_REPORTER, Reporter

# safetensors dtype codes -> torch names, as people know them.
# Files that describe a Hub checkpoint (fetched to inspect it); weights are read remotely.
METADATA_PATTERNS = ["*.json", "*.yaml", "*.txt", "*.md"]


# ---------------------------------------------------------------------------------------------
# Local checkpoints


def inspect_checkpoint(path: Path) -> dict[str, Any]:
    """Everything `olmo inspect` shows about a local checkpoint directory, as plain JSON-able values."""
    path = Path(path)
    if not path.is_dir():
        raise BadInputError(f"not a checkpoint directory: {path}")
    fmt = detect_format(path)
    summary, spec = _summary(path, fmt)
    weights = weight_files(path)
    if fmt == Format.olmo_core and (path / "model_and_optim").is_dir():
        # The DCP metadata lists every model tensor; no .distcp byte is read.
        reader = format_entry(fmt).open_checkpoint(path).reader
        summary.update(tensor_summary([(info.dtype, info.shape) for info in map(reader.info, reader.keys())]))
        weights = sorted(
            f"model_and_optim/{p.name}" for p in (path / "model_and_optim").iterdir() if p.name.endswith(".distcp")
        )
    elif weights:
        summary.update(tensor_summary(headers_of_local_files(path, weights)))
    else:  # a config without weights: say what the config implies rather than "0 parameters"
        summary.update(
            {
                "parameters": None,
                "tensors": None,
                "dtypes": {},
                "parameters_from_config": spec.n_parameters(),
            }
        )
    summary["weights"] = list(weights)
    summary["files"] = list_files(path)
    summary["size_bytes"] = sum(entry["bytes"] for entry in summary["files"])
    return summary


def _summary(path: Path, fmt: str) -> tuple[dict[str, Any], ModelSpec]:
    """Format, family and architecture, from the format's own config reader (no weights read), and
    the spec they come from."""
    from olmo_cli.checkpoints.tokenizers import describe_tokenizer

    spec = format_entry(fmt).read_spec(path)
    architecture = architecture_of(spec)
    identifier = spec.tokenizer_identifier if fmt in (Format.native, Format.olmo_core) else None
    tokenizer = describe_tokenizer(source_dir=path, identifier=identifier)
    if fmt == Format.hf:
        architecture["vocab_size"] = tokenizer.vocab_size or None if tokenizer is not None else None
    tokenizer_dict = tokenizer.as_dict() if tokenizer else None
    if tokenizer_dict is not None and identifier:
        tokenizer_dict["identifier"] = identifier  # what the config says; the name is what conversion writes
    summary = {
        "path": str(path),
        "format": str(fmt),
        "model_type": {Format.hf: spec.family, Format.hf_olmo: "olmo"}.get(Format(fmt)),
        "family": str(spec.model_family),
        "architecture": architecture,
        "tokenizer": tokenizer_dict,
    }
    return summary, spec


def architecture_of(spec: ModelSpec) -> dict[str, Any]:
    """The architecture rows of `olmo inspect`, from a ModelSpec."""
    return {
        "layers": spec.n_layers,
        "d_model": spec.d_model,
        "heads": spec.n_heads,
        "kv_heads": spec.n_kv_heads,
        "head_dim": spec.head_dim,
        "mlp_hidden": spec.mlp_hidden,
        "vocab_size": spec.vocab_size,
        "embedding_size": spec.embedding_size,
        "context_length": spec.max_sequence_length,
        "tied_embeddings": spec.weight_tying,
        "norm": spec.norm_type,
        "norm_weights": spec.norm_affine,
        "norm_after": spec.norm_after,
        "qk_norm": spec.qk_norm,
        "qk_norm_per_head": spec.qk_norm_per_head,
        "rope_theta": spec.rope_theta,
        "rope_scaling": spec.rope_scaling,
        "layer_types": list(spec.layer_types) if spec.layer_types else None,
        "sliding_window": spec.sliding_window,
        "clip_qkv": spec.clip_qkv,
        "bias": False,  # the readers refuse biased models
    }


# ---------------------------------------------------------------------------------------------
# Tensor headers


def headers_of_local_files(path: Path, names: Iterable[str]) -> list[tuple[str, tuple[int, ...]]]:
    """(dtype, shape) of every tensor in the named files, reading headers only."""
    tensors: list[tuple[str, tuple[int, ...]]] = []
    for name in names:
        file = path / name
        if not file.is_file():
            raise BadInputError(f"weight file {name} is missing from {path}")
        if name.endswith(".safetensors"):
            header, _ = read_safetensors_header(file)  # also checks that the data fits in the file
            tensors += safetensors_header_tensors(header, name)
        else:
            tensors += pickle_tensors(file)
    return tensors


def safetensors_header_tensors(header: dict[str, Any], name: str) -> list[tuple[str, tuple[int, ...]]]:
    """(dtype, shape) per tensor of a parsed safetensors header."""
    tensors = []
    for key, entry in header.items():
        if key.startswith("__"):
            continue
        try:
            dtype, shape = entry["dtype"], tuple(int(n) for n in entry["shape"])
        except (KeyError, TypeError, ValueError):
            raise BadInputError(f"{name}: malformed safetensors entry for {key!r}") from None
        tensors.append((SAFETENSORS_DTYPES.get(dtype, str(dtype).lower()), shape))
    return tensors


def pickle_tensors(file: Path) -> list[tuple[str, tuple[int, ...]]]:
    """(dtype, shape) of a torch.save'd state dict, from the conversion engine's reader: its zip index,
    else torch's weights-only loader, memory-mapped; a pickle with code in it is refused."""
    from olmo_cli.checkpoints.tensors import PickleReader

    reader = PickleReader(file)
    return [(info.dtype, info.shape) for info in map(reader.info, reader.keys())]


def tensor_summary(tensors: list[tuple[str, tuple[int, ...]]]) -> dict[str, Any]:
    dtypes: dict[str, int] = {}
    for dtype, shape in tensors:
        dtypes[dtype] = dtypes.get(dtype, 0) + math.prod(shape)
    return {"parameters": sum(dtypes.values()), "tensors": len(tensors), "dtypes": dtypes}


def list_files(path: Path) -> list[dict[str, Any]]:
    """Every file under `path` (following the HF cache's symlinks), with its size."""
    files = []
    for file in sorted(path.rglob("*")):
        if file.is_file() and ".cache" not in file.relative_to(path).parts:
            files.append({"name": file.relative_to(path).as_posix(), "bytes": file.stat().st_size})
    return files


# ---------------------------------------------------------------------------------------------
# Hub checkpoints


def inspect_source(
    source: str, revision: str | None = None, *, offline: bool = False, reporter: Reporter = NULL_REPORTER
) -> dict[str, Any]:
    """`olmo inspect`'s core: a local directory, or a Hub repo at a revision.

    For a Hub repo the metadata is fetched and the weight headers are read remotely."""
    from olmo_cli.sources import is_local_path, locate

    if source is not None and is_local_path(source):
        located = locate(source, revision, offline=offline, reporter=reporter)
        return inspect_checkpoint(located.path)
    located = locate(source, revision, offline=offline, reporter=reporter, include=METADATA_PATTERNS)
    path = located.path
    fmt = detect_format(path)
    summary, spec = _summary(path, fmt)
    summary.update({"path": str(path), "repo": located.repo, "revision": located.revision, "commit": located.commit})
    repo, at = located.repo or source, located.commit or located.revision or "main"
    remote_files = None if offline else _remote_files(repo, at)
    local_files = {entry["name"]: entry["bytes"] for entry in list_files(path)}
    all_files = dict(local_files, **(remote_files or {}))
    weights = weight_files(path, all_files)
    local_weights = [name for name in weights if name in local_files]
    if weights and len(local_weights) == len(weights):
        summary.update(tensor_summary(headers_of_local_files(path, weights)))
    elif not offline and weights and all(name.endswith(".safetensors") for name in weights):
        summary.update(tensor_summary(_remote_safetensors_tensors(repo, at, weights)))
    else:
        estimate = spec.n_parameters()
        summary.update({"parameters": None, "tensors": None, "dtypes": {}, "parameters_from_config": estimate})
        reporter.info(
            "the weights are not downloaded (and not safetensors, or offline): parameter count and dtypes "
            "unknown" + (f"; the config implies {estimate:,} parameters" if estimate else "")
        )
    summary["weights"] = weights
    summary["files"] = [
        {"name": name, "bytes": size, "cached": name in local_files} for name, size in sorted(all_files.items())
    ]
    summary["size_bytes"] = sum(all_files.values())
    return summary


def _remote_files(repo: str, revision: str) -> dict[str, int]:
    from olmo_cli.hub.files import list_files

    return {remote.path: remote.size for remote in list_files(repo, revision).files}


def _remote_safetensors_tensors(repo: str, revision: str, names: list[str]) -> list[tuple[str, tuple[int, ...]]]:
    """Headers of remote safetensors files by two range requests each; nothing else is downloaded."""
    from olmo_cli.hub.remote import read_range

    tensors = []
    for name in names:
        (length,) = struct.unpack("<Q", read_range(repo, revision, name, 0, 7))
        if length > MAX_HEADER_BYTES:
            raise BadInputError(f"{repo}/{name} is not a safetensors file (header length {length})")
        raw = read_range(repo, revision, name, 8, 8 + length - 1)
        tensors += safetensors_header_tensors(parse_safetensors_header(raw, name), name)
    return tensors


# ---------------------------------------------------------------------------------------------


__all__ = ["inspect_checkpoint", "inspect_source"]
