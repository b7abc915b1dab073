"""`--verify`: run the source and the converted checkpoint on a fixed prompt and compare logits.

Transformers-format checkpoints run in transformers; native, hf_olmo and OLMo-core ones run in
`native_logits`, a plain-torch forward of the OLMo block (REFERENCE 3.1) over native keys, with
OLMo-core's sliding windows and RoPE scalings (REFERENCE 3.4). Both sides run in float32, so the
difference measures the conversion (and any cast), not kernels.
"""

from __future__ import annotations

import math
from pathlib import Path

from olmo_cli.checkpoints.spec import ModelSpec
from olmo_cli.errors import MismatchError

# Relative tolerances per output dtype (times max(1, max |logit|)): rounding weights to 16 bits
# moves logits by a fraction of a percent; float32 must agree to kernel noise.
TOLERANCE = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 5e-2}


def prompt_ids(spec: ModelSpec, length: int = 12) -> list[int]:
    """A fixed, deterministic prompt inside the vocabulary (no tokenizer needed)."""
    vocab = max(2, min(spec.vocab_size, spec.embedding_size))
    length = max(1, min(length, spec.max_sequence_length))
    return [(17 + 7919 * i) % vocab for i in range(length)]


def _norm(x, weight, spec: ModelSpec):
    import torch
    import torch.nn.functional as F

    if spec.norm_type == "rms":
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + spec.norm_eps)
        return y if weight is None else y * weight
    return F.layer_norm(x, (x.shape[-1],), weight, None, spec.norm_eps)


def _inv_freq(spec: ModelSpec, scaling: dict | None):
    """(inverse frequencies, attention factor) of a layer, as OLMo-core computes them (nn/rope.py)."""
    import torch

    hd = spec.head_dim
    theta = float((scaling or {}).get("rope_theta", spec.rope_theta))  # ABF: its own theta
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    if not scaling or scaling["rope_type"] == "default":
        return inv, 1.0
    kind, factor = scaling["rope_type"], float(scaling["factor"])
    if kind == "linear":
        return inv / factor, 1.0
    old = float(scaling["original_max_position_embeddings"])
    if kind == "yarn":

        def dim_of(rotations: float) -> float:
            return hd * math.log(old / (rotations * 2 * math.pi)) / (2 * math.log(spec.rope_theta))

        half = inv.shape[0]
        low = max(math.floor(dim_of(float(scaling.get("beta_fast", 32)))), 0)
        high = min(math.ceil(dim_of(float(scaling.get("beta_slow", 1)))), half - 1)
        ramp = ((torch.arange(half, dtype=torch.float32) - low) / max(high - low, 1e-3)).clamp(0, 1)
        attention = scaling.get("attention_factor") or 0.1 * math.log(factor) + 1.0
        return inv / factor * ramp + inv * (1 - ramp), float(attention)
    if kind == "llama3":
        low_f, high_f = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old / low_f, inv / factor, inv)
        weight = (old / wavelen - low_f) / (high_f - low_f)
        mid = (wavelen <= old / low_f) & (wavelen >= old / high_f)
        return torch.where(mid, (1 - weight) * scaled / factor + weight * scaled, scaled), 1.0
    raise ValueError(kind)


