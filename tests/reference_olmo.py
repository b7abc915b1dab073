"""An independent OLMo forward pass in plain torch, written from the OLMo definition (docs/REFERENCE.md 3.1).

It takes the native state dict (keys `transformer.*`) and the native `model:` config fields, and
shares no code with olmo_cli, so tests can check converted checkpoints against the definition
rather than against the converter's own reading of it.

Block (sequential): fused att_proj -> clamp(clip_qkv) -> split Q, K, V -> optional QK-norm over
the whole projection -> rotate-half RoPE -> causal attention -> attn_out; fused ff_proj -> first
half "x" (up), second half gate -> silu(gate) * x -> ff_out. Pre-norm, or OLMo-2's norm after.
"""

from __future__ import annotations

import math

import torch


def _layer_norm(x, weight, config):
    eps = config.get("layer_norm_eps", 1e-5)
    if config["layer_norm_type"] == "rms":
        x = x * (x.pow(2).mean(dim=-1, keepdim=True) + eps).rsqrt()
        return x if weight is None else weight * x
    mean = x.mean(dim=-1, keepdim=True)
    var = (x - mean).pow(2).mean(dim=-1, keepdim=True)
    x = (x - mean) / torch.sqrt(var + eps)
    return x if weight is None else weight * x


def _rotary(x, positions, theta):
    # x: [batch, heads, seq, head_dim]; rotate-half: pairs are (i, i + head_dim/2).
    head_dim = x.shape[-1]
    freqs = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angle = positions[:, None].double() * freqs[None, :]
    cos = torch.cat([angle.cos(), angle.cos()], dim=-1).float()
    sin = torch.cat([angle.sin(), angle.sin()], dim=-1).float()
    first, second = x[..., : head_dim // 2], x[..., head_dim // 2 :]
    return x * cos + torch.cat([-second, first], dim=-1) * sin


def olmo_logits(state: dict[str, torch.Tensor], config: dict, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits [batch, seq, embedding_size] in float32 for `input_ids` [batch, seq]."""
    sd = {k: v.float() for k, v in state.items()}
    d = config["d_model"]
    n_heads = config["n_heads"]
    n_kv = config.get("n_kv_heads") or (1 if config.get("multi_query_attention") else n_heads)
    hd = d // n_heads
    post = config.get("norm_after", False)
    clip = config.get("clip_qkv")
    theta = float(config.get("rope_theta", 10000))
    batch, seq = input_ids.shape
    positions = torch.arange(seq)
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()

    def norm(x, name):
        return _layer_norm(x, sd.get(name), config)

    h = sd["transformer.wte.weight"][input_ids]
    for i in range(config["n_layers"]):
        b = f"transformer.blocks.{i}."
        a_in = h if post else norm(h, b + "attn_norm.weight")
        fused = torch.einsum("bsd,od->bso", a_in, sd[b + "att_proj.weight"])
        if clip is not None:
            fused = torch.clamp(fused, min=-clip, max=clip)
        q = fused[..., :d]
        k = fused[..., d : d + n_kv * hd]
        v = fused[..., d + n_kv * hd :]
        if config.get("attention_layer_norm"):
            q = norm(q, b + "q_norm.weight")
            k = norm(k, b + "k_norm.weight")
        q = _rotary(q.reshape(batch, seq, n_heads, hd).permute(0, 2, 1, 3), positions, theta)
        k = _rotary(k.reshape(batch, seq, n_kv, hd).permute(0, 2, 1, 3), positions, theta)
        v = v.reshape(batch, seq, n_kv, hd).permute(0, 2, 1, 3)
        outs = []
        for head in range(n_heads):
            kv_head = head // (n_heads // n_kv)
            scores = q[:, head] @ k[:, kv_head].transpose(-1, -2) / math.sqrt(hd)
            scores = scores.masked_fill(~causal, float("-inf"))
            outs.append(torch.softmax(scores, dim=-1) @ v[:, kv_head])
        att = torch.stack(outs, dim=2).reshape(batch, seq, d) @ sd[b + "attn_out.weight"].T
        h = h + (norm(att, b + "attn_norm.weight") if post else att)
        f_in = h if post else norm(h, b + "ff_norm.weight")
        projected = f_in @ sd[b + "ff_proj.weight"].T
        half = projected.shape[-1] // 2
        x, gate = projected[..., :half], projected[..., half:]
        ff = (torch.nn.functional.silu(gate) * x) @ sd[b + "ff_out.weight"].T
        h = h + (norm(ff, b + "ff_norm.weight") if post else ff)
    h = norm(h, "transformer.ln_f.weight")
    head = sd["transformer.wte.weight"] if config.get("weight_tying") else sd["transformer.ff_out.weight"]
    return h @ head.T
