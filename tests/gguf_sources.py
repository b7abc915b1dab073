"""Tiny checkpoints with the real OLMo tokenizers, in every source format, for the GGUF tests.

Shapes are llama.cpp-friendly: d_model 64 and MLP widths that are whole q8_0/q4_0 blocks (32),
embedding rows padded past the tokenizer (50304 for dolma-v1_5, 100352 for dolma2), so that the
tokenizer's ids all exist and the padding path is exercised.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from tiny_models import DATA, make_hf, make_hf_olmo, make_hf_with_tokenizer, make_native

DOLMA2 = DATA / "tokenizers" / "dolma2"
OLMO1_TOKENS = dict(vocab_size=50280, embedding_size=50304, eos_token_id=50279, pad_token_id=1)
OLMO2_TOKENS = dict(vocab_size=100278, embedding_size=100352, eos_token_id=100257, pad_token_id=100277)
NATIVE_SHAPE = dict(d_model=64, n_heads=4, n_layers=2, mlp_ratio=4, max_sequence_length=256)
HF_SHAPE = dict(
    hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=256
)


def olmo1_native(directory: Path, **overrides) -> Path:
    """Untied, GQA (4 heads, 2 kv), clip_qkv 1.0 (it bites: q/k/v values here are ~N(0, 1.6))."""
    fields = {**NATIVE_SHAPE, **OLMO1_TOKENS, "weight_tying": False, "n_kv_heads": 2, "clip_qkv": 1.0, **overrides}
    return make_native(directory, arch="olmo1", **fields)


def olmo1_hf_olmo(directory: Path, **overrides) -> Path:
    """The legacy remote-code layout of allenai/OLMo-1B: tied, full multi-head attention."""
    return make_hf_olmo(directory, arch="olmo1", weights="safetensors", **{**NATIVE_SHAPE, **overrides})


def olmo1_hf(directory: Path, **overrides) -> Path:
    """transformers olmo, tied, GQA."""
    fields = {**HF_SHAPE, "num_key_value_heads": 2, "tie_word_embeddings": True, **overrides}
    return make_hf_with_tokenizer(directory, arch="olmo", **fields)


def olmo2_native(directory: Path, **overrides) -> Path:
    return make_native(
        directory, arch="olmo2", tokenizer="allenai/dolma2-tokenizer", **{**NATIVE_SHAPE, **OLMO2_TOKENS, **overrides}
    )


def olmo2_hf(directory: Path, *, tokenizer: str = "dolma2", **overrides) -> Path:
    """transformers olmo2, GQA; `tokenizer="tiny"`: a 300-id byte-level BPE (fast to write and read back)."""
    if tokenizer == "tiny":
        tokens = {"vocab_size": 320, "eos_token_id": 0, "pad_token_id": 1}
    else:
        tokens = {"vocab_size": 100352, "eos_token_id": 100257, "pad_token_id": 100277}
    directory = make_hf(directory, arch="olmo2", **{**HF_SHAPE, **tokens, "num_key_value_heads": 2, **overrides})
    if tokenizer == "tiny":
        tiny_bpe(directory)
    else:
        shutil.copy(DOLMA2 / "tokenizer.json", directory / "tokenizer.json")
    return directory


def tiny_bpe(directory: Path, size: int = 300) -> Path:
    """A byte-level BPE like dolma-v1_5 (GPT-2 regex) with `size` ids: 0 `<|endoftext|>`, 1 `<|padding|>`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=size,
        special_tokens=["<|endoftext|>", "<|padding|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    text = "the quick brown fox jumps over the lazy dog; 1234567890 language models read text. " * 20
    tokenizer.train_from_iterator([text], trainer)
    tokenizer.save(str(Path(directory) / "tokenizer.json"))
    return Path(directory)


def olmo3_hf(directory: Path, *, window: int = 8, attention_factor: float | None = 1.2, seed: int = 0) -> Path:
    """transformers olmo3: 4 layers, three sliding (window `window`) then one full, YaRN (x4 over 64
    positions) on the full layer; random norm weights, dolma2 tokenizer."""
    from transformers import AutoModelForCausalLM, Olmo3Config

    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "rope_theta": 500000.0}
    if attention_factor is not None:
        yarn["attention_factor"] = attention_factor
    config = Olmo3Config(
        vocab_size=100352,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        sliding_window=window,
        layer_types=["sliding_attention"] * 3 + ["full_attention"],
        rope_parameters={"full_attention": yarn, "sliding_attention": {"rope_type": "default", "rope_theta": 500000.0}},
        eos_token_id=100257,
        pad_token_id=100277,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=g) * (0.3 if "norm" in name else 0.2)
            param.copy_(1.0 + noise if "norm" in name else noise)
    directory = Path(directory)
    model.save_pretrained(directory)
    shutil.copy(DOLMA2 / "tokenizer.json", directory / "tokenizer.json")
    return directory


SOURCES = {
    "olmo1-native-untied-gqa-clip": olmo1_native,
    "olmo1-hf_olmo-tied": olmo1_hf_olmo,
    "olmo1-hf-tied-gqa": olmo1_hf,
    "olmo2-native": olmo2_native,
    "olmo2-hf-gqa": olmo2_hf,
    "olmo3-hf-sliding-yarn": olmo3_hf,
}


def olmo2_olmo_core(directory: Path) -> Path:
    """An OLMo-core step directory saved by OLMo-core itself: OLMo 2, GQA, untied."""
    import olmo_core_models

    return olmo_core_models.save(directory / "step10", "olmo2")


def olmo3_olmo_core(directory: Path) -> Path:
    """An OLMo-core step directory saved by OLMo-core itself: OLMo 3's window pattern, YaRN on the full layer."""
    import olmo_core_models

    return olmo_core_models.save(directory / "step10", "olmo3-yarn")


SOURCES["olmo2-olmo_core-gqa"] = olmo2_olmo_core
SOURCES["olmo3-olmo_core-sliding-yarn"] = olmo3_olmo_core
