"""What a revision holds on the Hub (one request), and which of its files a model needs."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from olmo_cli.errors import NetworkError
from olmo_cli.hub.env import endpoint, token
from olmo_cli.hub.errors import hub_errors


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
    from huggingface_hub import HfApi

    with hub_errors(repo, revision):
        info = HfApi(endpoint=endpoint(), token=token()).model_info(repo, revision=revision, files_metadata=True)
    files = []
    for sibling in info.siblings or ():
        lfs = sibling.lfs
        files.append(
            RemoteFile(
                path=sibling.rfilename,
                size=int(sibling.size if sibling.size is not None else (lfs.size if lfs else 0)),
                blob_id=sibling.blob_id or "",
                sha256=lfs.sha256 if lfs else None,
            )
        )
    if not info.sha:
        raise NetworkError(f"the Hub's answer about {repo}@{revision} carries no commit sha")
    return RevisionFiles(repo, revision, info.sha, tuple(sorted(files, key=lambda f: f.path)))


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
        # Which .distcp files hold only optimizer state is in .metadata (dcp.model_files), but
        # FSDP writers mix model and optimizer items in every file, so all of them are fetched.
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
