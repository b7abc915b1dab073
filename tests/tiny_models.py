"""Tiny random OLMo checkpoints in every on-disk format, built here without the converter.

Each builder writes a directory and returns it. Norm weights are random (not ones), so a dropped,
swapped or misplaced norm changes the logits. Sizes are a few hundred KB unless a tokenizer is
asked for (then the embedding has 50304 rows, the OLMo-1 tokenizer's padded vocabulary).

- `make_native(dir, arch="olmo1"|"olmo2", safetensors=False|"plain"|"olmo", **overrides)`: the
  OLMo trainer's unsharded checkpoint (config.yaml + model.pt or model.safetensors).
- `make_hf_olmo(dir, arch="olmo1", weights="bin"|"safetensors"|"both", tokenizer=True, **overrides)`:
  the legacy remote-code format of allenai/OLMo-1B and OLMo-7B.
- `make_hf(dir, arch="olmo"|"olmo2", sharded=False, **overrides)`: transformers-native, saved by
  transformers itself.
"""

from __future__ import annotations

import base64
import json
import pickle
import shutil
from pathlib import Path

import torch
import yaml

DATA = Path(__file__).parent / "data"
OLMO1_TOKENIZER = DATA / "tokenizers" / "gpt-neox-olmo-dolma-v1_5"
OLMO1_TOKENIZER_ID = "allenai/gpt-neox-olmo-dolma-v1_5"

# Small defaults: 2 layers, d_model 16, 4 heads, a 64-token vocabulary.
_OLMO1 = dict(
    d_model=16,
    n_heads=4,
    n_kv_heads=None,
    n_layers=2,
    mlp_ratio=8,
    mlp_hidden_size=None,
    max_sequence_length=64,
    vocab_size=60,
    embedding_size=64,
    weight_tying=True,
    include_bias=False,
    bias_for_layer_norm=False,
    layer_norm_type="default",
    layer_norm_with_affine=False,
    attention_layer_norm=False,
    attention_layer_norm_with_affine=False,
    layer_norm_eps=1e-5,
    norm_after=False,
    rope=True,
    rope_theta=10000,
    clip_qkv=None,
    activation_type="swiglu",
    block_type="sequential",
    block_group_size=1,
    alibi=False,
    multi_query_attention=None,
    eos_token_id=50,
    pad_token_id=1,
)
_OLMO2 = dict(
    _OLMO1,
    layer_norm_type="rms",
    layer_norm_with_affine=True,
    attention_layer_norm=True,
    attention_layer_norm_with_affine=True,
    norm_after=True,
    rope_theta=500000,
    layer_norm_eps=1e-6,
    weight_tying=False,
)
ARCHS = {"olmo1": _OLMO1, "olmo2": _OLMO2}


def native_config(arch: str = "olmo1", **overrides) -> dict:
    """The `model:` section of a native config.yaml."""
    config = dict(ARCHS[arch])
    unknown = set(overrides) - set(config) - {"seed", "tokenizer"}
    if unknown:
        raise TypeError(f"unknown native config fields: {sorted(unknown)}")
    config.update({k: v for k, v in overrides.items() if k not in ("seed", "tokenizer")})
    return config


