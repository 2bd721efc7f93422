"""ModelGraph: the one index of a model's structure every analysis uses.

Input: a `Manifest` (read from JSON, or extracted from a live module by `ftsc.model.build`).
Output: a `ModelGraph`: parameters in `named_parameters()` order with their aliases, modules
in `named_modules()` order, containment and class hierarchy as a networkx DiGraph.
Never imports torch.

Graph nodes are strings: `m:<fqn>` modules, `p:<fqn>` parameters (primary names), `c:<qualname>`
classes. Edges: module -> child module and module -> parameter (`kind="contains"`, `name`
the local name; alias registrations are edges too, `alias=True`), module -> class
(`kind="instance_of"`), class -> base class (`kind="subclass_of"`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from ftsc.model.manifest import Manifest, ModuleEntry, ParamEntry
from ftsc.model.names import NameIndex

if TYPE_CHECKING:
    import networkx as nx


def within(path: str, ancestor: str) -> bool:
    """True if module path `path` is `ancestor` or lies below it (`""`, the root, holds everything).

    Example:
        >>> within("layers.1.attn", "layers.1"), within("layers.10", "layers.1"), within("head", "")
        (True, False, True)
    """
    return ancestor == "" or path == ancestor or path.startswith(ancestor + ".")


def parent_of(fqn: str) -> str:
    """The FQN of the module that registers `fqn` (`""` is the root)."""
    return fqn.rpartition(".")[0]


class ModelGraph:
    """Modules, parameters and classes of one model.

    Example:
        >>> from ftsc.model.manifest import from_json
        >>> g = ModelGraph(from_json({"format": "ftsc-manifest", "version": 1,
        ...     "classes": {"Net": ["torch.nn.modules.module.Module"]},
        ...     "modules": [{"name": "", "class": "Net"}, {"name": "fc", "class": "Net"}],
        ...     "parameters": [{"name": "fc.weight", "shape": [2, 3], "aliases": ["tied"]}]}))
        >>> g.params, g.aliases, g.numel("fc.weight")
        (('fc.weight',), {'tied': 'fc.weight'}, 6)
        >>> g.is_instance("fc", "torch.nn.modules.module.Module")
        True
    """

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.params: tuple[str, ...] = tuple(p.name for p in manifest.parameters)
        self.aliases: dict[str, str] = {a: p.name for p in manifest.parameters if p.aliases for a in p.aliases}

    # Indexes built on first use: a schedule-only check of a huge model never pays for them.
    @cached_property
    def param_entries(self) -> dict[str, ParamEntry]:
        """Primary parameter FQN -> its manifest entry."""
        return {p.name: p for p in self.manifest.parameters}

    @cached_property
    def modules(self) -> tuple[str, ...]:
        """Module FQNs (primary), `named_modules()` order."""
        return tuple(m.name for m in self.manifest.modules)

    @cached_property
    def module_entries(self) -> dict[str, ModuleEntry]:
        """Primary module FQN -> its manifest entry."""
        return {m.name: m for m in self.manifest.modules}

    @cached_property
    def module_aliases(self) -> dict[str, str]:
        """Alias path -> primary FQN for modules registered more than once."""
        return {a: m.name for m in self.manifest.modules if m.aliases for a in m.aliases}

    @classmethod
    def from_names(cls, params: Sequence[str] | Mapping[str, Sequence[int]],
                   aliases: Mapping[str, str] | None = None,
                   classes: Mapping[str, tuple[str, ...]] | None = None) -> ModelGraph:
        """A graph of plain modules holding `params` (FQN, or FQN -> shape; default shape `[2]`).

        Modules are inferred from the FQNs; `aliases` maps alias FQN -> primary FQN; `classes`
        maps a module FQN to its class and bases (qualified names, MRO order). For tests and
        examples that need no real model.

        Example:
            >>> ModelGraph.from_names(["a.w", "b.w"]).modules
            ('', 'a', 'b')
        """
        shapes = params if isinstance(params, Mapping) else {p: (2,) for p in params}
        alias_of: dict[str, list[str]] = {}
        for alias, primary in (aliases or {}).items():
            alias_of.setdefault(primary, []).append(alias)
        modules: dict[str, None] = {"": None}
        for name in [*shapes, *(aliases or {})]:
            parts = name.split(".")[:-1]
            for i in range(1, len(parts) + 1):
                modules[".".join(parts[:i])] = None
        base = "torch.nn.modules.module.Module"
        mro = {m: c for m, c in (classes or {}).items()}
        class_table = {base: ()} | {c[0]: tuple(c[1:]) for c in mro.values()}
        return cls(Manifest(target=None, classes=class_table,
                            modules=tuple(ModuleEntry(name=m, cls=mro[m][0] if m in mro else base) for m in modules),
                            parameters=tuple(ParamEntry(name=n, shape=tuple(s), dtype="float32",
                                                        aliases=tuple(alias_of.get(n, ()))) for n, s in shapes.items())))

    # -- parameters -------------------------------------------------------------------------
    @cached_property
    def index(self) -> NameIndex:
        """Prefix-pruned matcher over the primary parameter names."""
        return NameIndex(self.params)

    @cached_property
    def module_index(self) -> NameIndex:
        """Prefix-pruned matcher over the primary module names (root `""` included)."""
        return NameIndex(self.modules)

    @cached_property
    def _param_set(self) -> frozenset[str]:
        return frozenset(self.params)

    def has_param(self, name: str) -> bool:
        """True if `name` is a primary parameter FQN."""
        return name in self._param_set

    @cached_property
    def numels(self) -> dict[str, int]:
        """Parameter name (primary or alias) -> number of elements, computed once per graph."""
        out = {p.name: p.numel for p in self.manifest.parameters}
        out.update((a, out[p]) for a, p in self.aliases.items())
        return out

    def numel(self, name: str) -> int:
        """Number of elements of a parameter (primary name or alias)."""
        return self.numels[name]

    def primary(self, name: str) -> str:
        """The primary FQN of a parameter given by any of its names."""
        return self.aliases.get(name, name)

    # -- modules ----------------------------------------------------------------------------
    def module_object(self, path: str) -> str:
        """The primary FQN of the module registered at `path`, which may run through shared
        modules (`shared.child` when `shared` is an alias of `a.b`: `a.b.child`). Unknown paths
        are returned as given.

        Example:
            >>> from ftsc.model.manifest import from_json
            >>> g = ModelGraph(from_json({"format": "ftsc-manifest", "version": 1, "classes": {},
            ...     "modules": [{"name": "", "class": "Net"}, {"name": "a", "class": "Net", "aliases": ["s"]},
            ...                 {"name": "a.c", "class": "Leaf"}], "parameters": []}))
            >>> g.module_object("s.c"), g.module_object("s"), g.module_object("a.c"), g.module_class("s.c")
            ('a.c', 'a', 'a.c', 'Leaf')
        """
        if path in self.module_entries:
            return path
        if path in self.module_aliases:
            return self.module_aliases[path]
        current = ""
        for local in path.split("."):  # left to right: every prefix through the aliases
            step = f"{current}.{local}" if current else local
            current = self.module_aliases.get(step, step)
        return current if current in self.module_entries else path

    def module_class(self, fqn: str) -> str:
        """Qualified class name of a module (given by its FQN or any path it is registered at)."""
        return self.module_entries[self.module_object(fqn)].cls

    def mro(self, fqn: str) -> tuple[str, ...]:
        """The module's class followed by its bases (qualified names, MRO order)."""
        cls = self.module_class(fqn)
        return (cls, *self.manifest.classes.get(cls, ()))

    def is_instance(self, fqn: str, qualname: str) -> bool:
        """True if the module's class is `qualname` or derives from it."""
        return qualname in self.mro(fqn)

    @property
    def manual_wraps(self) -> tuple[str, ...]:
        """Modules the model wraps itself with FSDP1 `wrap()` in `configure_model`, in call order."""
        return tuple(c["module"] for c in self.manifest.calls if c.get("kind") == "fsdp_wrap")

    @property
    def user_fully_shard(self) -> tuple[tuple[str, ...], ...]:
        """FSDP2 `fully_shard` calls the model makes itself in `configure_model`, in call order."""
        return tuple(tuple(c["modules"]) for c in self.manifest.calls if c.get("kind") == "fully_shard")

    # -- the networkx view ------------------------------------------------------------------
    @cached_property
    def graph(self) -> nx.DiGraph:
        """Containment and class hierarchy as a DiGraph (built, and networkx imported, on first use)."""
        import networkx as nx

        g = nx.DiGraph()
        for cls, bases in self.manifest.classes.items():
            g.add_node(f"c:{cls}", kind="class")
            chain = (cls, *bases)
            for sub, base in zip(chain, chain[1:], strict=False):
                g.add_edge(f"c:{sub}", f"c:{base}", kind="subclass_of")
        for m in self.manifest.modules:
            g.add_node(f"m:{m.name}", kind="module", cls=m.cls)
            g.add_edge(f"m:{m.name}", f"c:{m.cls}", kind="instance_of")
            if m.name:
                g.add_edge(f"m:{parent_of(m.name)}", f"m:{m.name}", kind="contains",
                           name=m.name.rpartition(".")[2], alias=False)
            for a in m.aliases:
                g.add_edge(f"m:{self.module_aliases.get(parent_of(a), parent_of(a))}", f"m:{m.name}",
                           kind="contains", name=a.rpartition(".")[2], alias=True)
        for p in self.manifest.parameters:
            g.add_node(f"p:{p.name}", kind="param", shape=p.shape, dtype=p.dtype, numel=p.numel)
            for path, alias in ((p.name, False), *((a, True) for a in p.aliases)):
                owner = parent_of(path)
                g.add_edge(f"m:{self.module_aliases.get(owner, owner)}", f"p:{p.name}", kind="contains",
                           name=path.rpartition(".")[2], alias=alias)
        return g

    def total_numel(self, names: Sequence[str]) -> int:
        """Summed numel of `names` (each counted once)."""
        return sum(map(self.numels.__getitem__, dict.fromkeys(names)))

    @cached_property
    def numel_all(self) -> int:
        """Elements in all parameters (each tensor once)."""
        return sum(map(math.prod, (p.shape for p in self.manifest.parameters)))
