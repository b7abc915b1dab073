"""Which llama.cpp architecture holds a spec, and where every transformers tensor goes in it.

Names, architectures and the per-architecture tensor lists come from gguf-py's constants
(`MODEL_ARCH`, `TENSOR_NAMES`, `MODEL_TENSORS`), so a name llama.cpp would not load fails here.
"""

from __future__ import annotations

from dataclasses import dataclass

import gguf
import numpy as np

from olmo_cli.checkpoints import layout
from olmo_cli.checkpoints.spec import ModelSpec
from olmo_cli.errors import UnsupportedError

T = gguf.MODEL_TENSOR
# transformers key (layer part after `model.layers.{i}.`) -> llama.cpp tensor.
_LAYER_TENSORS = {
    "self_attn.q_proj.weight": T.ATTN_Q,
    "self_attn.k_proj.weight": T.ATTN_K,
    "self_attn.v_proj.weight": T.ATTN_V,
    "self_attn.o_proj.weight": T.ATTN_OUT,
    "self_attn.q_norm.weight": T.ATTN_Q_NORM,
    "self_attn.k_norm.weight": T.ATTN_K_NORM,
    "post_attention_layernorm.weight": T.ATTN_POST_NORM,
    "post_feedforward_layernorm.weight": T.FFN_POST_NORM,
    "mlp.gate_proj.weight": T.FFN_GATE,
    "mlp.up_proj.weight": T.FFN_UP,
    "mlp.down_proj.weight": T.FFN_DOWN,
}
_GLOBAL_TENSORS = {
    "model.embed_tokens.weight": T.TOKEN_EMBD,
    "model.norm.weight": T.OUTPUT_NORM,
    "lm_head.weight": T.OUTPUT,
}


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor of the output: its GGUF name, the transformers tensor it comes from, its shape
    (rows, columns) and, for `olmo`'s Q and K, the source row each output row is taken from."""

    name: str
    source: str
    kind: gguf.MODEL_TENSOR
    shape: tuple[int, ...]
    row_order: np.ndarray | None = None


def architecture(spec: ModelSpec) -> gguf.MODEL_ARCH:
    """`olmo` for OLMo-1 (parameter-free LayerNorm before each sublayer), `olmo2` for OLMo 2 and 3
    (RMSNorm after each sublayer, QK-norm); anything else llama.cpp has no graph for."""
    if spec.family == "olmo":
        if spec.norm_affine or spec.qk_norm or spec.norm_type != "layernorm":
            raise UnsupportedError(
                "llama.cpp's olmo architecture has parameter-free LayerNorm only (no norm weights, no QK-norm)"
            )
        if spec.rope_scaling is not None or spec.beyond_olmo2():
            raise UnsupportedError(f"llama.cpp's olmo architecture has no {spec.beyond_olmo2()[0]}")
        return gguf.MODEL_ARCH.OLMO
    missing = [
        name
        for name, ok in (
            ("norm after each sublayer", spec.norm_after),
            ("QK-norm", spec.qk_norm),
            ("RMSNorm", spec.norm_type == "rms"),
            ("norm weights", spec.norm_affine),
        )
        if not ok
    ]
    if missing:
        raise UnsupportedError(
            f"this mix of norms has no llama.cpp architecture (OLMo-2 style without {', '.join(missing)})"
        )
    if spec.clip_qkv is not None:
        raise UnsupportedError("llama.cpp's olmo2 architecture has no clip_qkv")
    if spec.qk_norm_per_head:
        raise UnsupportedError("llama.cpp's olmo2 architecture has no per-head QK-norm (use_head_qk_norm)")
    kind = (spec.rope_scaling or {}).get("rope_type", "yarn")
    if kind != "yarn":
        raise UnsupportedError(f"llama.cpp's olmo2 architecture has no {spec.rope_scaling_name} (YaRN only)")
    return gguf.MODEL_ARCH.OLMO2


def arch_name(arch: gguf.MODEL_ARCH) -> str:
    return gguf.MODEL_ARCH_NAMES[arch]


def tensors(spec: ModelSpec, arch: gguf.MODEL_ARCH) -> list[GGUFTensor]:
    """Every output tensor in writing order, from the transformers layout of `spec`."""
    shapes = layout.hf_shapes(spec)
    out = []
    for key, shape in shapes.items():
        kind, layer = _kind(key)
        if kind not in gguf.MODEL_TENSORS[arch]:
            raise UnsupportedError(f"llama.cpp's {arch_name(arch)} architecture has no tensor for {key}")
        name = gguf.TENSOR_NAMES[kind].format(bid=layer) + ".weight"
        out.append(GGUFTensor(name, key, kind, tuple(shape), _row_order(spec, arch, kind)))
    if spec.weight_tying and arch == gguf.MODEL_ARCH.OLMO2:
        # olmo2 requires `output` (olmo falls back to token_embd): write the tied matrix twice.
        embed = shapes["model.embed_tokens.weight"]
        out.append(GGUFTensor(gguf.TENSOR_NAMES[T.OUTPUT] + ".weight", "model.embed_tokens.weight", T.OUTPUT, embed))
    return out


def _kind(key: str) -> tuple[gguf.MODEL_TENSOR, int | None]:
    if key in _GLOBAL_TENSORS:
        return _GLOBAL_TENSORS[key], None
    prefix, _, rest = key.partition(".layers.")
    index, _, part = rest.partition(".")
    if prefix != "model" or not index.isdigit() or part not in _LAYER_TENSORS:
        raise UnsupportedError(f"no GGUF tensor for {key}")
    return _LAYER_TENSORS[part], int(index)


def _row_order(spec: ModelSpec, arch: gguf.MODEL_ARCH, kind: gguf.MODEL_TENSOR) -> np.ndarray | None:
    """llama.cpp's `olmo` ropes adjacent pairs of dims (0,1), (2,3)...; OLMo and transformers rotate
    halves (0, hd/2), (1, hd/2+1)... So within each head, output rows interleave the two halves.
    `olmo2` uses the NeoX (rotate-half) kernel: no reordering."""
    if arch != gguf.MODEL_ARCH.OLMO or kind not in (T.ATTN_Q, T.ATTN_K):
        return None
    heads = spec.n_heads if kind == T.ATTN_Q else spec.n_kv_heads
    return head_pair_order(heads, spec.head_dim)


def head_pair_order(heads: int, head_dim: int) -> np.ndarray:
    """Output row (h, j, t) <- input row (h, t, j) for t in {0, 1} (which half) and j < head_dim/2."""
    return np.arange(heads * head_dim).reshape(heads, 2, head_dim // 2).transpose(0, 2, 1).reshape(-1)
