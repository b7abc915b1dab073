"""OLMo-core checkpoints (allenai/OLMo-core, the trainer of OLMo 2 32B and OLMo 3).

A step directory holds `config.json` (the experiment config: a TransformerConfig dict under
`model`, the tokenizer under `dataset.tokenizer`) and `model_and_optim/`, a torch.distributed
checkpoint read by `dcp.DCPReader` (only `model.*` entries; optimizer state is never read).
OLMo-core's unshard writes `model.pt` or `model.safetensors` beside the same `config.json`.

Nothing from olmo_core is imported: the config is read as JSON, and the model keys are renamed
to transformers' through the `layout.OLMO_CORE_NAMES` table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olmo_cli.checkpoints.kinds import Format, Target
from olmo_cli.checkpoints.spec import FULL_ATTENTION, SLIDING_ATTENTION, ModelSpec, check_size, finite, whole
from olmo_cli.errors import BadInputError, UnsupportedError
from olmo_cli.jsonfiles import read_json_object

if TYPE_CHECKING:
    from olmo_cli.checkpoints.formats import Checkpoint, PreparedWrite, WriteOptions

DCP_DIR = "model_and_optim"
UNSHARDED = ("model.safetensors", "model.pt")
_SUPPORTED_BLOCKS = ("reordered_norm",)
# Block names OLMo-core has that this tool cannot express, and why (REFERENCE 3.4).
_KNOWN_BLOCKS = {
    "default": "pre-norm blocks (block name 'default', Llama-style, not an OLMo 2/3 block)",
    "default_scaled": "pre-norm scaled blocks (block name 'default_scaled')",
    "peri_norm": "peri-norm blocks (block name 'peri_norm')",
    "normalized": "nGPT normalized blocks (block name 'normalized')",
    "moe": "MoE (mixture-of-experts) blocks (block name 'moe', OLMoE)",
    "moe_reordered_norm": "MoE (mixture-of-experts) blocks (block name 'moe_reordered_norm', OLMoE / olmo3moe)",
    "moe_hybrid": "MoE hybrid blocks (block name 'moe_hybrid')",
}
_NORMS = ("rms", "fused_rms")
_ROPES = ("default", "fused")  # the same rotate-half RoPE; "complex" pairs adjacent dims
_HINT = "supported: dense OLMo 2 / OLMo 3 TransformerConfigs (reordered_norm blocks, RMSNorm, SwiGLU, no biases)"


def claims(path: Path) -> bool:
    """A step directory (model_and_optim/) or an unsharded one whose config.json has a TransformerConfig."""
    config_path = path / "config.json"
    if (path / DCP_DIR).is_dir():
        if not config_path.is_file():
            raise BadInputError(
                f"{path} has {DCP_DIR}/ but no config.json",
                hint="an OLMo-core step directory has the experiment's config.json beside model_and_optim/",
            )
        read_config(path)  # a broken config.json is this format's error, not "not a checkpoint"
        return True
    if not config_path.is_file():
        return False
    config = read_json_object(config_path)
    model = config.get("model")
    return isinstance(model, dict) and "TransformerConfig" in str(model.get("_CLASS_", ""))


def read_config(path: Path) -> dict[str, Any]:
    config_path = path / "config.json"
    config = read_json_object(config_path)
    if not isinstance(config.get("model"), dict):
        raise BadInputError(f"{config_path}: no `model` section (an OLMo-core config has a TransformerConfig there)")
    return config


def tokenizer_config(config: dict[str, Any]) -> dict[str, Any]:
    """The TokenizerConfig dict: under dataset (most versions), data_loader, or at the top."""
    for section in (config.get("dataset"), config.get("data_loader"), config):
        if isinstance(section, dict) and isinstance(section.get("tokenizer"), dict):
            return section["tokenizer"]
    return {}


def _refuse(where: str, feature: str):
    raise UnsupportedError(f"{where}: {feature} is not supported", hint=_HINT)


def _layer_blocks(model: dict[str, Any], n_layers: int, where: str) -> list[dict[str, Any]]:
    base = model.get("block")
    if not isinstance(base, dict):
        raise BadInputError(f"{where}: model.block is missing")
    overrides = model.get("block_overrides") or {}
    if not isinstance(overrides, dict):
        raise BadInputError(f"{where}: model.block_overrides is not an object")
    blocks = [base] * n_layers
    for key, block in overrides.items():
        try:
            index = int(key)
        except ValueError:
            raise BadInputError(f"{where}: block_overrides key {key!r} is not a layer index") from None
        if not (0 <= index < n_layers) or not isinstance(block, dict):
            raise BadInputError(f"{where}: block_overrides[{key}] is not a block of one of the {n_layers} layers")
        blocks[index] = block
    return blocks


def _mixer(block: dict[str, Any], where: str) -> dict[str, Any]:
    mixer = block.get("sequence_mixer", block.get("attention"))
    if not isinstance(mixer, dict):
        raise BadInputError(f"{where}: a block has no sequence_mixer/attention")
    cls = str(mixer.get("_CLASS_", ""))
    if "GatedDeltaNet" in cls or mixer.get("type") in ("gated_delta_net", "gdn"):
        _refuse(where, "hybrid GDN (gated DeltaNet) layers")
    if (cls and not cls.endswith(".AttentionConfig")) or mixer.get("type", "attention") != "attention":
        _refuse(where, f"sequence mixer {cls.rsplit('.', 1)[-1] or mixer.get('type')}")
    return mixer


def _check_block(block: dict[str, Any], where: str) -> None:
    name = block.get("name", "default")
    if name not in _SUPPORTED_BLOCKS:
        _refuse(where, _KNOWN_BLOCKS.get(name, f"block name '{name}' (unknown to this tool)"))
    if block.get("feed_forward_moe"):
        _refuse(where, "MoE (mixture-of-experts) feed-forward layers")
    mixer = _mixer(block, where)
    if mixer.get("name", "default") not in ("default", "fused"):
        _refuse(where, f"attention type '{mixer.get('name')}'")
    ff = block.get("feed_forward") or {}
    norm = block.get("layer_norm") or {}
    qk = mixer.get("qk_norm")
    if mixer.get("bias") or ff.get("bias") or norm.get("bias") or (isinstance(qk, dict) and qk.get("bias")):
        _refuse(where, "biases")
    for feature, present in (
        ("gated attention", mixer.get("gate")),
        ("scalable softmax", mixer.get("scalable_softmax")),
        ("attention sinks", mixer.get("attention_sinks")),
        ("clip_qkv", mixer.get("clip_qkv")),
    ):
        if present:
            _refuse(where, feature)
    if ff.get("name", "default") != "default" or ff.get("activation", "silu") != "silu":
        _refuse(where, f"feed-forward {ff.get('name', 'default')} with {ff.get('activation', 'silu')}")
    if norm.get("name", "rms") not in _NORMS or (isinstance(qk, dict) and qk.get("name", "rms") not in _NORMS):
        _refuse(where, f"layer norm '{norm.get('name')}'")
    rope = mixer.get("rope")
    if not isinstance(rope, dict):
        _refuse(where, "attention without RoPE")
    assert isinstance(rope, dict)
    if rope.get("name", "default") not in _ROPES:
        _refuse(where, f"RoPE type '{rope.get('name')}'")
    if float(rope.get("partial_rotary_factor") or 1.0) != 1.0 or rope.get("no_global_rope"):
        _refuse(where, "partial or per-layer-disabled RoPE")


def _window(sliding: dict[str, Any] | None, layer: int, n_layers: int) -> int:
    """OLMo-core's window for a layer (SlidingWindowAttentionConfig): -1 is full attention."""
    if not sliding:
        return -1
    pattern = sliding.get("pattern") or []
    if not pattern:
        return -1
    if sliding.get("force_full_attention_on_first_layer", True) and layer == 0:
        return -1
    if sliding.get("force_full_attention_on_last_layer", True) and layer == n_layers - 1:
        return -1
    index = layer - 1 if sliding.get("force_full_attention_on_first_layer", True) else layer
    return int(pattern[index % len(pattern)])


