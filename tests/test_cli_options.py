"""olmo_cli/cli/options.py: one selection bundle, one option style, Enums for closed choices, plain usage lines."""

from __future__ import annotations

import re

import pytest
from helpers import olmo
from typer.testing import CliRunner

from olmo_cli.cli.app import app, load_command
from olmo_cli.cli.registry import COMMANDS

SELECTING = ("list-revisions", "download", "verify", "cache rm", "generate")
SELECTION_FLAGS = ("--from", "--to", "--every", "--log-spaced", "--stage", "--limit")


def command(path: str):
    name, *sub = path.split()
    loaded = load_command(name)
    return loaded.commands[sub[0]] if sub else loaded


def helptext(path: str) -> str:
    result = olmo(*path.split(), "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("path", SELECTING)
def test_every_selecting_command_has_the_six_options_in_one_order(path):
    names = [opt for param in command(path).params for opt in param.opts if opt in SELECTION_FLAGS]
    assert names == list(SELECTION_FLAGS)


@pytest.mark.parametrize("path", SELECTING)
def test_a_bad_selection_is_a_usage_error_before_any_io(path):
    args = [*path.split(), *(["allenai/OLMo-1B"] if path != "generate" else ["-r", "main"]), "--every", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "--every must be at least 1, got 0" in result.stderr


@pytest.mark.parametrize(
    "path, choices",
    [
        ("convert", ["<hf|native|olmo-core|gguf>", "<auto|float32|bfloat16|float16>"]),
        ("quantize", ["<int8|int8-dynamic|int4|nf4|fp16|bf16>", "<auto|float32|bfloat16|float16>"]),
        ("generate", ["<auto|float32|bfloat16|float16>", "auto|cpu|cuda[:N]|mps", "int8|int8-dynamic|int4"]),
    ],
)
def test_closed_choices_are_listed_in_help(path, choices):
    text = helptext(path)
    for choice in choices:
        assert choice in text


def test_usage_lines_name_values_not_types():
    for name in COMMANDS:
        paths = [f"cache {sub}" for sub in ("ls", "rm")] if name == "cache" else [name]
        for path in paths:
            text = helptext(path)
            usage = text.splitlines()[0]
            assert "{" not in usage and "<" not in usage, usage
            options = [line for line in text.splitlines() if line.lstrip().startswith("-")]
            assert not any(re.search(r"<(list\[str\]|int range|int|str|path)>", line) for line in options), path
    assert helptext("convert").splitlines()[0] == "Usage: olmo convert [OPTIONS] SRC DST"
    assert helptext("cache ls").splitlines()[0] == "Usage: olmo cache ls [OPTIONS] [REPO]"
    assert helptext("parse-revision").splitlines()[0] == "Usage: olmo parse-revision [OPTIONS] NAME..."


def test_json_is_one_parameter_name_everywhere():
    for name in COMMANDS:
        loaded = load_command(name)
        for each in getattr(loaded, "commands", {name: loaded}).values():
            flagged = [param.name for param in each.params if "--json" in param.opts]
            assert flagged in ([], ["as_json"]), (name, flagged)


@pytest.mark.parametrize(
    "words, expected",
    [
        ("olmo convert a b --to ", ["hf", "native", "olmo-core", "gguf"]),
        ("olmo quantize a b --method int", ["int8", "int8-dynamic", "int4"]),
        ("olmo generate --dtype b", ["bfloat16"]),
        ("olmo generate --device c", ["cpu", "cuda"]),
        ("olmo generate --quantize i", ["int8", "int8-dynamic", "int4"]),
    ],
)
def test_tab_completes_the_closed_choices(words, expected):
    env = {"_OLMO_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    result = CliRunner().invoke(app, [], env=env, prog_name="olmo")
    assert result.exit_code == 0 and result.stdout.split() == expected
