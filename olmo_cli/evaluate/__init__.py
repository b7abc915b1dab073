"""`olmo eval`: how a model's loss, perplexity, bits per byte and task scores move across revisions.

    import olmo_cli
    rows = olmo_cli.evaluate("allenai/OLMo-1B-hf", ["step20000", "main"], olmo_cli.evaluate.sample_source())

`olmo_cli.evaluate` is both this package and, called, its `evaluate` function (the issue's API
name and the DESIGN's package name are one word).
"""

from __future__ import annotations

import sys
import types

from olmo_cli.evaluate.api import evaluate
from olmo_cli.evaluate.data import DataSource, jsonl_source, sample_source, text_source

__all__ = ["DataSource", "evaluate", "jsonl_source", "sample_source", "text_source"]


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
