"""Which format a checkpoint directory is in, from its files alone (no weights are read)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from olmo_cli.errors import BadInputError, NotFoundError, UnsupportedError
from olmo_cli.jsonfiles import read_json_object

FORMATS = ("native", "hf_olmo", "hf")
HF_MODEL_TYPES = ("olmo", "olmo2", "olmo3")  # what the converter reads
# transformers' own OLMo families: "hf" (loadable without remote code), though only some convert.
TRANSFORMERS_OLMO_TYPES = (*HF_MODEL_TYPES, "olmoe", "flex_olmo")
_NATIVE_WEIGHTS = ("model.pt", "model.safetensors")


def detect_format(path) -> str:
    """ "native" | "hf_olmo" | "hf"; BadInputError (or UnsupportedError for a known-other model) otherwise."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"no such checkpoint directory: {path}")
    if not path.is_dir():
        raise BadInputError(f"{path} is a file; give the checkpoint's directory")
    if (path / "config.yaml").is_file():
        if any((path / name).is_file() for name in _NATIVE_WEIGHTS):
            return "native"
        if any(p.name.startswith(("rank", "model_and_optim")) or p.suffix == ".distcp" for p in path.iterdir()):
            raise UnsupportedError(
                f"{path} is a sharded OLMo trainer checkpoint",
                hint="unshard it with the OLMo package first (needs model.pt or model.safetensors)",
            )
        raise BadInputError(f"{path} has config.yaml but no model.pt or model.safetensors")
    if (path / "model_and_optim").is_dir():
        raise UnsupportedError(
            f"{path} is an OLMo-core distributed checkpoint", hint="convert it with OLMo-core's own tools first"
        )
    config_path = path / "config.json"
    if not config_path.is_file():
        raise BadInputError(f"{path} is not a checkpoint: no config.yaml (native OLMo) or config.json (transformers)")
    config = read_json_object(config_path)
    # hf_olmo keeps the native field names (d_model, n_heads, ...) under model_type "olmo".
    if "d_model" in config and config.get("model_type", "olmo") in ("olmo", "hf_olmo"):
        return "hf_olmo"
    model_type = config.get("model_type")
    if model_type in TRANSFORMERS_OLMO_TYPES:
        return "hf"
    if model_type is None:
        raise BadInputError(f"{config_path} has no model_type")
    raise UnsupportedError(
        f"model_type '{model_type}' is not an OLMo architecture this tool handles",
        hint=f"supported: native OLMo, legacy hf_olmo, transformers {', '.join(HF_MODEL_TYPES)}",
    )


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
