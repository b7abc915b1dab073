"""The CLI shell: lazy registration, startup imports, errors as one line."""

from __future__ import annotations

import pytest
from helpers import modules_after, olmo

from olmo_cli.cli.app import load_command
from olmo_cli.cli.registry import COMMANDS

HEAVY = ("torch", "transformers")


def test_version_does_not_import_torch_or_transformers(tmp_path):
    loaded, stdout = modules_after(tmp_path, ["--version"])
    assert stdout.startswith("olmo ")
    assert not [name for name in loaded if name.split(".")[0] in HEAVY]


def test_help_lists_every_command_without_importing_them_or_anything_heavy(tmp_path):
    loaded, stdout = modules_after(tmp_path, ["--help"])
    assert "list-revisions" in stdout
    assert not [module for module, _ in COMMANDS.values() if module in loaded]
    assert not [name for name in loaded if name.split(".")[0] in HEAVY]


def test_version():
    result = olmo("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("olmo ")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_registered_command_imports_and_has_help(name):
    command = load_command(name)
    result = olmo(name, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert command.name == name
    assert "--install-completion" not in result.output  # only the root app offers completion


def test_unknown_command_is_a_usage_error():
    result = olmo("no-such-command")
    assert result.exit_code == 2
