"""Hub settings, read from the environment at call time.

huggingface_hub reads HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE once, at import. We read
them when asked, and pass endpoint and cache_dir explicitly to every huggingface_hub call, so
a setting changed after import (a test, a long-lived process) still takes effect.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "true", "yes", "on"}


def endpoint() -> str:
    """HF_ENDPOINT (checked: huggingface_hub fails at import on some malformed URLs), else the Hub."""
    value = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  # a bad port raises here
    except ValueError as error:
        from olmo_cli.errors import BadInputError

        raise BadInputError(
            f"HF_ENDPOINT {value!r} is not a valid URL ({error})", hint="e.g. https://huggingface.co"
        ) from None
    return value


def hub_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def offline(flag: bool = False) -> bool:
    """True when `--offline` was given or HF_HUB_OFFLINE is set to a true value."""
    return flag or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def token() -> str | None:
    """HF_TOKEN (read now), else what huggingface_hub would send: the token `hf auth login` saved.

    Our own transfers (`olmo_cli.hub.transfer`) send it themselves, so they must find the same
    token huggingface_hub's calls (listing refs and files) find, or a logged-in user's gated
    download would list fine and then fail with 401. Only online paths call this.
    """
    explicit = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if explicit is not None and explicit.strip():
        explicit = explicit.strip()
        if not (explicit.isascii() and explicit.isprintable() and " " not in explicit):
            from olmo_cli.errors import BadInputError

            raise BadInputError(
                "HF_TOKEN holds characters no token has (a newline, a space, non-ASCII)",
                hint="set HF_TOKEN to the token alone, e.g. hf_...",
            )
        return explicit
    from huggingface_hub import constants, get_token

    return None if constants.HF_HUB_DISABLE_IMPLICIT_TOKEN else get_token()
