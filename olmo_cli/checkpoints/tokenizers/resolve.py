"""Finding the tokenizer.json to use: `--tokenizer`, the checkpoint's own files, or the config's identifier."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from olmo_cli.checkpoints.tokenizers.fetch import fetch_tokenizer_files
from olmo_cli.checkpoints.tokenizers.known import KNOWN_TOKENIZERS, KnownTokenizer, resolve_identifier
from olmo_cli.checkpoints.tokenizers.vocab import _vocabulary
from olmo_cli.errors import NotFoundError
from olmo_cli.hub.repo_id import is_repo_id
from olmo_cli.jsonfiles import read_json_object
from olmo_cli.reporting import NULL_REPORTER, Reporter


@dataclass
class _Found:
    """A tokenizer.json and what its neighbouring config files say about special tokens."""

    file: Path
    name: str
    source: str
    config: dict[str, Any] = field(default_factory=dict)
    known: KnownTokenizer | None = None
    note: str | None = None


def check_tokenizer(
    *, source_dir: Path | None = None, identifier: str | None = None, override: str | None = None, offline: bool = False
) -> None:
    """Fail now, not after the weights are written, if the tokenizer `write_hf_tokenizer` would use
    cannot be found, fetched or read."""
    found = find_tokenizer(source_dir=source_dir, identifier=identifier, override=override, offline=offline)
    if found is not None:
        _vocabulary(found.file)


def find_tokenizer(
    *,
    source_dir: Path | None = None,
    identifier: str | None = None,
    override: str | None = None,
    offline: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> _Found | None:
    """The tokenizer.json to use, by priority: override, the checkpoint's own files, the config's identifier."""
    if override:
        return _from_reference(override, "--tokenizer", offline=offline, reporter=reporter)
    if source_dir is not None and (Path(source_dir) / "tokenizer.json").is_file():
        return _from_dir(Path(source_dir), source="checkpoint")
    if identifier:
        return _from_reference(identifier, "tokenizer.identifier", offline=offline, reporter=reporter)
    return None


def _from_reference(reference: str, what: str, *, offline: bool, reporter: Reporter) -> _Found:
    path = Path(reference).expanduser()
    if path.is_dir():
        if not (path / "tokenizer.json").is_file():
            raise NotFoundError(f"{what} {reference}: the directory has no tokenizer.json")
        return _from_dir(path, source=str(path))
    if path.is_file():
        return _Found(
            file=path,
            name=path.stem,
            source=str(path),
            config=_dir_config(path.parent) if path.name == "tokenizer.json" else {},
        )
    resolved = resolve_identifier(reference)
    if resolved is not None:
        known, note = resolved
        return _Found(file=known.path, name=known.name, source=f"bundled ({known.folder})", known=known, note=note)
    if _looks_like_repo(reference):
        return _from_hub(reference, offline=offline, reporter=reporter)
    raise NotFoundError(
        f"{what} '{reference}' is neither a local tokenizer file or directory, a known OLMo tokenizer, "
        "nor a Hub repo id",
        hint="known: " + ", ".join(known.name for known in KNOWN_TOKENIZERS),
    )


def _from_dir(directory: Path, *, source: str) -> _Found:
    file = directory / "tokenizer.json"
    config = _dir_config(directory)
    return _Found(file=file, name=_name_from_config(config) or directory.name, source=source, config=config)


def _dir_config(directory: Path) -> dict[str, Any]:
    """tokenizer_config.json's special tokens, filled in from special_tokens_map.json."""
    config: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the second wins
        file = directory / name
        if file.is_file():
            loaded = read_json_object(file, name)
            config.update({key: value for key, value in loaded.items() if value is not None})
    return config


def _name_from_config(config: dict[str, Any]) -> str | None:
    value = config.get("name_or_path")
    return value if isinstance(value, str) and value else None


def _looks_like_repo(reference: str) -> bool:
    # owner/name only; "tokenizers/x.json" is a file inside the OLMo package, not a repo.
    return "/" in reference and not reference.endswith(".json") and is_repo_id(reference)


def _from_hub(repo: str, *, offline: bool, reporter: Reporter) -> _Found:
    """A Hub tokenizer repo's files, downloaded into the HF cache (or taken from it offline)."""
    directory = fetch_tokenizer_files(repo, offline=offline, reporter=reporter)
    found = _from_dir(directory, source=f"hub ({repo})")
    found.name = repo
    return found
