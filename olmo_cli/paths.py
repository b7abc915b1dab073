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
