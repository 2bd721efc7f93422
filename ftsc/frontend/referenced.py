"""Files named inside a file being checked (a LightningCLI config's `ft_schedule: path`).

Input: the referring file and the name it gives. Output: the referenced file's `SourceFile`, or
why it was not read (a short label for an FTS105 diagnostic). A referenced file is read only
when it resolves (symlinks followed) inside the project folder of the referring file (the first
folder holding `.git` or a `[tool.ftsc]` table, else the referring file's own folder), and only
when it is a regular file within the size limit. Anything else is named in the diagnostic and
never read, so its content (`/proc/self/environ`, `../../etc/passwd`) is never quoted.
Never imports torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ftsc.config import project_root
from ftsc.source import ReadLimitError, SourceFile, read_regular


@dataclass(frozen=True, slots=True)
class Referenced:
    """The outcome: `source` when read; else `missing` (not found) or a `label` saying why not."""

    source: SourceFile | None = None
    missing: bool = False
    label: str = ""
    help: str = ""


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def allowed_folder(referrer: SourceFile) -> Path:
    """The folder a file may reference: its project root, else its own folder."""
    own = Path(os.path.abspath(referrer.path)).parent
    try:
        own = own.resolve()
    except OSError:
        pass
    return project_root(own) or own


def open_referenced(referrer: SourceFile, name: str) -> Referenced:
    """Find and read the file `name` as FinetuningScheduler would (working folder first, then the
    referring file's folder), within the limits above.

    Example:
        >>> from ftsc.source import SourceFile
        >>> open_referenced(SourceFile("cfg.yaml", ""), "/").label  # the filesystem root: outside any project
        'outside the project folder: not read'
    """
    candidates = list(dict.fromkeys([Path(name), Path(referrer.path).parent / name]))
    for candidate in candidates:
        try:
            os.stat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (OSError, ValueError) as err:  # name too long, permissions, loops, NUL in the name
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            return Referenced(label=f"cannot be opened: {reason.lower()}")
        try:
            real = candidate.resolve()
        except (OSError, RuntimeError) as err:
            return Referenced(label=f"cannot be opened: {err}")
        folder = allowed_folder(referrer)
        if not _within(real, folder):
            return Referenced(label="outside the project folder: not read",
                              help="ftsc reads referenced files only inside the project (the folder with `.git` "
                                   "or `[tool.ftsc]`); check this schedule by naming it: `ftsc check PATH`")
        try:
            data = read_regular(str(candidate))
        except ReadLimitError as err:
            return Referenced(label=str(err).split(": ", 1)[-1])
        except OSError as err:
            return Referenced(label=f"cannot be read: {(err.strerror or str(err)).lower()}")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return Referenced(label="not UTF-8 text: not read")
        return Referenced(SourceFile(str(candidate), text, bom=data.startswith(b"\xef\xbb\xbf")))
    return Referenced(missing=True)
