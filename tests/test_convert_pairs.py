"""Every format pair and architecture variant converts to a model with the same logits.

Native and hf_olmo sources are checked against tests/reference_olmo.py (an independent forward
written from the OLMo definition), transformers sources against transformers itself. Norm weights
are random in every tiny model, so a dropped or misplaced norm shows up in the logits.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
import yaml
from reference_olmo import olmo_logits
from tiny_models import make_hf, make_hf_olmo, make_native, native_config, native_state_dict

from olmo_cli.checkpoints.convert import convert
from olmo_cli.checkpoints.detect import detect_format
from olmo_cli.checkpoints.tokenizers import TRAINER_FILES

IDS = torch.tensor([[3, 17, 42, 5, 9, 31, 0, 58, 12, 7, 44, 2]])
TIGHT = dict(atol=1e-5, rtol=1e-5)


def hf_logits(path, ids=IDS):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(ids).logits


def native_files(path):
    config = yaml.safe_load((path / "config.yaml").read_text())["model"]
    return torch.load(path / "model.pt", weights_only=True, mmap=True), config


def hf_tensors(path):
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    out = {}
    for f in files:
        out.update(load_file(f))
    return out


# ai2-olmo 0.6 ModelConfig fields typed plain `int`: OmegaConf refuses null or 500000.0 there.
_TRAINER_INT_FIELDS = (
    "d_model",
    "n_heads",
    "n_layers",
    "mlp_ratio",
    "block_group_size",
    "rope_theta",
    "max_sequence_length",
    "vocab_size",
    "eos_token_id",
    "pad_token_id",
)


def assert_trainer_would_start_from(dst, tokenizer_vocab: int | None = None):
    """What the OLMo trainer (ai2-olmo 0.6) checks when started with --load_path=DST (docs/REFERENCE.md 3.1)."""
    from olmo_cli.checkpoints.formats.native import spec_from_model_fields
    from olmo_cli.checkpoints.layout import native_shapes

    assert dst.name.endswith("-unsharded")
    model = yaml.safe_load((dst / "config.yaml").read_text())["model"]
    for name in _TRAINER_INT_FIELDS:
        assert type(model[name]) is int, (name, model[name])
    # ModelConfig.effective_n_kv_heads raises when multi_query_attention is set and disagrees.
    if model["n_kv_heads"] is not None and model["multi_query_attention"] is not None:
        assert model["n_kv_heads"] == (1 if model["multi_query_attention"] else model["n_heads"])
    # Tokenizer.from_train_config: the model's vocab_size must be the tokenizer's.
    if tokenizer_vocab is not None:
        assert model["vocab_size"] == tokenizer_vocab
    # The DDP restore loads model.pt with strict=True: exactly the model's keys and shapes.
    state = torch.load(dst / "model.pt", weights_only=True, mmap=True)
    expected = native_shapes(spec_from_model_fields(model, "config.yaml"))
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    torch.load(dst / "train.pt", weights_only=True)  # read even when the trainer state is reset


NATIVE_VARIANTS = {
    "olmo1-tied-mha": ("olmo1", {}),
    "olmo1-untied": ("olmo1", {"weight_tying": False}),
    "olmo1-gqa": ("olmo1", {"n_kv_heads": 2}),
    "olmo1-mqa": ("olmo1", {"multi_query_attention": True}),
    "olmo1-clip-qkv": ("olmo1", {"clip_qkv": 0.3}),
    "olmo1-rope-theta": ("olmo1", {"rope_theta": 123457}),
    "olmo1-mlp-hidden-size": ("olmo1", {"mlp_hidden_size": 96, "mlp_ratio": 2}),
    "olmo2": ("olmo2", {}),
    "olmo2-gqa-tied": ("olmo2", {"n_kv_heads": 1, "weight_tying": True}),
}


@pytest.mark.parametrize("variant", list(NATIVE_VARIANTS))
def test_native_to_hf_matches_reference_and_round_trips(tmp_path, variant):
    arch, overrides = NATIVE_VARIANTS[variant]
    src = make_native(tmp_path / "src", arch=arch, tokenizer=None, **overrides)
    config = native_config(arch, **overrides)
    state = native_state_dict(config)
    expected = olmo_logits(state, config, IDS)

    result = convert(src, tmp_path / "hf")
    assert (result.source_format, result.target_format) == ("native", "hf")
    assert result.architecture == ("olmo2" if arch == "olmo2" else "olmo")
    assert detect_format(tmp_path / "hf") == "hf"
    torch.testing.assert_close(hf_logits(tmp_path / "hf"), expected, **TIGHT)

    # HF -> native gives back the identical tensors, and the config means the same model.
    convert(tmp_path / "hf", tmp_path / "back-unsharded", to="native", tokenizer="allenai/gpt-neox-olmo-dolma-v1_5")
    assert_trainer_would_start_from(tmp_path / "back-unsharded")
    back, back_config = native_files(tmp_path / "back-unsharded")
    assert set(back) == set(state)
    for key, tensor in state.items():
        assert torch.equal(back[key], tensor), key
    torch.testing.assert_close(olmo_logits(back, back_config, IDS), expected, **TIGHT)


@pytest.mark.parametrize("flavour", ["plain", "olmo"])
def test_native_safetensors_flavours(tmp_path, flavour):
    src = make_native(tmp_path / "src", arch="olmo2", safetensors=flavour, tokenizer=None, weight_tying=True)
    config = native_config("olmo2", weight_tying=True)
    result = convert(src, tmp_path / "hf", verify=True)
    assert result.max_logit_diff is not None and result.max_logit_diff < 1e-4
    torch.testing.assert_close(hf_logits(tmp_path / "hf"), olmo_logits(native_state_dict(config), config, IDS), **TIGHT)


@pytest.mark.parametrize("weights", ["bin", "safetensors", "both"])
def test_hf_olmo_to_hf_matches_reference(tmp_path, weights):
    src = make_hf_olmo(tmp_path / "src", weights=weights, tokenizer=weights == "both", weight_tying=weights != "bin")
    source_config = json.loads((src / "config.json").read_text())
    state = native_state_dict(source_config)
    assert detect_format(src) == "hf_olmo"
    result = convert(src, tmp_path / "hf")
    assert result.source_format == "hf_olmo"
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == "olmo" and "auto_map" not in config
    assert config["rope_theta"] == 10000.0 and config["rope_parameters"]["rope_theta"] == 10000.0
    ids = IDS % source_config["vocab_size"]
    torch.testing.assert_close(hf_logits(tmp_path / "hf", ids), olmo_logits(state, source_config, ids), **TIGHT)
    assert not list((tmp_path / "hf").glob("*.py"))  # no remote-code shims carried over


def test_hf_olmo_output_carries_a_plain_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    src = make_hf_olmo(tmp_path / "src", weights="safetensors")
    convert(src, tmp_path / "hf")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tokenizer.eos_token_id == 50279 and tokenizer.pad_token_id == 1
    generation = json.loads((tmp_path / "hf" / "generation_config.json").read_text())
    assert generation["eos_token_id"] == 50279


@pytest.mark.parametrize("arch,sharded", [("olmo", False), ("olmo", True), ("olmo2", True)])
def test_hf_to_native_matches_transformers_and_round_trips(tmp_path, arch, sharded):
    extra = {"num_key_value_heads": 2} if arch == "olmo2" else {"clip_qkv": 0.4}
    src = make_hf(tmp_path / "src", arch=arch, sharded=sharded, **extra)
    expected = hf_logits(src)
    dst = tmp_path / "step0-unsharded"
    result = convert(src, dst, to="native", tokenizer="allenai/dolma2-tokenizer", revision="step1000-tokens4B")
    assert sorted(result.files) == ["config.yaml", "model.pt", "train.pt"]
    state, config = native_files(dst)
    torch.testing.assert_close(olmo_logits(state, config, IDS), expected, **TIGHT)

    # What the OLMo trainer needs (docs/REFERENCE.md 3.1): integer rope_theta, explicit no-bias fields,
    # exactly the expected keys, a plain train.pt, a tokenizer identifier.
    assert isinstance(config["rope_theta"], int) and config["include_bias"] is False
    assert config["block_type"] == "sequential" and config["weight_tying"] is (arch == "olmo")
    assert not [k for k in state if "inv_freq" in k or not k.startswith("transformer.")]
    train = torch.load(dst / "train.pt", weights_only=True)
    assert train["global_step"] == 1000 and train["global_train_tokens_seen"] == 4 * 10**9
    full = yaml.safe_load((dst / "config.yaml").read_text())
    assert full["tokenizer"]["identifier"] == "tokenizers/allenai_dolma2.json"  # what the trainer finds offline
    assert_trainer_would_start_from(dst)

    convert(dst, tmp_path / "hf-again")
    original, again = hf_tensors(src), hf_tensors(tmp_path / "hf-again")
    assert set(original) == set(again)
    assert all(torch.equal(original[k], again[k]) for k in original)


def test_cast_to_bfloat16_shards_and_plain_permissions(tmp_path):
    src = make_native(tmp_path / "src", tokenizer=None, weight_tying=False)
    old = os.umask(0o077)  # safetensors would write 0600 here; outputs must still be 0644
    try:
        result = convert(src, tmp_path / "hf", dtype="bfloat16", shard_size="10KB", verify=True)
    finally:
        os.umask(old)
    out = tmp_path / "hf"
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and all((out / s).is_file() for s in shards)
    assert result.dtype == "bfloat16" and result.max_logit_diff is not None
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    for f in out.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f.name
    tensors = hf_tensors(out)
    assert all(t.dtype == torch.bfloat16 for t in tensors.values())
    config = native_config("olmo1", weight_tying=False)
    source = native_state_dict(config)
    assert torch.equal(tensors["lm_head.weight"], source["transformer.ff_out.weight"].to(torch.bfloat16))
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"


def test_swiglu_halves_go_up_then_gate(tmp_path):
    """The first half of ff_proj is up_proj, the second gate_proj (docs/REFERENCE.md 3.1)."""
    src = make_native(tmp_path / "src", tokenizer=None)
    convert(src, tmp_path / "hf")
    ff = native_state_dict(native_config("olmo1"))["transformer.blocks.1.ff_proj.weight"]
    out = hf_tensors(tmp_path / "hf")
    assert torch.equal(out["model.layers.1.mlp.up_proj.weight"], ff[:64])
    assert torch.equal(out["model.layers.1.mlp.gate_proj.weight"], ff[64:])


def test_hf_olmo_to_native_and_native_recast(tmp_path):
    """Same key naming on both sides: hf_olmo -> native, OLMo-flavour safetensors -> model.pt, hf -> hf."""
    src = make_hf_olmo(tmp_path / "src", weights="bin", tokenizer=False, n_kv_heads=2)
    source_config = json.loads((src / "config.json").read_text())
    state = native_state_dict(source_config)
    convert(src, tmp_path / "a-unsharded", to="native", tokenizer="allenai/gpt-neox-olmo-dolma-v1_5")
    back, config = native_files(tmp_path / "a-unsharded")
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
    assert config["n_kv_heads"] == 2

    flavoured = make_native(tmp_path / "olmo-st", safetensors="olmo", tokenizer="allenai/gpt-neox-olmo-dolma-v1_5")
    convert(flavoured, tmp_path / "b-unsharded", to="native", dtype="bfloat16")
    back, _ = native_files(tmp_path / "b-unsharded")
    expected = native_state_dict(native_config("olmo1"))
    assert all(torch.equal(back[k], expected[k].to(torch.bfloat16)) for k in expected)

    hf = make_hf(tmp_path / "hf", arch="olmo2")
    convert(hf, tmp_path / "hf16", dtype="float16")
    original, cast = hf_tensors(hf), hf_tensors(tmp_path / "hf16")
    assert set(original) == set(cast) and all(torch.equal(cast[k], original[k].half()) for k in original)


def test_native_with_tokenizer_identifier_gets_a_working_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    src = make_native(
        tmp_path / "src",
        vocab_size=50280,
        embedding_size=50304,
        eos_token_id=50279,
        tokenizer="tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json",
    )
    convert(src, tmp_path / "hf")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tokenizer.eos_token_id == 50279 and tokenizer.decode([50279]) == "<|endoftext|>"
    assert "auto_map" not in json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())


@pytest.mark.parametrize(
    "name,params,hidden,tied",
    [
        ("OLMo-1B", 1_176_764_416, 8192, True),
        ("OLMo-7B", 6_888_095_744, 11008, False),
        ("OLMo-7B-Twin-2T", 6_888_095_744, 11008, False),
    ],
)
def test_real_hf_olmo_configs_parse(tmp_path, data_dir, name, params, hidden, tied):
    from olmo_cli.checkpoints.formats import hf, hf_olmo

    (tmp_path / "config.json").write_bytes((data_dir / "hf_olmo_configs" / f"{name}.config.json").read_bytes())
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    assert detect_format(tmp_path) == "hf_olmo"
    spec = hf_olmo.read_spec(tmp_path)
    assert spec.n_parameters() == params and spec.eos_token_id == 50279
    config = hf.config_for(spec, "float32")
    assert config["intermediate_size"] == hidden and config["tie_word_embeddings"] is tied
    assert config["vocab_size"] == 50304 and config["rope_theta"] == 10000.0


def test_uncast_tensors_are_copied_file_to_file(tmp_path, monkeypatch):
    """Without a cast, every tensor (whole or a row slice) is a byte range of the source file."""
    from olmo_cli.checkpoints import writer

    def no_memory_path(f, tensor):
        raise AssertionError("a tensor went through memory although no cast was needed")

    monkeypatch.setattr(writer, "_write_tensor", no_memory_path)
    for flavour in (False, "plain"):
        src = make_native(tmp_path / f"src-{flavour}", safetensors=flavour, tokenizer=None, weight_tying=False)
        convert(src, tmp_path / f"hf-{flavour}")
        out = hf_tensors(tmp_path / f"hf-{flavour}")
        state = native_state_dict(native_config("olmo1", weight_tying=False))
        assert torch.equal(
            out["model.layers.0.self_attn.v_proj.weight"], state["transformer.blocks.0.att_proj.weight"][32:48]
        )


def test_model_pt_index_agrees_with_torch(tmp_path):
    """The torch-free zip index gives torch's shapes, dtypes and bytes (module state_dicts included)."""
    from olmo_cli.checkpoints.tensors import PickleReader

    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3)).to(torch.bfloat16)
    state = dict(module.state_dict())
    state["view"] = torch.arange(12.0).reshape(3, 4)[1:]  # offset into a shared storage
    state["transposed"] = torch.arange(6.0).reshape(2, 3).T  # not contiguous: no byte range
    saved = module.state_dict()
    saved.update(view=state["view"], transposed=state["transposed"])
    torch.save(saved, tmp_path / "model.pt")
    reader = PickleReader(tmp_path / "model.pt")
    assert reader._index is not None and set(reader.keys()) == set(state)
    assert reader.file_range("transposed") is None
    raw = (tmp_path / "model.pt").read_bytes()
    for key, tensor in state.items():
        info = reader.info(key)
        assert info.shape == tuple(tensor.shape) and info.dtype == str(tensor.dtype).removeprefix("torch.")
        assert torch.equal(reader.get(key), tensor)
        where = reader.file_range(key)
        if where is not None:
            assert (
                raw[where.offset : where.offset + where.nbytes]
                == tensor.contiguous().view(torch.uint8).numpy().tobytes()
            )


