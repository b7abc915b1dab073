"""The standard Hugging Face cache layout, read and written without huggingface_hub.

    <HF_HUB_CACHE>/models--org--name/
        refs/<branch>                 the commit sha the branch pointed to (no newline)
        snapshots/<sha>/<path>        relative symlinks into blobs/
        blobs/<etag>                  file bytes; etag = sha256 (LFS) or git blob sha1 (small files)
        blobs/<etag>.incomplete       a partial download
    <HF_HUB_CACHE>/.locks/models--org--name/<etag>.lock

Writing the same layout as huggingface_hub means transformers and `hf` see our downloads, and a
file identical across revisions is one blob.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from olmo_cli.errors import BadInputError
from olmo_cli.hub.env import hub_cache_dir
from olmo_cli.revisions.names import is_commit_sha


def repo_folder_name(repo: str) -> str:
    return "models--" + repo.replace("/", "--")


def repo_from_folder(name: str) -> str | None:
    if not name.startswith("models--"):
        return None
    return name[len("models--") :].replace("--", "/")


@dataclass(frozen=True)
class RepoCache:
    """Paths of one repo in the cache (nothing is created until asked)."""

    repo: str
    root: Path  # the HF hub cache

    @classmethod
    def of(cls, repo: str, root: Path | None = None) -> RepoCache:
        return cls(repo, root or hub_cache_dir())

    @property
    def dir(self) -> Path:
        return self.root / repo_folder_name(self.repo)

    def blob(self, etag: str) -> Path:
        return self.dir / "blobs" / etag

    def incomplete(self, etag: str) -> Path:
        return self.dir / "blobs" / f"{etag}.incomplete"

    def lock(self, etag: str) -> Path:
        return self.root / ".locks" / repo_folder_name(self.repo) / f"{etag}.lock"

    def snapshot(self, commit: str) -> Path:
        return self.dir / "snapshots" / commit

    def ref(self, name: str) -> Path:
        return self.dir / "refs" / name

    # ----- reading -----
    def refs(self) -> dict[str, str]:
        """Branch/tag name -> commit, for refs whose snapshot exists."""
        base = self.dir / "refs"
        out: dict[str, str] = {}
        if not base.is_dir():
            return out
        for path in sorted(base.rglob("*")):
            if not path.is_file() or path.name.startswith("."):  # .name.tmp: a ref being written
                continue
            try:
                commit = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                continue
            if is_commit_sha(commit) and self.snapshot(commit).is_dir():
                out[path.relative_to(base).as_posix()] = commit
        return out

    def commits(self) -> list[str]:
        """The commits that have a snapshot directory (possibly partial)."""
        try:
            return sorted(p.name for p in (self.dir / "snapshots").iterdir() if p.is_dir())
        except OSError:  # no snapshots yet, or an unreadable folder
            return []

    def commit_of(self, revision: str) -> str | None:
        """The cached commit a branch, tag or sha names, or None."""
        if is_commit_sha(revision) and self.snapshot(revision).is_dir():
            return revision
        path = self.ref(revision)
        try:
            commit = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
        except (OSError, UnicodeDecodeError):
            return None
        return commit if is_commit_sha(commit) and self.snapshot(commit).is_dir() else None

    def snapshot_files(self, commit: str) -> dict[str, Path]:
        """Repo path -> the real file it points to (broken links included: they are missing files)."""
        base = self.snapshot(commit)
        out: dict[str, Path] = {}
        if not base.is_dir():
            return out
        for dirpath, _, names in os.walk(base):
            for name in names:
                link = Path(dirpath) / name
                out[link.relative_to(base).as_posix()] = Path(os.path.realpath(link))
        return out

    def blobs(self) -> dict[Path, int]:
        """Every complete blob of this repo with its size."""
        base = self.dir / "blobs"
        if not base.is_dir():
            return {}
        return {p: p.stat().st_size for p in base.iterdir() if p.is_file() and not p.name.endswith(".incomplete")}

    # ----- writing -----
    def link(self, commit: str, path: str, etag: str) -> Path:
        """snapshots/<commit>/<path> -> ../../blobs/<etag> (relative, as huggingface_hub writes it)."""
        base = self.snapshot(commit)
        target = base / path
        if not _inside(target, base) or not _inside(self.blob(etag), self.dir / "blobs"):
            raise BadInputError(f"refusing a cache path outside {self.dir}: {path!r} -> {etag!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        relative = os.path.relpath(self.blob(etag), target.parent)
        if target.is_symlink() and os.readlink(target) == relative:
            return target
        # A new link under a private name, renamed over whatever is there: a second process linking
        # the same file at the same time (a concurrent download) can neither fail nor see no link.
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.link")
        try:
            os.symlink(relative, tmp)
            os.replace(tmp, target)
        finally:
            if tmp.is_symlink():
                tmp.unlink()
        return target

    def write_ref(self, name: str, commit: str) -> None:
        """Atomically: a reader (or a second writer) never sees a half-written ref."""
        if name == commit:
            return
        path = self.ref(name)
        if not _inside(path, self.dir / "refs"):
            raise BadInputError(f"refusing a ref name that leaves {self.dir / 'refs'}: {name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.read_text(encoding="utf-8", errors="replace") == commit:
            return
        # Per process and thread; hidden (a leading '.'), so readers of refs/ skip it.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(commit, encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def _inside(path: Path, folder: Path) -> bool:
    """`path`, with '..' resolved textually (nothing on disk followed), lies strictly inside `folder`."""
    normal, base = os.path.normpath(path), os.path.normpath(folder)
    return normal.startswith(base + os.sep)


def usable_cache_root(root: Path | None = None) -> Path:
    """The HF cache directory (which may not exist yet); BadInputError when it is a file."""
    base = root or hub_cache_dir()
    if base.exists() and not base.is_dir():
        raise BadInputError(
            f"the HF cache {base} is not a directory", hint="point HF_HUB_CACHE (or HF_HOME) at a directory"
        )
    return base


def cached_repos(root: Path | None = None) -> list[str]:
    base = root or hub_cache_dir()
    if not base.is_dir():
        return []
    repos = (repo_from_folder(p.name) for p in base.iterdir() if p.is_dir())
    return sorted(r for r in repos if r)


@dataclass(frozen=True)
class CachedRevision:
    repo: str
    name: str  # the ref name, or the commit sha for a snapshot no ref points to
    commit: str
    files: int
    size: int  # bytes of its files (blobs shared with other revisions included)


def scan_repo(repo: str, root: Path | None = None) -> list[CachedRevision]:
    """Every cached revision of `repo`: its refs, plus snapshots that no ref names (by sha)."""
    cache = RepoCache.of(repo, root)
    refs = cache.refs()
    named = set(refs.values())
    entries = [(name, commit) for name, commit in refs.items()]
    entries += [(commit, commit) for commit in cache.commits() if commit not in named]
    out = []
    for name, commit in entries:
        files = cache.snapshot_files(commit)
        blobs = {p for p in files.values() if p.is_file()}
        out.append(CachedRevision(repo, name, commit, len(files), sum(p.stat().st_size for p in blobs)))
    return out
