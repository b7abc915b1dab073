"""The OLMo trainer's unsharded checkpoint: config.yaml (`model:` section) + model.pt | model.safetensors.

Reading applies the trainer's own defaults for missing fields (they are GPT-2-like: biases on,
affine norms, tied weights), so a short config means what it means to the trainer. Writing spells
every field out, so the output never depends on those defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from olmo_cli.checkpoints.spec import ModelSpec, finite, whole
from olmo_cli.errors import BadInputError, UnsupportedError

# ai2-olmo ModelConfig defaults for the fields we read (docs/REFERENCE.md 3.1: they are GPT-2-like).
MODEL_DEFAULTS: dict[str, Any] = {
    "n_kv_heads": None,
    "clip_qkv": None,
    "mlp_ratio": 4,
    "mlp_hidden_size": None,
    "activation_type": "swiglu",
    "block_type": "sequential",
    "block_group_size": 1,
    "alibi": False,
    "rope": False,
    "rope_theta": 10000,
    "attention_layer_norm": False,
    "multi_query_attention": None,
    "include_bias": True,
    "bias_for_layer_norm": None,
    "layer_norm_type": "default",
    "layer_norm_with_affine": True,
    "layer_norm_eps": 1e-5,
    "attention_layer_norm_with_affine": True,
    "max_sequence_length": 1024,
    "vocab_size": 50257,
    "embedding_size": 50304,
    "weight_tying": True,
    "eos_token_id": 50256,
    "pad_token_id": 50256,
    "norm_after": False,
    "scale_logits": False,
}
REQUIRED = ("d_model", "n_heads", "n_layers")
_NORM_TYPES = {"default": "layernorm", "low_precision": "layernorm", "amd_compatible": "layernorm", "rms": "rms"}


def spec_from_model_fields(fields: dict[str, Any], where: str) -> ModelSpec:
    """A ModelSpec from native ModelConfig fields (config.yaml `model:` or an hf_olmo config.json)."""
    missing = [k for k in REQUIRED if fields.get(k) is None]
    if missing:
        raise BadInputError(f"{where}: missing required model field(s): {', '.join(missing)}")
    f = {
        **MODEL_DEFAULTS,
        **{k: v for k, v in fields.items() if v is not None or k in ("n_kv_heads", "clip_qkv", "mlp_hidden_size")},
    }
    try:
        _refuse_unsupported(f, where)
        d_model, n_heads, n_layers = whole(f["d_model"]), whole(f["n_heads"]), whole(f["n_layers"])
        n_kv = n_heads if f["n_kv_heads"] is None else whole(f["n_kv_heads"])
        if f["multi_query_attention"]:
            n_kv = 1
        fused = (
            whole(f["mlp_hidden_size"]) if f["mlp_hidden_size"] is not None else int(d_model * float(f["mlp_ratio"]))
        )
        affine = bool(f["layer_norm_with_affine"])
        return ModelSpec(
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            n_kv_heads=n_kv,
            mlp_hidden=fused // 2,
            embedding_size=whole(f["embedding_size"] or f["vocab_size"]),
            vocab_size=whole(f["vocab_size"]),
            max_sequence_length=whole(f["max_sequence_length"]),
            rope_theta=finite(f["rope_theta"]),
            clip_qkv=None if f["clip_qkv"] is None else finite(f["clip_qkv"]),
            weight_tying=bool(f["weight_tying"]),
            norm_type=_NORM_TYPES[f["layer_norm_type"]],
            norm_affine=affine,
            norm_eps=finite(f["layer_norm_eps"]),
            qk_norm=bool(f["attention_layer_norm"]),
            norm_after=bool(f["norm_after"]),
            eos_token_id=_int_or_none(f["eos_token_id"]),
            pad_token_id=_int_or_none(f["pad_token_id"]),
        )
    except (TypeError, ValueError) as error:
        raise BadInputError(f"{where}: bad model field value: {error}") from None


def _int_or_none(value):
    return None if value is None else whole(value)


def _refuse_unsupported(f: dict[str, Any], where: str) -> None:
    def refuse(feature: str):
        raise UnsupportedError(
            f"{where}: {feature} is not supported",
            hint="supported: OLMo-1 and OLMo-2 style sequential blocks, RoPE, SwiGLU, no biases",
        )

    if f["block_type"] != "sequential":
        refuse(f"block_type '{f['block_type']}'")
    if int(f["block_group_size"]) != 1:
        refuse(f"block_group_size {f['block_group_size']}")
    if f["alibi"]:
        refuse("ALiBi positions (alibi: true)")
    if not f["rope"]:
        refuse("a model without RoPE (rope: false)")
    if f["include_bias"]:
        refuse("biases (include_bias: true)")
    affine = f["layer_norm_with_affine"] or (f["attention_layer_norm"] and f["attention_layer_norm_with_affine"])
    bias_for_norm = f["bias_for_layer_norm"] if f["bias_for_layer_norm"] is not None else f["include_bias"]
    if bias_for_norm and affine:
        refuse("layer-norm biases (bias_for_layer_norm: true)")
    if f["activation_type"] != "swiglu":
        refuse(f"activation_type '{f['activation_type']}'")
    if f["layer_norm_type"] not in _NORM_TYPES:
        refuse(f"layer_norm_type '{f['layer_norm_type']}'")
    if f["attention_layer_norm"] and not f["attention_layer_norm_with_affine"]:
        refuse("QK-norm without weights (attention_layer_norm_with_affine: false)")
    if f.get("scale_logits"):
        refuse("scaled logits (scale_logits: true)")


def model_fields(spec: ModelSpec) -> dict[str, Any]:
    """The complete `model:` section for `spec`, every field explicit (no reliance on defaults)."""
    fused = 2 * spec.mlp_hidden
    return {
        "d_model": spec.d_model,
        "n_heads": spec.n_heads,
        "n_kv_heads": spec.n_kv_heads,
        "clip_qkv": spec.clip_qkv,
        "n_layers": spec.n_layers,
        "mlp_ratio": max(1, fused // spec.d_model),
        "mlp_hidden_size": fused,
        "activation_type": "swiglu",
        "block_type": "sequential",
        "block_group_size": 1,
        "alibi": False,
        "alibi_bias_max": 8.0,
        "rope": True,
        "rope_full_precision": True,
        "rope_theta": int(spec.rope_theta) if float(spec.rope_theta).is_integer() else spec.rope_theta,
        # null, not false: the trainer refuses multi_query_attention: false next to n_kv_heads < n_heads.
        "flash_attention": False,
        "attention_dropout": 0.0,
        "multi_query_attention": None,
        "attention_layer_norm": spec.qk_norm,
        "residual_dropout": 0.0,
        "embedding_dropout": 0.0,
        "layer_norm_type": "rms" if spec.norm_type == "rms" else "default",
        "layer_norm_with_affine": spec.norm_affine,
        "layer_norm_eps": spec.norm_eps,
        "attention_layer_norm_with_affine": spec.qk_norm,
        "bias_for_layer_norm": False,
        "norm_after": spec.norm_after,
        "max_sequence_length": spec.max_sequence_length,
        "include_bias": False,
        "scale_logits": False,
        "vocab_size": spec.vocab_size,
        "embedding_size": spec.embedding_size,
        "weight_tying": spec.weight_tying,
        "eos_token_id": spec.eos_token_id,
        "pad_token_id": spec.pad_token_id,
        "init_device": "meta",
        "init_fn": "normal",
        "init_std": 0.02,
    }


def read_config(directory: Path) -> dict[str, Any]:
    import yaml

    path = directory / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise BadInputError(f"{path}: not readable YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise BadInputError(
            f"{path}: no `model:` section", hint="a native OLMo checkpoint's config.yaml has the model under `model:`"
        )
    return config


def read_spec(directory: Path) -> ModelSpec:
    config = read_config(directory)
    spec = spec_from_model_fields(config["model"], f"{directory / 'config.yaml'}")
    tokenizer = config.get("tokenizer") or {}
    identifier = tokenizer.get("identifier") if isinstance(tokenizer, dict) else None
    return spec.with_(tokenizer_identifier=None if identifier is None else str(identifier))


def weights_reader(directory: Path):
    from olmo_cli.checkpoints import tensors

    pt, st = directory / "model.pt", directory / "model.safetensors"
    if st.is_file():
        reader = tensors.SafetensorsReader(st)
        if tensors.looks_olmo_encoded(reader.keys()):
            return tensors.olmo_safetensors_reader(st)
        return reader
    if pt.is_file():
        return tensors.PickleReader(pt)
    raise BadInputError(
        f"{directory}: no model.pt or model.safetensors",
        hint="sharded trainer checkpoints need the OLMo package to unshard first",
    )


def open_checkpoint(directory: Path):
    from olmo_cli.checkpoints.formats import Checkpoint

    spec = read_spec(directory)
    reader = weights_reader(directory)
    spec = spec.with_(dtype=_first_float_dtype(reader))
    return Checkpoint(directory, "native", spec, reader, "native", spec.family)


def _first_float_dtype(reader) -> str | None:
    for key in reader.keys():
        dtype = reader.info(key).dtype
        if dtype.startswith(("float", "bfloat")):
            return dtype
    return None


def write_config(directory: Path, spec: ModelSpec) -> None:
    import yaml

    config = {
        "model": model_fields(spec),
        "tokenizer": {"identifier": spec.tokenizer_identifier, "truncate_direction": "right"},
    }
    (directory / "config.yaml").write_text(
        "# Written by `olmo convert`: a native OLMo checkpoint (load with --load_path).\n"
        + yaml.safe_dump(config, sort_keys=False)
    )


def write_train_state(directory: Path, step: int = 0, tokens: int = 0) -> None:
    """train.pt of plain values only, loadable under torch.load(weights_only=True); written
    in torch.save's layout without importing torch."""
    from olmo_cli.checkpoints.torchzip_writer import write_plain

    write_plain(
        directory / "train.pt",
        {
            "global_step": int(step),
            "global_train_tokens_seen": int(tokens),
            "global_train_examples_seen_this_epoch": 0,
            "epoch": 0,
            "world_size": 1,
            "checkpoints": [],
            "unsharded_checkpoints": [],
            "ephemeral_checkpoints": [],
        },
    )


def _register() -> None:
    from olmo_cli.checkpoints.detect import native_claims
    from olmo_cli.checkpoints.formats import FormatEntry, register
    from olmo_cli.checkpoints.formats.native_write import NativeWriter
    from olmo_cli.checkpoints.kinds import Format

    register(
        FormatEntry(
            Format.native,
            native_claims,
            read_spec,
            open_checkpoint,
            "the OLMo trainer's unsharded checkpoint (config.yaml + model.pt | model.safetensors)",
            writer=NativeWriter(),
        )
    )


_register()
