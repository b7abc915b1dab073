"""The streamed quantizer's plan and int8 numbers, checked against transformers and torchao themselves.

quantize/layout.py reads the OLMo families' state dict off their structure and
quantize/torchao_layout.py computes torchao's int8 without importing either library; here both
are compared with what the libraries do, so a transformers or torchao upgrade that changes
either is caught.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_models import make_hf

from olmo_cli.quantize import torchao_layout
from olmo_cli.quantize.layout import Layout, olmo_layout
from olmo_cli.quantize.methods import quantization_config

SMALL = dict(
    vocab_size=96,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
)


def _transformers_layout(directory: Path, qconfig) -> Layout:
    """The layout as transformers builds the model and as its quantizer selects the weights."""
    import copy

    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.quantizers.auto import AutoHfQuantizer

    config = AutoConfig.from_pretrained(directory)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        # The quantizer decides before weights are tied (its "last parameter" rule then sees the
        # lm_head), so it is asked about an untied skeleton, as from_pretrained does.
        untied = copy.deepcopy(config)
        untied.get_text_config(decoder=True).tie_word_embeddings = False
        model = AutoModelForCausalLM.from_config(untied, dtype=torch.bfloat16)
    quantizer = AutoHfQuantizer.from_config(qconfig, pre_quantized=False)
    quantizer._process_model_before_weight_loading(model, device_map=None)
    quantized = {name for name, _ in model.named_parameters() if quantizer.param_needs_quantization(model, name)}
    tied = {}
    for tied_name, source in (getattr(skeleton, "all_tied_weights_keys", None) or {}).items():
        tied[tied_name] = source
    return Layout(list(skeleton.state_dict()), frozenset(quantized), tied)


def _config_dir(directory: Path, arch: str, **overrides) -> Path:
    from transformers import Olmo2Config, Olmo3Config, OlmoConfig

    cls = {"olmo": OlmoConfig, "olmo2": Olmo2Config, "olmo3": Olmo3Config}[arch]
    cls(**{**SMALL, **overrides}).save_pretrained(directory)
    return directory


@pytest.mark.parametrize("method", ["int8", "int8-dynamic", "nf4"])
@pytest.mark.parametrize(
    "arch, overrides",
    [
        ("olmo", {"tie_word_embeddings": True}),
        ("olmo", {"tie_word_embeddings": False, "attention_bias": True}),
        ("olmo2", {}),
        ("olmo2", {"tie_word_embeddings": True, "attention_bias": True}),
        ("olmo3", {}),
    ],
)
def test_olmo_layout_is_what_transformers_builds_and_quantizes(arch, overrides, method, tmp_path):
    directory = _config_dir(tmp_path, arch, **overrides)
    qconfig = quantization_config(method, compute_dtype=torch.bfloat16)
    theirs = _transformers_layout(directory, qconfig)
    ours = olmo_layout(json.loads((directory / "config.json").read_text()))
    assert ours is not None
    assert ours.names == theirs.names
    assert ours.quantized == theirs.quantized and len(ours.quantized) == 7 * SMALL["num_hidden_layers"]
    assert ours.tied == theirs.tied
    assert ("lm_head.weight" in ours.tied) is bool(overrides.get("tie_word_embeddings"))


def test_other_model_types_are_not_planned_here():
    assert olmo_layout({"model_type": "olmoe", "num_hidden_layers": 2}) is None


@pytest.mark.parametrize("method", torchao_layout.METHODS)
def test_quantization_config_is_torchaos(method):
    assert torchao_layout.quantization_config(method) == quantization_config(method).to_dict()


def _torchao_int8(weight: torch.Tensor, method: str):
    from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict
    from torchao.quantization import quantize_

    with torch.device("meta"):
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    linear.weight = torch.nn.Parameter(weight, requires_grad=False)
    quantize_(linear, quantization_config(method).quant_type, filter_fn=lambda module, fqn: True)
    return flatten_tensor_state_dict({"m.weight": linear.weight})


@pytest.mark.parametrize("method", torchao_layout.METHODS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_int8_parts_and_description_are_torchaos(method, dtype, monkeypatch):
    """Blocks of rows (made small here so that the last one is partial) give torchao's numbers,
    for rows all positive, all negative, all zero and with ties at .5 after scaling."""
    monkeypatch.setattr(torchao_layout, "_BLOCK_ELEMENTS", 5 * 48)
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(37, 48, generator=generator) * 0.05
    weight[3] = weight[3].abs()
    weight[4] = -weight[4].abs()
    weight[5] = 0
    weight[6] = torch.arange(48) - 23.5  # absmax 23.5: scale 23.5/127.5, so many values land on .5
    source = weight.clone()
    flat, metadata = _torchao_int8(weight.to(dtype), method)
    ours = torchao_layout.quantize_int8(weight, dtype)  # from float32: the cast happens inside
    assert torch.equal(weight, source)  # the source is only read
    keys = torchao_layout.part_keys("m.weight")
    assert sorted(keys) == sorted(flat)
    for key, part, (shape, dtype_name) in zip(keys, ours, torchao_layout.part_shapes((37, 48)), strict=True):
        assert part.dtype == flat[key].dtype and str(part.dtype) == f"torch.{dtype_name}", key
        assert tuple(part.shape) == shape and torch.equal(part, flat[key]), key
    assert torchao_layout.description(method, (37, 48), str(dtype).removeprefix("torch.")) == metadata["m.weight"]
    assert json.loads(metadata["tensor_names"]) == ["m.weight"]


def test_plain_tensor_description_is_torchaos():
    from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

    _, metadata = flatten_tensor_state_dict({"norm.weight": torch.ones(3)})
    assert metadata["norm.weight"] == torchao_layout.PLAIN_TENSOR


def test_int8_writing_imports_neither_torchao_nor_transformers(tmp_path):
    """The import of torchao and transformers was most of int8's time beyond the cast's."""
    src = make_hf(tmp_path / "src", arch="olmo2", hidden_size=32, intermediate_size=64)
    script = (
        "import sys\n"
        "from olmo_cli.quantize.run import quantize\n"
        "quantize(sys.argv[1], sys.argv[2], method='int8-dynamic', check=False)\n"
        "print(sorted(m for m in ('torchao', 'transformers', 'bitsandbytes') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(src), str(tmp_path / "out")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "model.safetensors").is_file()


@pytest.mark.parametrize("shape", [(12, 64), (7, 40)])  # whole blocks; a partial last block and an odd count
def test_nf4_in_runs_of_blocks_is_quantize_4bit_of_the_whole_weight(shape, monkeypatch):
    from bitsandbytes.functional import quantize_4bit

    from olmo_cli.quantize.stream import _Nf4

    monkeypatch.setattr(_Nf4, "CHUNK", 128)  # several runs, the last one short
    weight = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    packed, state = quantize_4bit(
        weight.to(torch.bfloat16), blocksize=64, compress_statistics=False, quant_type="nf4", quant_storage=torch.uint8
    )
    expected = {"w": packed, **{f"w.{k}": v for k, v in state.as_dict(packed=True).items()}}
    ours = _Nf4("bfloat16").quantize("w", weight)
    assert sorted(ours) == sorted(expected)
    for key, value in expected.items():
        assert ours[key].dtype == value.dtype and torch.equal(ours[key], value), key
