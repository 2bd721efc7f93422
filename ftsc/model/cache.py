"""The structure cache of `--model`: a built target's manifest, kept until what it was built from changes.

Input: a target string, its kwargs and a cache folder (`.ftsc_cache/` at the project root by
default, `[tool.ftsc] cache-dir`, off with `--no-cache`). Output: the target's manifest JSON
document, from a valid entry (a hit) or from a build that then fills the entry (a miss).
A hit never imports torch, the model's code or `importlib.metadata`; it never trusts an entry
it has not validated: every recorded input is checked again first.

What an entry depends on (the key):

- fixed before the build: the target string, the kwargs (canonical JSON), the working folder,
  the interpreter (`sys.version`, executable), ftsc's version, the manifest format version and
  a hash of ftsc's own extraction code (`build.py`, `hf_config.py`, `manifest.py`, this file);
  these name the entry file;
- recorded by the build that fills it: the content hash (SHA-256) of every source file imported
  while building that is not part of an installed distribution or the standard library (the
  user's project: `sys.modules` compared before and after, and every project module loaded),
  plus every regular file opened for reading during the build outside installed packages (an
  audit hook on `open`); where each of the project's top-level modules resolves along
  `sys.path` (a new file shadowing one is noticed); the version of every distribution whose
  modules were imported (torch, transformers and lightning always), read from its `METADATA`
  file, never by importing; the modification time of the folders those distributions are
  installed in (an install or uninstall there changes it).

What it cannot see: environment variables the model code reads, files read by native code
(C/C++/Rust readers never pass Python's `open` audit event), edits inside installed packages
that keep their version, and a package the model tries to import but that was missing when the
entry was filled and later appears outside the recorded distributions' folders. `--no-cache`
builds without the cache (docs/models.md).

Entries are written atomically (a temporary file renamed over the entry, `ftsc.atomic`), so a
concurrent run reads the old entry or the new one, never a mix; each entry starts with a
checksum line of its body, and an entry that fails it (or does not parse) is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from ftsc import __version__
from ftsc.atomic import atomic_write_bytes, atomic_write_text
from ftsc.model import manifest as manifest_format

FORMAT = 1
MAGIC = b"ftsc-model-cache"
FOLDER_NAME = ".ftsc_cache"
ALWAYS_VERSIONED = ("torch", "transformers", "lightning", "pytorch-lightning")
_OWN_CODE = ("build.py", "hf_config.py", "manifest.py", "cache.py")
_INSTALLED_NAMES = ("site-packages", "dist-packages")
T = TypeVar("T")
ABSENT = "absent"  # the digest of a file the build tried to open that did not exist


def default_folder(configured: str | None = None, start: Path | None = None) -> Path:
    """The cache folder: `configured` (`[tool.ftsc] cache-dir`, already absolute), else
    `.ftsc_cache` at the project root of `start` (the working folder), else in `start`.

    Example:
        >>> default_folder("/tmp/c")
        PosixPath('/tmp/c')
    """
    if configured:
        return Path(configured)
    from ftsc.config import project_root

    here = (start or Path.cwd()).resolve()
    return (project_root(here) or here) / FOLDER_NAME


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_hash(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def _own_code_hash() -> str:
    here = Path(__file__).resolve().parent
    return _sha256(b"".join((_file_hash(str(here / name)) or "-").encode() for name in _OWN_CODE))


def static_key(target: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What an entry depends on that is known before building (it names the entry file)."""
    return {
        "cache_format": FORMAT,
        "ftsc": __version__,
        "ftsc_code": _own_code_hash(),
        "manifest": [manifest_format.FORMAT, manifest_format.VERSION],
        "python": sys.version,
        "executable": sys.executable,
        "target": target,
        "kwargs": json.dumps(kwargs, sort_keys=True, default=repr),
        "cwd": os.getcwd(),
    }


def lookup_path(target: str) -> list[str]:
    """`sys.path` as `ftsc.model.build.import_target` will see it for `target` (it adds the file
    target's folder, or the working folder for a module target)."""
    module_part = target.rpartition(":")[0]
    path = list(sys.path)
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        folder = str(Path(module_part).resolve().parent)
        if folder not in path:
            path.insert(0, folder)
    elif "" not in path and os.getcwd() not in path:
        path.insert(0, os.getcwd())
    return path


