"""transformers-native OLMo checkpoints: model_type olmo, olmo2 or olmo3 (olmo3 shares olmo2's tensors).

Writing produces a config that transformers 5.x and 4.57 both read: `rope_parameters` (5.x) and a
top-level `rope_theta` (4.57), `dtype` and `torch_dtype`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from olmo_cli.checkpoints.spec import FULL_ATTENTION, SLIDING_ATTENTION, ModelSpec, finite, whole
from olmo_cli.checkpoints.tokenizers import known_by_eos
from olmo_cli.errors import BadInputError, UnsupportedError
from olmo_cli.jsonfiles import read_json_object

MODEL_TYPES = ("olmo", "olmo2", "olmo3")
ARCHITECTURES = {"olmo": "OlmoForCausalLM", "olmo2": "Olmo2ForCausalLM", "olmo3": "Olmo3ForCausalLM"}
OLMO3_SLIDING_WINDOW = 4096  # transformers' Olmo3Config default, for configs that leave it out


def read_config(directory: Path) -> dict[str, Any]:
    return read_json_object(directory / "config.json")


def _rope_params(config: dict[str, Any], where: str) -> tuple[float, dict[str, Any] | None]:
    """(theta, scaling of the full-attention layers in rope_parameters terms, or None)."""
    params = config.get("rope_parameters") or config.get("rope_scaling")
    if params is not None and not isinstance(params, dict):
        raise BadInputError(f"{where}: rope_parameters is not an object")
    sliding = None
    if isinstance(params, dict) and params and all(isinstance(v, dict) for v in params.values()):
        # olmo3: per layer type; sliding layers must use plain RoPE of the same theta.
        sliding = params.get("sliding_attention")
        params = params.get("full_attention") or sliding
        if sliding and sliding.get("rope_type", "default") != "default":
            raise UnsupportedError(f"{where}: RoPE scaling on sliding-window layers is not supported")
    theta = float(config.get("rope_theta", 10000.0))
    scaling = None
    if isinstance(params, dict):
        kind = params.get("rope_type", params.get("type", "default"))
        theta = float(params.get("rope_theta", theta))
        if kind not in (None, "default"):
            if kind not in SCALINGS:
                raise UnsupportedError(f"{where}: RoPE scaling '{kind}' is not supported")
            scaling = {"rope_type": kind, **{k: params[k] for k in SCALINGS[kind] if k in params}}
    if sliding and float(sliding.get("rope_theta", theta)) != theta:
        if scaling is not None:
            raise UnsupportedError(f"{where}: RoPE scaling with a theta of its own on the full-attention layers")
        # plain RoPE of another theta on the full-attention layers (what OLMo-core's ABF is)
        scaling, theta = {"rope_type": "default", "rope_theta": theta}, float(sliding["rope_theta"])
    return theta, scaling


def rope_theta(config: dict[str, Any], where: str) -> float:
    return _rope_params(config, where)[0]


# transformers rope types OLMo-core can also express, with the fields that define them.
SCALINGS = {
    "yarn": ("factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "attention_factor"),
    "linear": ("factor",),
    "llama3": ("factor", "original_max_position_embeddings", "low_freq_factor", "high_freq_factor"),
}


def spec_from_config(config: dict[str, Any], where: str) -> ModelSpec:
    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise UnsupportedError(
            f"{where}: model_type '{model_type}' is not supported",
            hint=f"supported transformers model types: {', '.join(MODEL_TYPES)}",
        )
    if config.get("attention_bias"):
        raise UnsupportedError(f"{where}: biases (attention_bias: true) are not supported")
    if config.get("hidden_act", "silu") != "silu":
        raise UnsupportedError(f"{where}: activation '{config['hidden_act']}' is not supported")
    try:
        n_layers = whole(config["num_hidden_layers"])
        layer_types = config.get("layer_types") if model_type == "olmo3" else None
        if layer_types is None and model_type == "olmo3":  # transformers' default: every 4th layer full
            layer_types = ["sliding_attention" if (i + 1) % 4 else "full_attention" for i in range(n_layers)]
        if layer_types is not None and set(layer_types) - {FULL_ATTENTION, SLIDING_ATTENTION}:
            raise UnsupportedError(f"{where}: layer types {sorted(set(layer_types))} are not supported")
        slides = layer_types is not None and SLIDING_ATTENTION in layer_types
        theta, scaling = _rope_params(config, where)
        d = whole(config["hidden_size"])
        heads = whole(config["num_attention_heads"])
        olmo2 = model_type != "olmo"
        embedding = whole(config["vocab_size"])
        eos = config.get("eos_token_id")
        if isinstance(eos, list):
            eos = eos[0] if eos else None
        eos, pad, bos = (
            None if v is None else whole(v) for v in (eos, config.get("pad_token_id"), config.get("bos_token_id"))
        )
        return ModelSpec(
            d_model=d,
            n_layers=n_layers,
            n_heads=heads,
            n_kv_heads=whole(config.get("num_key_value_heads") or heads),
            mlp_hidden=whole(config["intermediate_size"]),
            embedding_size=embedding,
            vocab_size=_tokenizer_vocab(eos, embedding),
            max_sequence_length=whole(config.get("max_position_embeddings", 2048)),
            rope_theta=finite(theta),
            rope_scaling=scaling,
            layer_types=tuple(layer_types or ()) if slides else None,
            sliding_window=whole(config.get("sliding_window") or OLMO3_SLIDING_WINDOW) if slides else None,
            clip_qkv=None if config.get("clip_qkv") is None else finite(config["clip_qkv"]),
            weight_tying=bool(config.get("tie_word_embeddings", False)),
            norm_type="rms" if olmo2 else "layernorm",
            norm_affine=olmo2,
            norm_eps=finite(config.get("rms_norm_eps", 1e-5)) if olmo2 else 1e-5,  # transformers' defaults
            qk_norm=olmo2,
            norm_after=olmo2,
            eos_token_id=eos,
            pad_token_id=pad,
            bos_token_id=bos,
            dtype=config.get("dtype") or config.get("torch_dtype"),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise BadInputError(f"{where}: missing or bad field: {error}") from None


def _tokenizer_vocab(eos: int | None, embedding_size: int) -> int:
    """The tokenizer's vocabulary for the OLMo tokenizers (docs/REFERENCE.md 3.3), else the embedding rows."""
    known = known_by_eos(eos)
    return known.vocab_size if known is not None and known.vocab_size <= embedding_size else embedding_size


