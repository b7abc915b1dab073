"""What the local Hugging Face cache holds for a repo: pure filesystem, no huggingface_hub import.

Layout (REFERENCE section 4): `$HF_HUB_CACHE/models--org--name/refs/<branch>` is a file holding
the 40-hex commit sha (branch names may contain '/', so refs nest), and `snapshots/<sha>/` holds
that commit's files. A ref counts as cached only when its snapshot directory exists.
"""

from __future__ import annotations

from pathlib import Path

from olmo_cli.hub.env import hub_cache_dir


def repo_cache_dir(repo: str) -> Path:
    return hub_cache_dir() / ("models--" + repo.replace("/", "--"))


def cached_snapshots(repo: str) -> set[str]:
    """The commit shas that have a snapshot directory (possibly partial)."""
    snapshots = repo_cache_dir(repo) / "snapshots"
    try:
        return {entry.name for entry in snapshots.iterdir() if entry.is_dir()}
    except OSError:
        return set()


def cached_revisions(repo: str) -> dict[str, str]:
    """{revision name: commit sha} for every ref of `repo` whose snapshot is in the cache."""
    refs = repo_cache_dir(repo) / "refs"
    snapshots = cached_snapshots(repo)
    found: dict[str, str] = {}
    if not refs.is_dir():
        return found
    for path in sorted(refs.rglob("*")):
        if not path.is_file():
            continue
        try:
            sha = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if sha in snapshots:
            found[path.relative_to(refs).as_posix()] = sha
    return found
