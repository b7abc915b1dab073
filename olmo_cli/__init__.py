"""olmo: find, fetch, convert, shrink and run OLMo checkpoints.

The public API is imported lazily so that `import olmo_cli` stays cheap (no torch, no
transformers) for the commands that do not need them.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module that defines it; filled in as the features land.
_LAZY = {
    "load_model": "olmo_cli.loading",
    "convert": "olmo_cli.checkpoints.convert",
    "resolve": "olmo_cli.hub.resolve",
    "parse_revision": "olmo_cli.revisions.names",
    "evaluate": "olmo_cli.evaluate",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'olmo_cli' has no attribute {name!r}")
