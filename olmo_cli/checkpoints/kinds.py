"""The closed vocabularies of checkpoints: formats, families and dtypes, one table each.

They are `str` Enums, so a member equals its value (`Format.hf == "hf"`) and code that passed the
strings around keeps working; `--help` and completion list the values.
"""

from __future__ import annotations

from enum import Enum


class Format(str, Enum):
    """A checkpoint layout on disk (what `detect_format` says and `--to` writes)."""

    native = "native"  # the allenai/OLMo trainer: config.yaml + model.pt | model.safetensors
    hf_olmo = "hf_olmo"  # the legacy remote-code repos (allenai/OLMo-1B, OLMo-7B, ...)
    hf = "hf"  # transformers-native olmo, olmo2, olmo3
    olmo_core = "olmo-core"  # allenai/OLMo-core: config.json + model_and_optim/ (DCP), or unsharded

    def __str__(self) -> str:
        return self.value


class Target(str, Enum):
    """What `olmo convert --to` writes (hf_olmo is read, never written)."""

    hf = "hf"
    native = "native"
    olmo_core = "olmo-core"
    gguf = "gguf"  # llama.cpp, one file

    def __str__(self) -> str:
        return self.value


class Family(str, Enum):
    """The model family: which transformers architecture holds it."""

    olmo1 = "olmo1"  # transformers `olmo`
    olmo2 = "olmo2"  # transformers `olmo2`: norms after the sublayers, QK-norm
    olmo3 = "olmo3"  # transformers `olmo3`: OLMo 2 plus sliding-window layers and scaled RoPE

    def __str__(self) -> str:
        return self.value

    @property
    def model_type(self) -> str:
        """transformers' model_type for the family."""
        return MODEL_TYPES[self]


MODEL_TYPES = {Family.olmo1: "olmo", Family.olmo2: "olmo2", Family.olmo3: "olmo3"}
FAMILY_OF_MODEL_TYPE = {model_type: family for family, model_type in MODEL_TYPES.items()}


class DType(str, Enum):
    """An output dtype for convert/quantize (`auto`: as the source)."""

    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"

    def __str__(self) -> str:
        return self.value


def choices(enum: type[Enum]) -> tuple[str, ...]:
    return tuple(str(member.value) for member in enum)
