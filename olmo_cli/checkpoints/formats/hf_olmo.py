"""The legacy hf_olmo format of allenai/OLMo-1B, OLMo-7B, OLMo-7B-Twin-2T: native field names in
config.json, native keys prefixed with `model.`, pytorch_model.bin and/or model.safetensors.

Read without remote code: the config is parsed like a native `model:` section and the weights
are the native ones under another prefix.
"""

from __future__ import annotations

from pathlib import Path

from olmo_cli.checkpoints.formats.native import _first_float_dtype, spec_from_model_fields
from olmo_cli.errors import BadInputError
from olmo_cli.jsonfiles import read_json_object

PREFIX = "model."


def read_spec(directory: Path):
    path = directory / "config.json"
    return spec_from_model_fields(read_json_object(path), str(path))


def weights_reader(directory: Path):
    from olmo_cli.checkpoints import tensors

    st, bin_ = directory / "model.safetensors", directory / "pytorch_model.bin"
    inner: tensors.TensorReader
    if st.is_file():
        inner = tensors.SafetensorsReader(st)
    elif bin_.is_file():
        inner = tensors.PickleReader(bin_)
    else:
        raise BadInputError(f"{directory}: no model.safetensors or pytorch_model.bin")

    def strip(key: str) -> str:
        if not key.startswith(PREFIX):
            raise BadInputError(f"{inner.description}: unexpected tensor {key!r} (hf_olmo keys start with 'model.')")
        return key[len(PREFIX) :]

    return tensors.RenamedReader(inner, strip)


def open_checkpoint(directory: Path):
    from olmo_cli.checkpoints.formats import Checkpoint

    spec = read_spec(directory)
    reader = weights_reader(directory)
    spec = spec.with_(dtype=_first_float_dtype(reader))
    return Checkpoint(directory, "hf_olmo", spec, reader, "native", "olmo")


def _register() -> None:
    from olmo_cli.checkpoints.detect import hf_olmo_claims
    from olmo_cli.checkpoints.formats import FormatEntry, register
    from olmo_cli.checkpoints.kinds import Format

    register(
        FormatEntry(
            Format.hf_olmo,
            hf_olmo_claims,
            read_spec,
            open_checkpoint,
            "the legacy remote-code repos (allenai/OLMo-1B, OLMo-7B): native fields in config.json",
        )
    )


_register()
