"""Model manifests: the JSON form of a model's structure, read and written without torch.

Input: a JSON document (or the dict `ftsc.model.build` extracts from a live module).
Output: a validated `Manifest`. Never imports torch.

Format (version 1)::

    {"format": "ftsc-manifest", "version": 1, "target": "pkg.mod:attr",
     "classes": {"pkg.mod.Block": ["torch.nn.modules.module.Module"]},   # qualname -> MRO bases
     "modules": [{"name": "", "class": "pkg.mod.Net", "aliases": []}, ...],   # named_modules() order
     "parameters": [{"name": "fc.weight", "shape": [4, 4], "dtype": "float32",
                     "requires_grad": true, "aliases": ["head.weight"]}, ...],   # named_parameters() order
     "buffers": [{"name": "bn.running_mean", "shape": [4], "dtype": "float32", "persistent": true}],
     "calls": []}    # wrap / fully_shard calls recorded while the model was built

`name` fields are primary FQNs (first registration); `aliases` list the other paths under
which the same module or parameter is registered (shared modules, tied parameters).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "ftsc-manifest"
VERSION = 1


class ManifestError(Exception):
    """A manifest that cannot be read or does not follow the format (exit status 2)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleEntry:
    """A module: primary FQN, class qualified name, other registration paths."""

    name: str
    cls: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamEntry:
    """A parameter: primary FQN, shape, dtype, whether it requires grad, alias FQNs."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    requires_grad: bool = True
    aliases: tuple[str, ...] = ()

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


@dataclass(frozen=True, slots=True, kw_only=True)
class BufferEntry:
    """A buffer: FQN, shape, dtype, persistence."""

    name: str
    shape: tuple[int, ...]
    dtype: str
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
        """The JSON document (a plain dict)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "target": self.target,
            "classes": {k: list(v) for k, v in self.classes.items()},
            "modules": [{"name": m.name, "class": m.cls, "aliases": list(m.aliases)} for m in self.modules],
            "parameters": [{"name": p.name, "shape": list(p.shape), "dtype": p.dtype,
                            "requires_grad": p.requires_grad, "aliases": list(p.aliases)} for p in self.parameters],
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
                lines.extend(f"    {json.dumps(v, sort_keys=True)}{',' if j < len(value) - 1 else ''}"
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


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    _require(isinstance(value, list) and all(isinstance(v, str) for v in value), where, "expected a list of strings")
    return tuple(value)


def _shape(value: Any, where: str) -> tuple[int, ...]:
    _require(isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                             for v in value), where, "`shape` must be a list of non-negative ints")
    return tuple(value)


def _entries(doc: Mapping[str, Any], key: str) -> Sequence[Mapping[str, Any]]:
    value = doc.get(key, [])
    _require(isinstance(value, list) and all(isinstance(v, dict) for v in value), key, "expected a list of objects")
    return value


def _name(entry: Mapping[str, Any], where: str) -> str:
    name = entry.get("name")
    _require(isinstance(name, str), where, "`name` must be a string")
    return name  # type: ignore[return-value]


def from_json(doc: Any) -> Manifest:
    """Validate a decoded JSON document.

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
    classes = {k: _str_list(v, f"classes[{k!r}]") for k, v in classes_raw.items()}
    modules: list[ModuleEntry] = []
    for i, m in enumerate(_entries(doc, "modules")):
        where = f"modules[{i}]"
        cls = m.get("class")
        _require(isinstance(cls, str), where, "`class` must be a string")
        modules.append(ModuleEntry(name=_name(m, where), cls=cls, aliases=_str_list(m.get("aliases", []), where)))
    _require(bool(modules) and modules[0].name == "", "modules", "the first module must be the root (name \"\")")
    params: list[ParamEntry] = []
    for i, p in enumerate(_entries(doc, "parameters")):
        where = f"parameters[{i}]"
        dtype = p.get("dtype", "float32")
        _require(isinstance(dtype, str), where, "`dtype` must be a string")
        rg = p.get("requires_grad", True)
        _require(isinstance(rg, bool), where, "`requires_grad` must be true or false")
        params.append(ParamEntry(name=_name(p, where), shape=_shape(p.get("shape", []), where), dtype=dtype,
                                 requires_grad=rg, aliases=_str_list(p.get("aliases", []), where)))
    buffers: list[BufferEntry] = []
    for i, b in enumerate(_entries(doc, "buffers")):
        where = f"buffers[{i}]"
        persistent = b.get("persistent", True)
        _require(isinstance(persistent, bool), where, "`persistent` must be true or false")
        buffers.append(BufferEntry(name=_name(b, where), shape=_shape(b.get("shape", []), where),
                                   dtype=str(b.get("dtype", "float32")), persistent=persistent))
    calls = tuple(_entries(doc, "calls"))
    _check_names(modules, params)
    known = {"format", "version", "target", "classes", "modules", "parameters", "buffers", "calls"}
    return Manifest(target=target, classes=classes, modules=tuple(modules), parameters=tuple(params),
                    buffers=tuple(buffers), calls=calls, extra={k: v for k, v in doc.items() if k not in known})


def _check_names(modules: Sequence[ModuleEntry], params: Sequence[ParamEntry]) -> None:
    """Names are unique, and every module, alias and parameter hangs off a listed module."""
    primary: set[str] = set()
    seen: set[str] = set()
    for m in modules:
        for n in (m.name, *m.aliases):
            _require(n not in seen, "modules", f"module name {n!r} appears twice")
            seen.add(n)
        if m.name:
            parent = m.name.rpartition(".")[0]
            _require(parent in primary, "modules",
                     f"module {m.name!r} comes before (or without) its parent {parent!r} (`named_modules()` order)")
        primary.add(m.name)
    for m in modules:
        for a in m.aliases:
            _require(a != "" and a.rpartition(".")[0] in seen, "modules",
                     f"alias {a!r} of module {m.name!r} has no parent module in `modules`")
    seen_p: set[str] = set()
    for p in params:
        for n in (p.name, *p.aliases):
            _require(n not in seen_p, "parameters", f"parameter name {n!r} appears twice")
            seen_p.add(n)
            parent = n.rpartition(".")[0]
            _require(parent in seen, "parameters", f"parameter {n!r} has no module {parent!r} in `modules`")


def read(path: str | Path) -> Manifest:
    """Load and validate a manifest file.

    Raises:
        ManifestError: the file cannot be read, is not JSON, or does not follow the format.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestError(f"{path}: cannot read manifest: {err}") from None
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise ManifestError(f"{path}: not valid JSON: {err}") from None
    try:
        return from_json(doc)
    except ManifestError as err:
        raise ManifestError(f"{path}: {err}") from None


def write(manifest: Manifest, path: str | Path) -> None:
    """Write `manifest` as JSON."""
    Path(path).write_text(manifest.dumps(), encoding="utf-8")