def _is_abf(scaling: dict[str, Any] | None) -> bool:
    return str((scaling or {}).get("_CLASS_", "")).rsplit(".", 1)[-1] == "ABFRoPEScalingConfig"


def _abf_as_theta(rope: dict[str, Any], where: str) -> dict[str, Any]:
    """ABF scaling only swaps the base frequency: on every layer, it is a rope config with
    `new_theta` as its theta and no scaling (transformers has no ABF type; rope_theta says it)."""
    return {**rope, "theta": rope_scaling_to_hf(rope["scaling"], where)["rope_theta"], "scaling": None}


def rope_scaling_to_hf(scaling: dict[str, Any], where: str) -> dict[str, Any]:
    """transformers' rope_parameters for an OLMo-core RoPEScalingConfig (the same math: YaRN,
    position interpolation, Llama-3.1 stepwise; ABF is plain RoPE of another theta)."""
    kind = str(scaling.get("_CLASS_", "")).rsplit(".", 1)[-1]
    rescale = float(scaling.get("attention_rescale_factor", 1.0))
    if kind == "YaRNRoPEScalingConfig":
        import math

        factor = float(scaling.get("factor", 8.0))
        return {
            "rope_type": "yarn",
            "factor": factor,
            "original_max_position_embeddings": int(scaling.get("old_context_len", 8192)),
            "beta_fast": float(scaling.get("beta_fast", 32)),
            "beta_slow": float(scaling.get("beta_slow", 1)),
            "attention_factor": 0.1 * math.log(factor) + 1.0,  # OLMo-core's fixed YaRN rescale
        }
    if rescale != 1.0:
        _refuse(where, f"RoPE scaling {kind} with attention_rescale_factor {rescale}")
    if kind == "ABFRoPEScalingConfig":  # on the full-attention layers only: their own rope_theta
        return {"rope_type": "default", "rope_theta": finite(scaling.get("new_theta", 8_000_000))}
    if kind == "PIRoPEScalingConfig":
        return {"rope_type": "linear", "factor": float(scaling.get("factor", 2.0))}
    if kind == "StepwiseRoPEScalingConfig":
        return {
            "rope_type": "llama3",
            "factor": float(scaling.get("factor", 32.0)),
            "original_max_position_embeddings": int(scaling.get("old_context_len", 8192)),
            "low_freq_factor": 1.0 / (1 - float(scaling.get("low_freq_proportion", 0.0))),
            "high_freq_factor": 1.0 / float(scaling.get("high_freq_proportion", 0.25)),
        }
    _refuse(where, f"RoPE scaling {kind or scaling}")
    raise AssertionError


