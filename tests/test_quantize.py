"""`olmo quantize`: each CPU method writes a checkpoint that reloads elsewhere with the same logits.

One tiny OLMo (hidden 64, the real OLMo-1 tokenizer, so the 50304-row embedding) is quantized with
every CPU method; one fresh Python process then reloads all outputs with plain transformers and
generates. The quality numbers of the report are recomputed here independently.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import olmo
from tiny_models import make_hf, make_hf_with_tokenizer, make_native
from typer.testing import CliRunner

from olmo_cli.cli.app import app
from olmo_cli.errors import UsageError
from olmo_cli.quantize.methods import QUANTIZE_METHODS, get_method, quantization_config
from olmo_cli.quantize.run import quantize

CPU_METHODS = ("int8", "int8-dynamic", "nf4", "fp16", "bf16")
COMPUTE_DTYPE = {
    "int8": torch.bfloat16,
    "int8-dynamic": torch.bfloat16,
    "nf4": torch.bfloat16,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
SAVED_QUANT_METHOD = {"int8": "torchao", "int8-dynamic": "torchao", "nf4": "bitsandbytes"}


def _make_source(directory: Path, arch: str = "olmo") -> Path:
    return make_hf_with_tokenizer(
        directory, arch=arch, hidden_size=64, intermediate_size=256, max_position_embeddings=256
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return _make_source(tmp_path_factory.mktemp("src") / "tiny")


@pytest.fixture(scope="module")
def sample(source):
    from olmo_cli.loading.model import load_tokenizer
    from olmo_cli.quantize.quality import sample_ids

    return sample_ids(load_tokenizer(source))


@pytest.fixture(scope="module")
def outputs(source, tmp_path_factory):
    """method -> (output dir, report) for every CPU method."""
    root = tmp_path_factory.mktemp("quantized")
    return {method: (root / method, quantize(str(source), root / method, method=method)) for method in CPU_METHODS}


@pytest.fixture(scope="module")
def reloaded(outputs, sample, tmp_path_factory):
    """Logits and greedy tokens of every output, loaded in ONE fresh process by plain transformers."""
    work = tmp_path_factory.mktemp("reload")
    torch.save(sample, work / "ids.pt")
    script = (
        "import sys, json, torch\n"
        "from transformers import AutoModelForCausalLM\n"
        "ids = torch.load(sys.argv[1] + '/ids.pt')\n"
        "result = {}\n"
        "for name, path in json.loads(sys.argv[2]).items():\n"
        "    model = AutoModelForCausalLM.from_pretrained(path).eval()\n"
        "    with torch.inference_mode():\n"
        "        logits = model(ids).logits.float()\n"
        "        new = model.generate(ids[:, :8], max_new_tokens=4, do_sample=False)[0, 8:].tolist()\n"
        "    torch.save(logits, f'{sys.argv[1]}/{name}.pt')\n"
        "    result[name] = {'dtype': str(model.dtype), 'new_tokens': new,\n"
        "                    'weight_type': type(model.model.layers[0].mlp.up_proj.weight.data).__name__}\n"
        # `olmo generate DST` in the same fresh process (one interpreter start instead of two).
        "import io, contextlib\n"
        "from olmo_cli.cli.app import app\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    code = app(args=['generate', sys.argv[3], '-p', 'The lighthouse', '-n', '3', '--greedy'],\n"
        "               prog_name='olmo', standalone_mode=False)\n"
        "result['olmo generate'] = {'exit': code or 0, 'text': out.getvalue()}\n"
        "print(json.dumps(result))\n"
    )
    paths = {method: str(path) for method, (path, _) in outputs.items()}
    done = subprocess.run(
        [sys.executable, "-c", script, str(work), json.dumps(paths), paths["int8"]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    result = {method: (torch.load(work / f"{method}.pt"), info[method]) for method in CPU_METHODS}
    result["olmo generate"] = info["olmo generate"]
    return result


def _in_memory(source, method, ids):
    """The logits of `method` applied in memory here, the way transformers does it at load time."""
    from transformers import AutoModelForCausalLM

    config = quantization_config(method, compute_dtype=COMPUTE_DTYPE[method])
    model = AutoModelForCausalLM.from_pretrained(source, dtype=COMPUTE_DTYPE[method], quantization_config=config).eval()
    with torch.inference_mode():
        return model(ids).logits.float()


def _reference(source, ids):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    with torch.inference_mode():
        return model(ids).logits


@pytest.mark.parametrize("method", CPU_METHODS)
def test_reloaded_output_matches_the_in_memory_quantized_model(method, source, sample, reloaded):
    logits, info = reloaded[method]
    assert info["dtype"] == str(COMPUTE_DTYPE[method])
    if method.startswith("int8"):
        assert info["weight_type"] == "Int8Tensor"  # really stored quantized, not dequantized
    assert torch.equal(logits, _in_memory(source, method, sample))
    assert len(info["new_tokens"]) == 4


@pytest.mark.parametrize("method", CPU_METHODS)
def test_report_numbers_are_measured(method, source, sample, outputs, reloaded):
    path, report = outputs[method]
    reference = _reference(source, sample)
    quantized, _ = reloaded[method]
    assert report.eval_tokens == sample.shape[1] > 50
    assert report.max_logit_diff == pytest.approx((quantized - reference).abs().max().item(), rel=1e-6)
    assert report.max_logit_diff > 0  # every method here loses some precision
    top1 = (quantized.argmax(-1) == reference.argmax(-1)).float().mean().item()
    assert report.top1_agreement == pytest.approx(top1) and 0.0 <= top1 <= 1.0
    ppl = math.exp(torch.nn.functional.cross_entropy(reference[0, :-1], sample[0, 1:]).item())
    assert report.ppl_before == pytest.approx(ppl, rel=1e-5)
    assert math.isfinite(report.ppl_after) and report.ppl_after != report.ppl_before
    weights = sum(p.stat().st_size for p in path.glob("*.safetensors"))
    assert report.size_after == weights and report.size_before == (source / "model.safetensors").stat().st_size
    assert report.ratio == pytest.approx(weights / report.size_before)
    assert report.ratio < (0.52 if method in ("fp16", "bf16") else 0.5)


def test_outputs_carry_tokenizer_and_quantization_config(outputs):
    for method, (path, _) in outputs.items():
        assert (path / "tokenizer.json").exists() and (path / "generation_config.json").exists()
        config = json.loads((path / "config.json").read_text())
        if method in SAVED_QUANT_METHOD:
            assert config["quantization_config"]["quant_method"] == SAVED_QUANT_METHOD[method]
        else:
            assert "quantization_config" not in config
            assert config["dtype"] == str(COMPUTE_DTYPE[method]).replace("torch.", "")
        assert not list(path.parent.glob(f".{method}.partial-*"))  # the temporary sibling is gone


def test_olmo_generate_runs_on_the_int8_output(reloaded):
    generated = reloaded["olmo generate"]
    assert generated["exit"] == 0 and generated["text"].strip()


def test_native_checkpoint_is_converted_then_quantized(tmp_path):
    src = make_native(
        tmp_path / "step1000-unsharded",
        vocab_size=50280,
        embedding_size=50304,
        eos_token_id=50279,
        pad_token_id=1,
        d_model=64,
        n_heads=4,
        max_sequence_length=64,
    )
    report = quantize(str(src), tmp_path / "out", method="int8")
    assert report.eval_tokens == 64  # the sample text is cut to the model's context
    assert report.max_logit_diff > 0 and 0.0 <= report.top1_agreement <= 1.0 and math.isfinite(report.ppl_after)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model_type"] == "olmo" and config["quantization_config"]["quant_method"] == "torchao"
    assert (tmp_path / "out" / "tokenizer.json").exists()


def test_hub_revision_source(fake_hub, source, tmp_path):
    files = {path.name: path.read_bytes() for path in source.iterdir() if path.is_file()}
    fake_hub.add_repo("someone/tiny-olmo-hf", branches={"main": files, "step1000-tokens4B": files})
    report = quantize(
        "someone/tiny-olmo-hf", tmp_path / "out", method="bf16", revision="step1000-tokens4B", check=False
    )
    assert report.source == "someone/tiny-olmo-hf@step1000-tokens4B"
    assert report.size_before == len(files["model.safetensors"]) and report.ratio == pytest.approx(0.5, abs=0.01)
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == files["tokenizer.json"]


def test_cli_json_report_and_force(source, tmp_path):
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "stale.txt").write_text("old")
    runner = CliRunner()
    refused = runner.invoke(app, ["quantize", str(source), str(dst), "--method", "bf16", "--no-check"])
    assert refused.exit_code == 6 and "already exists" in refused.output
    assert (dst / "stale.txt").exists()
    result = runner.invoke(
        app, ["quantize", str(source), str(dst), "--method", "bf16", "--no-check", "--force", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["method"] == "bf16" and report["max_logit_diff"] is None and report["ratio"] < 0.51
    assert not (dst / "stale.txt").exists() and (dst / "model.safetensors").exists()


def test_unknown_method_is_a_usage_error(source, tmp_path):
    result = olmo("quantize", str(source), str(tmp_path / "out"), "--method", "int3")
    assert result.exit_code == 2
    assert "'int3' is not one of" in result.output and "int8-dynamic" in result.output  # the Enum's choices
    with pytest.raises(UsageError, match="unknown quantization method 'int3'"):  # the core, for Python callers
        get_method("int3")
    assert not (tmp_path / "out").exists()


def test_int4_without_cuda_is_unsupported(source, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = olmo("quantize", str(source), str(tmp_path / "out"), "--method", "int4")
    assert result.exit_code == 8
    assert "needs a CUDA GPU" in result.output and "use int8" in result.output
    assert not (tmp_path / "out").exists()


def test_nf4_without_bitsandbytes_says_how_to_install(source, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a)
    )
    result = olmo("quantize", str(source), str(tmp_path / "out"), "--method", "nf4")
    assert result.exit_code == 8
    assert "'bitsandbytes' package" in result.output and "pip install" in result.output


def test_int8_without_torchao_says_how_to_install(source, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else real(name, *a))
    result = olmo("quantize", str(source), str(tmp_path / "out"))
    assert result.exit_code == 8
    assert "'torchao' package" in result.output and "olmo-cli[quant]" in result.output


def test_already_quantized_source_is_bad_input(outputs, tmp_path):
    path, _ = outputs["int8"]
    result = olmo("quantize", str(path), str(tmp_path / "again"), "--method", "int8")
    assert result.exit_code == 5
    assert "already quantized (torchao)" in result.output
    assert not (tmp_path / "again").exists()


def test_output_inside_the_source_is_refused(source):
    result = olmo("quantize", str(source), str(source / "int8"))
    assert result.exit_code == 2 and "overlaps" in result.output


def test_cast_contradicting_dtype_is_a_usage_error(source, tmp_path):
    result = olmo("quantize", str(source), str(tmp_path / "o"), "--method", "fp16", "--dtype", "bfloat16")
    assert result.exit_code == 2 and "computes in float16" in result.stderr
    # int4's kernels compute in bfloat16 only: the same rule, from the same method table.
    result = olmo("quantize", str(source), str(tmp_path / "o"), "--method", "int4", "--dtype", "float32")
    assert result.exit_code == 2 and "computes in bfloat16" in result.stderr


def test_sharded_source_without_tokenizer_casts_shard_by_shard(tmp_path):
    from transformers import AutoModelForCausalLM

    src = make_hf(tmp_path / "sharded", arch="olmo2", sharded=True)
    shards = sorted(p.name for p in src.glob("*.safetensors"))
    assert len(shards) > 1
    report = quantize(str(src), tmp_path / "out", method="bf16")
    assert report.max_logit_diff is None  # no tokenizer: no quality check, said as a warning
    assert sorted(p.name for p in (tmp_path / "out").glob("*.safetensors")) == shards
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(shards)
    ids = torch.tensor([[3, 9, 27, 5]])
    with torch.inference_mode():
        expected = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)(ids).logits
        got = AutoModelForCausalLM.from_pretrained(tmp_path / "out")(ids).logits
    assert got.dtype == torch.bfloat16 and torch.equal(got, expected)


def test_streaming_cast_of_a_bin_checkpoint_matches_torch(tmp_path):
    from safetensors.torch import load_file

    from olmo_cli.quantize.cast import cast_checkpoint

    src = tmp_path / "bin"
    src.mkdir()
    g = torch.Generator().manual_seed(0)
    state = {
        "a.weight": torch.randn(5, 3, generator=g),
        "b.bias": torch.randn(7, generator=g),
        "steps": torch.arange(4),
        "scalar": torch.tensor(2.5),
    }
    torch.save(state, src / "pytorch_model.bin")
    (src / "config.json").write_text(json.dumps({"model_type": "olmo", "torch_dtype": "float32"}))
    dst = tmp_path / "out"
    dst.mkdir()
    assert cast_checkpoint(src, dst, "bfloat16") == 4
    written = load_file(dst / "model.safetensors")
    for name, tensor in state.items():
        expected = tensor.to(torch.bfloat16) if tensor.is_floating_point() else tensor
        assert written[name].dtype == expected.dtype and torch.equal(written[name], expected)
    config = json.loads((dst / "config.json").read_text())
    assert config["dtype"] == config["torch_dtype"] == "bfloat16"


def test_method_table_names_and_configs():
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig

    from olmo_cli.cli.options import LoadQuantization, QuantizeMethod
    from olmo_cli.quantize.methods import METHODS

    assert QUANTIZE_METHODS == ("int8", "int8-dynamic", "int4", "nf4", "fp16", "bf16")
    assert tuple(choice.value for choice in QuantizeMethod) == QUANTIZE_METHODS  # what --help and TAB list
    torchao = tuple(name for name, method in METHODS.items() if method.backend == "torchao")
    assert tuple(choice.value for choice in LoadQuantization) == torchao  # generate --quantize
    assert isinstance(quantization_config("int8").quant_type, Int8WeightOnlyConfig)
    assert isinstance(quantization_config("INT8-dynamic").quant_type, Int8DynamicActivationInt8WeightConfig)
    assert quantization_config("bf16") is None and quantization_config(None) is None
    assert get_method("bfloat16").name == "bf16"


@pytest.mark.parametrize("existing", [False, True])
def test_an_interrupted_quantize_leaves_no_half_written_output(source, tmp_path, monkeypatch, existing):
    import olmo_cli.quantize.cast as cast

    def interrupted(*args, **kwargs):  # the weights are written, config.json not yet
        raise KeyboardInterrupt

    monkeypatch.setattr(cast, "write_config", interrupted)
    dst = tmp_path / "out"
    if existing:
        dst.mkdir()
        (dst / "old.txt").write_text("kept")
    with pytest.raises(KeyboardInterrupt):
        quantize(str(source), dst, method="bf16", check=False, force=existing)
    assert [p.name for p in tmp_path.iterdir()] == (["out"] if existing else [])  # no temporary sibling left
    if existing:
        assert [p.name for p in dst.iterdir()] == ["old.txt"]


def test_dtype_takes_the_short_names_generate_takes(source, tmp_path):
    report = quantize(str(source), tmp_path / "out", method="bf16", dtype="bf16", check=False)
    assert report.dtype == "bfloat16"


def test_output_inside_a_native_source_is_refused_before_converting(tmp_path):
    from olmo_cli.loading import converted_cache_dir

    src = make_native(
        tmp_path / "step1000-unsharded", vocab_size=50280, embedding_size=50304, eos_token_id=50279, pad_token_id=1
    )
    result = olmo("quantize", str(src), str(src / "int8"))
    assert result.exit_code == 2 and "overlaps" in result.output
    assert not converted_cache_dir().exists()


def test_bin_files_old_format_read_and_code_refused(tmp_path):
    """The reader the cast (and the converter) uses for .bin files."""
    import os

    from olmo_cli.checkpoints.tensors import PickleReader
    from olmo_cli.errors import BadInputError

    torch.save({"a": torch.ones(3)}, tmp_path / "old.bin", _use_new_zipfile_serialization=False)
    assert torch.equal(
        PickleReader(tmp_path / "old.bin").get("a"), torch.ones(3)
    )  # cannot be memory-mapped: read whole

    class Code:
        def __reduce__(self):
            return (os.getcwd, ())

    torch.save({"a": Code()}, tmp_path / "code.bin")
    with pytest.raises(BadInputError, match="holds code"):
        PickleReader(tmp_path / "code.bin").get("a")
    (tmp_path / "broken.bin").write_bytes(b"PK\x03\x04broken")
    with pytest.raises(BadInputError, match="not a readable torch checkpoint"):
        PickleReader(tmp_path / "broken.bin")


def _safetensors_of(directory: Path) -> tuple[dict, dict]:
    """(every tensor, the merged header metadata) of a directory's safetensors files."""
    from safetensors import safe_open

    tensors, metadata = {}, {}
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(path, "pt") as f:
            metadata.update(f.metadata() or {})
            tensors.update({key: f.get_tensor(key) for key in f.keys()})
    return tensors, metadata