def native_state_dict(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with the native OLMo key names and shapes (docs/REFERENCE.md 3.1)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    def norm_weight(n):
        return 1.0 + rand(n, scale=0.3)

    d = config["d_model"]
    n_heads = config["n_heads"]
    n_kv = config.get("n_kv_heads") or (1 if config.get("multi_query_attention") else n_heads)
    head_dim = d // n_heads
    hidden = config.get("mlp_hidden_size") or d * config["mlp_ratio"]
    affine = config["layer_norm_with_affine"]
    sd = {"transformer.wte.weight": rand(config["embedding_size"], d, scale=1.0)}
    for i in range(config["n_layers"]):
        p = f"transformer.blocks.{i}."
        sd[p + "att_proj.weight"] = rand(d + 2 * n_kv * head_dim, d)
        sd[p + "attn_out.weight"] = rand(d, d)
        sd[p + "ff_proj.weight"] = rand(hidden, d)
        sd[p + "ff_out.weight"] = rand(d, hidden // 2)
        if affine:
            sd[p + "attn_norm.weight"] = norm_weight(d)
            sd[p + "ff_norm.weight"] = norm_weight(d)
        if config["attention_layer_norm"]:
            sd[p + "q_norm.weight"] = norm_weight(d)
            sd[p + "k_norm.weight"] = norm_weight(n_kv * head_dim)
    if affine:
        sd["transformer.ln_f.weight"] = norm_weight(d)
    if not config["weight_tying"]:
        sd["transformer.ff_out.weight"] = rand(config["embedding_size"], d)
    return sd


def olmo_safetensors_key(key: str) -> str:
    """OLMo's own safetensors key encoding (olmo/safetensors_util.py): urlsafe base64 of a pickled
    (key tuple, is_pickled); a flat state dict's key tuple is the one dotted name, `(key,)`."""
    return base64.urlsafe_b64encode(pickle.dumps(((key,), False))).decode("ascii")


def make_native(
    directory,
    arch: str = "olmo1",
    safetensors=False,
    seed: int = 0,
    tokenizer: str | None = OLMO1_TOKENIZER_ID,
    **overrides,
) -> Path:
    """A native unsharded checkpoint: config.yaml (+ train.pt) and model.pt or model.safetensors."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = native_config(arch, **overrides)
    sd = native_state_dict(config, seed)
    full = {
        "model": config,
        "seed": 6198,
        "precision": "amp_bf16",
        "tokenizer": {"identifier": tokenizer, "truncate_direction": "right"},
    }
    (directory / "config.yaml").write_text(yaml.safe_dump(full, sort_keys=False))
    if safetensors == "plain":
        save_file(sd, directory / "model.safetensors", metadata={"format": "pt"})
    elif safetensors == "olmo":
        save_file({olmo_safetensors_key(k): v for k, v in sd.items()}, directory / "model.safetensors")
    elif safetensors is False:
        torch.save(sd, directory / "model.pt")
    else:
        raise ValueError(f"safetensors must be False, 'plain' or 'olmo', not {safetensors!r}")
    torch.save({"global_step": 1000, "global_train_tokens_seen": 4_000_000}, directory / "train.pt")
    return directory


def make_hf_olmo(
    directory, arch: str = "olmo1", weights: str = "bin", seed: int = 0, tokenizer: bool = True, **overrides
) -> Path:
    """The legacy hf_olmo format: native field names in config.json, keys `model.transformer.*`."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if tokenizer:
        # The real tokenizer's ids need the real embedding size (docs/REFERENCE.md 3.3).
        overrides = {
            "vocab_size": 50280,
            "embedding_size": 50304,
            "eos_token_id": 50279,
            "pad_token_id": 1,
            **overrides,
        }
        for f in OLMO1_TOKENIZER.iterdir():
            shutil.copy(f, directory / f.name)
    config = native_config(arch, **overrides)
    sd = {"model." + k: v for k, v in native_state_dict(config, seed).items()}
    hf_config = dict(
        config,
        model_type="olmo",
        architectures=["OLMoForCausalLM"],
        init_device="meta",
        precision="amp_bf16",
        transformers_version="4.37.1",
        auto_map={
            "AutoConfig": "configuration_olmo.OLMoConfig",
            "AutoModelForCausalLM": "modeling_olmo.OLMoForCausalLM",
            "AutoTokenizer": ["tokenization_olmo_fast.OLMoTokenizerFast"] * 2,
        },
    )
    (directory / "config.json").write_text(json.dumps(hf_config, indent=2))
    for shim in ("configuration_olmo.py", "modeling_olmo.py", "tokenization_olmo_fast.py"):
        (directory / shim).write_text("from hf_olmo import *  # noqa\n")
    if weights in ("bin", "both"):
        torch.save(sd, directory / "pytorch_model.bin")
    if weights in ("safetensors", "both"):
        save_file(sd, directory / "model.safetensors", metadata={"format": "pt"})
    if weights not in ("bin", "safetensors", "both"):
        raise ValueError(f"weights must be bin, safetensors or both, not {weights!r}")
    return directory


def hf_config(arch: str = "olmo", **overrides):
    """A tiny transformers OlmoConfig / Olmo2Config."""
    from transformers import Olmo2Config, OlmoConfig

    base = dict(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        eos_token_id=50,
        pad_token_id=1,
        tie_word_embeddings=arch == "olmo",
    )
    theta = overrides.pop("rope_theta", 10000.0 if arch == "olmo" else 500000.0)
    base["rope_parameters"] = {"rope_type": "default", "rope_theta": float(theta)}
    if arch == "olmo2":
        base["rms_norm_eps"] = 1e-6
    base.update(overrides)
    cls = {"olmo": OlmoConfig, "olmo2": Olmo2Config}[arch]
    return cls(**base)


def make_hf(directory, arch: str = "olmo", sharded: bool = False, seed: int = 0, **overrides) -> Path:
    """A transformers-native checkpoint saved by transformers, with random (non-unit) norm weights."""
    from transformers import AutoModelForCausalLM

    directory = Path(directory)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(hf_config(arch, **overrides), dtype=torch.float32)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 0.3 if "norm" in name else (1.0 if "embed" in name else 0.2)
            noise = torch.randn(param.shape, generator=g) * scale
            param.copy_(1.0 + noise if "norm" in name else noise)
    model.save_pretrained(directory, max_shard_size="20KB" if sharded else "50GB")
    return directory


def make_hf_with_tokenizer(directory, arch: str = "olmo", seed: int = 0, **overrides) -> Path:
    """make_hf sized for the real OLMo-1 tokenizer (padded vocabulary, eos 50279, pad 1), with its files."""
    shape = dict(vocab_size=50304, eos_token_id=50279, pad_token_id=1)
    directory = make_hf(directory, arch=arch, seed=seed, **{**shape, **overrides})
    for file in OLMO1_TOKENIZER.iterdir():
        shutil.copy(file, directory / file.name)
    return directory
