"""Downloading a Hub tokenizer repo's files (through olmo_cli.hub.remote, imported lazily)."""

from __future__ import annotations

from pathlib import Path

from olmo_cli.errors import NetworkError, NotFoundError
from olmo_cli.reporting import Reporter

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def fetch_tokenizer_files(repo: str, *, offline: bool, reporter: Reporter) -> Path:
    """Download a Hub tokenizer repo's tokenizer files into the HF cache (or take them from it offline);
    the directory that holds them."""
    from olmo_cli.hub.env import offline as offline_mode
    from olmo_cli.hub.remote import fetch_repo_file

    local_only = offline_mode(offline)
    reporter.info(f"tokenizer: fetching {repo}" + (" from the local cache" if local_only else ""))
    files: dict[str, Path] = {}
    for name in TOKENIZER_FILES:
        try:
            files[name] = fetch_repo_file(repo, name, offline=local_only)
        except NotFoundError:  # hub_errors' translation of a missing repo or file
            if name != "tokenizer.json":
                continue  # the config files are optional
            if local_only:
                raise NetworkError(
                    f"tokenizer {repo} is not in the local cache and offline mode is on",
                    hint="run once without --offline / HF_HUB_OFFLINE, or pass --tokenizer PATH",
                ) from None
            raise
    if "tokenizer.json" not in files:
        raise NotFoundError(
            f"Hub repo {repo} has no tokenizer.json", hint="pass --tokenizer with a repo or directory that has one"
        )
    return files["tokenizer.json"].parent
