"""What a quantized checkpoint holds, planned from config.json and the source's tensor shapes.

The transformers model's state dict - every parameter name in order, which weights transformers'
quantizer quantizes, and which names are tied to another - decides the output's keys and header
metadata. For the OLMo families the converter writes (olmo, olmo2, olmo3) it is read off the
modeling code's structure here, with no transformers import (tests compare it with the model and
quantizer transformers builds). Other transformers OLMo types (olmoe, flex_olmo, whose saved keys
are not their state dict's) are quantized by loading them whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from olmo_cli.checkpoints.detect import HF_MODEL_TYPES

# Parameters of one decoder layer in registration order (OlmoDecoderLayer, Olmo2/Olmo3DecoderLayer).
_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")
_LINEAR_WEIGHT = re.compile(r"model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight")


@dataclass(frozen=True)
class Layout:
    names: list[str]  # the state dict, in order (tied names included, as torchao's metadata lists them)
    quantized: frozenset[str]  # the weights transformers' quantizer quantizes
    tied: dict[str, str]  # a tied name -> the name it is saved under (not saved itself)

    def saved(self) -> list[str]:
        return [name for name in self.names if name not in self.tied]


def text_config(config: dict) -> dict:
    return config.get("text_config") or config


def olmo_layout(config: dict) -> Layout | None:
    """The layout of an olmo/olmo2/olmo3 model, or None for another model type."""
    if config.get("model_type") not in HF_MODEL_TYPES:
        return None
    text = text_config(config)
    bias = bool(text.get("attention_bias", False))
    names = ["model.embed_tokens.weight"]
    for layer in range(int(text["num_hidden_layers"])):
        prefix = f"model.layers.{layer}"
        for proj in _ATTENTION:
            names += [f"{prefix}.self_attn.{proj}.weight"] + ([f"{prefix}.self_attn.{proj}.bias"] if bias else [])
        if config["model_type"] != "olmo":  # OLMo 2/3: QK-norm and post-norms (OLMo 1's norms have no weights)
            names += [f"{prefix}.self_attn.q_norm.weight", f"{prefix}.self_attn.k_norm.weight"]
        names += [f"{prefix}.mlp.{proj}.weight" for proj in _MLP]
        if config["model_type"] != "olmo":
            names += [f"{prefix}.post_attention_layernorm.weight", f"{prefix}.post_feedforward_layernorm.weight"]
    if config["model_type"] != "olmo":
        names.append("model.norm.weight")
    names.append("lm_head.weight")
    # transformers' default for all three families is untied.
    tied = {"lm_head.weight": "model.embed_tokens.weight"} if text.get("tie_word_embeddings", False) else {}
    return Layout(names, frozenset(n for n in names if _LINEAR_WEIGHT.fullmatch(n)), tied)
