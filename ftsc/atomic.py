"""Atomic file writes: the old file or the new one, never a truncated mix.

Input: a path and the complete new content. Output: the file replaced in one `rename`: the
content goes to a temporary file in the same folder, is flushed and fsync'ed, takes the old
file's permission bits (and owner, where allowed), and is renamed over the target (the folder
is fsync'ed too where the platform allows). A failure at any step (full disk, interrupted write) removes the temporary
file and leaves the original untouched. A symlink is followed: its target is replaced, the link
stays. A target that is not a regular file (a device, a FIFO), or a path under `/dev/` or
`/proc/` (`-o /dev/stdout` leads to whatever stdout is, maybe the shell's own output file), is
written through, never replaced. Never imports torch.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def _default_mode() -> int:
    """The permission bits a new file gets under the current umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` with `data` atomically, keeping its permission bits.

    Raises:
        OSError: when the file cannot be written; `path` is then unchanged.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = pathlib.Path(d) / "a.txt"
        ...     atomic_write_bytes(p, b"one")
        ...     atomic_write_bytes(p, b"two")
        ...     p.read_bytes()
        b'two'
    """
    if os.path.abspath(path).startswith(_SPECIAL):
        _write_through(path, data)  # `-o /dev/stdout` may lead to the shell's own file: never replace it
        return
    target = Path(os.path.realpath(path))
    owner: tuple[int, int] | None = None
    try:
        info = os.stat(target)
    except FileNotFoundError:
        mode = _default_mode()
    else:
        owner = (info.st_uid, info.st_gid)
        if not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
            _write_through(target, data)  # a device or FIFO: never rename over it
            return
        mode = stat.S_IMODE(info.st_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if owner is not None and hasattr(os, "chown") and owner != (os.getuid(), os.getgid()):
            with contextlib.suppress(OSError):  # only root may give a file away; others keep their own
                os.chown(tmp, *owner)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_folder(target.parent)


_SPECIAL = ("/dev/", "/proc/")


def _write_through(path: str | os.PathLike[str], data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """`atomic_write_bytes` of `text` encoded as given; newlines are written as they are."""
    atomic_write_bytes(path, text.encode(encoding))


def _sync_folder(folder: Path) -> None:
    """fsync the folder so that the rename itself survives a crash (POSIX only)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
