"""Data sources for `olmo eval`: a text file, a JSONL file, or a bundled sample, as documents.

A source is plain data (a path, how to cut it into documents, and the sha256 of the file's bytes),
so it can be pickled into a unit of work and re-read anywhere; reading it again checks the hash,
so a file edited mid-sweep is an error, never rows filed under the old data's key.
Every check here runs when the source is built, before any model is loaded or any row written.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from olmo_cli.errors import BadInputError, NotFoundError, UsageError, first_line

TEXT = "text"
JSONL = "jsonl"
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "data" / "samples"
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n")


@dataclass(frozen=True)
class DataSource:
    """Where the documents come from and how they are cut; `sha256` is of the file's bytes."""

    name: str
    path: str
    kind: str = TEXT
    field: str = "text"  # JSONL only
    split_blank_lines: bool = False  # text only
    max_documents: int | None = None
    sha256: str = ""

    @property
    def key(self) -> dict:
        """What a row's key needs: the bytes and the way they become documents (not the file's name)."""
        cut = {"field": self.field} if self.kind == JSONL else {"split_blank_lines": self.split_blank_lines}
        return {"sha256": self.sha256, "kind": self.kind, "max_documents": self.max_documents, **cut}

    def as_json(self) -> dict:
        return {"name": self.name, "sha256": self.sha256}

    def documents(self) -> list[str]:
        raw = _read(Path(self.path))
        if hashlib.sha256(raw).hexdigest() != self.sha256:
            raise BadInputError(f"{self.path} changed since the sweep began", hint="run the command again")
        return _documents(self, raw)


def text_source(path, *, split_blank_lines: bool = False, max_documents: int | None = None) -> DataSource:
    """One document per file, or one per blank-line-separated block."""
    return _checked(
        DataSource(Path(path).name, str(Path(path).resolve()), TEXT, "text", split_blank_lines, max_documents)
    )


def jsonl_source(path, *, field: str = "text", max_documents: int | None = None) -> DataSource:
    """One document per line, from `field`."""
    if not field:
        raise UsageError("--field needs a name")
    return _checked(DataSource(Path(path).name, str(Path(path).resolve()), JSONL, field, False, max_documents))


def sample_source(name: str = "english", *, max_documents: int | None = None) -> DataSource:
    """A text bundled with olmo (olmo_cli/data/samples/NAME.txt), one document per paragraph."""
    path = SAMPLES_DIR / f"{name}.txt"
    if not path.is_file():
        known = ", ".join(sample_names()) or "none"
        raise NotFoundError(f"no bundled sample '{name}'", hint=f"bundled samples: {known}")
    source = DataSource(f"sample:{name}", str(path), TEXT, "text", True, max_documents)
    return _checked(source)


def sample_names() -> list[str]:
    return sorted(p.stem for p in SAMPLES_DIR.glob("*.txt"))


def _checked(source: DataSource) -> DataSource:
    if source.max_documents is not None and source.max_documents < 1:
        raise UsageError("--max-documents must be at least 1")
    raw = _read(Path(source.path))
    source = DataSource(**{**source.__dict__, "sha256": hashlib.sha256(raw).hexdigest()})
    _documents(source, raw)  # every problem with the file shows now, not at revision 7
    return source


def _read(path: Path) -> bytes:
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give a file")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"no such data file: {path}") from None
    except OSError as error:
        raise BadInputError(f"cannot read {path}: {error.strerror or error}") from None


def _documents(source: DataSource, raw: bytes) -> list[str]:
    if not raw.strip():
        raise BadInputError(f"{source.path} is empty", hint="give a file with some text in it")
    if b"\0" in raw:
        raise BadInputError(f"{source.path} is a binary file, not text", hint="give UTF-8 text or JSONL")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadInputError(
            f"{source.path} is not UTF-8 text (byte {error.start})", hint="give UTF-8 text or JSONL"
        ) from None
    if source.kind == JSONL:
        documents = _jsonl_documents(source, text)
    elif source.split_blank_lines:
        documents = [block.strip() for block in _BLANK_LINES.split(text) if block.strip()]
    else:
        documents = [text]
    if source.max_documents is not None:
        documents = documents[: source.max_documents]
    return documents


def _jsonl_documents(source: DataSource, text: str) -> list[str]:
    documents = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise BadInputError(f"{source.path} line {number} is not JSON: {first_line(error)}") from None
        if not isinstance(value, dict) or source.field not in value:
            raise BadInputError(
                f"{source.path} line {number} has no field '{source.field}'",
                hint="choose the field that holds the text with --field",
            )
        document = value[source.field]
        if not isinstance(document, str):
            raise BadInputError(f"{source.path} line {number}: field '{source.field}' is not a string")
        documents.append(document)
    return documents
