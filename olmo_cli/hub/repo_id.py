"""Hub repo ids (`owner/name` or `name`): the one check, for every command and the tokenizer lookup."""

from __future__ import annotations

import re

from olmo_cli.errors import UsageError

_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?"
_REPO_ID_RE = re.compile(rf"(?:{_PART}/)?{_PART}")


def is_repo_id(text: str) -> bool:
    """True when `text` is a valid Hub repo id (`owner/name` or `name`), as the Hub spells them."""
    return (
        bool(_REPO_ID_RE.fullmatch(text or ""))
        and "--" not in text
        and ".." not in text
        and len(text.rsplit("/", 1)[-1]) <= 96
    )


def check_repo_id(repo: str) -> str:
    """`repo` itself when it is a valid Hub repo id, else UsageError (one line, before any I/O)."""
    if not is_repo_id(repo):
        raise UsageError(f"'{repo}' is not a valid Hub repo id", hint="use owner/name, e.g. allenai/OLMo-7B")
    return repo
