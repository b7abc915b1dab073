"""ModelSpec: the one architecture description every checkpoint format reads and writes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from olmo_cli.checkpoints.kinds import FAMILY_OF_MODEL_TYPE, Family

FULL_ATTENTION, SLIDING_ATTENTION = "full_attention", "sliding_attention"  # transformers' layer_types

# Far beyond any OLMo (or other) decoder, and small enough that plans built from them stay small:
# a config with 10**12 layers is refused here instead of filling the memory with shape tables.
_LARGEST = {
    "d_model": 1 << 20,
    "n_layers": 1 << 14,
    "n_heads": 1 << 16,
    "n_kv_heads": 1 << 16,
    "mlp_hidden": 1 << 24,
    "embedding_size": 1 << 26,
    "vocab_size": 1 << 26,
    "max_sequence_length": 1 << 30,
}


@dataclass(frozen=True)
class ModelSpec:
    """An OLMo decoder, in the terms both the OLMo trainer and transformers can express.

    `mlp_hidden` is the width of one SwiGLU half (transformers' intermediate_size); the native
    fused `ff_proj` has twice as many rows. `embedding_size` is the number of embedding rows
    (transformers' vocab_size); `vocab_size` is the tokenizer's vocabulary.
    """

    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    mlp_hidden: int
    embedding_size: int
    vocab_size: int
    max_sequence_length: int
    rope_theta: float = 10000.0
    clip_qkv: float | None = None
    weight_tying: bool = False
    norm_type: str = "layernorm"  # "layernorm" (OLMo "default"/"low_precision") or "rms"
    norm_affine: bool = False  # attn/ff/final norms carry weights
    norm_eps: float = 1e-5
    qk_norm: bool = False  # q_norm/k_norm over the whole projection (always with weights)
    norm_after: bool = False  # OLMo-2: x + norm(f(x)) instead of x + f(norm(x))
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    tokenizer_identifier: str | None = None
    dtype: str | None = None  # the checkpoint's weight dtype, e.g. "float32"
    # OLMo 3 (defaults: every layer full attention, plain RoPE, QK-norm over the whole projection).
    layer_types: tuple[str, ...] | None = None  # per layer FULL_ATTENTION | SLIDING_ATTENTION
    sliding_window: int | None = None  # keys a sliding layer sees, the current one included
    # RoPE scaling of the full-attention layers, in transformers' rope_parameters terms
    # ({"rope_type": "yarn", "factor": ...}); sliding layers always use plain RoPE.
    rope_scaling: dict[str, Any] | None = None
    qk_norm_per_head: bool = False  # q_norm/k_norm weights of one head's width, shared by all heads

    def __post_init__(self):
        # Readers turn a ValueError into a one-line "bad model field" error.
        sizes = (
            "d_model",
            "n_layers",
            "n_heads",
            "n_kv_heads",
            "mlp_hidden",
            "embedding_size",
            "vocab_size",
            "max_sequence_length",
        )
        for name in sizes:
            check_size(name, getattr(self, name))
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")
        if self.layer_types is not None:
            if len(self.layer_types) != self.n_layers:
                raise ValueError(f"{len(self.layer_types)} layer types for {self.n_layers} layers")
            if SLIDING_ATTENTION in self.layer_types and not (self.sliding_window and self.sliding_window > 0):
                raise ValueError("sliding-window layers need a positive sliding_window")
            unknown = set(self.layer_types) - {FULL_ATTENTION, SLIDING_ATTENTION}
            if unknown:
                raise ValueError(f"unknown layer type {sorted(unknown)[0]!r}")

    def beyond_olmo2(self) -> list[str]:
        """The features of this spec that the native and transformers olmo/olmo2 layouts cannot hold."""
        features = []
        if self.slides:
            features.append("sliding-window attention layers (OLMo 3)")
        if self.rope_scaling is not None:
            features.append(self.rope_scaling_name)
        return features

    @property
    def rope_scaling_name(self) -> str:
        """The full-attention layers' RoPE scaling, as refusals name it."""
        scaling = self.rope_scaling or {}
        if scaling.get("rope_type") == "default":
            return f"ABF RoPE scaling (rope_theta {scaling.get('rope_theta')} on the full-attention layers)"
        return f"RoPE scaling '{scaling.get('rope_type')}'"

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    @property
    def slides(self) -> bool:
        return self.layer_types is not None and SLIDING_ATTENTION in self.layer_types

    @property
    def family(self) -> str:
        """The transformers model_type that can hold this model: "olmo", "olmo2" or "olmo3" (OLMo 2
        plus sliding-window layers or scaled RoPE)."""
        if self.slides or self.rope_scaling:
            return "olmo3"
        return "olmo2" if (self.norm_after or self.qk_norm or self.norm_type == "rms") else "olmo"

    @property
    def model_family(self) -> Family:
        return FAMILY_OF_MODEL_TYPE[self.family]

    def layer_type(self, layer: int) -> str:
        return FULL_ATTENTION if self.layer_types is None else self.layer_types[layer]

    def with_(self, **changes) -> ModelSpec:
        return replace(self, **changes)

    def n_parameters(self) -> int:
        d, h, kv = self.d_model, self.mlp_hidden, self.kv_dim
        per_layer = d * (d + 2 * kv) + d * d + 3 * d * h
        if self.norm_affine:
            per_layer += 2 * d
        if self.qk_norm:
            per_layer += 2 * self.head_dim if self.qk_norm_per_head else d + kv
        total = self.n_layers * per_layer + self.embedding_size * d
        if not self.weight_tying:
            total += self.embedding_size * d
        if self.norm_affine:
            total += d
        return total


def check_size(name: str, value: int) -> int:
    """`value` for the size field `name`, or a ValueError when it is not positive or beyond any
    model. Readers that build per-layer tables from a config call it before they do."""
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {value}")
    if value > _LARGEST[name]:  # before any plan holds a table of that many layers
        raise ValueError(f"{name} {value} is beyond any model (at most {_LARGEST[name]})")
    return value


def whole(value) -> int:
    """int(value) for a count or a token id read from a config, refusing what int() would quietly
    change: a fraction (16.5 -> 16), a bool, NaN or infinity (ValueError, which readers report)."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


def finite(value) -> float:
    """float(value) for a config's rope theta or norm epsilon; NaN and infinity are a ValueError."""
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a finite number")
    return number
