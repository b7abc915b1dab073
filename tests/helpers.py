"""Helpers shared by the test files: run the CLI, read its one-line errors, record what a core
function reports, watch that a sweep holds one model at a time, and see which modules a command
imports in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner, Result

from olmo_cli.cli.app import app
from olmo_cli.reporting import Reporter


def olmo(*argv, env: dict | None = None, input: str | bytes | None = None) -> Result:
    """`olmo ARGV...` in this process (stdout and stderr kept apart); arguments may be paths."""
    return CliRunner().invoke(app, [str(arg) for arg in argv], env=env, input=input)


def error_lines(result: Result | subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def error_line(result: Result | subprocess.CompletedProcess) -> str:
    """The one `error:` line a failure prints (and no traceback, on either stream)."""
    lines = error_lines(result)
    output = (result.stdout or "") + (result.stderr or "")
    assert len(lines) == 1 and "Traceback" not in output, result.stderr
    return lines[0]


def assert_one_line_error(result: Result | subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    """Exit `code` (a CliRunner result or a finished subprocess), exactly one `error:` line holding
    every fragment, not an internal error, no traceback, no library warning leaking onto stderr;
    the line."""
    exit_code = result.returncode if isinstance(result, subprocess.CompletedProcess) else result.exit_code
    assert exit_code == code, (exit_code, result.stdout, result.stderr)
    line = error_line(result)
    assert "internal error" not in line, line
    for fragment in fragments:
        assert fragment in line, line
    other = [text for text in result.stderr.splitlines() if text.strip() and not text.startswith(("error: ", "hint: "))]
    assert not [text for text in other if "Warning" in text], result.stderr
    return line


def assert_nothing_at(dst: Path) -> None:
    """Neither `dst` nor a temporary sibling of it (`.DST.partial-*`, `.DST.old-*`) exists."""
    dst = Path(dst)
    assert not dst.exists(), f"{dst} was left behind"
    if dst.parent.is_dir():
        left = [p.name for p in dst.parent.iterdir() if p.name.startswith(f".{dst.name}.")]
        assert not left, left


def watch_loaded_models(monkeypatch) -> list:
    """Patch olmo_cli.loading.load_model so that each load first asserts (after a garbage
    collection) that no model loaded before is still alive; the weak references to the models
    loaded, in order, to count the loads."""
    import gc
    import weakref

    import olmo_cli.loading

    real = olmo_cli.loading.load_model
    models: list = []

    def load_and_watch(*args, **kwargs):
        gc.collect()
        assert all(ref() is None for ref in models), "the previous revision's model is still alive"
        loaded = real(*args, **kwargs)
        models.append(weakref.ref(loaded.model))
        return loaded

    monkeypatch.setattr(olmo_cli.loading, "load_model", load_and_watch)
    return models


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


class InProcessExecutor:
    """A 'remote' executor (its work is pickled-style: no closures over the driver) that runs here,
    in order, and records what it was given, to see what a sweep schedules."""

    name = "in-process"
    remote = True

    def __init__(self):
        self.given: list = []

    def check_shared(self, paths) -> None: ...

    def map(self, fn, items):
        self.given += items
        for index, item in enumerate(items):
            yield index, fn(item)
