"""Check a cached revision against the Hub: sizes and hashes (sha256 for LFS files, git sha1 for
small ones), files the model needs that are missing, files the Hub does not have.

Offline there is no listing to compare with, but a blob's name is its hash (sha256 or git sha1),
so every cached file can still be checked against its own name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from olmo_cli.errors import NetworkError
from olmo_cli.hub.cache import RepoCache
from olmo_cli.hub.files import RemoteFile, choose_files, list_files
from olmo_cli.hub.transfer import file_digest
from olmo_cli.reporting import NULL_REPORTER, Reporter
from olmo_cli.revisions.names import is_commit_sha

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class VerifyReport:
    revision: str
    commit: str | None
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[dict] = field(default_factory=list)  # {"path", "reason"}
    extra: list[str] = field(default_factory=list)
    note: str | None = None  # "not cached", "offline: checked against blob names"

    @property
    def ok(self) -> bool:
        return self.commit is not None and not (self.missing or self.corrupt or self.extra)

    def as_dict(self) -> dict:
        return {
            "revision": self.revision,
            "commit": self.commit,
            "ok": self.ok,
            "checked": self.checked,
            "missing": self.missing,
            "corrupt": self.corrupt,
            "extra": self.extra,
            "note": self.note,
        }


class _Digests:
    """Hash each blob once, however many revisions share it."""

    def __init__(self):
        self._seen: dict[tuple[Path, bool], str] = {}

    def of(self, blob: Path, lfs: bool) -> str:
        key = (blob, lfs)
        if key not in self._seen:
            probe = RemoteFile(blob.name, blob.stat().st_size, "", "x" if lfs else None)
            self._seen[key] = file_digest(blob, probe)
        return self._seen[key]


def verify_revision(
    repo: str,
    revision: str,
    *,
    offline: bool = False,
    include=None,
    exclude=None,
    all_files: bool = False,
    digests: _Digests | None = None,
) -> VerifyReport:
    cache = RepoCache.of(repo)
    digests = digests or _Digests()
    commit = cache.commit_of(revision)
    report = VerifyReport(revision, commit)
    if commit is None:
        report.note = "not cached"
        return report
    local = cache.snapshot_files(commit)
    if offline:
        report.note = "offline: files checked against their blob names"
        snapshot = cache.snapshot(commit)
        for path, blob in sorted(local.items()):
            if not (snapshot / path).is_symlink() and blob.is_file():
                # huggingface_hub and olmo link every file to its blob: a plain file was put there by hand
                report.checked += 1
                report.corrupt.append({"path": path, "reason": "a plain file where the link to its blob was (edited?)"})
                continue
            _check_by_name(report, path, blob, digests)
        return report
    remote = list_files(repo, commit).by_path()  # the cached commit, even if the branch moved since
    wanted = set(choose_files(list(remote), include=include, exclude=exclude, all_files=all_files))
    if not (include or all_files):  # as download chose: no optimizer-only .distcp files
        from olmo_cli.hub.dcp_files import METADATA, without_optimizer_only

        cached_metadata = local.get(METADATA)
        wanted = without_optimizer_only(
            wanted,
            lambda: cached_metadata.read_bytes() if cached_metadata and cached_metadata.is_file() else None,
            f"{repo}@{commit}",
        )
    report.missing = sorted(p for p in wanted if p not in local or not local[p].is_file())
    report.extra = sorted(p for p in local if p not in remote)
    for path, blob in sorted(local.items()):
        if path not in remote or not blob.is_file():
            if path in remote and path not in wanted:  # a dangling link to a file we do not need
                report.missing.append(path)
            continue
        report.checked += 1
        expected = remote[path]
        size = blob.stat().st_size
        if size != expected.size:
            report.corrupt.append({"path": path, "reason": f"size {size}, the Hub says {expected.size}"})
        elif digests.of(blob, expected.is_lfs) != (expected.sha256 or expected.blob_id or digests.of(blob, False)):
            kind = "sha256" if expected.is_lfs else "git sha1"
            report.corrupt.append({"path": path, "reason": f"{kind} differs from the Hub's"})
    report.missing.sort()
    return report


def _check_by_name(report: VerifyReport, path: str, blob: Path, digests: _Digests) -> None:
    if not blob.is_file():
        report.missing.append(path)
        return
    report.checked += 1
    name = blob.name
    if _SHA256.match(name):
        ok = digests.of(blob, True) == name
    elif is_commit_sha(name):  # a git object id: 40 hex digits, whether of a commit or a blob
        ok = digests.of(blob, False) == name
    else:
        return  # not a name we can check
    if not ok:
        report.corrupt.append({"path": path, "reason": "content does not match its blob name (hash)"})


def new_digests() -> _Digests:
    return _Digests()


def verify_revisions(
    repo: str,
    names: list[str],
    *,
    offline: bool = False,
    all_files: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> list[VerifyReport]:
    """verify_revision for each name, in order. When the Hub cannot answer, the rest (that one
    included) are checked against their blob names, which are their hashes, with a warning."""
    digests = new_digests()
    reports = []
    with reporter.progress("verifying", total=len(names)) as bar:
        for name in names:
            bar.describe(f"verifying {repo}@{name}")
            try:
                report = verify_revision(repo, name, offline=offline, all_files=all_files, digests=digests)
            except NetworkError as error:
                if offline:
                    raise
                offline = True
                reporter.warn(f"{error.message}; checking cached files against their blob names instead")
                report = verify_revision(repo, name, offline=True, all_files=all_files, digests=digests)
            reports.append(report)
            bar.advance(1)
    return reports
