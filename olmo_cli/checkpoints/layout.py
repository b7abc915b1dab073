"""Where every tensor goes: one table between native OLMo keys and transformers keys, read both ways.

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


def native_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Every key the OLMo trainer's model has for this spec, with its shape (REFERENCE 3.1)."""
    d, kv, h = spec.d_model, spec.kv_dim, spec.mlp_hidden
    shapes: dict[str, tuple[int, ...]] = {"transformer.wte.weight": (spec.embedding_size, d)}
    for i in range(spec.n_layers):
        p = f"transformer.blocks.{i}."
        shapes[p + "att_proj.weight"] = (d + 2 * kv, d)
        shapes[p + "attn_out.weight"] = (d, d)
        shapes[p + "ff_proj.weight"] = (2 * h, d)
        shapes[p + "ff_out.weight"] = (d, h)
        if spec.norm_affine:
            shapes[p + "attn_norm.weight"] = (d,)
            shapes[p + "ff_norm.weight"] = (d,)
        if spec.qk_norm:
            shapes[p + "q_norm.weight"] = (spec.head_dim,) if spec.qk_norm_per_head else (d,)
            shapes[p + "k_norm.weight"] = (spec.head_dim,) if spec.qk_norm_per_head else (kv,)
    if spec.norm_affine:
        shapes["transformer.ln_f.weight"] = (d,)
    if not spec.weight_tying:
        shapes["transformer.ff_out.weight"] = (spec.embedding_size, d)
    return shapes


def links(spec: ModelSpec) -> list[Link]:
    """The native <-> transformers table for `spec` (olmo or olmo2 layout by its family)."""
    d, kv, h = spec.d_model, spec.kv_dim, spec.mlp_hidden
    table = [Link("transformer.wte.weight", "model.embed_tokens.weight")]
    for i in range(spec.n_layers):
        n, t = f"transformer.blocks.{i}.", f"model.layers.{i}."
        table += [
            # Fused QKV in that order.
            Link(n + "att_proj.weight", t + "self_attn.q_proj.weight", (0, d)),
            Link(n + "att_proj.weight", t + "self_attn.k_proj.weight", (d, d + kv)),
            Link(n + "att_proj.weight", t + "self_attn.v_proj.weight", (d + kv, d + 2 * kv)),
            Link(n + "attn_out.weight", t + "self_attn.o_proj.weight"),
            # Fused SwiGLU: FIRST half up, SECOND half gate (x, gate = chunk(2); silu(gate) * x).
            Link(n + "ff_proj.weight", t + "mlp.up_proj.weight", (0, h)),
            Link(n + "ff_proj.weight", t + "mlp.gate_proj.weight", (h, 2 * h)),
            Link(n + "ff_out.weight", t + "mlp.down_proj.weight"),
        ]
        if spec.qk_norm:
            table += [
                Link(n + "q_norm.weight", t + "self_attn.q_norm.weight"),
                Link(n + "k_norm.weight", t + "self_attn.k_norm.weight"),
            ]
        if spec.norm_affine:
            # Only OLMo-2 (norm after) has norm weights in transformers: post-sublayer norms.
            table += [
                Link(n + "attn_norm.weight", t + "post_attention_layernorm.weight"),
                Link(n + "ff_norm.weight", t + "post_feedforward_layernorm.weight"),
            ]
    if spec.norm_affine:
        table.append(Link("transformer.ln_f.weight", "model.norm.weight"))
    if not spec.weight_tying:
        table.append(Link("transformer.ff_out.weight", "lm_head.weight"))
    return table


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
