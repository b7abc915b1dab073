"""Bad input for generate and quantize: out-of-range sampling settings, binary or closed stdin,
a tokenizer larger than the model's vocabulary, a full disk. Each a documented exit code and one
line naming the problem, no traceback, nothing left at DST.
"""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import pytest
from helpers import assert_nothing_at, assert_one_line_error, olmo
from tiny_models import make_hf_with_tokenizer, make_native

from olmo_cli import oserrors


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_hf_with_tokenizer(tmp_path_factory.mktemp("gen") / "hf")


@pytest.fixture(scope="module")
def small_vocab(tmp_path_factory) -> Path:
    """A test-sized native checkpoint (64 embedding rows) naming the real 50k-id OLMo tokenizer:
    the README's own `olmo quantize ./step1000-unsharded out-bf16 --method bf16` on a tiny model."""
    return make_native(tmp_path_factory.mktemp("small") / "step1000-unsharded")


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--seed", "-1"], "--seed must be between 0 and 4294967295"),
        (["--seed", "4294967296"], "--seed must be between 0 and 4294967295"),
        (["--temperature", "nan"], "--temperature must be a finite number"),
        (["--temperature", "inf"], "--temperature must be a finite number"),
        (["--temperature", "-1"], "--temperature must be 0 or more"),
        (["--top-p", "nan"], "--top-p must be in (0, 1]"),
        (["--top-p", "inf"], "--top-p must be in (0, 1]"),
        (["--top-p", "0"], "--top-p must be in (0, 1]"),
        (["--top-k", "-1"], "--top-k must be 0 (off) or more"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
        (["--max-new-tokens", str(10**12)], "beyond any OLMo context"),
        (["--num-return-sequences", "0"], "--num-return-sequences must be at least 1"),
        (["--stop", ""], "--stop needs a non-empty string"),
    ],
    ids=str,
)
def test_sampling_settings_are_checked_before_loading(model, options, fragment):
    assert_one_line_error(olmo("generate", model, "-p", "Hello", *options), 2, fragment)


def test_binary_stdin(model):
    assert_one_line_error(olmo("generate", model, input=b"\xff\xfe\x00binary\x89PNG"), 5, "stdin is not UTF-8 text")


def test_binary_prompts_file(model, tmp_path):
    file = tmp_path / "prompts.bin"
    file.write_bytes(b"\xff\xfe\x00\x89")
    assert_one_line_error(olmo("generate", model, "--prompts-file", file), 5, "cannot read")


def test_binary_stdin_as_prompts_file(model):
    assert_one_line_error(
        olmo("generate", model, "--prompts-file", "-", input=b"\xc3\x28"), 5, "stdin is not UTF-8 text"
    )


def test_empty_stdin_is_an_empty_prompt(model):
    assert_one_line_error(olmo("generate", model, input=b""), 5, "empty prompt")


def test_missing_prompts_file(model, tmp_path):
    assert_one_line_error(olmo("generate", model, "--prompts-file", tmp_path / "nope.txt"), 3, "no such prompts file")


def test_an_empty_model_name(tmp_path):
    assert_one_line_error(olmo("generate", "", "-p", "x"), 2, "the model is empty")


def test_a_tokenizer_with_ids_beyond_the_embedding_is_refused_clearly(small_vocab):
    line = assert_one_line_error(olmo("generate", small_vocab, "-p", "Hello world"), 5, "out of range", "64 rows")
    assert "IndexError" not in line


def test_the_readme_quantize_example_works_on_a_test_sized_checkpoint(small_vocab, tmp_path):
    dst = tmp_path / "out-bf16"
    result = olmo("quantize", small_vocab, dst, "--method", "bf16")
    assert result.exit_code == 0, result.output
    assert "no quality check: the tokenizer gives id" in result.stderr
    assert (dst / "model.safetensors").is_file()


Usage = namedtuple("Usage", "total used free")


def test_quantize_refuses_a_disk_without_room_before_writing(model, tmp_path, monkeypatch):
    monkeypatch.setattr(oserrors.shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 10, 10))
    dst = tmp_path / "q"
    assert_one_line_error(
        olmo("quantize", model, dst, "--method", "bf16", "--no-check"), 5, "no space left", "needed ~"
    )
    assert_nothing_at(dst)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--method", "int3"], "'int3' is not one of"),
        (["--method", "bf16", "--dtype", "nan"], "'nan' is not one of"),
    ],
)
def test_quantize_choices(model, tmp_path, argv, fragment):
    """--method and --dtype are Enums: click refuses other values with its usage error (exit 2)."""
    dst = tmp_path / "q"
    result = olmo("quantize", model, dst, *argv)
    assert result.exit_code == 2 and fragment in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert_nothing_at(dst)


def test_quantize_dtype_contradicting_the_method(model, tmp_path):
    dst = tmp_path / "q"
    assert_one_line_error(olmo("quantize", model, dst, "--method", "bf16", "--dtype", "float16"), 2, "contradicts")
    assert_nothing_at(dst)


def test_quantize_into_an_empty_path(model):
    result = olmo("quantize", model, "", "--method", "bf16")
    assert result.exit_code == 2 and "the path is empty" in result.stderr


def test_a_closed_stdin_reads_as_empty(model):
    import subprocess
    import sys

    result = subprocess.run(
        f"{sys.executable} -m olmo_cli generate {model} <&-", shell=True, capture_output=True, text=True, timeout=120
    )
    assert_one_line_error(result, 5, "empty prompt")
