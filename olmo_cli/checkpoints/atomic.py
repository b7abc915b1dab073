"""Outputs that appear whole or not at all: write into a temporary sibling, rename at the end."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from olmo_cli.errors import BadInputError, ExistsError, UsageError

PARTIAL_MARK = ".partial-"


def partial_prefix(dst: Path) -> str:
    """Temporary siblings are named `.<name>.partial-XXXX`, so they sort away and are easy to spot."""
    return f".{dst.name}{PARTIAL_MARK}"


@contextmanager
def atomic_output_dir(dst, force: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory next to `dst`; on success it becomes `dst`.

    Any exception (KeyboardInterrupt included) removes the temporary directory and leaves an
    existing `dst` untouched. An existing `dst` without `force` is an ExistsError.
    """
    dst = Path(dst).absolute()
    if dst.exists() and not force:
        raise ExistsError(f"{dst} already exists", hint="pass --force to replace it, or choose another output")
    parent = dst.parent
    check_writable(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=partial_prefix(dst), dir=parent))
    except (PermissionError, NotADirectoryError, FileExistsError, OSError) as error:
        raise BadInputError(
            f"cannot write into {parent}: {error.strerror or error}", hint="choose an output directory you can write to"
        ) from None
    try:
        yield tmp
        _ordinary_permissions(tmp)
        _replace(tmp, dst, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _ordinary_permissions(root: Path) -> None:
    """mkdtemp makes 0700 and some writers 0600 (safetensors, a strict umask): outputs get 0755/0644."""
    os.chmod(root, 0o755)
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def check_destination(dst: Path, force: bool) -> None:
    """Refuse before any slow work: an existing `dst` without --force, or a parent we cannot write.

    `atomic_output_dir` checks again when it starts and when it renames; this is the early word.
    """
    dst = Path(dst)
    if (dst.exists() or dst.is_symlink()) and not force:
        raise ExistsError(f"{dst} already exists", hint="pass --force to replace it, or choose another output")
    check_writable(dst.absolute().parent)


def refuse_overlap(src: Path, dst: Path) -> None:
    """UsageError when the output would be the source, or inside it, or hold it: replacing one
    would destroy the other."""
    s, d = Path(src).resolve(), Path(dst).resolve()
    if s == d or s in d.parents or d in s.parents:
        raise UsageError(f"the output {dst} overlaps the source {src}", hint="write the output somewhere else")


def check_writable(parent: Path) -> None:
    """A clear error before any work, for an output under a file or in a read-only directory."""
    parent = Path(parent).absolute()
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "it is a file" if existing == parent else f"{existing} is a file"
        raise BadInputError(f"cannot write into {parent}: {what}", hint="choose an output directory you can write to")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInputError(
            f"cannot write into {parent}: permission denied", hint="choose an output directory you can write to"
        )


def _replace(tmp: Path, dst: Path, force: bool) -> None:
    if not (dst.exists() or dst.is_symlink()):
        os.rename(tmp, dst)
        return
    if not force:  # appeared while we were writing
        raise ExistsError(f"{dst} already exists", hint="pass --force to replace it")
    if dst.is_dir() and not dst.is_symlink():
        # Move the old output aside first, so `dst` is never missing a complete directory for long.
        trash = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
        try:
            os.rename(dst, trash / "old")
            try:
                os.rename(tmp, dst)
            except BaseException:  # put the old output back rather than leave nothing at dst
                os.rename(trash / "old", dst)
                raise
        finally:
            shutil.rmtree(trash, ignore_errors=True)
    else:
        dst.unlink()
        os.rename(tmp, dst)


@contextmanager
def atomic_output_file(dst, force: bool = False) -> Iterator[Path]:
    """Yield the path of a temporary sibling file of `dst`; on success it is renamed to `dst`.

    For single-file outputs (GGUF). The parent directory must exist: a file is never written into
    a directory made up on the way. Any exception (KeyboardInterrupt included) removes the
    temporary file and leaves an existing `dst` untouched.
    """
    dst = Path(dst).absolute()
    if (dst.exists() or dst.is_symlink()) and not force:
        raise ExistsError(f"{dst} already exists", hint="pass --force to replace it, or choose another output")
    if dst.is_dir():
        raise ExistsError(f"{dst} is a directory", hint="give a file name, e.g. model.gguf")
    check_writable(dst.parent)
    try:
        fd, name = tempfile.mkstemp(prefix=partial_prefix(dst), dir=dst.parent)
    except OSError as error:
        raise BadInputError(
            f"cannot write into {dst.parent}: {error.strerror or error}",
            hint="choose an output directory you can write to",
        ) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        if (dst.exists() or dst.is_symlink()) and not force:  # appeared while we were writing
            raise ExistsError(f"{dst} already exists", hint="pass --force to replace it")
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
