"""Model manifests: the JSON form of a model's structure, read and written without torch.

Input: a JSON document (or the dict `ftsc.model.build` extracts from a live module).
Output: a validated `Manifest`. Never imports torch.

Format (version 1)::

    {"format": "ftsc-manifest", "version": 1, "target": "pkg.mod:attr",
     "classes": {"pkg.mod.Block": ["torch.nn.modules.module.Module"]},   # qualname -> MRO bases
     "modules": [{"name": "", "class": "pkg.mod.Net"},                    # named_modules() order
                 {"name": "blocks.0", "class": "pkg.mod.Block", "aliases": ["first"]}],
     "parameters": [{"name": "fc.weight", "shape": [4, 4], "dtype": "float16",   # named_parameters() order
                     "requires_grad": false, "aliases": ["head.weight"]}],
     "buffers": [{"name": "bn.running_mean", "shape": [4], "dtype": "float32", "persistent": true}],
     "calls": []}    # wrap / fully_shard calls recorded while the model was built

`aliases` (default `[]`), `dtype` (`"float32"`) and `requires_grad` (`true`) may be left out,
and `ftsc manifest` leaves them out at their defaults.
`name` fields are primary FQNs (first registration); `aliases` list the other paths under
which the same module or parameter is registered (shared modules, tied parameters).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

from ftsc.atomic import atomic_write_text
from ftsc.source import ReadLimitError, read_regular

FORMAT = "ftsc-manifest"
MAX_MANIFEST_BYTES = 1 << 30
"""The largest manifest read (1 GiB; a 100k-parameter model's is about 10 MiB)."""
VERSION = 1


class ManifestError(Exception):
    """A manifest that cannot be read or does not follow the format (exit status 2)."""


class ModuleEntry(NamedTuple):
    """A module: primary FQN, class qualified name, other registration paths."""

    name: str
    cls: str
    aliases: tuple[str, ...] = ()


class ParamEntry(NamedTuple):
    """A parameter: primary FQN, shape, dtype, whether it requires grad, alias FQNs."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    requires_grad: bool = True
    aliases: tuple[str, ...] = ()

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


class BufferEntry(NamedTuple):
    """A buffer: FQN, shape, dtype, persistence."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    persistent: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """A model's structure, as `ftsc manifest` writes it."""

    target: str | None
    classes: Mapping[str, tuple[str, ...]]
    modules: tuple[ModuleEntry, ...]
    parameters: tuple[ParamEntry, ...]
    buffers: tuple[BufferEntry, ...] = ()
    calls: tuple[Mapping[str, Any], ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON document (a plain dict). Fields at their default value are left out."""

        def module(m: ModuleEntry) -> dict[str, Any]:
            out: dict[str, Any] = {"name": m.name, "class": m.cls}
            if m.aliases:
                out["aliases"] = list(m.aliases)
            return out

        def param(p: ParamEntry) -> dict[str, Any]:
            out: dict[str, Any] = {"name": p.name, "shape": list(p.shape)}
            if p.dtype != "float32":
                out["dtype"] = p.dtype
            if not p.requires_grad:
                out["requires_grad"] = False
            if p.aliases:
                out["aliases"] = list(p.aliases)
            return out

        return {
            "format": FORMAT,
            "version": VERSION,
            "target": self.target,
            "classes": {k: list(v) for k, v in self.classes.items()},
            "modules": [module(m) for m in self.modules],
            "parameters": [param(p) for p in self.parameters],
            "buffers": [{"name": b.name, "shape": list(b.shape), "dtype": b.dtype, "persistent": b.persistent}
                        for b in self.buffers],
            "calls": [dict(c) for c in self.calls],
            **dict(self.extra),
        }

    def dumps(self) -> str:
        """Serialized JSON: one entry per line, so manifests diff well in review."""
        doc = self.to_json()
        lines = ["{"]
        keys = list(doc)
        for i, key in enumerate(keys):
            value = doc[key]
            comma = "," if i < len(keys) - 1 else ""
            if isinstance(value, list) and value:
                lines.append(f"  {json.dumps(key)}: [")
                lines.extend(f"    {json.dumps(v)}{',' if j < len(value) - 1 else ''}"
                             for j, v in enumerate(value))
                lines.append(f"  ]{comma}")
            elif isinstance(value, dict) and value:
                lines.append(f"  {json.dumps(key)}: {{")
                items = list(value.items())
                lines.extend(f"    {json.dumps(k)}: {json.dumps(v)}{',' if j < len(items) - 1 else ''}"
                             for j, (k, v) in enumerate(items))
                lines.append(f"  }}{comma}")
            else:
                lines.append(f"  {json.dumps(key)}: {json.dumps(value)}{comma}")
        lines.append("}")
        return "\n".join(lines) + "\n"


def _require(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise ManifestError(f"{where}: {what}")


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if value == []:  # the common case, fast
        return ()
    if not isinstance(value, list) or any(type(v) is not str for v in value):
        raise ManifestError(f"{where}: expected a list of strings")
    return tuple(value)


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or any(type(v) is not int or v < 0 for v in value):
        raise ManifestError(f"{where}: `shape` must be a list of non-negative ints")
    return tuple(value)


def _entries(doc: Mapping[str, Any], key: str) -> Sequence[Mapping[str, Any]]:
    value = doc.get(key, [])
    _require(isinstance(value, list) and set(map(type, value)) <= {dict}, key, "expected a list of objects")
    return value


def _first_bad(values: Sequence[Any], ok: Any) -> int:
    return next(i for i, v in enumerate(values) if not ok(v))


def _alias_tuples(raw: Sequence[Any], where: str) -> list[tuple[str, ...]]:
    return [_strs(a, f"{where}[{i}]") if a else () for i, a in enumerate(raw)]


def _modules(entries: Sequence[Mapping[str, Any]]) -> list[ModuleEntry]:
    """Module entries, validated column by column (fast on 10^5 entries)."""
    names = [m.get("name") for m in entries]
    classes = [m.get("class") for m in entries]
    for key, column in (("name", names), ("class", classes)):
        if not set(map(type, column)) <= {str}:
            raise ManifestError(f"modules[{_first_bad(column, lambda v: type(v) is str)}]: `{key}` must be a string")
    aliases = _alias_tuples([m.get("aliases") for m in entries], "modules")
    return list(map(partial(tuple.__new__, ModuleEntry), zip(names, classes, aliases, strict=True)))


def _params(entries: Sequence[Mapping[str, Any]]) -> list[ParamEntry]:
    """Parameter entries, validated column by column (fast on 10^5 entries)."""
    names = [p.get("name") for p in entries]
    shapes = [p.get("shape", []) for p in entries]
    dtypes = [p.get("dtype", "float32") for p in entries]
    grads = [p.get("requires_grad", True) for p in entries]
    checks = ((names, str, "`name` must be a string"), (shapes, list, "`shape` must be a list of non-negative ints"),
              (dtypes, str, "`dtype` must be a string"), (grads, bool, "`requires_grad` must be true or false"))
    for column, kind, what in checks:
        if not set(map(type, column)) <= {kind}:
            raise ManifestError(f"parameters[{_first_bad(column, lambda v, k=kind: type(v) is k)}]: {what}")
    dims = list(chain.from_iterable(shapes))
    if dims and (not set(map(type, dims)) <= {int} or min(dims) < 0):
        bad = _first_bad(shapes, lambda s: all(type(d) is int and d >= 0 for d in s))
        raise ManifestError(f"parameters[{bad}]: `shape` must be a list of non-negative ints")
    aliases = _alias_tuples([p.get("aliases") for p in entries], "parameters")
    return list(map(partial(tuple.__new__, ParamEntry), zip(names, map(tuple, shapes), dtypes, grads, aliases,
                                                            strict=True)))


def from_json(doc: Any) -> Manifest:
    """Validate a decoded JSON document.

    Written for speed: a 100k-parameter manifest is validated in a fraction of a second.

    Raises:
        ManifestError: naming the first field that does not follow the format.
    """
    _require(isinstance(doc, dict), "manifest", "expected a JSON object")
    _require(doc.get("format") == FORMAT, "manifest", f"not an ftsc manifest (`format` must be {FORMAT!r})")
    version = doc.get("version")
    _require(version == VERSION, "manifest",
             f"unsupported version {version!r} (this ftsc reads version {VERSION}; regenerate with `ftsc manifest`)")
    target = doc.get("target")
    _require(target is None or isinstance(target, str), "target", "must be a string or null")
    classes_raw = doc.get("classes", {})
    _require(isinstance(classes_raw, dict), "classes", "expected an object")
    classes = {k: _strs(v, f"classes[{k!r}]") for k, v in classes_raw.items()}
    modules = _modules(_entries(doc, "modules"))
    _require(bool(modules) and modules[0].name == "", "modules", "the first module must be the root (name \"\")")
    params = _params(_entries(doc, "parameters"))
    buffers: list[BufferEntry] = []
    for i, b in enumerate(_entries(doc, "buffers")):
        name, persistent = b.get("name"), b.get("persistent", True)
        if type(name) is not str or type(persistent) is not bool:
            raise ManifestError(f"buffers[{i}]: `name` must be a string and `persistent` true or false")
        buffers.append(BufferEntry(name, _shape(b.get("shape", []), f"buffers[{i}]"), str(b.get("dtype", "float32")),
                                   persistent))
    calls = tuple(_entries(doc, "calls"))
    _check_names(modules, params)
    _check_calls(calls, modules)
    known = {"format", "version", "target", "classes", "modules", "parameters", "buffers", "calls"}
    return Manifest(target=target, classes=classes, modules=tuple(modules), parameters=tuple(params),
                    buffers=tuple(buffers), calls=calls, extra={k: v for k, v in doc.items() if k not in known})


_CALL_KINDS = {"fsdp_wrap": "module", "fully_shard": "modules"}


def _check_calls(calls: Sequence[Mapping[str, Any]], modules: Sequence[ModuleEntry]) -> None:
    """Each recorded call is `{"kind": "fsdp_wrap", "module": NAME}` or
    `{"kind": "fully_shard", "modules": [NAME, ...]}`, naming modules of `modules`."""
    if not calls:
        return
    known = {m.name for m in modules} | {a for m in modules for a in m.aliases}
    for i, call in enumerate(calls):
        kind = call.get("kind")
        key = _CALL_KINDS.get(kind) if isinstance(kind, str) else None
        if key is None:
            raise ManifestError(f"calls[{i}]: `kind` must be one of: {', '.join(repr(k) for k in _CALL_KINDS)}")
        value = call.get(key)
        names = [value] if key == "module" else value
        if not isinstance(names, list) or not names or any(type(n) is not str for n in names):
            what = "a module name (string)" if key == "module" else "a non-empty list of module names"
            raise ManifestError(f"calls[{i}]: `{key}` must be {what}")
        missing = next((n for n in names if n not in known), None)
        if missing is not None:
            raise ManifestError(f"calls[{i}]: module {missing!r} is not in `modules`")


def _check_names(modules: Sequence[ModuleEntry], params: Sequence[ParamEntry]) -> None:
    """Names are unique, and every module, alias and parameter hangs off a listed module.

    Set operations over whole columns, so 10^5 names take milliseconds.
    """
    names = [m.name for m in modules]
    primary = set(names)
    if len(primary) != len(names):
        dup = next(n for n, c in Counter(names).items() if c > 1)
        raise ManifestError(f"modules: module name {dup!r} appears twice")
    module_aliases = [a for m in modules for a in m.aliases]
    every = primary | set(module_aliases)
    if "" in module_aliases:
        raise ManifestError("modules: the root module cannot be an alias (\"\" in `aliases`)")
    if len(every) != len(names) + len(module_aliases):
        dup = next(n for n, c in Counter(names + module_aliases).items() if c > 1)
        raise ManifestError(f"modules: module name {dup!r} appears twice")
    parents = {n.rpartition(".")[0] for n in names[1:]} | {a.rpartition(".")[0] for a in module_aliases}
    if not parents <= every:
        missing = sorted(parents - every)[0]
        who = next(n for n in names[1:] + module_aliases if n.rpartition(".")[0] == missing)
        raise ManifestError(f"modules: module {who!r} has no parent {missing!r} in `modules`")
    pnames = [p.name for p in params]
    palias = [a for p in params for a in p.aliases]
    if len(set(pnames).union(palias)) != len(pnames) + len(palias):
        dup = next(n for n, c in Counter(pnames + palias).items() if c > 1)
        raise ManifestError(f"parameters: parameter name {dup!r} appears twice")
    owners = {n.rpartition(".")[0] for n in pnames} | {a.rpartition(".")[0] for a in palias}
    if not owners <= every:
        missing = sorted(owners - every)[0]
        who = next(n for n in pnames + palias if n.rpartition(".")[0] == missing)
        raise ManifestError(f"parameters: parameter {who!r} has no module {missing!r} in `modules`")


def read(path: str | Path) -> Manifest:
    """Load and validate a manifest file.

    Raises:
        ManifestError: the file cannot be read, is not JSON, or does not follow the format.
    """
    try:
        text = read_regular(str(path), MAX_MANIFEST_BYTES).decode("utf-8")
    except ReadLimitError as err:
        raise ManifestError(f"cannot read manifest: {err}") from None
    except OSError as err:
        raise ManifestError(f"{path}: cannot read manifest: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: cannot read manifest: not UTF-8 text ({err.reason})") from None
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise ManifestError(f"{path}: not valid JSON: {err}") from None
    try:
        return from_json(doc)
    except ManifestError as err:
        raise ManifestError(f"{path}: {err}") from None


def write(manifest: Manifest, path: str | Path) -> None:
    """Write `manifest` as JSON (atomically: the old file stays whole if writing fails)."""
    atomic_write_text(path, manifest.dumps())
