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
from olmo_cli.checkpoints.formats.native import MODEL_DEFAULTS
from olmo_cli.checkpoints.tensors import (
    MAX_HEADER_BYTES,
    SAFETENSORS_DTYPES,
    parse_safetensors_header,
    read_safetensors_header,
)
from olmo_cli.errors import BadInputError, first_line
from olmo_cli.jsonfiles import read_json_object
from olmo_cli.reporting import NULL_REPORTER, Reporter

# safetensors dtype codes -> torch names, as people know them.
# Files that describe a Hub checkpoint (fetched to inspect it); weights are read remotely.
METADATA_PATTERNS = ["*.json", "*.yaml", "*.txt", "*.md"]
# Defaults of the OLMo trainer's ModelConfig, for native/hf_olmo configs that leave a field out
# (inspect also describes configs that conversion would refuse; only d_model must be given).
NATIVE_DEFAULTS = {**MODEL_DEFAULTS, "n_heads": 12, "n_layers": 12}


# ---------------------------------------------------------------------------------------------
# Local checkpoints


def inspect_checkpoint(path: Path) -> dict[str, Any]:
    """Everything `olmo inspect` shows about a local checkpoint directory, as plain JSON-able values."""
    path = Path(path)
    if not path.is_dir():
        raise BadInputError(f"not a checkpoint directory: {path}")
    fmt = detect_format(path)
    config = read_config(path, fmt)
    summary = _summary(path, fmt, config)
    weights = weight_files(path)
    if weights:
        summary.update(tensor_summary(headers_of_local_files(path, weights)))
    else:  # a config without weights: say what the config implies rather than "0 parameters"
        summary.update(
            {
                "parameters": None,
                "tensors": None,
                "dtypes": {},
                "parameters_from_config": estimated_parameters(summary["architecture"]),
            }
        )
    summary["weights"] = [name for name in weights]
    summary["files"] = list_files(path)
    summary["size_bytes"] = sum(entry["bytes"] for entry in summary["files"])
    return summary


def read_config(path: Path, fmt: str) -> dict[str, Any]:
    if fmt == "native":
        from olmo_cli.checkpoints.formats import native

        return native.read_config(path)
    return read_json_object(path / "config.json")


def _summary(path: Path, fmt: str, config: dict[str, Any]) -> dict[str, Any]:
    from olmo_cli.checkpoints.tokenizers import describe_tokenizer

    if fmt == "hf":
        model_type = str(config.get("model_type") or "unknown")
        family = {"olmo": "olmo1", "olmo2": "olmo2", "olmo3": "olmo3"}.get(model_type, model_type)
        architecture = hf_architecture(config)
        identifier = None
    else:
        model = config["model"] if fmt == "native" else config
        architecture = native_architecture(model)
        family = (
            "olmo2"
            if (architecture["norm_after"] or architecture["qk_norm"] or architecture["norm"] == "rms")
            else "olmo1"
        )
        model_type = "olmo" if fmt == "hf_olmo" else None
        tokenizer_section = config.get("tokenizer") if fmt == "native" else None
        identifier = tokenizer_section.get("identifier") if isinstance(tokenizer_section, dict) else None
    tokenizer = describe_tokenizer(source_dir=path, identifier=identifier)
    if tokenizer is not None and architecture.get("vocab_size") is None:
        architecture["vocab_size"] = tokenizer.vocab_size or None
    tokenizer_dict = tokenizer.as_dict() if tokenizer else None
    if tokenizer_dict is not None and identifier:
        tokenizer_dict["identifier"] = identifier  # what config.yaml says; the name is what conversion writes
    return {
        "path": str(path),
        "format": fmt,
        "model_type": model_type,
        "family": family,
        "architecture": architecture,
        "tokenizer": tokenizer_dict,
    }


def native_architecture(model: dict[str, Any]) -> dict[str, Any]:
    """The architecture of a native `model:` section (also hf_olmo's config.json: same field names)."""
    try:
        return _native_architecture(model)
    except (KeyError, TypeError, ValueError) as error:
        raise BadInputError(f"the model config has a bad field value: {first_line(error)}") from None


