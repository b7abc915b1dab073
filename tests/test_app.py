"""The CLI shell: lazy registration, startup imports, errors as one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from olmo_cli.cli.app import app, load_command
from olmo_cli.cli.registry import COMMANDS

HEAVY = ("torch", "transformers")


def _modules_after(*argv: str) -> set[str]:
    code = (
        "import sys, json\n"
        "from olmo_cli.cli.app import app\n"
        f"try:\n    app(args={list(argv)!r}, prog_name='olmo')\n"
        "except SystemExit:\n    pass\n"
        "sys.stderr.write('\\nMODULES=' + json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    marker = done.stderr.rsplit("MODULES=", 1)
    assert len(marker) == 2, done.stderr
    return set(json.loads(marker[1]))


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("--version",),
    ],
)
def test_light_commands_do_not_import_torch_or_transformers(argv):
    loaded = _modules_after(*argv)
    assert not [name for name in loaded if name.split(".")[0] in HEAVY]


def test_help_lists_every_command_without_importing_them():
    loaded = _modules_after("--help")
    assert not [module for module, _ in COMMANDS.values() if module in loaded]


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("olmo ")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_registered_command_imports_and_has_help(name):
    command = load_command(name)
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert command.name == name
    assert "--install-completion" not in result.output  # only the root app offers completion


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(app, ["no-such-command"])
    assert result.exit_code == 2
