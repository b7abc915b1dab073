"""Where every tensor goes: declarative tables between native OLMo, transformers and OLMo-core
keys, read both ways; transformers' naming is the canonical one the other two map to.

A `Link` says "the transformers tensor `hf` is rows `rows` of the native tensor `native`" (all
rows when `rows` is None). Native -> transformers reads each link as a slice; transformers ->
native groups the links of one native tensor and concatenates them in row order. hf_olmo uses
the native keys (its reader strips the `model.` prefix), so it needs no table of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from olmo_cli.checkpoints.spec import ModelSpec


@dataclass(frozen=True)
class Link:
    native: str
    hf: str
    rows: tuple[int, int] | None = None


@dataclass(frozen=True)
class Piece:
    """Part of an output tensor: a whole input tensor, or a row range of one."""

    key: str
    rows: tuple[int, int] | None = None


# The native <-> transformers naming as data: one row a tensor, `{i}` the layer. A native name
# `x[q]` is the named row slice `q` of the fused tensor x (FUSED gives the slices in row order),
# so splitting (native -> hf) and fusing (hf -> native) read the same rows. `shape` is in the
# symbols of `_sizes`; `when` names the spec property a row depends on.
FUSED: dict[str, tuple[tuple[str, str], ...]] = {
    "att_proj": (("q", "d"), ("k", "kv"), ("v", "kv")),  # fused Q, K, V in that order
    # Fused SwiGLU: FIRST half up, SECOND half gate (x, gate = chunk(2); silu(gate) * x).
    "ff_proj": (("up", "h"), ("gate", "h")),
}
NATIVE_NAMES: tuple[tuple[str, str, tuple[str, ...], str | None], ...] = (
    # (native, transformers, native shape, when)
    ("transformer.wte.weight", "model.embed_tokens.weight", ("E", "d"), None),
    ("transformer.blocks.{i}.att_proj.weight[q]", "model.layers.{i}.self_attn.q_proj.weight", ("d+2kv", "d"), None),
    ("transformer.blocks.{i}.att_proj.weight[k]", "model.layers.{i}.self_attn.k_proj.weight", ("d+2kv", "d"), None),
    ("transformer.blocks.{i}.att_proj.weight[v]", "model.layers.{i}.self_attn.v_proj.weight", ("d+2kv", "d"), None),
    ("transformer.blocks.{i}.attn_out.weight", "model.layers.{i}.self_attn.o_proj.weight", ("d", "d"), None),
    ("transformer.blocks.{i}.ff_proj.weight[up]", "model.layers.{i}.mlp.up_proj.weight", ("2h", "d"), None),
    ("transformer.blocks.{i}.ff_proj.weight[gate]", "model.layers.{i}.mlp.gate_proj.weight", ("2h", "d"), None),
    ("transformer.blocks.{i}.ff_out.weight", "model.layers.{i}.mlp.down_proj.weight", ("d", "h"), None),
    ("transformer.blocks.{i}.q_norm.weight", "model.layers.{i}.self_attn.q_norm.weight", ("qn",), "qk_norm"),
    ("transformer.blocks.{i}.k_norm.weight", "model.layers.{i}.self_attn.k_norm.weight", ("kn",), "qk_norm"),
    # Only OLMo-2 (norm after) has norm weights in transformers: post-sublayer norms.
    (
        "transformer.blocks.{i}.attn_norm.weight",
        "model.layers.{i}.post_attention_layernorm.weight",
        ("d",),
        "norm_affine",
    ),
    (
        "transformer.blocks.{i}.ff_norm.weight",
        "model.layers.{i}.post_feedforward_layernorm.weight",
        ("d",),
        "norm_affine",
    ),
    ("transformer.ln_f.weight", "model.norm.weight", ("d",), "norm_affine"),
    ("transformer.ff_out.weight", "lm_head.weight", ("E", "d"), "untied"),
)


def _sizes(spec: ModelSpec) -> dict[str, int]:
    d, kv, h = spec.d_model, spec.kv_dim, spec.mlp_hidden
    return {
        "d": d,
        "kv": kv,
        "h": h,
        "2h": 2 * h,
        "d+2kv": d + 2 * kv,
        "E": spec.embedding_size,
        "qn": spec.head_dim if spec.qk_norm_per_head else d,
        "kn": spec.head_dim if spec.qk_norm_per_head else kv,
    }


def _applies(when: str | None, spec: ModelSpec) -> bool:
    return when is None or (not spec.weight_tying if when == "untied" else bool(getattr(spec, when)))


def _expanded(spec: ModelSpec):
    """(native key, slice name or None, hf key, native shape) in writing order: the rows without
    a layer where they stand, each run of per-layer rows once per layer."""
    sizes = _sizes(spec)
    rows = [row for row in NATIVE_NAMES if _applies(row[3], spec)]
    index = 0
    while index < len(rows):
        if "{i}" not in rows[index][0]:
            group, index = [rows[index]], index + 1
            layers: list[int | None] = [None]
        else:
            end = index
            while end < len(rows) and "{i}" in rows[end][0]:
                end += 1
            group, index, layers = rows[index:end], end, [*range(spec.n_layers)]
        for layer in layers:
            for native, hf, shape, _ in group:
                native, hf = (native, hf) if layer is None else (native.format(i=layer), hf.format(i=layer))
                key, _, piece = native.partition("[")
                yield key, piece.rstrip("]") or None, hf, tuple(sizes[dim] for dim in shape)


def native_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Every key the OLMo trainer's model has for this spec, with its shape (docs/REFERENCE.md 3.1)."""
    return {key: shape for key, _, _, shape in _expanded(spec)}


