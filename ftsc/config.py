"""`[tool.ftsc]` settings from the nearest `pyproject.toml`.

Input: the working directory. Output: `Settings` (select, ignore, strict, format, files, and
the model each schedule is checked against) that command-line flags override. Never imports torch.

Model keys: `manifest = "path.json"` (or `model = "pkg.mod:attr"` with `model_kwargs = {...}`)
for every schedule, and `[tool.ftsc.manifests]`, a table of glob -> manifest path (globs match
schedule paths relative to the pyproject.toml folder; the first match wins over `manifest`).
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
    path: Path | None = None

    def model_for(self, schedule: str) -> tuple[str | None, str | None, dict[str, Any]]:
        """`(model target, manifest path, model kwargs)` configured for `schedule`."""
        if self.manifests and self.path is not None:
            try:
                rel = Path(schedule).resolve().relative_to(self.path.parent).as_posix()
            except ValueError:
                rel = Path(schedule).as_posix()
            for pattern, manifest in self.manifests.items():
                if fnmatch.fnmatch(rel, pattern):
                    return None, manifest, {}
        if self.manifest:
            return None, self.manifest, {}
        return self.model, None, dict(self.model_kwargs)


_KEYS = {"select": list, "ignore": list, "strict": bool, "format": str, "files": list, "model": str,
         "model_kwargs": dict, "manifest": str, "manifests": dict}


def find_pyproject(start: Path) -> Path | None:
    """The nearest `pyproject.toml` at or above `start`."""
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_settings(start: Path | None = None) -> Settings:
    """Read `[tool.ftsc]`; an absent file or table gives defaults.

    Raises:
        ConfigError: when the table has unknown keys or wrong types.
    """
    path = find_pyproject((start or Path.cwd()).resolve())
    if path is None:
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    table: Any = data.get("tool", {}).get("ftsc")
    if table is None:
        return Settings()
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.ftsc] must be a table")
    settings = Settings(path=path)
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
        setattr(settings, key, value)
    return settings
