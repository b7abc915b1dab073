"""`olmo generate --engine llama.cpp`: the torch path's options and text, decoded by llama.cpp on a
cached GGUF copy; what cannot map is refused with exit 8. Also the CPU dtype choice of --dtype auto.

Tests that run llama.cpp are marked `llama_cpp` (as tests/test_gguf_llama_cpp.py) and skip without it
unless it was asked for; the refusals run everywhere.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import assert_one_line_error, olmo
from test_gguf_llama_cpp import _require_llama_cpp

from olmo_cli.checkpoints.verify import TOLERANCE
from olmo_cli.generate_llama import gguf_outtype
from olmo_cli.loading.devices import cpu_prefers_bf16, pick_dtype

SHAPE = dict(max_position_embeddings=64)
PROMPT = "Language modeling is the task of"


@pytest.fixture(scope="module")
def tiny(tiny_model) -> Path:
    return tiny_model(**SHAPE)


@pytest.fixture
def llama_cpp(pytestconfig):
    return _require_llama_cpp(pytestconfig)


def run_json(*args) -> dict:
    result = olmo("generate", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.llama_cpp
def test_greedy_text_at_f32_equals_the_torch_paths(tiny, llama_cpp):
    common = (str(tiny), "-p", PROMPT, "-p", "The capital of France is", "--greedy", "-n", "16", "--dtype", "float32")
    torch_run = run_json(*common)
    llama_run = run_json(*common, "--engine", "llama.cpp")
    assert llama_run["engine"] == "llama.cpp" and llama_run["dtype"] == "f32"
    assert Path(llama_run["gguf"]).name.endswith(".f32.gguf")
    for mine, theirs in zip(llama_run["completions"], torch_run["completions"], strict=True):
        assert mine["completion"] == theirs["completion"] and mine["completion"]
        assert (mine["prompt_tokens"], mine["completion_tokens"]) == (
            theirs["prompt_tokens"],
            theirs["completion_tokens"],
        )
        assert mine["finish_reason"] == theirs["finish_reason"]


@pytest.mark.llama_cpp
def test_streamed_text_equals_json_and_the_gguf_is_converted_once(tiny, llama_cpp):
    args = (str(tiny), "-p", PROMPT, "--greedy", "-n", "10", "--engine", "llama.cpp", "--quantize", "int8")
    first = olmo("generate", *args, "--stats")
    assert first.exit_code == 0, first.output
    assert "converting" in first.stderr and "q8_0" in first.stderr and "tokens/s" in first.stderr
    again = run_json(*args)
    assert again["dtype"] == "q8_0" and again["quantization"] == "q8_0"
    assert first.stdout == again["completions"][0]["completion"] + "\n"
    cached = olmo("generate", *args)
    assert "using the GGUF copy" in cached.stderr and "converting" not in cached.stderr
    assert len(list(Path(again["gguf"]).parent.glob("*.q8_0.gguf"))) == 1


@pytest.mark.llama_cpp
def test_sampling_seed_stop_and_several_answers(tiny, llama_cpp):
    args = (str(tiny), "-p", "Once upon a time", "-n", "12", "--engine", "llama.cpp", "--dtype", "float32")
    sample = ("--temperature", "1.5", "--top-k", "0", "--top-p", "1")
    one = run_json(*args, *sample, "--seed", "7")["completions"][0]["completion"]
    assert one == run_json(*args, *sample, "--seed", "7")["completions"][0]["completion"]
    assert one != run_json(*args, *sample, "--seed", "8")["completions"][0]["completion"]
    several = run_json(*args, *sample, "--seed", "7", "--num-return-sequences", "3")["completions"]
    assert [c["sequence"] for c in several] == [0, 1, 2] and len({c["completion"] for c in several}) > 1

    greedy = run_json(*args, "--greedy")["completions"][0]
    stop = greedy["completion"][4:7]  # a piece of the text it will produce
    stopped = run_json(*args, "--greedy", "--stop", stop)["completions"][0]
    assert stopped["finish_reason"] == "stop" and stop not in stopped["completion"]
    assert greedy["completion"].startswith(stopped["completion"])
    assert stopped["completion_tokens"] < greedy["completion_tokens"]


@pytest.mark.llama_cpp
def test_prompt_longer_than_the_context_is_bad_input(tiny, llama_cpp):
    result = olmo("generate", str(tiny), "-p", "word " * 80, "-n", "4", "--engine", "llama.cpp", "--dtype", "float32")
    assert_one_line_error(result, 5, "context of 64")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--quantize", "int8-dynamic"), "cannot run"),
        (("--load-in-4bit",), "cannot run"),
        (("--compile",), "--compile is for --engine torch"),
        (("--device", "cuda"), "runs on the CPU"),
    ],
)
def test_what_cannot_map_is_refused_with_exit_8(tiny, args, message):
    result = olmo("generate", str(tiny), "-p", "Hi", "--engine", "llama.cpp", *args)
    if "--load-in-4bit" in args and result.exit_code == 8 and "bitsandbytes" in result.stderr:
        pytest.skip("bitsandbytes is not installed here: refused earlier, for that")
    assert_one_line_error(result, 8, message)


def test_a_checkpoint_saved_quantized_is_refused_before_any_conversion(tiny, tmp_path):
    saved = tmp_path / "int8"
    saved.mkdir()
    for file in tiny.iterdir():
        (saved / file.name).write_bytes(file.read_bytes())
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, "quantization_config": {"quant_method": "torchao"}}))
    result = olmo("generate", str(saved), "-p", "Hi", "--engine", "llama.cpp")
    if "needs llama-cpp-python" in result.stderr:
        pytest.skip("llama-cpp-python is not installed: refused earlier, for that")
    assert_one_line_error(result, 8, "saved quantized (torchao)")


def test_unknown_engine_is_a_usage_error(tiny):
    assert_one_line_error(olmo("generate", str(tiny), "-p", "Hi", "--engine", "vllm"), 2, "unknown --engine")


def test_missing_llama_cpp_python_is_one_line_and_exit_8(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    result = olmo("generate", str(tiny), "-p", "Hi", "--engine", "llama.cpp")
    assert_one_line_error(result, 8, "needs llama-cpp-python")
    assert "pip install llama-cpp-python" in result.stderr


def test_dtype_and_quantize_map_to_gguf_outtypes():
    assert gguf_outtype("float32", None) == "f32"
    assert gguf_outtype("bf16", None) == "bf16"
    assert gguf_outtype("float16", None) == "f16"
    assert gguf_outtype("auto", "int8") == "q8_0"
    assert gguf_outtype("auto", None) == "f16"


def test_native_bf16_cpus_are_told_from_their_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    assert not cpu_prefers_bf16(info)
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert cpu_prefers_bf16(info)
    assert not cpu_prefers_bf16(tmp_path / "missing")


def test_auto_dtype_on_the_cpu_is_bf16_only_for_float32_checkpoints_on_native_bf16_cpus(tmp_path, monkeypatch):
    from olmo_cli.loading import devices

    (tmp_path / "config.json").write_text(json.dumps({"dtype": "float32"}))
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_prefers_bf16", lambda: True)
    assert pick_dtype("auto", cpu, tmp_path) == torch.bfloat16
    assert pick_dtype("float32", cpu, tmp_path) == torch.float32  # asked for: kept
    (tmp_path / "config.json").write_text(json.dumps({"dtype": "float16"}))
    assert pick_dtype("auto", cpu, tmp_path) == torch.float16  # a 16-bit checkpoint keeps its own dtype
    (tmp_path / "config.json").write_text(json.dumps({"dtype": "float32"}))
    monkeypatch.setattr(devices, "cpu_prefers_bf16", lambda: False)
    assert pick_dtype("auto", cpu, tmp_path) == torch.float32  # emulated bf16 is slower: float32 stays


def test_bf16_logits_are_within_tolerance_of_float32(tiny):
    """What makes bf16 an acceptable default on the CPU: the logits stay close to float32's."""
    from olmo_cli.loading import load_model

    ids = load_model(str(tiny), dtype="float32").tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        full = load_model(str(tiny), dtype="float32").model(ids).logits
        half = load_model(str(tiny), dtype="bfloat16").model(ids).logits.float()
    assert (half - full).abs().max() <= TOLERANCE["bfloat16"] * full.abs().max()  # olmo convert --verify's
    assert (half.argmax(-1) == full.argmax(-1)).float().mean() >= 0.9