# Written when transformers is not installed: a 5.x config (rope_parameters), outside the 4.57.3-4.99
# range for which transformers 4.57 warns about the tokenizer regex (docs/REFERENCE.md 8).
FALLBACK_TRANSFORMERS_VERSION = "5.0.0"


def transformers_version() -> str:
    """The installed transformers' version (read from its metadata, not by importing it): the
    version an output is made for. Without one, transformers 4.57 misjudges OLMo-2 tokenizers."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformers")
    except PackageNotFoundError:
        return FALLBACK_TRANSFORMERS_VERSION


def config_for(spec: ModelSpec, dtype: str) -> dict[str, Any]:
    """config.json for `spec` as transformers' olmo, olmo2 or olmo3 (when a layer slides or RoPE is scaled)."""
    family = spec.family
    if spec.qk_norm_per_head:
        raise UnsupportedError(
            "QK-norm per head (use_head_qk_norm) has no transformers architecture",
            hint="transformers' olmo2/olmo3 normalise q and k over the whole projection",
        )
    if family == "olmo" and spec.norm_affine:
        raise UnsupportedError(
            "LayerNorm with weights before each sublayer (OLMo-1 with layer_norm_with_affine) "
            "has no transformers architecture",
            hint="transformers' olmo has parameter-free LayerNorm; olmo2 has weighted RMSNorm after each sublayer",
        )
    if family == "olmo" and spec.norm_eps != 1e-5:
        raise UnsupportedError(f"layer_norm_eps {spec.norm_eps} is not supported by transformers' olmo (fixed 1e-5)")
    if family in ("olmo2", "olmo3") and not (
        spec.norm_after and spec.qk_norm and spec.norm_type == "rms" and spec.norm_affine
    ):
        missing = [
            name
            for name, ok in (
                ("norm_after", spec.norm_after),
                ("QK-norm", spec.qk_norm),
                ("RMSNorm", spec.norm_type == "rms"),
                ("norm weights", spec.norm_affine),
            )
            if not ok
        ]
        raise UnsupportedError(
            f"this mix of norms has no transformers architecture (OLMo-2 style without {', '.join(missing)})"
        )
    config: dict[str, Any] = {
        "architectures": [ARCHITECTURES[family]],
        "model_type": family,
        "hidden_size": spec.d_model,
        "intermediate_size": spec.mlp_hidden,
        "num_hidden_layers": spec.n_layers,
        "num_attention_heads": spec.n_heads,
        "num_key_value_heads": spec.n_kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": spec.max_sequence_length,
        "initializer_range": 0.02,
        "vocab_size": spec.embedding_size,
        "tie_word_embeddings": spec.weight_tying,
        "attention_bias": False,
        "attention_dropout": 0.0,
        # Both spellings: 5.x reads rope_parameters, 4.57 reads the top-level rope_theta.
        "rope_theta": float(spec.rope_theta),
        "rope_parameters": {"rope_type": "default", "rope_theta": float(spec.rope_theta)},
        "rope_scaling": None,
        "bos_token_id": spec.bos_token_id,
        "eos_token_id": spec.eos_token_id,
        "pad_token_id": spec.pad_token_id,
        "use_cache": True,
        "dtype": dtype,
        "torch_dtype": dtype,
        "transformers_version": transformers_version(),
    }
    if family == "olmo":
        config["clip_qkv"] = spec.clip_qkv
    elif family == "olmo3":
        if spec.clip_qkv is not None:
            raise UnsupportedError("clip_qkv with OLMo-3 style norms is not supported by transformers' olmo3")
        config["rms_norm_eps"] = spec.norm_eps
        plain = {"rope_type": "default", "rope_theta": float(spec.rope_theta)}
        # rope_scaling may carry its own rope_theta (OLMo-core's ABF on the full-attention layers)
        full = {"rope_type": "default", "rope_theta": float(spec.rope_theta), **(spec.rope_scaling or {})}
        config["rope_parameters"] = {"full_attention": full, "sliding_attention": plain}
        config["layer_types"] = [spec.layer_type(i) for i in range(spec.n_layers)]
        # transformers counts the current token in the window, as OLMo-core's pattern does (REFERENCE 3.4).
        config["sliding_window"] = spec.sliding_window or spec.max_sequence_length
    else:
        if spec.clip_qkv is not None:
            raise UnsupportedError("clip_qkv with OLMo-2 style norms is not supported by transformers' olmo2")
        config["rms_norm_eps"] = spec.norm_eps
    return config