def native_logits(spec: ModelSpec, get, ids: list[int]):
    """Logits [len(ids), embedding_size] of the OLMo model in float32; `get(native_key)` gives weights."""
    import torch
    import torch.nn.functional as F

    def w(key):
        return get(key).float()

    def maybe(key):
        return w(key) if spec.norm_affine else None

    n, hd, d, kv = len(ids), spec.head_dim, spec.d_model, spec.kv_dim
    x = w("transformer.wte.weight")[torch.tensor(ids)]

    def rope(t, sliding: bool):  # [heads, n, hd], rotate-half style
        inv_freq, factor = _inv_freq(spec, None if sliding else spec.rope_scaling)
        angles = torch.outer(torch.arange(n, dtype=torch.float32), inv_freq)
        cos, sin = torch.cat([angles, angles], -1).cos() * factor, torch.cat([angles, angles], -1).sin() * factor
        half = t.shape[-1] // 2
        rotated = torch.cat([-t[..., half:], t[..., :half]], -1)
        return t * cos + rotated * sin

    causal = torch.full((n, n), float("-inf")).triu(1)
    # A sliding layer sees `sliding_window` keys, the current one included.
    distance = torch.arange(n)[:, None] - torch.arange(n)[None, :]
    windowed = causal.masked_fill(distance >= (spec.sliding_window or n + 1), float("-inf"))
    for i in range(spec.n_layers):
        p = f"transformer.blocks.{i}."
        sliding = spec.layer_type(i) == "sliding_attention"
        mask = windowed if sliding else causal
        h = x if spec.norm_after else _norm(x, maybe(p + "attn_norm.weight"), spec)
        qkv = h @ w(p + "att_proj.weight").T
        if spec.clip_qkv is not None:
            qkv = qkv.clamp(-spec.clip_qkv, spec.clip_qkv)
        q, k, v = qkv.split([d, kv, kv], dim=-1)
        if spec.qk_norm and spec.qk_norm_per_head:
            q = _norm(q.view(n, spec.n_heads, hd), w(p + "q_norm.weight"), spec).reshape(n, d)
            k = _norm(k.view(n, spec.n_kv_heads, hd), w(p + "k_norm.weight"), spec).reshape(n, kv)
        elif spec.qk_norm:
            q, k = _norm(q, w(p + "q_norm.weight"), spec), _norm(k, w(p + "k_norm.weight"), spec)
        q = rope(q.view(n, spec.n_heads, hd).transpose(0, 1), sliding)
        k = rope(k.view(n, spec.n_kv_heads, hd).transpose(0, 1), sliding)
        v = v.view(n, spec.n_kv_heads, hd).transpose(0, 1)
        group = spec.n_heads // spec.n_kv_heads
        k, v = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + mask
        att = (scores.softmax(-1) @ v).transpose(0, 1).reshape(n, d) @ w(p + "attn_out.weight").T
        x = x + (_norm(att, maybe(p + "attn_norm.weight"), spec) if spec.norm_after else att)
        h = x if spec.norm_after else _norm(x, maybe(p + "ff_norm.weight"), spec)
        up, gate = (h @ w(p + "ff_proj.weight").T).chunk(2, dim=-1)
        mlp = (F.silu(gate) * up) @ w(p + "ff_out.weight").T
        x = x + (_norm(mlp, maybe(p + "ff_norm.weight"), spec) if spec.norm_after else mlp)
    x = _norm(x, maybe("transformer.ln_f.weight"), spec)
    head = w("transformer.wte.weight" if spec.weight_tying else "transformer.ff_out.weight")
    return x @ head.T


def hf_logits(directory: Path, ids: list[int]):
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # our own progress is enough; a second bar mid-run is noise
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor([ids])).logits[0]
    del model
    return out


def checkpoint_logits(checkpoint, ids: list[int]):
    import torch

    with torch.no_grad():
        if checkpoint.format == "hf":
            return hf_logits(checkpoint.path, ids)
        if checkpoint.keys == "hf":  # OLMo-core: fuse its tensors into native ones on the fly
            from olmo_cli.checkpoints import layout

            table = layout.plan(checkpoint.spec, "native", "hf")
            return native_logits(
                checkpoint.spec, lambda key: layout.materialize(table[key], checkpoint.reader.get), ids
            )
        return native_logits(checkpoint.spec, checkpoint.reader.get, ids)


def compare(source, output, dtype: str) -> float:
    """Max |logit difference| between two opened checkpoints; MismatchError beyond tolerance."""
    ids = prompt_ids(source.spec)
    a = checkpoint_logits(source, ids)
    b = checkpoint_logits(output, ids)
    if a.shape != b.shape:
        raise MismatchError(f"verification failed: logits have shape {tuple(a.shape)} vs {tuple(b.shape)}")
    diff = float((a - b).abs().max())
    scale = max(1.0, float(a.abs().max()))
    tolerance = TOLERANCE.get(dtype, 5e-2) * scale
    if not diff <= tolerance:
        raise MismatchError(
            f"verification failed: max logit difference {diff:.3g} exceeds {tolerance:.3g} ({dtype})",
            hint="the output was not written; report this with the source's config",
        )
    return diff
