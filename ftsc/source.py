"""Source files and spans.

Input: the text of a schedule file. Output: `SourceFile` (text plus a line index) and `Span`
(0-based character offsets, end exclusive) that every IR node and diagnostic carries.
`read_regular` is the one way files are read: regular files only, up to a size limit.
Never imports torch.
"""

from __future__ import annotations

import bisect
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

MAX_SOURCE_BYTES = 16 << 20
"""The largest schedule or config file read (16 MiB); real schedules are a few KiB."""


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open range `[start, end)` of character offsets into one source file.

    `file` is set when the span may be read in the context of another file (a schedule
    loaded through a LightningCLI config's `ft_schedule`); diagnostics then point there.
    """

    start: int
    end: int
    file: SourceFile | None = field(default=None, compare=False, repr=False)

    def cover(self, other: Span) -> Span:
        """Return the smallest span containing both spans."""
        return Span(min(self.start, other.start), max(self.end, other.end), self.file or other.file)


NO_SPAN = Span(0, 0)


@dataclass(frozen=True, slots=True)
class Position:
    """A 1-based line and column."""

    line: int
    column: int


@dataclass(slots=True)
class SourceFile:
    """A file's text and a line index that maps offsets to 1-based line/column.

    Example:
        >>> src = SourceFile("s.ftsc", "a\\nbc")
        >>> src.position(3)
        Position(line=2, column=2)
    """

    path: str
    text: str = field(repr=False)
    _line_starts: list[int] = field(init=False, repr=False)
    bom: bool = field(default=False, repr=False, compare=False)
    """Whether the file started with a UTF-8 byte order mark (not part of `text`; writers restore it)."""

    def __post_init__(self) -> None:
        starts = [0]
        find = self.text.find
        i = find("\n")
        while i != -1:
            starts.append(i + 1)
            i = find("\n", i + 1)
        self._line_starts = starts

    @property
    def display_path(self) -> str:
        """The path relative to the working directory when it lies below it."""
        try:
            return str(Path(self.path).resolve().relative_to(Path.cwd().resolve()))
        except (ValueError, OSError):
            return self.path

    def position(self, offset: int) -> Position:
        """Convert a character offset to a 1-based line and column."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return Position(line + 1, offset - self._line_starts[line] + 1)

    def line_count(self) -> int:
        """Number of lines in the file."""
        return len(self._line_starts)

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        start = self._line_starts[line - 1]
        end = self._line_starts[line] - 1 if line < len(self._line_starts) else len(self.text)
        return self.text[start:end]

    def offset(self, line: int, column: int) -> int:
        """Convert a 1-based line and column back to an offset."""
        line = max(1, min(line, len(self._line_starts)))
        return min(self._line_starts[line - 1] + column - 1, len(self.text))


class ReadLimitError(Exception):
    """A path that is not a regular file, or a file over the size limit (exit status 2)."""


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n} bytes"


def read_regular(path: str, limit: int = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes.

    Devices (`/dev/zero`), FIFOs, sockets and directories are refused without reading: the
    file is opened non-blocking (a FIFO without a writer cannot hang the open) and checked
    with `fstat` on the open descriptor, so a swapped path cannot slip past the check.

    Raises:
        ReadLimitError: when `path` is not a regular file, is larger than `limit`, or its name
            holds a NUL byte.
        OSError: when it cannot be opened or read (missing, permissions, name too long).
    """
    if "\x00" in path:
        raise ReadLimitError(f"{path!r}: a file name cannot contain a NUL byte")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(21, "is a directory", path)
        if not stat.S_ISREG(info.st_mode):
            raise ReadLimitError(f"{path}: not a regular file; ftsc reads only regular files")
        if info.st_size > limit:
            raise ReadLimitError(f"{path}: file is too large ({_mib(info.st_size)}; the limit is {_mib(limit)})")
        chunks: list[bytes] = []
        size = 0
        while True:  # files whose size stat does not report (procfs) are read up to the limit too
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ReadLimitError(f"{path}: file is too large (the limit is {_mib(limit)})")
        return b"".join(chunks)
    finally:
        os.close(fd)
