"""The machine's own failures (a full or read-only disk, a loop of links) as one-line OlmoErrors.

Core code checks free space up front where an output's size is known (`require_free`); any
OSError that still escapes a command is described by `describe_os_error` instead of exit 70.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from olmo_cli.errors import BadInputError, NetworkError, NotFoundError, OlmoError
from olmo_cli.reporting import format_size

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(BadInputError):
    """No space left on the device an output goes to (exit 5)."""


def _existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def mount_point(path) -> Path:
    """The mount point of the filesystem that holds (or would hold) `path`: the 'device' people know."""
    path = _existing(Path(path))
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def is_read_only(path) -> bool:
    """True when the filesystem holding `path` (or its nearest existing parent) is mounted read-only:
    no write succeeds there, whoever asks (root too, whom permission bits do not stop)."""
    try:
        return bool(os.statvfs(_existing(Path(path))).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def free_bytes(path) -> int | None:
    try:
        return shutil.disk_usage(_existing(Path(path))).free
    except OSError:
        return None


def no_space(path, needed: int | None = None) -> DiskFullError:
    free = free_bytes(path)
    sizes = [f"needed ~{format_size(needed)}"] if needed else []
    if free is not None:
        sizes.append(f"free {format_size(free)}")
    return DiskFullError(
        f"no space left on {mount_point(path)}" + (f" ({', '.join(sizes)})" if sizes else ""),
        hint="free some space, or write the output to another disk",
    )


def require_free(path, needed: int) -> None:
    """DiskFullError before any work when the filesystem of `path` has less than `needed` bytes free."""
    free = free_bytes(path)
    if free is not None and needed > free:
        raise no_space(path, needed)


@contextmanager
def disk_full_is_error(path, needed: int | None = None) -> Iterator[None]:
    """ENOSPC/EDQUOT inside the block -> DiskFullError naming the device, what was needed and what is free."""
    try:
        yield
    except OSError as error:
        if error.errno in NO_SPACE:
            raise no_space(path, needed) from None
        raise


def describe_os_error(error: OSError) -> OlmoError:
    """An OlmoError for an OSError no code path expected: what happened, to which file."""
    where = f"{error.filename}: " if error.filename else ""
    code = error.errno
    if isinstance(error, (ConnectionError, TimeoutError)) and code not in (errno.EPIPE,):
        return NetworkError(
            f"connection failed: {error.strerror or error}", hint="check your connection or HF_ENDPOINT"
        )
    if code in NO_SPACE:
        return no_space(error.filename or ".")
    if code == errno.EROFS:
        return BadInputError(f"{where}read-only filesystem", hint="choose a location on a writable filesystem")
    if code in (errno.EACCES, errno.EPERM):
        return BadInputError(f"{where}permission denied", hint="check the file's permissions and owner")
    if code == errno.ELOOP:
        return BadInputError(f"{where}too many levels of symbolic links (a symlink loop?)")
    if code == errno.ENOENT:
        return NotFoundError(f"{where}no such file or directory")
    if code in (errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ):
        return BadInputError(f"{where}{error.strerror or error}")
    return BadInputError(f"{where}{error.strerror or error}", hint="a problem of the machine, not of olmo")
