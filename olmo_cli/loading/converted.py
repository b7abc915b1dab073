"""A directory transformers can load, for any checkpoint: converted once, then reused.

transformers-format checkpoints are used where they are. Legacy hf_olmo and native OLMo checkpoints
are converted (by `olmo_cli.checkpoints.convert`) into `<olmo cache>/converted/<key>`, where the key
names the exact source: the commit of a Hub revision, or a local directory's resolved path plus the
sizes and modification times of the files a conversion reads (weights, configs, tokenizer), so an
edited checkpoint is converted again.
The conversion writes into a temporary sibling and renames at the end, so a directory under
`converted/` is always complete; one that is not (made by hand, or by something other than olmo)
is moved aside and converted again rather than trusted.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from olmo_cli.checkpoints.atomic import PARTIAL_MARK
from olmo_cli.checkpoints.detect import detect_format
from olmo_cli.errors import ExistsError
from olmo_cli.jsonfiles import write_json
from olmo_cli.paths import make_cache_subdir, olmo_cache_dir
from olmo_cli.reporting import NULL_REPORTER, Reporter
from olmo_cli.sources import Located, locate

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".distcp")
SOURCE_FILES = (
    "config.yaml",
    "config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
)
SOURCE_RECORD = "olmo-source.json"
# Part of every cache key: bump it when a converter fix changes what a conversion writes, so copies
# made by the old converter are not reused.
CONVERTER_VERSION = 2  # 2: generation_config.json carries token ids only; config.json a transformers_version
# A conversion's temporary directory untouched for this long belongs to a killed process.
ABANDONED_AFTER_S = 24 * 3600


def converted_cache_dir() -> Path:
    return olmo_cache_dir() / "converted"


def locate_hf_checkpoint(
    source: str | None, revision: str | None = None, *, offline: bool = False, reporter: Reporter = NULL_REPORTER
) -> tuple[Located, Path]:
    """`locate` then `hf_checkpoint_dir`: where the source is, and a transformers directory for it."""
    located = locate(source, revision, offline=offline, reporter=reporter)
    return located, hf_checkpoint_dir(located, offline=offline, reporter=reporter)


def hf_checkpoint_dir(located: Located, *, offline: bool = False, reporter: Reporter = NULL_REPORTER) -> Path:
    """A transformers-format directory with the weights of `located` (converting at most once)."""
    fmt = detect_format(located.path)  # "hf" is loaded where it is; hf_olmo and native are converted once
    if fmt == "hf":
        return located.path
    target = make_cache_subdir(converted_cache_dir()) / cache_key(located)
    if _complete(target):
        reporter.info(f"using the converted copy in {target}")
        return target
    if target.exists() or target.is_symlink():
        reporter.warn(f"{target} is not a complete conversion; converting again")
        _discard(target)
        if _complete(target):
            return target
    reporter.info(f"converting {located.describe()} ({fmt}) to transformers format, once, into {target}")
    from olmo_cli.checkpoints.convert import convert

    remove_abandoned_partials(target.parent)
    try:
        convert(located.path, target, to="hf", offline=offline, reporter=reporter)
    except (ExistsError, OSError):
        # Another process finished the same conversion first (ExistsError; an OSError when its rename
        # lands between our check and our rename): its result is as good as ours.
        if not _complete(target):
            raise
    _write_source_record(target, located, fmt)
    return target


def gguf_cache_dir() -> Path:
    return olmo_cache_dir() / "gguf"


def gguf_checkpoint_file(
    located: Located, outtype: str, *, offline: bool = False, reporter: Reporter = NULL_REPORTER
) -> Path:
    """A GGUF file of `located` in `outtype` (f32, f16, bf16, q8_0), written once into
    `<olmo cache>/gguf/<key>.<outtype>.gguf` (the key as for converted directories: a Hub commit,
    or a local directory's files) and reused after. The writer renames a finished file into
    place, so a file found there is whole."""
    target = make_cache_subdir(gguf_cache_dir()) / f"{cache_key(located)}.{outtype}.gguf"
    if target.is_file() and not target.is_symlink():
        reporter.info(f"using the GGUF copy in {target}")
        return target
    reporter.info(f"converting {located.describe()} to GGUF {outtype}, once, into {target}")
    from olmo_cli.checkpoints.convert import convert

    try:
        convert(
            located.path, target, to="gguf", outtype=outtype, offline=offline, reporter=reporter,
            revision=located.revision, repo=located.repo, commit=located.commit,
        )  # fmt: skip
    except ExistsError:  # another process wrote the same file first: as good as ours
        if not target.is_file():
            raise
    return target


def remove_abandoned_partials(cache: Path, older_than_s: float = ABANDONED_AFTER_S) -> list[Path]:
    """Delete the temporary siblings of conversions that were killed (SIGKILL, a power cut): a
    living conversion touches its directory far more often than this, so an old one is abandoned."""
    removed = []
    now = time.time()
    for path in cache.glob(f".*{PARTIAL_MARK}*"):
        try:
            if path.is_dir() and not path.is_symlink() and now - path.stat().st_mtime > older_than_s:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        except OSError:  # another process removed it first
            continue
    return removed


def cache_key(located: Located) -> str:
    """A directory name that changes whenever the source's weights could have changed.

    A Hub source is named by its commit. Without one (a branch name can move), it is keyed like a
    local directory, by its files' sizes and modification times. Both carry CONVERTER_VERSION.
    """
    if located.repo is not None and located.commit is not None:
        return _safe(f"v{CONVERTER_VERSION}--{located.repo.replace('/', '--')}--{located.commit}")
    path = located.path.resolve()
    stamp = hashlib.sha256(str(path).encode())
    for file in sorted(_source_files(path)):
        info = file.stat()
        stamp.update(f"\0{file.relative_to(path)}\0{info.st_size}\0{info.st_mtime_ns}".encode())
    return _safe(f"v{CONVERTER_VERSION}--local--{path.name}--{stamp.hexdigest()[:16]}")


def _complete(target: Path) -> bool:
    """Entries appear by a rename of a finished conversion, so one with its config.json is whole."""
    return target.is_dir() and not target.is_symlink() and (target / "config.json").is_file()


def _discard(target: Path) -> None:
    """Move an incomplete entry out of the way (a rename, so no reader sees it half-deleted), then delete it."""
    if target.is_symlink() or not target.is_dir():
        target.unlink(missing_ok=True)
        return
    if _complete(target):  # another process's conversion landed since we looked
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
    try:
        os.rename(target, trash / "old")
    except FileNotFoundError:  # another process moved it first
        pass
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _source_files(path: Path):
    """The files a conversion reads: weights, configs and the tokenizer files copied next to them."""
    for file in path.rglob("*"):
        if file.is_file() and (
            file.suffix in WEIGHT_SUFFIXES or file.name in SOURCE_FILES or file.name.startswith("tokenizer")
        ):
            yield file


def _write_source_record(target: Path, located: Located, fmt: str) -> None:
    """Says where a converted copy came from (for people and `olmo cache ls`); informative only."""
    record = {
        "source": str(located.path),
        "repo": located.repo,
        "revision": located.revision,
        "commit": located.commit,
        "format": fmt,
    }
    try:
        write_json(target / SOURCE_RECORD, record)
    except OSError:
        pass


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)