def test_generate_says_when_auto_picked_bf16_on_the_cpu(tiny, monkeypatch):
    from olmo_cli.loading import devices

    monkeypatch.setattr(devices, "cpu_prefers_bf16", lambda: True)
    result = olmo("generate", str(tiny), "-p", "Hi", "-n", "2", "--greedy", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dtype"] == "bfloat16"
    assert "this CPU computes bf16 natively" in result.stderr


@pytest.mark.llama_cpp
def test_sweep_of_hub_revisions_one_gguf_per_commit(fake_hub, tmp_path, llama_cpp):
    from tiny_models import make_hf_with_tokenizer

    repo = "allenai/OLMo-1B-hf"
    revisions = {"step1000-tokens4B": 1, "step2000-tokens8B": 2}
    branches = {}
    for name, seed in revisions.items():
        directory = make_hf_with_tokenizer(tmp_path / name, seed=seed, **SHAPE)
        branches[name] = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    fake_hub.add_repo(repo, branches=branches)
    args = ("-p", "Hello", "--greedy", "-n", "6", "--dtype", "float32")
    runs = run_json(repo, "-r", "step2000-tokens8B", "-r", "step1000-tokens4B", *args, "--engine", "llama.cpp")
    assert [r["revision"] for r in runs] == ["step1000-tokens4B", "step2000-tokens8B"]
    ggufs = {Path(r["gguf"]).name for r in runs}
    assert len(ggufs) == 2 and all(r["commit"] in Path(r["gguf"]).name for r in runs)  # keyed by the commit
    for each in runs:
        local = run_json(str(tmp_path / each["revision"]), *args)
        assert each["completions"][0]["completion"] == local["completions"][0]["completion"]


@pytest.mark.llama_cpp
def test_a_damaged_cached_gguf_is_one_line_bad_input(tiny, llama_cpp):
    args = (str(tiny), "-p", "Hi", "-n", "2", "--greedy", "--engine", "llama.cpp", "--dtype", "float16")
    gguf = Path(run_json(*args)["gguf"])
    gguf.write_bytes(gguf.read_bytes()[:4096])  # cut short, as by a disk problem or a hand edit
    assert_one_line_error(olmo("generate", *args), 5, "llama.cpp cannot load")