def _save_pretrained_output(source: Path, method: str, directory: Path) -> Path:
    """What quantizing used to write: transformers loads with the quantization config, then save_pretrained."""
    from transformers import AutoModelForCausalLM

    config = quantization_config(method, compute_dtype=COMPUTE_DTYPE[method])
    model = AutoModelForCausalLM.from_pretrained(source, dtype=COMPUTE_DTYPE[method], quantization_config=config)
    model.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("method", ["int8", "int8-dynamic", "nf4"])
@pytest.mark.parametrize("tied", [True, False])
def test_streamed_output_is_what_save_pretrained_writes(method, tied, source, outputs, tmp_path):
    """Quantized one weight at a time, the output holds the same tensors, header metadata,
    config.json and generation_config.json as save_pretrained of the model quantized in memory."""
    if tied:
        src, ours = source, outputs[method][0]
    else:
        src = make_hf(
            tmp_path / "untied", arch="olmo2", hidden_size=64, intermediate_size=256, tie_word_embeddings=False
        )
        ours = tmp_path / "ours"
        quantize(str(src), ours, method=method, check=False)
    theirs = _save_pretrained_output(src, method, tmp_path / "theirs")
    (a, meta_a), (b, meta_b) = _safetensors_of(ours), _safetensors_of(theirs)
    assert sorted(a) == sorted(b) and meta_a == meta_b
    quantized_suffix = ".weight.quant_state.bitsandbytes__nf4" if method == "nf4" else "._weight_qdata"
    assert any(key.endswith(quantized_suffix) for key in a) and ("lm_head.weight" in a) is not tied
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    for name in ("config.json", "generation_config.json"):
        assert json.loads((ours / name).read_text()) == json.loads((theirs / name).read_text()), name


