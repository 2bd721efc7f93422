"""`[tool.ftsc]` settings from the project's `pyproject.toml`.

Input: the working directory. Output: `Settings` (select, ignore, strict, format, files, and
the model each schedule is checked against) that command-line flags override. Never imports torch;
never looks above the project root (the first folder holding `.git` or a `pyproject.toml` with a
`[tool.ftsc]` table), so a parent folder someone else controls cannot configure (or name code for) a run.

Model keys: `manifest = "path.json"` (or `model = "pkg.mod:attr"` / `"path/file.py:attr"` / a
transformers `config.json` or checkpoint folder, paths relative to the pyproject.toml folder, with
`model_kwargs = {...}`) for every schedule of the project, and `[tool.ftsc.manifests]`, a table of
glob -> manifest path (globs match schedule paths relative to the pyproject.toml folder; the first
match wins over `manifest`). Schedules outside the project folder get no model from the configuration.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftsc.source import ReadLimitError, read_regular

MAX_CONFIG_BYTES = 1 << 20


class ConfigError(Exception):
    """Invalid `[tool.ftsc]` table (exit status 2)."""


@dataclass(slots=True)
class Settings:
    """Defaults for `ftsc check`."""

    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    strict: bool = False
    format: str = "text"
    files: list[str] = field(default_factory=list)
    model: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    manifest: str | None = None
    manifests: dict[str, str] = field(default_factory=dict)
    cache_dir: str | None = None
    path: Path | None = None

    def model_for(self, schedule: str) -> tuple[str | None, str | None, dict[str, Any]]:
        """`(model target, manifest path, model kwargs)` configured for `schedule`.

        Only schedules inside the project folder (the one holding the pyproject.toml) get a
        model: the configuration of one project never names code for another project's files.
        """
        if self.path is None:
            return None, None, {}
        try:
            rel = Path(schedule).resolve().relative_to(self.path.parent).as_posix()
        except (ValueError, OSError):
            return None, None, {}
        for pattern, manifest in self.manifests.items():
            if fnmatch.fnmatch(rel, pattern):
                return None, manifest, {}
        if self.manifest:
            return None, self.manifest, {}
        return self.model, None, dict(self.model_kwargs)


_KEYS = {"select": list, "ignore": list, "strict": bool, "format": str, "files": list, "model": str,
         "model_kwargs": dict, "manifest": str, "manifests": dict, "cache-dir": str}


def _read_toml(path: Path) -> tuple[bytes, dict[str, Any] | None]:
    """The bytes of a pyproject.toml and its TOML (None when the text is not valid TOML).

    Raises:
        ConfigError: when the file cannot be read (missing, not a regular file, too large).
    """
    try:
        data = read_regular(str(path), MAX_CONFIG_BYTES)
    except ReadLimitError as err:
        raise ConfigError(str(err)) from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        return data, tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return data, None


def _tool_table(path: Path) -> Any:
    """The `[tool.ftsc]` value of a pyproject.toml (None without one).

    Raises:
        ConfigError: when the file cannot be read or is not TOML.
    """
    data, doc = _read_toml(path)
    if doc is None:
        try:
            tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: cannot read: {err}") from None
    tool = (doc or {}).get("tool")
    return tool.get("ftsc") if isinstance(tool, dict) else None


def _declares_ftsc(candidate: Path) -> bool:
    """Whether `candidate` (a pyproject.toml path) has a `[tool.ftsc]` table.

    A file that is not valid TOML counts when its text mentions `tool.ftsc`, so that
    `load_settings` reports the problem instead of silently looking further up; a file that
    cannot be read at all (or is no regular file) does not count.
    """
    if not _exists(candidate):
        return False
    try:
        data, doc = _read_toml(candidate)
    except ConfigError:
        return False
    if doc is None:
        return b"tool.ftsc" in data
    tool = doc.get("tool")
    return isinstance(tool, dict) and "ftsc" in tool


def project_root(start: Path) -> Path | None:
    """The project folder of `start`: the first folder at or above it holding `.git` or a
    `pyproject.toml` with a `[tool.ftsc]` table (as ruff finds its configuration).

    Args:
        start: a folder or a file (its folder is used); resolved first.

    Returns:
        The folder, or None when no folder up to the filesystem root qualifies.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     (Path(d) / "a" / "b").mkdir(parents=True)
        ...     (Path(d) / "a" / ".git").mkdir()
        ...     project_root(Path(d) / "a" / "b") == (Path(d) / "a").resolve()
        True
    """
    try:
        here = start.resolve()
        if not here.is_dir():
            here = here.parent
    except OSError:
        return None
    for folder in (here, *here.parents):
        if _exists(folder / ".git") or _declares_ftsc(folder / "pyproject.toml"):
            return folder
    return None


def _exists(path: Path) -> bool:
    """`path.exists()`, False where the system refuses to say (a folder without search permission)."""
    try:
        return path.exists()
    except OSError:
        return False


def find_pyproject(start: Path) -> Path | None:
    """The project's `pyproject.toml` when it has a `[tool.ftsc]` table (see `project_root`)."""
    root = project_root(start)
    if root is None:
        return None
    candidate = root / "pyproject.toml"
    return candidate if _declares_ftsc(candidate) else None


def load_settings(start: Path | None = None, *, isolated: bool = False) -> Settings:
    """Read the project's `[tool.ftsc]`; no project, file or table gives defaults.

    Args:
        start: where discovery starts (the working directory by default).
        isolated: ignore every configuration file (`--isolated`).

    Raises:
        ConfigError: when the table has unknown keys or wrong types.
    """
    if isolated:
        return Settings()
    path = find_pyproject(start or Path.cwd())
    if path is None:
        return Settings()
    table: Any = _tool_table(path)
    if table is None:
        return Settings()
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.ftsc] must be a table")
    settings = Settings(path=path.resolve())
    for key, value in table.items():
        expected = _KEYS.get(key)
        if expected is None:
            raise ConfigError(f"{path}: unknown key `{key}` in [tool.ftsc]; expected one of: {', '.join(_KEYS)}")
        if not isinstance(value, expected) or (expected is list and not all(isinstance(v, str) for v in value)):
            raise ConfigError(f"{path}: [tool.ftsc] `{key}` must be a {'table' if expected is dict else expected.__name__}"
                              + (" of strings" if expected is list else ""))
        if key == "manifests" and not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"{path}: [tool.ftsc.manifests] values must be manifest paths (strings)")
        if key == "files":
            value = [str(path.parent / v) for v in value]
        elif key == "manifest":
            value = str(path.parent / value)
        elif key == "manifests":
            value = {k: str(path.parent / v) for k, v in value.items()}
        elif key == "model":
            module, sep, attr = value.rpartition(":")
            if sep and (module.endswith(".py") or "/" in module or "\\" in module):
                value = f"{path.parent / module}:{attr}"  # a file target, relative to the pyproject.toml
            elif not sep:
                value = str(path.parent / value)  # a transformers config.json or checkpoint folder
        elif key == "cache-dir":  # the `--model` structure cache (ftsc.model.cache)
            value = str(path.parent / value)
        setattr(settings, key.replace("-", "_"), value)
    return settings
