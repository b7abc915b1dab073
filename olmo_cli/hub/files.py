"""What a revision holds on the Hub (one request), and which of its files a model needs."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from olmo_cli.errors import NetworkError
from olmo_cli.hub.env import endpoint, token
from olmo_cli.hub.errors import hub_errors
from olmo_cli.revisions.names import is_commit_sha

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHA1 = re.compile(r"[0-9a-f]{40}")
MAX_FILE_SIZE = 1 << 50  # 1 PiB: a listed size beyond it is not a file of a model repo


def is_safe_repo_path(path: object) -> bool:
    """A file name from a Hub listing that stays inside the folder it is joined to: relative, no
    '..' or empty parts, no backslashes or NULs (a name like '../../x' must never place a file
    or link outside the cache or --local-dir)."""
    if not isinstance(path, str) or not path or len(path) > 4096 or "\x00" in path or "\\" in path:
        return False
    return not path.startswith("/") and all(part not in ("", ".", "..") for part in path.split("/"))


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    blob_id: str  # git sha1 of the file (small) or of its LFS pointer
    sha256: str | None = None  # LFS files only

    @property
    def etag(self) -> str:
        """The cache's blob name: what the Hub's (X-Linked-)ETag says for this file."""
        return self.sha256 or self.blob_id

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None


@dataclass(frozen=True)
class RevisionFiles:
    repo: str
    revision: str
    commit: str
    files: tuple[RemoteFile, ...]

    def by_path(self) -> dict[str, RemoteFile]:
        return {f.path: f for f in self.files}


def list_files(repo: str, revision: str) -> RevisionFiles:
    """Every file of `repo` at `revision`, with size and hashes: one model_info call."""
    endpoint()  # checked before huggingface_hub, which reads HF_ENDPOINT when imported
    from huggingface_hub import HfApi

    from olmo_cli.hub.retry import call_hub

    with hub_errors(repo, revision):
        api = HfApi(endpoint=endpoint(), token=token())
        info = call_hub(lambda: api.model_info(repo, revision=revision, files_metadata=True))
    where = f"{repo}@{revision}"
    if not info.sha:
        raise NetworkError(f"the Hub's answer about {where} carries no commit sha")
    if not is_commit_sha(str(info.sha)):
        raise _unusable(where, f"commit sha {str(info.sha)[:60]!r}")
    files = []
    for sibling in info.siblings or ():
        files.append(_remote_file(sibling, where))
    return RevisionFiles(repo, revision, info.sha, tuple(sorted(files, key=lambda f: f.path)))


def _remote_file(sibling, where: str) -> RemoteFile:
    """One listed file, checked: the Hub's answer is input like any other."""
    path, lfs = sibling.rfilename, sibling.lfs
    if not is_safe_repo_path(path):
        raise _unusable(where, f"file name {str(path)[:80]!r} (it would land outside the repo's folder)")
    size = sibling.size if sibling.size is not None else (lfs.size if lfs else 0)
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_FILE_SIZE:
        raise _unusable(where, f"size {str(size)[:40]!r} of {path}")
    sha256 = lfs.sha256 if lfs else None
    blob_id = sibling.blob_id or ""
    if (sha256 is not None and not _SHA256.fullmatch(str(sha256))) or (blob_id and not _SHA1.fullmatch(str(blob_id))):
        raise _unusable(where, f"hash of {path}")
    return RemoteFile(path=path, size=size, blob_id=blob_id, sha256=sha256)


def _unusable(where: str, what: str) -> NetworkError:
    return NetworkError(f"the Hub's listing of {where} has an invalid {what}; refusing it", hint="check HF_ENDPOINT")


# What `olmo` needs to run a model; everything else (README, remote-code shims, training state) is left out.
CONFIG_FILES = ("config.json", "generation_config.json", "config.yaml")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
)
_WEIGHT_FAMILIES = (  # in order of preference: the first family a revision has is the one fetched
    ("model.safetensors.index.json", "*.safetensors"),
    ("pytorch_model.bin.index.json", "*.bin"),
    ("", "*.pt"),
)


DCP_DIR = "model_and_optim/"  # an OLMo-core step directory's torch.distributed checkpoint


def needed_files(paths: list[str]) -> list[str]:
    """Config, tokenizer and one copy of the weights (safetensors over .bin over .pt), top level only;
    for an OLMo-core step directory, its model_and_optim/ (.metadata and the .distcp files)."""
    top = [p for p in paths if "/" not in p]
    chosen = [p for p in top if p in CONFIG_FILES or p in TOKENIZER_FILES]
    if DCP_DIR + ".metadata" in paths:
        # Those holding only optimizer state are dropped once .metadata is read (hub/dcp_files.py).
        return sorted(set(chosen) | {p for p in paths if p.startswith(DCP_DIR) and p.count("/") == 1})
    for index, pattern in _WEIGHT_FAMILIES:
        weights = [p for p in top if fnmatch.fnmatch(p, pattern) and p != index]
        if weights:
            chosen += weights + ([index] if index in top else [])
            break
    return sorted(set(chosen))


def choose_files(
    paths: list[str], *, include: list[str] | None = None, exclude: list[str] | None = None, all_files: bool = False
) -> list[str]:
    """The files to fetch: `include` globs (or everything with `all_files`, else `needed_files`), minus `exclude`."""
    if all_files:
        chosen = list(paths)
    elif include:
        chosen = [p for p in paths if any(fnmatch.fnmatch(p, g) for g in include)]
    else:
        chosen = needed_files(paths)
    if exclude:
        chosen = [p for p in chosen if not any(fnmatch.fnmatch(p, g) for g in exclude)]
    return sorted(chosen)
