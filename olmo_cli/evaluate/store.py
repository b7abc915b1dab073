"""The results store: one JSON file per row, named by the row's key, each written atomically.

    <results dir>/<model>/<key>.json      model = the repo id with '/' as '--', or local--<dir name>

The key is the sha256 of exactly what determines a result: the model and its commit (or a local
directory's fingerprint), the data's sha256 and how it is cut (or the task), and the settings.
A file appears by a rename of a complete temporary sibling, so a reader (or a sweep killed
mid-write) never sees half a row; a damaged file counts as missing and is computed again.
Failures are not stored: a rerun tries them again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from olmo_cli.errors import BadInputError
from olmo_cli.paths import olmo_cache_dir

# Part of every key: bump it when a change to scoring changes what a row holds.
SCORING_VERSION = 1


def default_results_dir() -> Path:
    return olmo_cache_dir() / "eval"


def row_key(fields: dict[str, Any]) -> str:
    payload = json.dumps({"version": SCORING_VERSION, **fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def model_folder(model: str, local: bool) -> str:
    name = Path(model).name if local else model.replace("/", "--")
    return ("local--" if local else "") + "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


class ResultsStore:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_results_dir()

    def path(self, folder: str, key: str) -> Path:
        return self.root / folder / f"{key}.json"

    def get(self, folder: str, key: str) -> dict | None:
        try:
            record = json.loads(self.path(folder, key).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("key") == key else None

    def put(self, folder: str, key: str, record: dict) -> Path:
        """Write `record` under `key`: a hidden temporary sibling, flushed to disk, then renamed."""
        path = self.path(folder, key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump({**record, "key": key}, handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as error:
            raise BadInputError(
                f"cannot write a result into {path.parent}: {error.strerror or error}",
                hint="choose a results directory you can write to with --results",
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def commit_of(self, folder: str, revision: str) -> str | None:
        """The commit the newest stored row of `revision` was computed at (an offline fallback)."""
        newest: tuple[float, str] | None = None
        for path in (self.root / folder).glob("*.json"):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                row = record["row"]
                if row.get("revision") == revision and row.get("commit"):
                    stamp = path.stat().st_mtime
                    if newest is None or stamp > newest[0]:
                        newest = (stamp, row["commit"])
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
        return newest[1] if newest else None
