"""Module objects of a model: every registration edge, and the parameters registered on each.

Input: a `ModelGraph`. Output: `ModuleObjects`, the view both FSDP predictors walk: a module
registered under several paths (a shared module) is one object with several parent edges,
and a tied parameter is registered on several module objects. Never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from ftsc.model.graph import ModelGraph, parent_of


class ModuleObjects:
    """Module objects (by primary FQN) with every registration edge, and direct parameters."""

    def __init__(self, graph: ModelGraph) -> None:
        self.graph = graph
        self.children: dict[str, list[tuple[str, str]]] = {m: [] for m in graph.modules}  # obj -> [(path, obj)]
        obj = graph.module_aliases.get
        for m in graph.modules[1:]:
            self.children[parent_of(m)].append((m, m))
        for m, entry in graph.module_entries.items():
            for alias in entry.aliases:
                parent = parent_of(alias)
                self.children[obj(parent, parent)].append((alias, m))
        self.regs: dict[str, list[str]] = {m: [] for m in graph.modules}  # module obj -> params registered on it
        self.reg_paths: dict[str, list[tuple[str, str]]] = {}  # param -> [(path, module obj)]
        for p in graph.params:
            for path in (p, *graph.param_entries[p].aliases):
                owner = parent_of(path)
                owner = obj(owner, owner)
                if p not in self.regs[owner]:
                    self.regs[owner].append(p)
                self.reg_paths.setdefault(p, []).append((path, owner))

    def subtree(self, root: str) -> list[str]:
        """Module objects reachable from `root`, first-encounter pre-order (`named_modules`)."""
        seen: dict[str, None] = {}
        stack = [root]
        while stack:
            m = stack.pop()
            if m in seen:
                continue
            seen[m] = None
            stack.extend(child for _, child in reversed(self.children[m]))
        return list(seen)

    def is_a(self, module: str, classes: Sequence[str]) -> bool:
        """True if the module's class (or a base) is one of `classes` as users write them."""
        from ftsc.shard.fsdp1 import class_matches

        return any(class_matches(c, q) for c in classes for q in self.graph.mro(module))
