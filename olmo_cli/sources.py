"""Where a checkpoint lives: a local directory, or a Hub repo at a revision (fetched into the HF cache).

`locate` is the one place that turns what the user typed (`MODEL`, `--revision`) into a directory
on disk. Revisions go through the shared resolution core (`2T`, `step452000`, `latest`), files through
the shared downloader, so every command that reads a checkpoint accepts the same sources.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from olmo_cli.errors import BadInputError, NotFoundError, UsageError
from olmo_cli.hub.download import fetch_revision
from olmo_cli.hub.repo_id import is_repo_id
from olmo_cli.hub.resolve import resolve
from olmo_cli.reporting import NULL_REPORTER, Reporter
from olmo_cli.revisions.names import is_commit_sha

# Prefixes that can only mean a filesystem path.
_PATH_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")


@dataclass(frozen=True)
class Located:
    """A checkpoint directory, and where it came from when it came from the Hub."""

    path: Path
    repo: str | None = None
    revision: str | None = None
    commit: str | None = None

    @property
    def is_local(self) -> bool:
        return self.repo is None

    def describe(self) -> str:
        if self.repo is None:
            return str(self.path)
        return f"{self.repo}@{self.revision}" if self.revision else self.repo


def locate(
    source: str | None,
    revision: str | None = None,
    *,
    offline: bool = False,
    reporter: Reporter = NULL_REPORTER,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
) -> Located:
    """Find (and if needed download) the checkpoint the user named.

    - `source` an existing directory: used as it is (a revision with it is a usage error).
    - `source` a Hub repo id: `revision` (default `main`) is resolved, then fetched.
    - `source` None: the revision alone must name its repo (e.g. `step452000-tokens2000B`).
    """
    if source is not None and not source.strip():
        raise UsageError("the model is empty", hint="name a Hub repo or a local directory, e.g. allenai/OLMo-1B-hf")
    if source is not None and os.path.islink(source) and not os.path.exists(source):
        raise BadInputError(
            f"{source} is a broken symlink or a symlink loop", hint="point it at a checkpoint directory"
        )
    if source is not None and is_local_path(source):
        return _local(source, revision)
    if source is None and revision is None:
        raise UsageError(
            "no model given",
            hint="name a Hub repo or a local directory, e.g. 'allenai/OLMo-1B-hf', "
            "or a revision such as --revision step20000-tokens84B",
        )
    if source is not None and not is_repo_id(source):
        raise NotFoundError(
            f"'{source}' is neither a local directory nor a Hub repo id", hint="a repo id looks like allenai/OLMo-7B"
        )
    repo, exact = _resolve(source, revision, offline=offline, reporter=reporter)

    path = Path(fetch_revision(repo, exact, include=include, exclude=exclude, offline=offline, reporter=reporter))
    commit = path.name if is_commit_sha(path.name) else None
    return Located(path=path, repo=repo, revision=exact, commit=commit)


def is_local_path(source: str) -> bool:
    """True when `source` names a filesystem path rather than a Hub repo id."""
    if source.startswith(_PATH_PREFIXES) or source in (".", ".."):
        return True
    return Path(source).expanduser().exists()


def _local(source: str, revision: str | None) -> Located:
    path = Path(source).expanduser()
    if not path.exists():
        raise NotFoundError(f"no such directory: {source}")
    if not path.is_dir():
        raise UsageError(f"{source} is a file; give the checkpoint's directory")
    if revision is not None:
        raise UsageError(
            f"--revision '{revision}' was given with the local directory {source}",
            hint="revisions select Hub branches; drop --revision, or name a Hub repo",
        )
    return Located(path=path.resolve())


def _resolve(source: str | None, revision: str | None, *, offline: bool, reporter: Reporter) -> tuple[str, str]:
    """(repo, exact revision). No revision means `main`, which needs no listing of refs."""
    if revision is None:
        assert source is not None
        return source, "main"

    resolved = resolve(revision, source, offline=offline, reporter=reporter)
    if resolved.note:  # "nearest to 2T tokens: ..., 36B tokens before": never silently
        reporter.info(f"note: {resolved.note}")
    return resolved.repo, resolved.revision