@pytest.mark.parametrize("arch", ["olmo", "olmo2"])
def test_streamed_reference_logits_equal_the_whole_model(arch, tmp_path):
    """The quality check's float32 reference, one weight in memory at a time, is the model's own."""
    from transformers import AutoModelForCausalLM

    from olmo_cli.quantize.streamed_logits import streamed_logits

    src = make_hf(tmp_path / "src", arch=arch, sharded=True, tie_word_embeddings=arch == "olmo")
    ids = torch.tensor([[3, 17, 42, 5, 9, 31, 0, 58, 12, 7, 44, 2]])
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    with torch.inference_mode():
        expected = model(ids).logits
    assert torch.equal(streamed_logits(src, "float32", ids), expected)


@pytest.mark.parametrize("method", ["int8", "int8-dynamic", "nf4"])
def test_streamed_quantized_logits_equal_the_loaded_output(method, outputs, sample):
    """The quality check's forward of the quantized output, one weight at a time, is the forward
    of that output loaded whole by transformers (Linear4bit's eval-mode CPU kernel included)."""
    from transformers import AutoModelForCausalLM

    from olmo_cli.quantize.streamed_logits import streamed_logits

    path, _ = outputs[method]
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    with torch.inference_mode():
        expected = model(sample).logits.float()
    assert torch.equal(streamed_logits(path, "bfloat16", sample), expected)


def test_other_transformers_olmo_types_are_quantized_whole(tmp_path):
    """OLMoE's saved keys are not its state dict's (transformers fuses the experts on load), so it
    is quantized by loading it whole, as transformers does, and reloads with those numbers."""
    from transformers import AutoModelForCausalLM, OlmoeConfig

    config = OlmoeConfig(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_experts=4,
        num_experts_per_tok=2,
        eos_token_id=1,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "src")
    quantize(str(tmp_path / "src"), tmp_path / "out", method="int8", check=False)
    ids = torch.tensor([[3, 17, 42, 5, 9]])
    with torch.inference_mode():
        reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()(ids).logits.float()
    assert torch.equal(reloaded, _in_memory(tmp_path / "src", "int8", ids))
