"""`olmo generate` and the generation core: streaming, batches, seeds, stop strings, JSON, sweeps, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import assert_one_line_error, olmo, watch_loaded_models
from tiny_models import make_hf_with_tokenizer

from olmo_cli.errors import BadInputError, UsageError
from olmo_cli.generate import SamplingParams, StopStreamer, generate, read_prompts
from olmo_cli.loading.devices import cpu_prefers_bf16

SHAPE = dict(max_position_embeddings=64)
REPO = "allenai/OLMo-1B-hf"


def make_model(directory: Path, seed: int = 0) -> Path:
    return make_hf_with_tokenizer(directory, seed=seed, **SHAPE)


@pytest.fixture(scope="module")
def tiny(tiny_model) -> Path:
    return tiny_model(**SHAPE)


def completions(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["completions"]


def test_single_prompt_streams_the_same_text_json_reports(tiny):
    streamed = olmo("generate", str(tiny), "-p", "Language modeling is", "--greedy", "-n", "12")
    assert streamed.exit_code == 0, streamed.output
    as_json = completions(olmo("generate", str(tiny), "-p", "Language modeling is", "--greedy", "-n", "12", "--json"))
    assert len(as_json) == 1
    assert streamed.stdout == as_json[0]["completion"] + "\n"
    assert as_json[0]["completion_tokens"] == 12 and as_json[0]["prompt_tokens"] == 3
    assert as_json[0]["finish_reason"] == "length"


def test_json_has_prompt_counts_and_timings(tiny):
    result = olmo("generate", str(tiny), "-p", "Hello", "-n", "5", "--seed", "1", "--json")
    payload = json.loads(result.stdout)
    auto = "bfloat16" if cpu_prefers_bf16() else "float32"  # a float32 checkpoint on a CPU with native bf16 or not
    assert payload["device"] == "cpu" and payload["dtype"] == auto and payload["repo"] is None
    assert payload["completions"][0]["prompt"] == "Hello"
    timings = payload["timings"]
    assert timings["new_tokens"] == 5 and timings["tokens_per_second"] > 0
    assert 0 < timings["first_token_seconds"] <= timings["generate_seconds"]
    assert timings["load_seconds"] > 0


def test_stats_go_to_stderr(tiny):
    result = olmo("generate", str(tiny), "-p", "Hello", "-n", "4", "--greedy", "--stats")
    assert result.exit_code == 0, result.output
    assert "first token" in result.stderr and "tokens/s" in result.stderr
    assert "tokens/s" not in result.stdout


def test_same_seed_same_text_other_seed_other_text(tiny):
    args = (
        str(tiny),
        "-p",
        "Once upon a time",
        "-n",
        "16",
        "--json",
        "--temperature",
        "1.5",
        "--top-k",
        "0",
        "--top-p",
        "1",
    )
    one = completions(olmo("generate", *args, "--seed", "7"))[0]["completion"]
    again = completions(olmo("generate", *args, "--seed", "7"))[0]["completion"]
    other = completions(olmo("generate", *args, "--seed", "8"))[0]["completion"]
    assert one == again
    assert one != other


def test_stdin_is_one_prompt(tiny):
    piped = completions(olmo("generate", str(tiny), "--greedy", "-n", "6", "--json", input="Once upon\na time\n"))
    assert [c["prompt"] for c in piped] == ["Once upon\na time"]


def test_prompts_file_runs_one_left_padded_batch_equal_to_single_runs(tiny, tmp_path):
    prompts = ["Hello", "The capital of France is", "1 2 3 4 5 6"]
    file = tmp_path / "prompts.txt"
    file.write_text("\n".join([prompts[0], "", *prompts[1:]]) + "\n")
    batch = completions(olmo("generate", str(tiny), "-f", str(file), "--greedy", "-n", "8", "--json"))
    assert [c["prompt"] for c in batch] == prompts
    singles = [
        completions(olmo("generate", str(tiny), "-p", p, "--greedy", "-n", "8", "--json"))[0]["completion"]
        for p in prompts
    ]
    assert [c["completion"] for c in batch] == singles
    text = olmo("generate", str(tiny), "-f", str(file), "--greedy", "-n", "8")
    assert text.stdout.count("==> ") == 3 and singles[1] in text.stdout
    stdin_file = completions(
        olmo("generate", str(tiny), "-f", "-", "--greedy", "-n", "8", "--json", input="\n".join(prompts))
    )
    assert [c["completion"] for c in stdin_file] == singles


def test_num_return_sequences(tiny):
    result = completions(
        olmo(
            "generate",
            str(tiny),
            "-p",
            "Hi",
            "-n",
            "6",
            "--seed",
            "3",
            "--num-return-sequences",
            "3",
            "--json",
            "--temperature",
            "2",
            "--top-k",
            "0",
            "--top-p",
            "1",
        )
    )
    assert [c["sequence"] for c in result] == [0, 1, 2]
    assert len({c["completion"] for c in result}) > 1


def test_stop_string_ends_the_text_and_is_not_printed(tiny):
    full = completions(olmo("generate", str(tiny), "-p", "Hello", "--greedy", "-n", "12", "--json"))[0]["completion"]
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    expected = full[: full.index(stop)]
    stopped = completions(olmo("generate", str(tiny), "-p", "Hello", "--greedy", "-n", "12", "--json", "--stop", stop))[
        0
    ]
    assert stopped["completion"] == expected and stopped["finish_reason"] == "stop"
    assert stopped["completion_tokens"] < 12
    streamed = olmo("generate", str(tiny), "-p", "Hello", "--greedy", "-n", "12", "--stop", stop)
    assert streamed.stdout == expected + "\n"


def test_streamer_holds_back_a_possible_stop_string():
    class Chars:  # one character per token id
        def decode(self, ids, skip_special_tokens=True):
            return "".join(chr(i) for i in ids)

    sent = []
    streamer = StopStreamer(Chars(), ("END",), sent.append)
    streamer.put(None)  # the prompt
    for char in "abEN":
        streamer.put(_ids(ord(char)))
    assert "".join(sent) == "ab"  # "EN" may start "END"
    streamer.put(_ids(ord("x")))
    assert "".join(sent) == "abENx"
    for char in "yEND!":
        streamer.put(_ids(ord(char)))
    assert "".join(sent) == "abENxy"


def test_stopped_rows_count_their_tokens_not_the_padding():
    from types import SimpleNamespace

    from olmo_cli.generate import _completions

    class Chars:  # one character per token id; 0 is EOS (and the padding, as when pad = eos)
        pad_token_id = eos_token_id = 0

        def decode(self, ids, skip_special_tokens=True):
            return "".join(chr(i) for i in ids if i)

    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=0))
    rows = _ids(0).new_tensor([[ord(c) for c in "abENDx"] + [0, 0], [ord(c) for c in "abcdefgh"]])
    params = SamplingParams(max_new_tokens=8, greedy=True, stop=("END",))
    stopped, running = _completions(Chars(), model, ["p", "q"], [1, 1], rows, params)
    assert (stopped.completion, stopped.completion_tokens, stopped.finish_reason) == ("ab", 5, "stop")
    assert (running.completion, running.completion_tokens, running.finish_reason) == ("abcdefgh", 8, "length")


def _ids(value: int):
    import torch

    return torch.tensor([value])


def test_compile_on_cpu_is_unsupported_before_any_load(tiny, monkeypatch):
    import torch

    import olmo_cli.loading

    monkeypatch.setattr(olmo_cli.loading, "load_model", lambda *a, **k: pytest.fail("loaded a model"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cpu", "auto"):
        result = olmo("generate", str(tiny), "-p", "Hi", "--compile", "--device", device)
        assert result.exit_code == 8 and "CUDA" in result.stderr


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


@pytest.fixture
def hub_repo(fake_hub, tmp_path):
    revisions = {"step1000-tokens4B": 1, "step2000-tokens8B": 2, "step3000-tokens12B": 3}
    branches = {name: _files(make_model(tmp_path / name, seed=seed)) for name, seed in revisions.items()}
    branches["main"] = branches["step3000-tokens12B"]
    fake_hub.add_repo(REPO, branches=branches)
    return tmp_path


def test_generation_from_the_hub_at_a_named_revision(hub_repo):
    from_hub = json.loads(
        olmo("generate", REPO, "--revision", "step2000", "-p", "Hello", "--greedy", "-n", "6", "--json").stdout
    )
    assert from_hub["revision"] == "step2000-tokens8B" and from_hub["repo"] == REPO
    local = completions(
        olmo("generate", str(hub_repo / "step2000-tokens8B"), "-p", "Hello", "--greedy", "-n", "6", "--json")
    )
    assert from_hub["completions"][0]["completion"] == local[0]["completion"]


def test_sweep_across_revisions_in_training_order(hub_repo):
    args = (REPO, "-r", "step3000-tokens12B", "-r", "step1000-tokens4B", "-p", "Hello", "--greedy", "-n", "5")
    runs = json.loads(olmo("generate", *args, "--json").stdout)
    assert [r["revision"] for r in runs] == ["step1000-tokens4B", "step3000-tokens12B"]
    for each in runs:
        local = completions(
            olmo("generate", str(hub_repo / each["revision"]), "-p", "Hello", "--greedy", "-n", "5", "--json")
        )
        assert each["completions"][0]["completion"] == local[0]["completion"]
    table = olmo("generate", *args)
    assert table.exit_code == 0, table.output
    assert table.stdout.index("step1000-tokens4B") < table.stdout.index("step3000-tokens12B")
    selected = json.loads(
        olmo("generate", REPO, "--from", "step2000", "-p", "Hello", "--greedy", "-n", "3", "--json").stdout
    )
    assert [r["revision"] for r in selected] == ["step2000-tokens8B", "step3000-tokens12B"]


def test_sweep_table_prints_model_text_as_it_is(hub_repo, monkeypatch):
    import olmo_cli.generate

    real = olmo_cli.generate.generate

    def bracketed(*args, **kwargs):
        result = real(*args, **kwargs)
        result.completions[0].completion = "closing [/INST] and [bold]"
        return result

    monkeypatch.setattr(olmo_cli.generate, "generate", bracketed)
    table = olmo("generate", REPO, "-r", "step1000", "-r", "step2000", "-p", "Hello", "--greedy", "-n", "2")
    assert table.exit_code == 0, table.output
    assert table.stdout.count("closing [/INST] and [bold]") == 2


def test_sweep_holds_one_model_at_a_time(hub_repo, monkeypatch):
    models = watch_loaded_models(monkeypatch)
    result = olmo(
        "generate", REPO, "-r", "step1000", "-r", "step2000", "-r", "step3000", "-p", "Hello", "--greedy", "-n", "2"
    )
    assert result.exit_code == 0, result.output
    assert len(models) == 3


@pytest.mark.parametrize(
    "args, code, message",
    [
        ((), 2, "no model given"),
        (("--revision", "step123456789-tokens1B"), 3, "no known repo"),
        (("MODEL", "-p", ""), 5, "empty prompt"),
        (("MODEL", "-p", "word " * 80), 5, "context"),
        (("MODEL", "-p", "Hi", "--top-p", "1.5"), 2, "--top-p"),
        (("MODEL", "-p", "Hi", "--max-new-tokens", "0"), 2, "--max-new-tokens"),
        (("MODEL", "-p", "Hi", "--greedy", "--num-return-sequences", "2"), 2, "sampling"),
        (("MODEL", "-p", "Hi", "--quantize", "int3"), 2, "--quantize"),
        (("MODEL", "-p", "Hi", "--quantize", "int4", "--device", "cpu"), 8, "CUDA"),
        (("MODEL", "-p", "Hi", "--load-in-8bit", "--quantize", "int8"), 2, "one of"),
    ],
)
def test_bad_input_is_one_line_error(tiny, args, code, message):
    args = tuple(str(tiny) if a == "MODEL" else a for a in args)
    result = olmo("generate", *args, *(() if any(a.startswith("-p") for a in args) else ("-p", "Hi")), input="")
    assert_one_line_error(result, code, message)


def test_no_model_no_prompt_needs_a_model_first():
    result = olmo(
        "generate",
    )
    assert result.exit_code == 2 and "no model given" in result.stderr


def test_unknown_revision_on_the_hub(hub_repo):
    result = olmo("generate", REPO, "--revision", "step999999", "-p", "Hi")
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("error: ") and "999999" in result.stderr


def test_bitsandbytes_missing_when_asked_for(tiny, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a)
    )
    for flag in ("--load-in-8bit", "--load-in-4bit"):
        result = olmo("generate", str(tiny), "-p", "Hi", flag)
        assert result.exit_code == 8, result.output
        assert "bitsandbytes" in result.stderr and "hint: pip install" in result.stderr


@pytest.mark.parametrize("flag, method", [("--load-in-8bit", "8bit"), ("--load-in-4bit", "nf4")])
def test_bitsandbytes_quantizes_at_load_on_the_cpu(tmp_path, flag, method):
    # bitsandbytes' CPU 4-bit kernel needs widths that are multiples of its block size.
    model = make_hf_with_tokenizer(tmp_path / "wider", hidden_size=64, intermediate_size=256, **SHAPE)
    result = olmo("generate", str(model), "-p", "Hello there", flag, "--greedy", "-n", "4", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["quantization"] == method
    assert payload["completions"][0]["completion_tokens"] == 4


def test_sampling_params_defaults_are_the_model_cards():
    params = SamplingParams()
    assert (params.max_new_tokens, params.top_k, params.top_p, params.sampling) == (100, 50, 0.95, True)
    assert SamplingParams(temperature=0).generate_kwargs()["do_sample"] is False
    with pytest.raises(UsageError):
        SamplingParams(stop=("",)).validate()


def test_read_prompts():
    assert read_prompts("a\n\n b \n", one_per_line=True) == ["a", " b "]
    assert read_prompts("a\nb\n", one_per_line=False) == ["a\nb"]


def test_core_rejects_empty_prompts(tiny):
    from olmo_cli.loading import load_model

    loaded = load_model(str(tiny))
    with pytest.raises(BadInputError, match="empty prompt"):
        generate(loaded, ["  "], SamplingParams(max_new_tokens=2))
