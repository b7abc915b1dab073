"""Helpers shared by the test files: run the CLI, read its one-line errors, record what a core
function reports, and see which modules a command imports in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner, Result

from olmo_cli.cli.app import app
from olmo_cli.reporting import Reporter


def olmo(*argv, env: dict | None = None, input: str | None = None) -> Result:
    """`olmo ARGV...` in this process (stdout and stderr kept apart); arguments may be paths."""
    return CliRunner().invoke(app, [str(arg) for arg in argv], env=env, input=input)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def error_line(result: Result) -> str:
    """The one `error:` line a failure prints (and no traceback)."""
    lines = error_lines(result)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def assert_one_line_error(result: Result, code: int, *fragments: str) -> str:
    """Exit `code`, exactly one `error:` line holding every fragment, no traceback; the line."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    line = error_line(result)
    for fragment in fragments:
        assert fragment in line, line
    return line


class Recorder(Reporter):
    """A Reporter that keeps what it is told."""

    def __init__(self):
        self.infos: list[str] = []
        self.warnings: list[str] = []

    def info(self, message: str) -> None:
        self.infos.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


_PROBE = """
import json, sys
out, argv = sys.argv[1], sys.argv[2:]
sys.argv = ["olmo", *argv]
from olmo_cli.cli.app import main
try:
    main()
except SystemExit:
    pass
with open(out, "w") as handle:
    json.dump(sorted(sys.modules), handle)
"""


def modules_after(tmp_path: Path, argv: list[str], env: dict | None = None) -> tuple[set[str], str]:
    """The modules `olmo ARGV...` imported, run in a fresh interpreter, and what it printed."""
    out = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *argv],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.exists(), done.stderr
    return set(json.loads(out.read_text())), done.stdout