def weights_reader(directory: Path):
    from olmo_cli.checkpoints import tensors

    index, single, bin_ = (
        directory / "model.safetensors.index.json",
        directory / "model.safetensors",
        directory / "pytorch_model.bin",
    )
    if index.is_file():
        return tensors.ShardedSafetensorsReader(index)
    if single.is_file():
        return tensors.SafetensorsReader(single)
    if bin_.is_file():
        return tensors.PickleReader(bin_)
    raise BadInputError(f"{directory}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin")


def open_checkpoint(directory: Path):
    from olmo_cli.checkpoints.formats import Checkpoint
    from olmo_cli.checkpoints.formats.native import _first_float_dtype

    config = read_config(directory)
    spec = spec_from_config(config, str(directory / "config.json"))
    reader = weights_reader(directory)
    spec = spec.with_(dtype=_first_float_dtype(reader) or spec.dtype)
    return Checkpoint(directory, "hf", spec, reader, "hf", config["model_type"])


def read_spec(directory: Path) -> ModelSpec:
    return spec_from_config(read_config(directory), str(directory / "config.json"))


def _register() -> None:
    from olmo_cli.checkpoints.detect import hf_claims
    from olmo_cli.checkpoints.formats import FormatEntry, register
    from olmo_cli.checkpoints.formats.hf_write import HFWriter
    from olmo_cli.checkpoints.kinds import Format

    register(
        FormatEntry(
            Format.hf,
            hf_claims,
            read_spec,
            open_checkpoint,
            "transformers olmo, olmo2, olmo3 (config.json + safetensors or pytorch_model.bin)",
            writer=HFWriter(),
        )
    )


_register()