def spec_from_config(config: dict[str, Any], where: str) -> ModelSpec:
    model = config["model"]
    if model.get("name", "default") != "default":
        name = model.get("name")
        _refuse(where, "MoE models" if "moe" in str(name) else f"transformer type '{name}'")
    try:
        d_model = check_size("d_model", whole(model["d_model"]))
        n_layers = check_size("n_layers", whole(model["n_layers"]))
        embedding = check_size("embedding_size", whole(model["vocab_size"]))
    except (KeyError, TypeError, ValueError) as error:
        raise BadInputError(f"{where}: model has no usable d_model/n_layers/vocab_size ({error})") from None
    if n_layers <= 0:
        raise BadInputError(f"{where}: n_layers must be positive")
    blocks = _layer_blocks(model, n_layers, where)
    for block in blocks:
        _check_block(block, where)
    mixers = [_mixer(block, where) for block in blocks]

    def same(values: list, feature: str):
        if any(json.dumps(v, sort_keys=True) != json.dumps(values[0], sort_keys=True) for v in values):
            _refuse(where, f"different {feature} per layer")
        return values[0]

    base, mixer = blocks[0], mixers[0]
    try:
        n_heads = whole(same([m.get("n_heads") for m in mixers], "head counts"))
        n_kv = whole(same([m.get("n_kv_heads") or m.get("n_heads") for m in mixers], "KV head counts"))
        hidden = whole(same([(b.get("feed_forward") or {}).get("hidden_size") for b in blocks], "feed-forward sizes"))
        head_dim = mixer.get("head_dim")
        if head_dim is not None and int(head_dim) * n_heads != d_model:
            _refuse(where, f"head_dim {head_dim} with {n_heads} heads and d_model {d_model}")
        eps = finite((base.get("layer_norm") or {}).get("eps", 1e-5))
        qk = same([m.get("qk_norm") for m in mixers], "QK-norms")
        per_head = bool(same([bool(m.get("use_head_qk_norm")) for m in mixers], "QK-norm kinds"))
        same([b.get("layer_norm") for b in blocks], "layer norms")
        head_norm = (model.get("lm_head") or {}).get("layer_norm")
        if (model.get("lm_head") or {}).get("bias"):
            _refuse(where, "biases")
        if not isinstance(head_norm, dict):
            _refuse(where, "an LM head without a final norm")
        assert isinstance(head_norm, dict)
        epsilons = {eps, float(head_norm.get("eps", 1e-5))} | ({float(qk.get("eps", 1e-5))} if qk else set())
        if len(epsilons) > 1:
            _refuse(where, f"different norm epsilons {sorted(epsilons)}")
        ropes = [m["rope"] for m in mixers]
        if _is_abf(ropes[0].get("scaling")) and len({json.dumps(r.get("scaling"), sort_keys=True) for r in ropes}) == 1:
            ropes = [_abf_as_theta(r, where) for r in ropes]  # ABF on every layer: a new theta
        theta = finite(same([r.get("theta", 500000) for r in ropes], "RoPE thetas"))
        windows = [_window(m.get("sliding_window"), i, n_layers) for i, m in enumerate(mixers)]
        sliding = sorted({w for w in windows if w != -1})
        if any(w <= 0 for w in sliding):
            raise BadInputError(f"{where}: sliding window sizes must be positive or -1, not {sliding}")
        if len(sliding) > 1:
            _refuse(where, f"different sliding window sizes {sliding}")
        scalings = [r.get("scaling") for r in ropes]
        if any(s and w != -1 for s, w in zip(scalings, windows, strict=True)):
            _refuse(where, "RoPE scaling on sliding-window layers")
        full_scalings = [
            None if not s else rope_scaling_to_hf(s, where) for s, w in zip(scalings, windows, strict=True) if w == -1
        ]
        rope_scaling = same(full_scalings, "RoPE scaling on the full-attention layers") if full_scalings else None
        tokenizer = tokenizer_config(config)
        sequence_length = (config.get("dataset") or {}).get("sequence_length") or (
            int(rope_scaling["original_max_position_embeddings"] * rope_scaling["factor"])
            if rope_scaling and "original_max_position_embeddings" in rope_scaling
            else 4096
        )
        identifier = tokenizer.get("identifier")
        return ModelSpec(
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            n_kv_heads=n_kv,
            mlp_hidden=hidden,
            embedding_size=embedding,
            vocab_size=whole(tokenizer.get("vocab_size") or embedding),
            max_sequence_length=whole(sequence_length),
            rope_theta=theta,
            weight_tying=bool(model.get("tie_word_embeddings", False)),
            norm_type="rms",
            norm_affine=True,
            norm_eps=eps,
            qk_norm=qk is not None,
            qk_norm_per_head=per_head and qk is not None,
            norm_after=True,
            eos_token_id=_int(tokenizer.get("eos_token_id")),
            pad_token_id=_int(tokenizer.get("pad_token_id")),
            bos_token_id=_int(tokenizer.get("bos_token_id")),
            tokenizer_identifier=None if identifier is None else str(identifier),
            layer_types=tuple(SLIDING_ATTENTION if w != -1 else FULL_ATTENTION for w in windows) if sliding else None,
            sliding_window=sliding[0] if sliding else None,
            rope_scaling=rope_scaling,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BadInputError(f"{where}: missing or bad model field: {error}") from None


def _int(value) -> int | None:
    return None if value is None else whole(value)


def read_spec(path: Path) -> ModelSpec:
    return spec_from_config(read_config(path), str(path / "config.json"))


def weights_reader(path: Path):
    from olmo_cli.checkpoints import layout, tensors

    if (path / DCP_DIR).is_dir():
        from olmo_cli.checkpoints.dcp import DCPReader

        inner: tensors.TensorReader = DCPReader(path / DCP_DIR, "model.")
    elif (path / "model.safetensors").is_file():
        inner = tensors.SafetensorsReader(path / "model.safetensors")
    elif (path / "model.pt").is_file():
        inner = tensors.PickleReader(path / "model.pt")
    else:
        raise BadInputError(f"{path}: no {DCP_DIR}/, model.safetensors or model.pt")

    def rename(key: str) -> str:
        name = layout.olmo_core_to_hf(key.removeprefix("model."))
        if name is None:
            raise BadInputError(
                f"{path.name}/{inner.description}: unexpected tensor {key!r}",
                hint="the weights do not match a dense OLMo-core transformer (biases, MoE, another model?)",
            )
        return name

    return tensors.RenamedReader(inner, rename)


def open_checkpoint(path: Path):
    from olmo_cli.checkpoints.formats import Checkpoint
    from olmo_cli.checkpoints.formats.native import _first_float_dtype

    spec = read_spec(path)
    reader = weights_reader(path)
    spec = spec.with_(dtype=_first_float_dtype(reader))
    return Checkpoint(path, "olmo-core", spec, reader, "hf", spec.family)


def check_yarn_translates(spec: ModelSpec) -> None:
    """OLMo-core caps YaRN's ramp at head_dim/2 - 1, transformers at head_dim - 1: where the
    uncapped end lies between the two, the two libraries compute different frequencies."""
    import math

    scaling = spec.rope_scaling or {}
    if scaling.get("rope_type") != "yarn":
        return
    old, hd = float(scaling["original_max_position_embeddings"]), spec.head_dim
    slow = float(scaling.get("beta_slow", 1))
    high = math.ceil(hd * math.log(old / (slow * 2 * math.pi)) / (2 * math.log(spec.rope_theta)))
    if high > hd // 2 - 1:
        raise UnsupportedError(
            f"YaRN with beta_slow {slow} and original context {int(old)} at head_dim {hd}: OLMo-core and "
            "transformers compute different frequencies for it"
        )


# --- writing ---------------------------------------------------------------------------------

_C = "olmo_core.nn."


def _norm_config(eps: float) -> dict[str, Any]:
    return {"_CLASS_": _C + "layer_norm.LayerNormConfig", "name": "rms", "eps": eps, "bias": False, "dtype": "float32"}


def rope_scaling_from_hf(scaling: dict[str, Any]) -> dict[str, Any]:
    """OLMo-core's RoPEScalingConfig dict for transformers' rope_parameters (the inverse of rope_scaling_to_hf)."""
    import math

    kind = scaling.get("rope_type")
    if kind == "yarn":
        factor = float(scaling["factor"])
        expected = 0.1 * math.log(factor) + 1.0
        if abs(float(scaling.get("attention_factor") or expected) - expected) > 1e-9:
            raise UnsupportedError(
                "YaRN with an attention_factor other than 0.1 ln(factor) + 1 has no OLMo-core config"
            )
        if any(
            float(scaling.get(k, d)) != int(float(scaling.get(k, d))) for k, d in (("beta_fast", 32), ("beta_slow", 1))
        ):
            raise UnsupportedError("YaRN with non-integer beta_fast/beta_slow has no OLMo-core config")
        return {
            "_CLASS_": _C + "rope.YaRNRoPEScalingConfig",
            "factor": factor,
            "beta_fast": int(float(scaling.get("beta_fast", 32))),
            "beta_slow": int(float(scaling.get("beta_slow", 1))),
            "old_context_len": int(scaling["original_max_position_embeddings"]),
        }
    if kind == "default":  # another theta on the full-attention layers: ABF, whose new_theta is an int
        theta = float(scaling["rope_theta"])
        if not theta.is_integer():
            raise UnsupportedError(
                f"a full-attention rope_theta of {theta} has no OLMo-core config (ABF takes integers)"
            )
        return {"_CLASS_": _C + "rope.ABFRoPEScalingConfig", "new_theta": int(theta)}
    if kind == "linear":
        return {"_CLASS_": _C + "rope.PIRoPEScalingConfig", "factor": float(scaling["factor"])}
    if kind == "llama3":
        return {
            "_CLASS_": _C + "rope.StepwiseRoPEScalingConfig",
            "factor": float(scaling["factor"]),
            "low_freq_proportion": 1.0 - 1.0 / float(scaling["low_freq_factor"]),
            "high_freq_proportion": 1.0 / float(scaling["high_freq_factor"]),
            "old_context_len": int(scaling["original_max_position_embeddings"]),
        }
    raise UnsupportedError(f"RoPE scaling '{kind}' has no OLMo-core config")


def _block_config(spec: ModelSpec, scaling: dict[str, Any] | None, sliding: dict[str, Any] | None) -> dict[str, Any]:
    theta = int(spec.rope_theta) if float(spec.rope_theta).is_integer() else spec.rope_theta
    rope: dict[str, Any] = {
        "_CLASS_": _C + "rope.RoPEConfig",
        "name": "default",
        "theta": theta,
        "full_precision": True,
    }
    if scaling:
        rope["scaling"] = rope_scaling_from_hf(scaling)
    mixer: dict[str, Any] = {
        "_CLASS_": _C + "attention.AttentionConfig",
        "name": "default",
        "n_heads": spec.n_heads,
        "n_kv_heads": spec.n_kv_heads,
        "bias": False,
        "rope": rope,
        "qk_norm": _norm_config(spec.norm_eps) if spec.qk_norm else None,
        "use_head_qk_norm": spec.qk_norm_per_head,
        "dtype": "float32",
    }
    if sliding:
        mixer["sliding_window"] = sliding
    return {
        "_CLASS_": _C + "transformer.config.TransformerBlockConfig",
        "name": "reordered_norm",
        "sequence_mixer": mixer,
        "layer_norm": _norm_config(spec.norm_eps),
        "feed_forward": {
            "_CLASS_": _C + "feed_forward.FeedForwardConfig",
            "hidden_size": spec.mlp_hidden,
            "name": "default",
            "bias": False,
            "dtype": "float32",
        },
    }


def experiment_config(spec: ModelSpec, dtype: str) -> dict[str, Any]:
    """The `config.json` of an OLMo-core step directory for `spec`: `model` is a TransformerConfig
    dict (TransformerConfig.from_dict rebuilds it), `dataset.tokenizer` the TokenizerConfig."""
    if spec.family == "olmo" or not (spec.norm_after and spec.qk_norm and spec.norm_type == "rms" and spec.norm_affine):
        raise UnsupportedError(
            "OLMo-core's reordered_norm block is OLMo 2 style (norms after the sublayers, QK-norm); this model is not",
            hint="OLMo-1 models have no OLMo-core block; convert them with --to hf or --to native",
        )
    if spec.clip_qkv is not None:
        raise UnsupportedError("clip_qkv has no OLMo-core setting")
    sliding = None
    if spec.slides:
        # One window per layer, nothing forced: OLMo-core's pattern then repeats exactly once.
        sliding = {
            "_CLASS_": _C + "attention.SlidingWindowAttentionConfig",
            "pattern": [spec.sliding_window if t == SLIDING_ATTENTION else -1 for t in spec.layer_types or ()],
            "force_full_attention_on_first_layer": False,
            "force_full_attention_on_last_layer": False,
        }
    block = _block_config(spec, None if spec.slides else spec.rope_scaling, sliding)
    model: dict[str, Any] = {
        "_CLASS_": _C + "transformer.config.TransformerConfig",
        "name": "default",
        "d_model": spec.d_model,
        "vocab_size": spec.embedding_size,
        "n_layers": spec.n_layers,
        "block": block,
        "lm_head": {
            "_CLASS_": _C + "lm_head.LMHeadConfig",
            "name": "default",
            "layer_norm": _norm_config(spec.norm_eps),
            "bias": False,
            "dtype": "float32",
        },
        "dtype": "float32",
        "init_method": "normal",
        "init_seed": 0,
        "init_std": 0.02,
        "tie_word_embeddings": spec.weight_tying,
    }
    if spec.slides and spec.rope_scaling:  # YaRN etc. on the full-attention layers only
        scaled = _block_config(spec, spec.rope_scaling, sliding)
        model["block_overrides"] = {
            str(i): scaled for i in range(spec.n_layers) if spec.layer_type(i) == FULL_ATTENTION
        }
    tokenizer = {
        "_CLASS_": "olmo_core.data.tokenizer.TokenizerConfig",
        "vocab_size": spec.vocab_size,
        "eos_token_id": spec.eos_token_id,
        "pad_token_id": spec.pad_token_id,
        "bos_token_id": spec.bos_token_id,
        "identifier": spec.tokenizer_identifier,
    }
    return {
        "run_name": "olmo-convert",
        "model": model,
        "dataset": {"tokenizer": tokenizer, "sequence_length": spec.max_sequence_length},
        "olmo_convert": {"note": "model weights only: no optimizer or trainer state", "dtype": dtype},
    }


def write(checkpoint, tmp: Path, config: dict[str, Any], out_dtype: str, reporter):
    """config.json + model_and_optim/ (one `.distcp` of torch.save items and a `.metadata` pickle of
    torch's own DCP classes), the layout OLMo-core's load_model_and_optim_state reads."""
    import pickle

    import torch
    from torch.distributed.checkpoint.filesystem import _StorageInfo
    from torch.distributed.checkpoint.metadata import (
        ChunkStorageMetadata,
        Metadata,
        MetadataIndex,
        TensorProperties,
        TensorStorageMetadata,
    )

    from olmo_cli.checkpoints import layout
    from olmo_cli.checkpoints.fetch import fetcher
    from olmo_cli.checkpoints.formats import Written
    from olmo_cli.checkpoints.primitives import nbytes
    from olmo_cli.jsonfiles import write_json

    spec = checkpoint.spec
    table = layout.plan(spec, "hf", checkpoint.keys)
    shapes = layout.hf_shapes(spec)
    names = {key: layout.hf_to_olmo_core(key) for key in table}
    if spec.weight_tying:  # OLMo-core keeps lm_head.w_out beside the embedding even when tied
        table["lm_head.weight"] = table["model.embed_tokens.weight"]
        shapes["lm_head.weight"] = shapes["model.embed_tokens.weight"]
        names["lm_head.weight"] = "lm_head.w_out.weight"
    fetch = fetcher(checkpoint, table, "")  # never a raw byte range: every item is a torch.save zip
    dtype = getattr(torch, out_dtype)
    directory = tmp / DCP_DIR
    directory.mkdir()
    data_file = "__0_0.distcp"
    state_meta: dict[str, Any] = {}
    storage: dict[Any, Any] = {}
    planner: dict[str, Any] = {}
    total = sum(nbytes(shapes[k], out_dtype) for k in table)
    with (
        open(directory / data_file, "wb") as out,
        reporter.progress("writing model_and_optim", total=total, unit="B") as bar,
    ):
        for key in table:
            fqn = "model." + str(names[key])
            tensor = fetch(key).to(dtype).contiguous()
            if tensor.untyped_storage().nbytes() != tensor.numel() * tensor.element_size():
                tensor = tensor.clone()  # torch.save writes a view's whole storage
            start = out.tell()
            torch.save(tensor, out)
            size = torch.Size(tensor.shape)
            zeros = torch.Size([0] * len(size))
            state_meta[fqn] = TensorStorageMetadata(
                TensorProperties(dtype=dtype), size, [ChunkStorageMetadata(offsets=zeros, sizes=size)]
            )
            storage[MetadataIndex(fqn, zeros, 0)] = _StorageInfo(data_file, start, out.tell() - start)
            planner[fqn] = ("model", str(names[key]))
            bar.advance(tensor.numel() * tensor.element_size())
            del tensor
    metadata = Metadata(state_dict_metadata=state_meta, planner_data=planner, storage_data=storage)
    with open(directory / ".metadata", "wb") as f:
        pickle.dump(metadata, f)
    write_json(tmp / "config.json", config)
    files = ["config.json", f"{DCP_DIR}/.metadata", f"{DCP_DIR}/{data_file}"]
    return Written(files, sum((tmp / f).stat().st_size for f in files), len(table))


class OlmoCoreWriter:
    """`--to olmo-core`: a step directory OLMo-core's load_model_and_optim_state loads."""

    target = Target.olmo_core
    single_file = False

    def check_options(self, options: WriteOptions) -> None:
        pass

    def prepare(self, checkpoint: Checkpoint, options: WriteOptions) -> PreparedWrite:
        from olmo_cli.checkpoints import layout
        from olmo_cli.checkpoints.formats import PreparedWrite
        from olmo_cli.checkpoints.formats.hf_write import output_dtype

        spec, out_dtype = checkpoint.spec, output_dtype(checkpoint, options)
        config = experiment_config(spec, out_dtype)  # refusals before any write
        if options.source_format != "olmo-core":
            check_yarn_translates(spec)
        return PreparedWrite(
            write=lambda tmp: write(checkpoint, tmp, config, out_dtype, options.reporter),
            description=f"olmo-core, {out_dtype}",
            dtype=out_dtype,
            architecture=spec.family,
            needed_bytes=layout.output_bytes(layout.hf_shapes(spec), out_dtype),  # the same tensors as HF
            notes=[
                "model weights only (no optimizer state): start OLMo-core from it with "
                f"load_path={options.dst} and load_trainer_state=false, load_optim_state=false (a fresh optimizer)"
            ],
        )


def _register() -> None:
    from olmo_cli.checkpoints.formats import FormatEntry, register

    register(
        FormatEntry(
            Format.olmo_core,
            claims,
            read_spec,
            open_checkpoint,
            "OLMo-core: config.json + model_and_optim/ (torch.distributed.checkpoint), or unsharded model.pt",
            writer=OlmoCoreWriter(),
        )
    )


_register()
