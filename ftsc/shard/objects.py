"""Module objects of a model: every registration edge, and the parameters registered on each.

Input: a `ModelGraph`. Output: `ModuleObjects`, the view both FSDP predictors walk: a module
registered under several paths (a shared module) is one object with several parent edges,
and a tied parameter is registered on several module objects. Never imports torch.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

from ftsc.model.graph import ModelGraph, parent_of


class ModuleObjects:
    """Module objects (by primary FQN) with every registration edge, and direct parameters."""

    def __init__(self, graph: ModelGraph) -> None:
        self.graph = graph
        self._reversed: dict[str, list[str]] | None = None
        self.children: dict[str, list[tuple[str, str]]] = {m: [] for m in graph.modules}  # obj -> [(path, obj)]
        obj = graph.module_aliases.get
        for m in graph.modules[1:]:
            self.children[parent_of(m)].append((m, m))
        for m, entry in graph.module_entries.items():
            for alias in entry.aliases:
                parent = parent_of(alias)
                self.children[obj(parent, parent)].append((alias, m))
        regs: dict[str, dict[str, None]] = {m: {} for m in graph.modules}  # ordered sets: dedup in O(1)
        self.reg_paths: dict[str, list[tuple[str, str]]] = {}  # param -> [(path, module obj)]
        self.shared: list[str] = []  # parameters registered under more than one path (tied)
        reg_paths, maybe_alias = self.reg_paths, bool(graph.module_aliases)
        for entry in graph.manifest.parameters:
            p = entry.name
            if entry.aliases:
                self.shared.append(p)
                paths = []
                for path in (p, *entry.aliases):
                    owner = path.rpartition(".")[0]
                    owner = obj(owner, owner)
                    regs[owner][p] = None
                    paths.append((path, owner))
                reg_paths[p] = paths
                continue
            owner = p.rpartition(".")[0]
            if maybe_alias:
                owner = obj(owner, owner)
            regs[owner][p] = None
            reg_paths[p] = [(p, owner)]
        self.regs: dict[str, list[str]] = {m: list(ps) for m, ps in regs.items()}  # module obj -> params on it

    def post_order(self, roots: Sequence[str], skip: Collection[str] = ()) -> Iterator[str]:
        """Module objects below `roots` in post-order: a DFS over children with one visited set for
        all roots (torch's `_post_order_apply`), not entering `skip`; an explicit stack, so a tree
        thousands of levels deep needs no Python recursion.

        Example:
            >>> tree = ModuleObjects(ModelGraph.from_names(["a.b.w", "a.c.w", "d.w"]))
            >>> list(tree.post_order([""])), list(tree.post_order([""], skip={"a"}))
            (['a.b', 'a.c', 'a', 'd', ''], ['d', ''])
        """
        visited: set[str] = set()
        for r in roots:
            if r in visited:
                continue
            visited.add(r)
            stack = [(r, iter(self.children[r]))]
            while stack:
                m, children = stack[-1]
                for _, child in children:
                    if child not in visited and child not in skip:
                        visited.add(child)
                        stack.append((child, iter(self.children[child])))
                        break
                else:
                    stack.pop()
                    yield m

    def subtree(self, root: str) -> list[str]:
        """Module objects reachable from `root`, first-encounter pre-order (`named_modules`)."""
        if self._reversed is None:  # each module's child objects, last first (built once)
            self._reversed = {m: [child for _, child in reversed(edges)] for m, edges in self.children.items()}
        reversed_children = self._reversed
        seen: dict[str, None] = {}
        stack = [root]
        while stack:
            m = stack.pop()
            if m in seen:
                continue
            seen[m] = None
            stack.extend(reversed_children[m])
        return list(seen)

    def is_a(self, module: str, classes: Sequence[str]) -> bool:
        """True if the module's class (or a base) is one of `classes` as users write them."""
        from ftsc.shard.fsdp1 import class_matches

        return any(class_matches(c, q) for c in classes for q in self.graph.mro(module))
