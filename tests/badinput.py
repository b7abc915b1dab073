"""Assertions the bad-input tests share: one error line naming the problem, the documented exit
code, no traceback, and nothing left behind."""

from __future__ import annotations

from pathlib import Path


def assert_fails(result, code: int, *fragments: str) -> str:
    """`result` (a CliRunner result or a CompletedProcess) failed with `code` and one `error:` line
    holding every fragment; returns that line."""
    exit_code = getattr(result, "exit_code", getattr(result, "returncode", None))
    stderr = result.stderr
    output = (getattr(result, "stdout", "") or "") + (stderr or "")
    assert exit_code == code, f"exit {exit_code}, wanted {code}:\n{output}"
    assert "Traceback" not in output, output
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert "internal error" not in errors[0], errors[0]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    other = [line for line in stderr.splitlines() if line.strip() and not line.startswith(("error: ", "hint: "))]
    assert not [line for line in other if "Warning" in line], stderr  # no library warnings leak
    return errors[0]


def assert_nothing_at(dst: Path) -> None:
    """Neither `dst` nor a temporary sibling of it (`.DST.partial-*`, `.DST.old-*`) exists."""
    dst = Path(dst)
    assert not dst.exists(), f"{dst} was left behind"
    if dst.parent.is_dir():
        left = [p.name for p in dst.parent.iterdir() if p.name.startswith(f".{dst.name}.")]
        assert not left, left
