"""The closed vocabularies of checkpoints: formats, families and dtypes, one table each.

They are `str` Enums, so a member equals its value (`Format.HF == "hf"`) and code that passed the
strings around keeps working; `--help` and completion list the values.
"""

from __future__ import annotations

from enum import Enum


class Format(str, Enum):
    """A checkpoint layout on disk (what `detect_format` says and `--to` writes)."""

    NATIVE = "native"  # the allenai/OLMo trainer: config.yaml + model.pt | model.safetensors
    HF_OLMO = "hf_olmo"  # the legacy remote-code repos (allenai/OLMo-1B, OLMo-7B, ...)
    HF = "hf"  # transformers-native olmo, olmo2, olmo3
    OLMO_CORE = "olmo-core"  # allenai/OLMo-core: config.json + model_and_optim/ (DCP), or unsharded

    def __str__(self) -> str:
        return self.value


class Target(str, Enum):
    """What `olmo convert --to` writes (hf_olmo is read, never written)."""

    HF = "hf"
    NATIVE = "native"
    OLMO_CORE = "olmo-core"

    def __str__(self) -> str:
        return self.value


class Family(str, Enum):
    """The model family: which transformers architecture holds it."""

    OLMO1 = "olmo1"  # transformers `olmo`
    OLMO2 = "olmo2"  # transformers `olmo2`: norms after the sublayers, QK-norm
    OLMO3 = "olmo3"  # transformers `olmo3`: OLMo 2 plus sliding-window layers and scaled RoPE

    def __str__(self) -> str:
        return self.value

    @property
    def model_type(self) -> str:
        """transformers' model_type for the family."""
        return MODEL_TYPES[self]


MODEL_TYPES = {Family.OLMO1: "olmo", Family.OLMO2: "olmo2", Family.OLMO3: "olmo3"}
FAMILY_OF_MODEL_TYPE = {model_type: family for family, model_type in MODEL_TYPES.items()}


class DType(str, Enum):
    """An output dtype for convert/quantize (`auto`: as the source)."""

    AUTO = "auto"
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"

    def __str__(self) -> str:
        return self.value


def choices(enum: type[Enum]) -> tuple[str, ...]:
    return tuple(str(member.value) for member in enum)