def locate(name: str, path: list[str]) -> str | None:
    """Where the top-level module `name` would be imported from along `path` (nothing is imported)."""
    from importlib.machinery import PathFinder

    try:
        spec = PathFinder.find_spec(name, path)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    return "|".join([spec.origin or "", *list(spec.submodule_search_locations or [])])


def entry_path(folder: Path, key: Mapping[str, Any]) -> Path:
    """The file of the entry with this static key."""
    digest = _sha256(json.dumps(key, sort_keys=True).encode())[:40]
    return folder / "models" / f"{digest}.json"


# ---------------------------------------------------------------------------------------------
# Reading and writing entries


@dataclass(frozen=True, slots=True)
class Entry:
    """A cache entry: its static key, what the build recorded, and the manifest document."""

    key: Mapping[str, Any]
    files: Mapping[str, str]
    modules: Mapping[str, str | None]
    dists: Mapping[str, tuple[str, str | None]]
    folders: Mapping[str, int]
    manifest: Mapping[str, Any]

    def encode(self) -> bytes:
        """The entry file's bytes: a checksum line, then the JSON body."""
        # Not sort_keys: the manifest's key order is part of what `ftsc manifest` prints.
        body = json.dumps({"key": self.key, "files": dict(sorted(self.files.items())),
                           "modules": dict(sorted(self.modules.items())),
                           "dists": {k: list(v) for k, v in sorted(self.dists.items())},
                           "folders": dict(sorted(self.folders.items())), "manifest": self.manifest},
                          separators=(",", ":")).encode()
        return MAGIC + b" " + _sha256(body).encode() + b"\n" + body


class CorruptEntry(Exception):
    """An entry file that is truncated, altered or not in the expected shape."""


def decode(data: bytes) -> Entry:
    """An entry from its file's bytes.

    Raises:
        CorruptEntry: when the checksum line does not match the body or the body is malformed.
    """
    head, sep, body = data.partition(b"\n")
    parts = head.split(b" ")
    if not sep or len(parts) != 2 or parts[0] != MAGIC or parts[1].decode("ascii", "replace") != _sha256(body):
        raise CorruptEntry("checksum mismatch")
    try:
        doc = json.loads(body)
        entry = Entry(key=doc["key"], files=dict(doc["files"]), modules=dict(doc["modules"]),
                      dists={k: (str(v[0]), v[1]) for k, v in doc["dists"].items()},
                      folders={k: int(v) for k, v in doc["folders"].items()}, manifest=doc["manifest"])
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        raise CorruptEntry(f"malformed entry: {err}") from None
    if not isinstance(entry.manifest, dict):
        raise CorruptEntry("malformed entry: no manifest")
    return entry


