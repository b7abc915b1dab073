"""Which format a checkpoint directory is in, from its files alone (no weights are read)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from olmo_cli.errors import BadInputError, NotFoundError, UnsupportedError
from olmo_cli.jsonfiles import read_json_object

HF_MODEL_TYPES = ("olmo", "olmo2", "olmo3")  # what the converter reads
# transformers' own OLMo families: "hf" (loadable without remote code), though only some convert.
TRANSFORMERS_OLMO_TYPES = (*HF_MODEL_TYPES, "olmoe", "flex_olmo")
_NATIVE_WEIGHTS = ("model.pt", "model.safetensors")


def detect_format(path) -> str:
    """The Format of a checkpoint directory (a `str` Enum: "native", "hf_olmo", "hf", "olmo-core"),
    asking each registered format in turn; BadInputError (or UnsupportedError for a known-other
    model) when none claims it."""
    from olmo_cli.checkpoints.formats import registry

    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"no such checkpoint directory: {path}")
    if not path.is_dir():
        raise BadInputError(f"{path} is a file; give the checkpoint's directory")
    for entry in registry():
        if entry.claims(path):
            return entry.format
    raise BadInputError(
        f"{path} is not a checkpoint: no config.yaml (native OLMo) or config.json (transformers, OLMo-core)"
    )


def hf_claims(path: Path) -> bool:
    """A transformers OLMo directory (the last format asked: it names any other model type)."""
    config_path = path / "config.json"
    if not config_path.is_file():
        return False
    model_type = read_json_object(config_path).get("model_type")
    if model_type in TRANSFORMERS_OLMO_TYPES:
        return True
    if model_type is None:
        raise BadInputError(f"{config_path} has no model_type")
    raise UnsupportedError(
        f"model_type '{model_type}' is not an OLMo architecture this tool handles",
        hint=f"supported: native OLMo, legacy hf_olmo, OLMo-core, transformers {', '.join(HF_MODEL_TYPES)}",
    )


def native_claims(path: Path) -> bool:
    if not (path / "config.yaml").is_file():
        return False
    if any((path / name).is_file() for name in _NATIVE_WEIGHTS):
        return True
    if any(p.name.startswith(("rank", "model_and_optim")) or p.suffix == ".distcp" for p in path.iterdir()):
        raise UnsupportedError(
            f"{path} is a sharded OLMo trainer checkpoint",
            hint="unshard it with the OLMo package first (needs model.pt or model.safetensors)",
        )
    raise BadInputError(f"{path} has config.yaml but no model.pt or model.safetensors")


def hf_olmo_claims(path: Path) -> bool:
    """hf_olmo keeps the native field names (d_model, n_heads, ...) under model_type "olmo"."""
    config_path = path / "config.json"
    if not config_path.is_file():
        return False
    config = read_json_object(config_path)
    return "d_model" in config and config.get("model_type", "olmo") in ("olmo", "hf_olmo")


def weight_files(path: Path, names: Iterable[str] | None = None) -> list[str]:
    """The files holding a checkpoint's weights, relative to `path`: an index's shards, else the
    safetensors files (preferred over pickles of the same weights), else model.pt / pytorch_model.bin.

    `names`: the checkpoint's file names when its weights are not on disk (a Hub listing, with the
    small files, index included, fetched into `path`); by default the files in `path`.
    """
    from olmo_cli.checkpoints.tensors import shard_names

    path = Path(path)
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.is_file():
            try:
                return shard_names(read_json_object(index))
            except BadInputError as error:
                raise BadInputError(f"{index}: {error.message}") from None
    if names is None:
        names = [file.name for file in path.iterdir() if file.is_file()]
    top = sorted(name for name in names if "/" not in name)
    safetensors = [name for name in top if name.endswith(".safetensors")]
    return safetensors or [name for name in ("model.pt", "pytorch_model.bin") if name in top]
