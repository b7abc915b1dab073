"""The loading core: any source to a transformers model, converted once, on the right device and dtype."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch
from tiny_models import make_hf, make_hf_olmo, make_hf_with_tokenizer, make_native

from olmo_cli.errors import BadInputError, NotFoundError, UnsupportedError, UsageError
from olmo_cli.generate import SamplingParams, generate
from olmo_cli.loading import converted_cache_dir, hf_checkpoint_dir, load_model
from olmo_cli.loading.devices import checkpoint_dtype, pick_device, pick_dtype
from olmo_cli.sources import Located, locate

# The real OLMo-1 tokenizer's ids need the padded vocabulary (docs/REFERENCE.md 3.3).
TOKENIZER_SHAPE = dict(vocab_size=50304, eos_token_id=50279, pad_token_id=1)
NATIVE_TOKENIZER_SHAPE = dict(vocab_size=50280, embedding_size=50304, eos_token_id=50279, pad_token_id=1)
PROMPTS = ["Language modeling is", "The capital of France"]


@pytest.fixture(scope="module")
def tiny_hf(tiny_model) -> Path:
    return tiny_model()


def greedy_texts(model, tokenizer, prompts, n=8) -> list[str]:
    """Greedy completions the plain transformers way, one prompt at a time (no padding involved)."""
    texts = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        texts.append(tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True))
    return texts


def olmo_greedy(loaded, prompts, n=8) -> list[str]:
    result = generate(loaded, prompts, SamplingParams(max_new_tokens=n, greedy=True))
    return [c.completion for c in result.completions]


def test_transformers_checkpoint_loads_in_place_on_cpu_in_its_own_dtype(tiny_hf, monkeypatch):
    from olmo_cli.loading import devices

    monkeypatch.setattr(devices, "cpu_prefers_bf16", lambda: False)  # a CPU without native bf16
    loaded = load_model(str(tiny_hf))
    assert loaded.path == tiny_hf.resolve()
    assert loaded.device.type == "cpu" and loaded.model.device.type == "cpu"
    assert loaded.dtype == torch.float32 and loaded.model.dtype == torch.float32
    assert loaded.tokenizer.padding_side == "left"
    assert loaded.load_seconds > 0
    assert not loaded.model.training
    assert not converted_cache_dir().exists()  # nothing converted for a transformers checkpoint


def test_explicit_dtype_and_unknown_dtype(tiny_hf):
    assert load_model(str(tiny_hf), dtype="bf16").model.dtype == torch.bfloat16
    with pytest.raises(UsageError, match="unknown dtype"):
        load_model(str(tiny_hf), dtype="float8")


def test_auto_dtype_is_the_checkpoint_dtype_on_cpu(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"dtype": "bfloat16"}))
    assert checkpoint_dtype(tmp_path) == "bfloat16"
    assert pick_dtype("auto", torch.device("cpu"), tmp_path) == torch.bfloat16
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "float16"}))
    assert pick_dtype("auto", torch.device("cpu"), tmp_path) == torch.float16


def test_device_auto_is_cpu_here_and_missing_devices_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto").type == "cpu"
    with pytest.raises(UnsupportedError, match="no CUDA"):
        pick_device("cuda")
    with pytest.raises(UsageError):
        pick_device("tpu-ish")


def test_auto_device_prefers_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda"


def test_bitsandbytes_missing_is_a_one_line_unsupported_error(tiny_hf, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a)
    )
    with pytest.raises(UnsupportedError, match="bitsandbytes") as error:
        load_model(str(tiny_hf), quantization="nf4")
    assert "pip install" in error.value.hint and "\n" not in error.value.message


def test_int8_torchao_quantizes_at_load_and_keeps_greedy_text_close(tiny_hf):
    full = load_model(str(tiny_hf))
    quantized = load_model(str(tiny_hf), quantization="INT8")
    assert quantized.quantization == "int8"  # the method table's own name, whatever the spelling
    weight = quantized.model.model.layers[0].mlp.up_proj.weight
    assert type(weight).__name__ != "Parameter" or weight.dtype == torch.int8
    ids = full.to_inputs(["Hello world"])
    with torch.no_grad():
        a = full.model(**ids).logits
        b = quantized.model(**quantized.to_inputs(["Hello world"])).logits
    assert not torch.equal(a, b)  # really quantized
    assert torch.allclose(a, b, atol=0.2)


def test_inputs_follow_the_model_device(tiny_hf):
    loaded = load_model(str(tiny_hf))
    inputs = loaded.to_inputs(PROMPTS)
    assert inputs["input_ids"].device == loaded.model.device
    # Left padding: the shorter prompt's padding comes first.
    assert inputs["attention_mask"][:, -1].all()


def test_batched_greedy_equals_one_prompt_at_a_time(tiny_hf):
    loaded = load_model(str(tiny_hf))
    assert olmo_greedy(loaded, PROMPTS) == greedy_texts(loaded.model, loaded.tokenizer, PROMPTS)


def test_hf_olmo_source_generates_what_its_conversion_generates(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from olmo_cli.checkpoints.convert import convert

    source = make_hf_olmo(tmp_path / "hf_olmo", **NATIVE_TOKENIZER_SHAPE)
    loaded = load_model(str(source))
    assert loaded.path.parent == converted_cache_dir()
    convert(source, tmp_path / "by-hand", to="hf")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "by-hand", dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "by-hand")
    assert olmo_greedy(loaded, PROMPTS) == greedy_texts(model, tokenizer, PROMPTS)


def test_native_source_generates_what_its_conversion_generates(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from olmo_cli.checkpoints.convert import convert

    source = make_native(tmp_path / "native", arch="olmo2", **NATIVE_TOKENIZER_SHAPE)
    loaded = load_model(str(source))
    convert(source, tmp_path / "by-hand", to="hf")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "by-hand", dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "by-hand")
    assert type(loaded.model).__name__ == "Olmo2ForCausalLM"
    assert olmo_greedy(loaded, PROMPTS) == greedy_texts(model, tokenizer, PROMPTS)


def test_converted_cache_is_reused_and_redone_when_the_weights_change(tmp_path, monkeypatch):
    import olmo_cli.checkpoints.convert as convert_module

    calls = []
    real = convert_module.convert
    monkeypatch.setattr(convert_module, "convert", lambda *a, **k: calls.append(a) or real(*a, **k))
    source = make_hf_olmo(tmp_path / "hf_olmo", **NATIVE_TOKENIZER_SHAPE)
    first = hf_checkpoint_dir(locate(str(source)))
    second = hf_checkpoint_dir(locate(str(source)))
    assert first == second and len(calls) == 1
    assert json.loads((first / "olmo-source.json").read_text())["format"] == "hf_olmo"
    weights = source / "pytorch_model.bin"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    third = hf_checkpoint_dir(locate(str(source)))
    assert third != first and len(calls) == 2
    assert sorted(p.name for p in converted_cache_dir().iterdir()) == sorted([first.name, third.name])


def _hub_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def test_hub_source_at_a_named_revision(fake_hub, tmp_path):
    a = make_hf_with_tokenizer(tmp_path / "a", seed=1)
    b = make_hf_with_tokenizer(tmp_path / "b", seed=2)
    fake_hub.add_repo("allenai/OLMo-1B-hf", branches={"main": _hub_files(b), "step1000-tokens4B": _hub_files(a)})
    loaded = load_model("allenai/OLMo-1B-hf", "step1000")
    assert loaded.located.revision == "step1000-tokens4B"
    assert loaded.located.commit == fake_hub.commit("allenai/OLMo-1B-hf", "step1000-tokens4B")
    local = load_model(str(a))
    assert olmo_greedy(loaded, PROMPTS[:1]) == olmo_greedy(local, PROMPTS[:1])


def test_hub_hf_olmo_source_is_converted_once_keyed_by_commit(fake_hub, tmp_path):
    source = make_hf_olmo(tmp_path / "hf_olmo", weights="safetensors", **NATIVE_TOKENIZER_SHAPE)
    fake_hub.add_repo("allenai/OLMo-1B", branches={"main": _hub_files(source)})
    loaded = load_model("allenai/OLMo-1B")
    commit = fake_hub.commit("allenai/OLMo-1B", "main")
    from olmo_cli.loading.converted import CONVERTER_VERSION

    assert loaded.path.name == f"v{CONVERTER_VERSION}--allenai--OLMo-1B--{commit}"
    assert type(loaded.model).__name__ == "OlmoForCausalLM"


def test_missing_sources_are_one_line_errors(tmp_path):
    with pytest.raises(UsageError, match="no model given"):
        load_model()
    with pytest.raises(NotFoundError):
        load_model(str(tmp_path / "nothing-here"))


def test_checkpoint_without_tokenizer_is_bad_input(tmp_path):
    source = make_hf(tmp_path / "bare", **TOKENIZER_SHAPE)
    with pytest.raises(BadInputError, match="no tokenizer"):
        load_model(str(source))


def test_load_model_is_public_in_olmo_cli():
    import olmo_cli
    from olmo_cli.loading import load_model as core

    assert olmo_cli.load_model is core


def test_interrupted_conversion_leaves_no_cache_entry(tmp_path, monkeypatch):
    import olmo_cli.checkpoints.formats.hf_write as hf_write

    real = hf_write.write_hf

    def written_then_interrupted(*args, **kwargs):
        real(*args, **kwargs)  # every file written, the rename not yet done
        raise KeyboardInterrupt

    source = make_hf_olmo(tmp_path / "hf_olmo", **NATIVE_TOKENIZER_SHAPE)
    monkeypatch.setattr(hf_write, "write_hf", written_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        hf_checkpoint_dir(locate(str(source)))
    assert list(converted_cache_dir().iterdir()) == []  # neither an entry nor a temporary sibling
    monkeypatch.setattr(hf_write, "write_hf", real)
    assert (hf_checkpoint_dir(locate(str(source))) / "model.safetensors").exists()


def test_a_conversion_finished_first_elsewhere_is_used(tmp_path, monkeypatch):
    import olmo_cli.checkpoints.convert as convert_module

    real = convert_module.convert

    def racing(src, dst, **kwargs):
        real(src, dst, **kwargs)  # another process renames its finished copy into place first
        return real(src, dst, **kwargs)  # ours then finds the entry there

    monkeypatch.setattr(convert_module, "convert", racing)
    source = make_hf_olmo(tmp_path / "hf_olmo", **NATIVE_TOKENIZER_SHAPE)
    target = hf_checkpoint_dir(locate(str(source)))
    assert (target / "config.json").exists()
    assert [p.name for p in converted_cache_dir().iterdir()] == [target.name]


def test_a_conversion_renamed_into_place_during_ours_is_used(tmp_path, monkeypatch):
    import olmo_cli.checkpoints.atomic as atomic
    import olmo_cli.checkpoints.convert as convert_module

    real_replace = atomic._replace
    source = make_hf_olmo(tmp_path / "hf_olmo", **NATIVE_TOKENIZER_SHAPE)
    racing = []

    def rename_after_the_other_process(tmp, dst, force):
        if racing:  # the other process's own rename
            return real_replace(tmp, dst, force)
        racing.append(dst)
        convert_module.convert(source, dst)  # its rename lands after our existence check
        os.rename(tmp, dst)  # ours: the directory is there and not empty

    monkeypatch.setattr(atomic, "_replace", rename_after_the_other_process)
    target = hf_checkpoint_dir(locate(str(source)))
    assert (target / "config.json").exists()
    assert [p.name for p in converted_cache_dir().iterdir()] == [target.name]


def test_an_incomplete_cache_entry_is_converted_again(tmp_path):
    from olmo_cli.loading.converted import cache_key

    source = make_hf_olmo(tmp_path / "hf_olmo", **NATIVE_TOKENIZER_SHAPE)
    located = locate(str(source))
    stale = converted_cache_dir() / cache_key(located)
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"truncated")
    target = hf_checkpoint_dir(located)
    assert target == stale and (target / "config.json").exists()
    assert [p.name for p in converted_cache_dir().iterdir()] == [target.name]


def test_hub_source_without_a_commit_is_keyed_by_its_files(tmp_path):
    from olmo_cli.loading.converted import cache_key
    from olmo_cli.sources import Located

    snapshot = make_hf_olmo(tmp_path / "snapshot", **NATIVE_TOKENIZER_SHAPE)
    located = Located(path=snapshot, repo="allenai/OLMo-1B", revision="main", commit=None)
    before = cache_key(located)
    weights = snapshot / "pytorch_model.bin"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert cache_key(located) != before  # "main" can move; its files say when it did
    before = cache_key(located)
    (snapshot / "tokenizer.json").write_text((snapshot / "tokenizer.json").read_text() + " ")
    assert cache_key(located) != before  # the tokenizer is copied into the converted copy too
    assert cache_key(Located(path=snapshot, repo="allenai/OLMo-1B", revision="main", commit="a" * 40)).endswith(
        "a" * 40
    )


def test_hf_olmo_config_without_auto_map_is_still_converted(tmp_path):
    from olmo_cli.checkpoints.detect import detect_format

    source = make_hf_olmo(tmp_path / "hf_olmo", **NATIVE_TOKENIZER_SHAPE)
    config = json.loads((source / "config.json").read_text())
    del config["auto_map"]
    (source / "config.json").write_text(json.dumps(config))
    assert detect_format(source) == "hf_olmo"  # never loaded as transformers' Olmo with random weights


def test_weights_missing_from_the_files_are_an_error_not_random(tmp_path):
    from safetensors.torch import load_file, save_file

    source = make_hf_with_tokenizer(tmp_path / "hf")
    state = load_file(source / "model.safetensors")
    del state["model.layers.1.mlp.down_proj.weight"]
    save_file(state, source / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(BadInputError, match="down_proj") as error:
        load_model(str(source))
    assert "\n" not in error.value.message


def test_weights_of_another_shape_are_bad_input(tmp_path):
    from safetensors.torch import load_file, save_file

    source = make_hf_with_tokenizer(tmp_path / "hf")
    state = load_file(source / "model.safetensors")
    state["model.layers.0.mlp.up_proj.weight"] = torch.zeros(3, 16)
    save_file(state, source / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(BadInputError, match="another shape"):
        load_model(str(source))


def test_truncated_weights_are_bad_input(tmp_path):
    source = make_hf_with_tokenizer(tmp_path / "hf")
    weights = source / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(BadInputError):
        load_model(str(source))


def test_bad_dtype_fails_before_any_conversion(tmp_path):
    source = make_hf_olmo(tmp_path / "hf_olmo", **NATIVE_TOKENIZER_SHAPE)
    with pytest.raises(UsageError, match="unknown dtype"):
        load_model(str(source), dtype="float8")
    assert not converted_cache_dir().exists()


def test_a_checkpoint_saved_quantized_needs_its_package_and_no_second_quantization(tmp_path, monkeypatch):
    import importlib.util

    source = make_hf_with_tokenizer(tmp_path / "int8")
    config = json.loads((source / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "torchao", "quant_type": {}}
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(BadInputError, match="already quantized"):
        load_model(str(source), quantization="int8")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else real(name, *a))
    with pytest.raises(UnsupportedError, match="torchao") as error:
        load_model(str(source))
    assert "pip install" in error.value.hint


def test_bin_weights_with_code_are_refused_not_run(tmp_path):
    from safetensors.torch import load_file

    source = make_hf_with_tokenizer(tmp_path / "hf")
    state = load_file(source / "model.safetensors")
    (source / "model.safetensors").unlink()
    state["model.layers.0.mlp.up_proj.weight"] = _Code()
    torch.save(state, source / "pytorch_model.bin")
    with pytest.raises(BadInputError, match="other than tensors"):
        load_model(str(source))


class _Code:
    def __reduce__(self):
        return (os.getcwd, ())


def test_cache_key_changes_with_the_converter_version(monkeypatch, tmp_path):
    from olmo_cli.loading import converted

    hub = Located(path=tmp_path, repo="allenai/OLMo-1B", revision="main", commit="a" * 40)
    local = Located(path=tmp_path)
    before = converted.cache_key(hub), converted.cache_key(local)
    monkeypatch.setattr(converted, "CONVERTER_VERSION", converted.CONVERTER_VERSION + 1)
    after = converted.cache_key(hub), converted.cache_key(local)
    assert before[0] != after[0] and before[1] != after[1]


def test_abandoned_conversion_directories_are_removed_fresh_ones_kept(tmp_path):
    from olmo_cli.loading.converted import ABANDONED_AFTER_S, remove_abandoned_partials

    old = tmp_path / ".v1--local--x.partial-abc"
    fresh = tmp_path / ".v1--local--y.partial-def"
    entry = tmp_path / "v1--local--z"
    for directory in (old, fresh, entry):
        directory.mkdir()
        (directory / "model.safetensors").write_bytes(b"x")
    long_ago = time.time() - ABANDONED_AFTER_S - 60
    os.utime(old, (long_ago, long_ago))
    os.utime(entry, (long_ago, long_ago))
    assert remove_abandoned_partials(tmp_path) == [old]
    assert not old.exists() and fresh.exists() and entry.exists()


def test_transformers_olmo_families_the_converter_does_not_read_still_load_in_place(tmp_path):
    from olmo_cli.checkpoints.detect import detect_format

    for model_type in ("olmoe", "flex_olmo"):
        (tmp_path / model_type).mkdir()
        (tmp_path / model_type / "config.json").write_text(json.dumps({"model_type": model_type}))
        assert detect_format(tmp_path / model_type) == "hf"