def read_entry(path: Path) -> Entry | None:
    """The entry at `path`; None when there is none.

    Raises:
        CorruptEntry: when the file exists but is not a whole, unaltered entry.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise CorruptEntry(f"unreadable: {err}") from None
    return decode(data)


def write_entry(path: Path, entry: Entry) -> None:
    """Write an entry atomically; the cache folder gets a `.gitignore` (`*`) and a CACHEDIR.TAG.

    Raises:
        OSError: when the folder or file cannot be written.
    """
    folder = path.parent.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    if not (folder / ".gitignore").exists():
        atomic_write_text(folder / ".gitignore", "# Created by ftsc automatically.\n*\n")
    if not (folder / "CACHEDIR.TAG").exists():
        atomic_write_text(folder / "CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n"
                          "# This file is a cache directory tag created by ftsc.\n")
    atomic_write_bytes(path, entry.encode())


# ---------------------------------------------------------------------------------------------
# Validating an entry (the hit path: no torch, no importlib.metadata)


def metadata_version(metadata_file: str) -> str | None:
    """The `Version:` header of a distribution's METADATA (or PKG-INFO) file; None if unreadable."""
    try:
        with open(metadata_file, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                if line.startswith("Version:"):
                    return line[len("Version:"):].strip()
    except OSError:
        return None
    return None


def _dist_version(name: str, metadata_file: str | None) -> str | None:
    if metadata_file:
        return metadata_version(metadata_file)
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def stale_reason(entry: Entry, key: Mapping[str, Any]) -> str | None:
    """Why `entry` cannot answer for `key` (None: it can).

    Checks, cheapest first: the static key, where the project's top-level modules resolve,
    the install folders' modification times, the distributions' versions, then the content
    hash of every recorded file.
    """
    if dict(entry.key) != dict(key):
        return "key"
    path = lookup_path(str(key["target"]))
    for name, where in entry.modules.items():
        if locate(name, path) != where:
            return f"module {name} resolves elsewhere"
    for folder, mtime in entry.folders.items():
        try:
            if os.stat(folder).st_mtime_ns != mtime:
                return f"folder {folder} changed"
        except OSError:
            return f"folder {folder} is gone"
    for name, (version, metadata_file) in entry.dists.items():
        if _dist_version(name, metadata_file) != version:
            return f"distribution {name} is not {version}"
    for path, digest in entry.files.items():
        if (_file_hash(path) or ABSENT) != digest:
            return f"file {path} changed"
    return None


# ---------------------------------------------------------------------------------------------
# Recording a build (the miss path)

_RECORDING: list[tuple[Any, Any]] | None = None
_HOOKED = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook: notes `open` events while a build is being recorded (cheap otherwise)."""
    rec = _RECORDING
    if rec is not None and event == "open":
        rec.append((args[0], args[1] if len(args) > 1 else None, args[2] if len(args) > 2 else 0))


def _is_read(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str):
        return not any(c in mode for c in "wax+")
    return isinstance(flags, int) and (flags & os.O_ACCMODE) == os.O_RDONLY


class Recorder:
    """Records what a build reads: modules loaded (`sys.modules` before and after) and files opened.

    Use as a context manager around the build; then `files()`, `project_modules()` and
    `dists()` give what to key on. Written for the miss path of a transformers/lightning model
    (4,000+ modules loaded): paths are compared as strings before anything is resolved.
    """

    def __init__(self, exclude: Iterable[Path] = ()) -> None:
        self.exclude = [p.resolve() for p in exclude]
        self.before: set[str] = set()
        self.opened: list[tuple[Any, Any, Any]] = []

    def __enter__(self) -> Self:
        global _RECORDING, _HOOKED
        if not _HOOKED:
            sys.addaudithook(_audit)  # cannot be removed: it stays, idle, for the rest of the process
            _HOOKED = True
        self.before = set(sys.modules)
        _RECORDING = self.opened
        return self

    def __exit__(self, *exc: object) -> None:
        global _RECORDING
        _RECORDING = None

    # -- where installed code lives ---------------------------------------------------------

    @staticmethod
    def site_folders() -> list[str]:
        """The site-packages folders (resolved, with a trailing separator)."""
        import site

        found = set(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
        if hasattr(site, "getusersitepackages"):
            found.add(site.getusersitepackages())
        found.update(p for p in sys.path if Path(p).name in _INSTALLED_NAMES)
        return sorted({os.path.join(os.path.realpath(p), "") for p in found if os.path.isdir(p)})

    @classmethod
    def dist_folders(cls) -> list[str]:
        """Folders distributions are installed in: site-packages, and `sys.path` folders holding a `.dist-info`."""
        found = set(cls.site_folders())
        for p in sys.path:
            try:
                if p and any(e.endswith(".dist-info") for e in os.listdir(p)):
                    found.add(os.path.join(os.path.realpath(p), ""))
            except OSError:
                continue
        return sorted(found, key=len, reverse=True)  # the innermost folder first

    @classmethod
    def installed_folders(cls) -> list[str]:
        """Folders of installed code, whose files are not hashed: the standard library and site-packages.

        (Other folders holding distributions are hashed too: a project folder may hold a `.dist-info`.)
        """
        import sysconfig

        paths = sysconfig.get_paths()
        std = {paths[k] for k in ("stdlib", "platstdlib") if k in paths}
        return sorted({os.path.join(os.path.realpath(p), "") for p in std} | set(cls.site_folders()))

    def _modules(self) -> list[tuple[str, str]]:
        """`(name, __file__)` of every loaded module with a file."""
        out = []
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if isinstance(file, str):
                out.append((name, file))
        return out

    # -- what to key on ----------------------------------------------------------------------

    def files(self) -> dict[str, str]:
        """`{path: sha256}` of the project's module files loaded and the files opened for reading
        (anything outside the standard library, installed packages, ftsc itself and the cache);
        a file the build tried to open but that did not exist is recorded as `ABSENT`, so that
        its appearing later is a change too."""
        skip = (*self.installed_folders(), *(os.path.join(str(p), "") for p in self.exclude), "/proc/", "/sys/",
                "/dev/")
        raw_skip = tuple({os.path.join(os.path.abspath(p.rstrip(os.sep)), "") for p in skip} | set(skip))
        # Module files (absolute: a relative `__file__` is a stand-in some libraries set), then opened files.
        candidates = {file: False for _, file in self._modules() if os.path.isabs(file)}
        for path, mode, flags in self.opened:
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if isinstance(path, (str, os.PathLike)) and _is_read(mode, flags):
                candidates.setdefault(os.path.abspath(os.fspath(path)), True)
        out: dict[str, str] = {}
        for file, opened in sorted(candidates.items()):
            file = os.path.abspath(file)
            if file.startswith(raw_skip) or file.endswith(".pyc") or "__pycache__" in file:
                continue
            real = os.path.realpath(file)
            if real.startswith(skip):
                continue
            if not os.path.lexists(real):
                if opened:
                    out[real] = ABSENT
                continue
            if not os.path.isfile(real):
                continue
            digest = _file_hash(real)
            if digest is not None:
                out[real] = digest
        return out

    def project_modules(self, files: set[str], path: list[str]) -> dict[str, str | None]:
        """`{top-level name: where it resolves along path}` for the modules loaded from `files`."""
        names = {name.partition(".")[0] for name, file in self._modules()
                 if not name.startswith("_ftsc_model_") and os.path.isabs(file) and os.path.realpath(file) in files}
        return {name: locate(name, path) for name in sorted(names)}

    def dists(self) -> dict[str, tuple[str, str | None]]:
        """`{distribution: (version, METADATA path)}` of every distribution with a module loaded,
        plus torch, transformers and lightning when installed (read from package metadata files,
        never by importing).

        A module's distribution is looked up in the site folder its file is in: first by name
        (`torch` -> `torch-*.dist-info`), then through `top_level.txt`, then through `RECORD`.
        """
        folders = self.dist_folders()
        raw = [(os.path.join(os.path.abspath(f.rstrip(os.sep)), ""), f) for f in folders]
        tops: dict[str, str] = {}  # top-level name -> one file of it (resolving 4,000 paths is slow)
        for name, file in self._modules():
            top = name.partition(".")[0]
            if top not in tops or name == top:
                tops[top] = file
        wanted: dict[str, set[str]] = {}  # folder -> top-level names loaded from it
        for top, file in tops.items():
            file = os.path.abspath(file)
            folder = next((f for r, f in raw if file.startswith(r)), None)
            if folder is None:
                real = os.path.realpath(file)
                folder = next((f for f in folders if real.startswith(f)), None)
            if folder is not None:
                wanted.setdefault(folder, set()).add(top)
        found: set[str] = set()  # .dist-info folders
        for folder, names in wanted.items():
            found.update(_owners(folder, names))
        for name in ALWAYS_VERSIONED:
            info = next(filter(None, (_dist_infos(f).get(_normalize(name)) for f in folders)), None)
            if info is not None:
                found.add(info)
        out: dict[str, tuple[str, str | None]] = {}
        for info in sorted(found):
            metadata_file = os.path.join(info, "METADATA")
            if not os.path.isfile(metadata_file):
                continue
            version = metadata_version(metadata_file)
            name = _metadata_name(metadata_file)
            if version is not None and name:
                out[name] = (version, metadata_file)
        return dict(sorted(out.items()))


def _normalize(name: str) -> str:
    """A distribution name as PEP 503 compares it (`Lightning_Utilities` == `lightning-utilities`)."""
    return "".join("-" if c in "-_." else c for c in name.lower())


def _dist_infos(folder: str) -> dict[str, str]:
    """`{normalized distribution name: .dist-info path}` in a site folder."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return {}
    out = {}
    for entry in sorted(entries):
        if entry.endswith(".dist-info"):
            out.setdefault(_normalize(entry[: -len(".dist-info")].partition("-")[0]), os.path.join(folder, entry))
    return out


def _owners(folder: str, names: set[str]) -> set[str]:
    """The `.dist-info` folders owning the top-level modules `names` of a site folder."""
    infos = _dist_infos(folder)
    out: set[str] = set()
    left = set()
    for name in names:
        info = infos.get(_normalize(name))
        if info is not None:
            out.add(info)
        else:
            left.add(name)
    undeclared = []
    for info in infos.values():  # top_level.txt: the names a distribution declares
        if not left:
            return out
        try:
            with open(os.path.join(info, "top_level.txt"), encoding="utf-8", errors="replace") as f:
                hit = left & {line.strip() for line in f}
        except OSError:
            undeclared.append(info)
            continue
        if hit:
            out.add(info)
            left -= hit
    for info in undeclared:  # else RECORD: the files it installed (`name/...` or `name.py`)
        if not left:
            break
        try:
            with open(os.path.join(info, "RECORD"), encoding="utf-8", errors="replace") as f:
                text = "\n" + f.read()
        except OSError:
            continue
        hit = {n for n in left if f"\n{n}/" in text or f"\n{n}.py," in text or f"\n{n}." in text}
        if hit:
            out.add(info)
            left -= hit
    return out


def _metadata_name(metadata_file: str) -> str | None:
    try:
        with open(metadata_file, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                if line.startswith("Name:"):
                    return line[len("Name:"):].strip()
    except OSError:
        return None
    return None


def _folders(dists: Mapping[str, tuple[str, str | None]]) -> dict[str, int]:
    """Modification times of the folders holding the distributions' metadata (installs change them)."""
    out: dict[str, int] = {}
    for _, metadata_file in dists.values():
        if metadata_file:
            folder = str(Path(metadata_file).parent.parent)
            try:
                out[folder] = os.stat(folder).st_mtime_ns
            except OSError:
                continue
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------------------------------
# The cache


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the cache did: `hit`, `miss` (no entry), `stale` or `corrupt` (rebuilt), with the reason."""

    status: str
    reason: str = ""


def cached_manifest(folder: Path, target: str, kwargs: Mapping[str, Any], build: Callable[[], dict[str, Any]],
                    parse: Callable[[dict[str, Any]], T]) -> tuple[T, Outcome]:
    """The manifest of `target`, from the cache in `folder` or from `build()`.

    Args:
        folder: the cache folder.
        target: the `--model` target string.
        kwargs: the `--model-kwargs`.
        build: returns the manifest's JSON document (`Manifest.to_json()`); it runs only on a
            miss, recorded, and its result fills the entry.
        parse: turns a document into the result (`ftsc.model.manifest.from_json`); a cached
            document it raises on counts as corrupt and is rebuilt.

    Returns:
        `(parse(document), outcome)`. A cache that cannot be written is reported on stderr and
        otherwise ignored.
    """
    key = static_key(target, kwargs)
    path = entry_path(folder, key)
    outcome = Outcome("miss")
    try:
        entry = read_entry(path)
    except CorruptEntry as err:
        entry, outcome = None, Outcome("corrupt", str(err))
    if entry is not None:
        reason = stale_reason(entry, key)
        if reason is None:
            try:
                return parse(dict(entry.manifest)), Outcome("hit")
            except Exception as err:  # noqa: BLE001 - whatever the parser rejects is rebuilt
                outcome = Outcome("corrupt", f"invalid manifest: {err}")
        else:
            outcome = Outcome("stale", reason)
    own = Path(__file__).resolve().parent.parent
    with Recorder(exclude=(own, folder)) as rec:
        doc = build()
    result = parse(doc)
    dists, files = rec.dists(), rec.files()
    modules = rec.project_modules({p for p, d in files.items() if d != ABSENT}, lookup_path(target))
    new = Entry(key=key, files=files, modules=modules, dists=dists, folders=_folders(dists), manifest=doc)
    try:
        write_entry(path, new)
    except OSError as err:
        sys.stderr.write(f"ftsc: warning: cannot write the model cache in {folder}: {err.strerror or err}\n")
    return result, outcome


__all__ = ["CorruptEntry", "Entry", "Outcome", "Recorder", "cached_manifest", "decode", "default_folder",
           "entry_path", "read_entry", "stale_reason", "static_key", "write_entry"]
