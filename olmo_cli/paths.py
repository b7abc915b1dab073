"""Where olmo keeps its own files (never the HF cache, which `olmo_cli.hub.env` locates)."""

from __future__ import annotations

import os
from pathlib import Path


def olmo_cache_dir() -> Path:
    """`$OLMO_CACHE_DIR`, else `$XDG_CACHE_HOME/olmo`, else `~/.cache/olmo`; read at call time."""
    explicit = os.environ.get("OLMO_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "olmo" if xdg else Path.home() / ".cache" / "olmo"


def make_cache_subdir(path: Path) -> Path:
    """mkdir -p `path`, a folder of olmo's cache; an OLMO_CACHE_DIR that is a file (or lies under
    one) is named as the problem, instead of a bare 'Not a directory'."""
    from olmo_cli.errors import BadInputError

    existing = Path(path)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BadInputError(
            f"olmo's cache directory {olmo_cache_dir()} cannot be used: {existing} is a file",
            hint="point OLMO_CACHE_DIR at a directory (or unset it)",
        )
    path.mkdir(parents=True, exist_ok=True)
    return path
