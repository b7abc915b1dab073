"""Rows for people and spreadsheets: the sweep table and the CSV file."""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from pathlib import Path

from olmo_cli.errors import BadInputError

CSV_COLUMNS = (
    "model",
    "revision",
    "step",
    "tokens",
    "commit",
    "data",
    "data_sha256",
    "task",
    "loss",
    "perplexity",
    "bits_per_byte",
    "n_tokens",
    "n_bytes",
    "seconds",
    "metrics",
    "cached",
    "error",
)


def table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """One line per (model, revision): revision, tokens, then loss/ppl/bpb per data source and
    one column per task metric; a model column when there are several models."""
    from olmo_cli.revisions.names import format_tokens

    several = len({row["model"] for row in rows}) > 1
    measures: list[str] = []  # column groups in first-seen order
    lines: dict[tuple, dict] = {}
    for row in rows:
        line = lines.setdefault((row["model"], row["revision"], row["commit"]), {"errors": []})
        line["row"] = row
        if row.get("error"):
            line["errors"].append(row["error"])
            continue
        if row.get("task"):
            for metric, value in (row.get("metrics") or {}).items():
                column = f"{row['task']} {metric}"
                line[column] = f"{value:.4f}"
                if column not in measures:
                    measures.append(column)
        elif row.get("data"):
            name = row["data"]["name"]
            for short, field, digits in (("loss", "loss", 4), ("ppl", "perplexity", 2), ("bpb", "bits_per_byte", 4)):
                column = f"{name} {short}"
                line[column] = f"{row[field]:.{digits}f}"
                if column not in measures:
                    measures.append(column)
    columns = (["model"] if several else []) + ["revision", "tokens", *measures]
    any_error = any(line["errors"] for line in lines.values())
    if any_error:
        columns.append("error")
    out = []
    for (model, revision, _), line in lines.items():
        tokens = line["row"].get("tokens")
        cells = ([model] if several else []) + [revision or "(local)", format_tokens(tokens) if tokens else ""]
        cells += [line.get(column, "") for column in measures]
        if any_error:
            cells.append(line["errors"][0] if line["errors"] else "")
        out.append(cells)
    return columns, out


def csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        data = row.get("data") or {}
        flat = {**row, "data": data.get("name"), "data_sha256": data.get("sha256")}
        flat["metrics"] = json.dumps(row["metrics"], sort_keys=True) if row.get("metrics") else None
        writer.writerow({column: flat.get(column) for column in CSV_COLUMNS})
    return buffer.getvalue()


def write_atomic(path: Path, content: bytes) -> None:
    """Write `content` to `path` through a hidden temporary sibling and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(content)
        os.replace(tmp, path)
    except OSError as error:
        raise BadInputError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        tmp.unlink(missing_ok=True)


def check_output_file(path: Path, option: str) -> None:
    """An output file's folder must exist: said before the sweep, not after an hour of scoring."""
    parent = Path(path).absolute().parent
    if not parent.is_dir():
        from olmo_cli.errors import NotFoundError

        raise NotFoundError(f"{option} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise BadInputError(f"{option} {path}: cannot write into {parent}")