def _slice_rows(spec: ModelSpec, key: str, piece: str) -> tuple[int, int]:
    sizes, start = _sizes(spec), 0
    for name, width in FUSED[key.rsplit(".", 2)[-2]]:
        if name == piece:
            return start, start + sizes[width]
        start += sizes[width]
    raise KeyError(piece)


def links(spec: ModelSpec) -> list[Link]:
    """The native <-> transformers table for `spec` (olmo or olmo2 layout by its properties)."""
    return [
        Link(key, hf, None if piece is None else _slice_rows(spec, key, piece)) for key, piece, hf, _ in _expanded(spec)
    ]


# OLMo-core's names (REFERENCE 3.4) beside transformers' (the canonical naming here): one entry a
# tensor, `{i}` the layer. OLMo-core keeps q/k/v and gate/up unfused, so every link is a whole
# tensor. A tied OLMo-core model stores lm_head.w_out too; transformers drops it when tied.
OLMO_CORE_NAMES: dict[str, str] = {
    "embeddings.weight": "model.embed_tokens.weight",
    "blocks.{i}.attention.w_q.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "blocks.{i}.attention.w_k.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "blocks.{i}.attention.w_v.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "blocks.{i}.attention.w_out.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blocks.{i}.attention.q_norm.weight": "model.layers.{i}.self_attn.q_norm.weight",
    "blocks.{i}.attention.k_norm.weight": "model.layers.{i}.self_attn.k_norm.weight",
    "blocks.{i}.attention_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blocks.{i}.feed_forward.w1.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "blocks.{i}.feed_forward.w2.weight": "model.layers.{i}.mlp.down_proj.weight",
    "blocks.{i}.feed_forward.w3.weight": "model.layers.{i}.mlp.up_proj.weight",
    "blocks.{i}.feed_forward_norm.weight": "model.layers.{i}.post_feedforward_layernorm.weight",
    "lm_head.norm.weight": "model.norm.weight",
    "lm_head.w_out.weight": "lm_head.weight",
}


def _template_pattern(template: str):
    import re

    return re.compile("^" + re.escape(template).replace(re.escape("{i}"), r"(\d+)") + "$")


_OLMO_CORE_PATTERNS = [(_template_pattern(k), v) for k, v in OLMO_CORE_NAMES.items()]
_HF_PATTERNS = [(_template_pattern(v), k) for k, v in OLMO_CORE_NAMES.items()]


def _rename(key: str, patterns) -> str | None:
    for pattern, template in patterns:
        found = pattern.match(key)
        if found:
            return template.replace("{i}", found.group(1)) if found.groups() else template
    return None


def olmo_core_to_hf(key: str) -> str | None:
    """transformers' name for an OLMo-core model key (without its `model.` DCP prefix); None if unknown."""
    return _rename(key, _OLMO_CORE_PATTERNS)


def hf_to_olmo_core(key: str) -> str | None:
    return _rename(key, _HF_PATTERNS)


def hf_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    native = native_shapes(spec)
    out = {}
    for link in links(spec):
        shape = native[link.native]
        out[link.hf] = shape if link.rows is None else (link.rows[1] - link.rows[0], *shape[1:])
    return out


def output_bytes(shapes: dict[str, tuple[int, ...]], dtype: str) -> int:
    """The weights' bytes on disk in `dtype` (checked against free space before writing)."""
    from olmo_cli.checkpoints.primitives import nbytes

    return sum(nbytes(tuple(shape), dtype) for shape in shapes.values())


def plan(spec: ModelSpec, to: str, source: str | None = None) -> dict[str, list[Piece]]:
    """For each output key (in writing order), the pieces of input tensors it is made of.

    `to` and `source` are key namings ("native" or "hf"); the same naming on both sides (a cast,
    a re-shard, hf_olmo -> native) maps every tensor to itself.
    """
    if source == to:
        shapes = native_shapes(spec) if to == "native" else hf_shapes(spec)
        return {key: [Piece(key)] for key in shapes}
    if to == "hf":
        return {link.hf: [Piece(link.native, link.rows)] for link in links(spec)}
    if to == "native":
        grouped: dict[str, list[Link]] = {}
        for link in links(spec):
            grouped.setdefault(link.native, []).append(link)
        return {
            key: [Piece(link.hf) for link in sorted(group, key=lambda one: (one.rows or (0, 0))[0])]
            for key, group in grouped.items()
        }
    raise ValueError(to)


def materialize(pieces: list[Piece], get):
    """The output tensor: a view when it is one input (or a row slice of one), else a concatenation."""
    import torch

    parts = [get(p.key) if p.rows is None else get(p.key)[p.rows[0] : p.rows[1]] for p in pieces]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
