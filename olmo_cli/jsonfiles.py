"""JSON files the way every command reads and writes them: a damaged one is a one-line BadInputError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from olmo_cli.errors import BadInputError, first_line


def read_json_object(path: Path, what: str = "") -> dict[str, Any]:
    """The JSON object in `path` (`what` names it in the error, e.g. "tokenizer.json")."""
    path = Path(path)
    label = f"{what} at {path}" if what else str(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInputError(f"cannot read {label}: {first_line(error)}") from None
    if not isinstance(value, dict):
        raise BadInputError(f"{label} is not a JSON object")
    return value


def read_json_object_or_none(path: Path) -> dict[str, Any] | None:
    """For optional files whose absence or damage only means "not known" (a dtype, a quant method)."""
    try:
        return read_json_object(path)
    except BadInputError:
        return None


def write_json(path: Path, value: Any) -> None:
    Path(path).write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