def _native_architecture(model: dict[str, Any]) -> dict[str, Any]:
    value = dict(NATIVE_DEFAULTS)
    value.update({key: item for key, item in model.items() if item is not None or key == "clip_qkv"})
    try:
        d_model, n_heads = int(value["d_model"]), int(value["n_heads"])
    except (KeyError, TypeError, ValueError):
        raise BadInputError("the model config has no usable d_model/n_heads") from None
    if d_model <= 0 or n_heads <= 0:
        raise BadInputError(f"the model config has d_model {d_model} and n_heads {n_heads}: both must be positive")
    kv_heads = 1 if value.get("multi_query_attention") else int(value.get("n_kv_heads") or n_heads)
    fused = value.get("mlp_hidden_size") or d_model * value["mlp_ratio"]
    norm_type = value["layer_norm_type"]
    return {
        "layers": int(value["n_layers"]),
        "d_model": d_model,
        "heads": n_heads,
        "kv_heads": kv_heads,
        "head_dim": d_model // n_heads,
        "mlp_hidden": int(fused) // 2,
        "vocab_size": int(value["vocab_size"]),
        "embedding_size": int(value.get("embedding_size") or value["vocab_size"]),
        "context_length": int(value["max_sequence_length"]),
        "tied_embeddings": bool(value["weight_tying"]),
        "norm": "rms" if norm_type == "rms" else "layernorm",
        "norm_weights": bool(value["layer_norm_with_affine"]),
        "norm_after": bool(value["norm_after"]),
        "qk_norm": bool(value["attention_layer_norm"]),
        "rope_theta": value["rope_theta"],
        "clip_qkv": value.get("clip_qkv"),
        "bias": bool(value["include_bias"]),
    }


def hf_architecture(config: dict[str, Any]) -> dict[str, Any]:
    """The architecture of a transformers config.json (olmo, olmo2, olmo3, or any llama-like)."""
    try:
        d_model, n_heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        layers = int(config["num_hidden_layers"])
    except (KeyError, TypeError, ValueError):
        raise BadInputError("config.json has no usable hidden_size/num_attention_heads/num_hidden_layers") from None
    if d_model <= 0 or n_heads <= 0:
        raise BadInputError(
            f"config.json has hidden_size {d_model} and num_attention_heads {n_heads}: both must be positive"
        )
    rope = config.get("rope_parameters") if isinstance(config.get("rope_parameters"), dict) else {}
    olmo1 = config.get("model_type") == "olmo"
    return {
        "layers": layers,
        "d_model": d_model,
        "heads": n_heads,
        "kv_heads": int(config.get("num_key_value_heads") or n_heads),
        "head_dim": int(config.get("head_dim") or d_model // n_heads),
        "mlp_hidden": config.get("intermediate_size"),
        "vocab_size": None,  # the tokenizer's; filled in from the tokenizer files
        "embedding_size": config.get("vocab_size"),
        "context_length": config.get("max_position_embeddings"),
        "tied_embeddings": bool(config.get("tie_word_embeddings", False)),
        "norm": "layernorm" if olmo1 else "rms",
        "norm_weights": not olmo1,
        "norm_after": not olmo1 and config.get("model_type") in ("olmo2", "olmo3"),
        "qk_norm": not olmo1 and config.get("model_type") in ("olmo2", "olmo3"),
        "rope_theta": config.get("rope_theta", rope.get("rope_theta")),
        "clip_qkv": config.get("clip_qkv"),
        "bias": bool(config.get("attention_bias", False)),
    }


def estimated_parameters(arch: dict[str, Any]) -> int | None:
    """Parameters an OLMo model with this architecture has (for when the weights cannot be read)."""
    try:
        d, layers, hidden = arch["d_model"], arch["layers"], arch["mlp_hidden"]
        kv, rows = arch["kv_heads"] * arch["head_dim"], arch["embedding_size"]
        per_layer = (
            d * (arch["heads"] * arch["head_dim"] + 2 * kv) + arch["heads"] * arch["head_dim"] * d + 3 * d * hidden
        )
    except (KeyError, TypeError):
        return None
    if arch["norm_weights"]:
        per_layer += 2 * d
    if arch["qk_norm"]:
        per_layer += arch["heads"] * arch["head_dim"] + kv
    total = layers * per_layer + rows * d * (1 if arch["tied_embeddings"] else 2)
    return total + (d if arch["norm_weights"] else 0)


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
    summary = _summary(path, fmt, read_config(path, fmt))
    summary.update({"path": str(path), "repo": located.repo, "revision": located.revision, "commit": located.commit})
    remote_files = None if offline else _remote_files(located.repo, located.commit or located.revision)
    local_files = {entry["name"]: entry["bytes"] for entry in list_files(path)}
    all_files = dict(local_files, **(remote_files or {}))
    weights = weight_files(path, all_files)
    local_weights = [name for name in weights if name in local_files]
    if weights and len(local_weights) == len(weights):
        summary.update(tensor_summary(headers_of_local_files(path, weights)))
    elif not offline and weights and all(name.endswith(".safetensors") for name in weights):
        summary.update(
            tensor_summary(_remote_safetensors_tensors(located.repo, located.commit or located.revision, weights))
        )
    else:
        estimate = (
            estimated_parameters(summary["architecture"]) if summary["family"] in ("olmo1", "olmo2", "olmo3") else None
        )
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