@pytest.mark.parametrize(
    "eos,pad,identifier,vocab",
    [
        (50279, 1, "allenai/gpt-neox-olmo-dolma-v1_5", 50280),
        (None, None, "allenai/gpt-neox-olmo-dolma-v1_5", 50280),  # ids come from the known tokenizer
        (100257, 100277, "allenai/dolma2-tokenizer", 100278),
    ],
)
def test_hf_to_native_token_fields_fit_the_trainer(tmp_path, eos, pad, identifier, vocab):
    """A GQA model whose config records only the embedding rows: vocab_size, eos and pad ids come out
    as the OLMo trainer checks them against tokenizer.identifier."""
    src = make_hf(
        tmp_path / "src",
        arch="olmo2",
        vocab_size=100352 if vocab > 60000 else 50304,
        num_key_value_heads=2,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    dst = tmp_path / "gqa-unsharded"
    convert(src, dst, to="native", tokenizer=None if eos else identifier)
    full = yaml.safe_load((dst / "config.yaml").read_text())
    assert full["tokenizer"]["identifier"] == TRAINER_FILES[identifier]
    model = full["model"]
    assert (model["n_kv_heads"], model["multi_query_attention"]) == (2, None)
    assert (model["eos_token_id"], model["pad_token_id"]) == ((eos, pad) if eos else (50279, 1))
    assert_trainer_would_start_from(dst, tokenizer_vocab=vocab)


def test_hf_to_native_with_a_custom_tokenizer_file(tmp_path):
    """A tokenizer that is no OLMo tokenizer is named by its path (the trainer's Tokenizer.from_file),
    and the model's vocab_size is that file's."""
    src = make_hf(tmp_path / "src")
    vocab = {f"t{i}": i for i in range(58)}
    tokenizer = tmp_path / "custom" / "tokenizer.json"
    tokenizer.parent.mkdir()
    tokenizer.write_text(
        json.dumps(
            {
                "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "t0"},
                "added_tokens": [{"id": 58, "content": "<eos>", "special": True}],
            }
        )
    )
    dst = tmp_path / "custom-unsharded"
    convert(src, dst, to="native", tokenizer=str(tokenizer.parent))
    full = yaml.safe_load((dst / "config.yaml").read_text())
    assert full["tokenizer"]["identifier"] == str(tokenizer.absolute())
    assert_trainer_would_start_from(dst, tokenizer_vocab=59)
