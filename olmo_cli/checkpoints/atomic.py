"""Outputs that appear whole or not at all: write into a temporary sibling, rename at the end.

The sibling's name says who owns it: `.DST.partial-<pid>.<process start>.<host>.XXXX`. A run
killed with SIGKILL cannot clean up, so the next run into the same DST removes the siblings
whose owner is gone (same host, no such process any more) and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from olmo_cli.errors import BadInputError, ExistsError, UsageError
from olmo_cli.reporting import NULL_REPORTER, Reporter

PARTIAL_MARK = ".partial-"
# An unstamped sibling (made before owners were stamped) untouched this long is abandoned.
UNSTAMPED_ABANDONED_AFTER_S = 24 * 3600
_OWNER_RE = re.compile(r"(\d+)\.(\d+)\.([A-Za-z0-9_-]*)\.")


def partial_prefix(dst: Path) -> str:
    """Temporary siblings are named `.<name>.partial-XXXX`, so they sort away and are easy to spot."""
    return f".{dst.name}{PARTIAL_MARK}"


def owner_stamp(pid: int | None = None) -> str:
    """`<pid>.<process start>.<host>.`: who owns a temporary sibling (the start time tells a reused
    pid from the original process)."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}.{_process_start(pid) or 0}.{_host()}."


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:64]


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux /proc); None when unknown or gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def owner_alive(name: str, prefix: str) -> bool | None:
    """Whether the process that owns the sibling called `name` is running: True, False, or None
    when the stamp cannot tell (another host, or no stamp)."""
    found = _OWNER_RE.match(name[len(prefix) :])
    if not found or found.group(3) != _host():
        return None
    pid, start = int(found.group(1)), int(found.group(2))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    now = _process_start(pid)
    return not (start and now is not None and now != start)  # a different process under a reused pid


def remove_stale_partials(dst: Path, reporter: Reporter = NULL_REPORTER) -> list[Path]:
    """Remove the temporary siblings of `dst` left by runs that died (their owner is gone), and
    unstamped ones untouched for a day; each removal is said through `reporter`."""
    dst = Path(dst).absolute()
    prefix = partial_prefix(dst)
    removed: list[Path] = []
    try:
        candidates = [p for p in dst.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for path in candidates:
        try:
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                continue
            alive = owner_alive(path.name, prefix)
            if alive is None and _OWNER_RE.match(path.name[len(prefix) :]):
                continue  # stamped on another host: its owner may well be running there
            if alive is None and time.time() - path.stat().st_mtime < UNSTAMPED_ABANDONED_AFTER_S:
                continue
            if alive:
                continue
            if path.is_file():  # a single-file output's sibling (GGUF)
                size = path.stat().st_size
                path.unlink()
            else:
                size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
                shutil.rmtree(path)
        except OSError:  # gone meanwhile, or not ours to remove: leave it
            continue
        from olmo_cli.reporting import format_size

        reporter.info(f"removed {path.name} ({format_size(size)}), left by an interrupted run into {dst.name}")
        removed.append(path)
    return removed


@contextmanager
def atomic_output_dir(dst, force: bool = False, reporter: Reporter = NULL_REPORTER) -> Iterator[Path]:
    """Yield an empty temporary directory next to `dst`; on success it becomes `dst`.

    Any exception (KeyboardInterrupt included) removes the temporary directory and leaves an
    existing `dst` untouched. An existing `dst` without `force` is an ExistsError. Siblings left
    by dead runs into the same `dst` are removed first (and `reporter` says so).
    """
    dst = Path(dst).absolute()
    if dst.exists() and not force:
        raise ExistsError(f"{dst} already exists", hint="pass --force to replace it, or choose another output")
    parent = dst.parent
    check_writable(parent)
    remove_stale_partials(dst, reporter)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=partial_prefix(dst) + owner_stamp(), dir=parent))
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


def output_path(value, what: str = "output") -> Path:
    """`value` as a Path; UsageError for an empty one, which Path('') would turn into '.'."""
    if not str(value).strip():
        raise UsageError(f"the {what} path is empty", hint="give the directory to write, e.g. ./out")
    return Path(value)


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
    from olmo_cli.oserrors import is_read_only

    if is_read_only(existing):
        raise BadInputError(
            f"cannot write into {parent}: read-only filesystem ({existing})",
            hint="choose an output directory on a writable filesystem",
        )
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
def atomic_output_file(dst, force: bool = False, reporter: Reporter = NULL_REPORTER) -> Iterator[Path]:
    """Yield the path of a temporary sibling file of `dst`; on success it is renamed to `dst`.

    For single-file outputs (GGUF). The parent directory must exist: a file is never written into
    a directory made up on the way. Any exception (KeyboardInterrupt included) removes the
    temporary file and leaves an existing `dst` untouched. Siblings left by dead runs into the
    same `dst` are removed first (and `reporter` says so), as for directories.
    """
    dst = Path(dst).absolute()
    if (dst.exists() or dst.is_symlink()) and not force:
        raise ExistsError(f"{dst} already exists", hint="pass --force to replace it, or choose another output")
    if dst.is_dir():
        raise ExistsError(f"{dst} is a directory", hint="give a file name, e.g. model.gguf")
    check_writable(dst.parent)
    remove_stale_partials(dst, reporter)
    try:
        fd, name = tempfile.mkstemp(prefix=partial_prefix(dst) + owner_stamp(), dir=dst.parent)
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
