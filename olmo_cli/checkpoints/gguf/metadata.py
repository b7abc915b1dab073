"""The spec and where the checkpoint came from, as GGUF key/values (gguf-py's `Keys`, via its writer)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import gguf

from olmo_cli.checkpoints.spec import SLIDING_ATTENTION, ModelSpec
from olmo_cli.reporting import NULL_REPORTER, Reporter

# Our own keys (not llama.cpp's): which revision of which checkpoint a file holds.
KEY_REVISION = "olmo_cli.source.revision"
KEY_COMMIT = "olmo_cli.source.commit"
KEY_REPO = "olmo_cli.source.repo"
KEY_FORMAT = "olmo_cli.source.format"
# llama.cpp's YaRN for olmo2 always uses these (it reads no beta keys for this architecture).
LLAMA_CPP_YARN_BETAS = (32.0, 1.0)
# The model card's sampling defaults, as `olmo convert --to hf` writes them in generation_config.json.
TOP_K, TOP_P = 50, 0.95


@dataclass(frozen=True)
class Provenance:
    name: str
    source_format: str
    repo: str | None = None
    revision: str | None = None
    commit: str | None = None


def add_model(writer: gguf.GGUFWriter, spec: ModelSpec, arch: gguf.MODEL_ARCH, reporter: Reporter = NULL_REPORTER):
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_size_label(gguf.size_label(spec.n_parameters(), 0, 0, 0))
    writer.add_vocab_size(spec.embedding_size)
    writer.add_context_length(spec.max_sequence_length)
    writer.add_embedding_length(spec.d_model)
    writer.add_block_count(spec.n_layers)
    writer.add_feed_forward_length(spec.mlp_hidden)
    writer.add_head_count(spec.n_heads)
    writer.add_head_count_kv(spec.n_kv_heads)
    writer.add_rope_freq_base(float(spec.rope_theta))
    if arch == gguf.MODEL_ARCH.OLMO:
        writer.add_layer_norm_eps(spec.norm_eps)
        if spec.clip_qkv is not None:
            writer.add_clamp_kqv(float(spec.clip_qkv))
        return
    writer.add_layer_norm_rms_eps(spec.norm_eps)
    if spec.layer_types and SLIDING_ATTENTION in spec.layer_types:
        assert spec.sliding_window is not None
        writer.add_sliding_window(spec.sliding_window)
        writer.add_sliding_window_pattern([t == SLIDING_ATTENTION for t in spec.layer_types])
    scaling = spec.rope_scaling  # transformers' rope_parameters form; architecture() admits YaRN only
    if scaling is not None:
        factor = float(scaling["factor"])
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(factor)
        writer.add_rope_scaling_orig_ctx_len(int(scaling["original_max_position_embeddings"]))
        writer.add_rope_scaling_attn_factors(yarn_attn_factor(factor, scaling.get("attention_factor")))
        betas = (scaling.get("beta_fast"), scaling.get("beta_slow"))
        if betas[0] is not None:
            writer.add_rope_scaling_yarn_beta_fast(float(betas[0]))
        if betas[1] is not None:
            writer.add_rope_scaling_yarn_beta_slow(float(betas[1]))
        if any(b is not None and b != d for b, d in zip(betas, LLAMA_CPP_YARN_BETAS, strict=True)):
            reporter.warn(
                f"YaRN beta_fast/beta_slow {betas} differ from the {LLAMA_CPP_YARN_BETAS} llama.cpp uses for olmo2"
            )


def yarn_attn_factor(factor: float, attention_factor: float | None) -> float:
    """`rope.scaling.attn_factor` such that llama.cpp scales attention like transformers.

    transformers multiplies cos/sin by `attention_factor` (default 0.1 * ln(factor) + 1); llama.cpp
    already applies exactly that default inside its YaRN kernel and multiplies by this key on top.
    """
    default = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
    return 1.0 if attention_factor is None else attention_factor / default


def add_provenance(writer: gguf.GGUFWriter, source: Provenance) -> None:
    writer.add_name(source.name)
    writer.add_string(KEY_FORMAT, source.source_format)
    if source.repo:
        writer.add_string(KEY_REPO, source.repo)
        writer.add_source_url(f"https://huggingface.co/{source.repo}")
    if source.revision:
        writer.add_string(KEY_REVISION, source.revision)
    if source.commit:
        writer.add_string(KEY_COMMIT, source.commit)
    writer.add_sampling_top_k(TOP_K)
    writer.add_sampling_top_p(TOP_P)
