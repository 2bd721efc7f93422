"""FSDP2 prediction: which `fully_shard` group manages every parameter, or none (a plain tensor).

Input: a `ModelGraph`, the user's own `fully_shard` calls (recorded in `configure_model`) and
the resolved plan (FTS `fsdp_plan`: module FQNs in application order; a grouped entry's further
modules, sharded in the same list-form call). Output: a
`Prediction2`: groups in application order with their parameters, plan entries skipped,
parameters left plain, ties managed by several groups or half-sharded, and calls that fail
at `fully_shard` time. Never imports torch.

The rules (torch 2.13 `fully_shard`, FTS 2.14 `_apply_fsdp_plan`; verified differentially):
- The user's calls run first (in `configure_model`), then the plan in first-insertion order.
  FTS skips a plan entry whose module (or an ancestor) is already managed by a group.
- `fully_shard([M1, M2])` is one group: the listed modules no other listed one contains each
  carry the (shared) state; torch names the group after them in `named_modules()` order.
- `fully_shard(M)` manages the modules reached from `M` by a DFS over children that does not
  enter modules carrying their own `fully_shard` state; their not-yet-seen parameters become
  DTensors of this group, and every registration of them under `M` is replaced.
- A call that meets a parameter an earlier group already turned into a DTensor (a shared
  module in two sharded subtrees) raises at the call.
- A tied parameter reached by two groups gets two DTensors. The first forward raises when one
  sharded module contains both groups (the lazy-init root validates the groups under it);
  otherwise each group is its own root and the tie is silently split. One alias sharded and
  one not: a silent untie.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ftsc.model.graph import ModelGraph, parent_of, within
from ftsc.shard.objects import ModuleObjects


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """One `fully_shard` call: the modules it was applied to and the parameters it manages."""

    name: str  # the module FQN (list-form calls: torch's name, the roots in `named_modules()` order joined by ", ")
    modules: tuple[str, ...]  # as called (a plan group: its entry's module first)
    params: tuple[str, ...]
    source: str = "plan"  # "plan" | "user"


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    """A plan entry FTS skips because the module or an ancestor is already managed."""

    module: str
    by: str  # the group that already manages it


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction2:
    """Groups in application order, and where each parameter ends up."""

    groups: tuple[Group, ...]
    unsharded: tuple[str, ...]  # primary FQNs still plain tensors
    skipped: tuple[Skipped, ...] = ()
    multi: dict[str, tuple[str, ...]] = field(default_factory=dict)  # param -> groups managing it (>1)
    multi_raises: dict[str, bool] = field(default_factory=dict)  # param -> the first forward raises
    untied: dict[str, tuple[str, ...]] = field(default_factory=dict)  # param -> plain alias paths (silent untie)
    failed: tuple[tuple[str, str], ...] = ()  # (group, param) a call re-shards: raises at fully_shard()

    def group_of(self, param: str) -> str | None:
        """The group managing `param`'s primary registration, or None (plain)."""
        for g in self.groups:
            if param in g.params:
                return g.name
        return None


def predict2(graph: ModelGraph, plan: Sequence[str], user_calls: Sequence[Sequence[str]] = (),
             members: Mapping[str, Sequence[str]] | None = None) -> Prediction2:
    """Predict the groups `fully_shard` builds for the user's calls, then the plan. `members`
    makes a plan module's call a list-form one, `fully_shard([module, *members[module]])`; a
    member already managed is left out of it (skipped, as a plan entry would be).

    Example:
        >>> g = ModelGraph.from_names(["layers.0.w", "layers.1.w", "head.w"])
        >>> p = predict2(g, ["layers.0", "layers.1"])
        >>> [(x.name, x.params) for x in p.groups], p.unsharded
        ([('layers.0', ('layers.0.w',)), ('layers.1', ('layers.1.w',))], ('head.w',))
        >>> p = predict2(g, ["head", ""], members={"head": ["layers.1"]})
        >>> [(x.name, x.params) for x in p.groups]
        [('layers.1, head', ('head.w', 'layers.1.w')), ('', ('layers.0.w',))]
    """
    members = members or {}
    objs = ModuleObjects(graph)
    state_roots: set[str] = set()  # modules carrying fully_shard state
    managed: dict[str, str] = {}  # module -> group that manages it
    dtensor: dict[str, dict[str, str]] = {}  # param -> module obj it is registered on -> group that sharded it
    owners: dict[str, list[str]] = {}
    groups: list[Group] = []
    skipped: list[Skipped] = []
    failed: list[tuple[str, str]] = []

    def apply(modules: Sequence[str], source: str) -> None:
        roots = _root_modules(objs, [graph.module_aliases.get(m, m) for m in modules])
        name = modules[0] if len(modules) == 1 else _group_name(graph, roots)  # one module: as called
        order = list(objs.post_order(roots, skip=state_roots))
        params: dict[str, None] = {}  # an ordered set
        for m in order:
            for p in objs.regs[m]:
                if p in params:
                    continue
                if p in dtensor and m in dtensor[p]:
                    failed.append((name, p))
                    continue
                params[p] = None
        state_roots.update(roots)
        for m in order:
            managed.setdefault(m, name)
        reach = {m for r in roots for m in objs.subtree(r)}
        for p in params:
            owners.setdefault(p, []).append(name)
            for _, owner in objs.reg_paths[p]:
                if owner in reach:
                    dtensor.setdefault(p, {})[owner] = name
        groups.append(Group(name=name, modules=tuple(modules), params=tuple(params), source=source))

    for call in user_calls:
        apply(list(call), "user")
    for module in plan:
        obj = graph.module_aliases.get(module, module)
        holder = _managing(obj, managed)
        if holder is not None:
            skipped.append(Skipped(module=module, by=holder))
            continue
        call = [module]
        for other in members.get(module, ()):
            holder = _managing(graph.module_aliases.get(other, other), managed)
            if holder is not None:
                skipped.append(Skipped(module=other, by=holder))
            else:
                call.append(other)
        apply(call, "plan")
    unsharded = tuple(p for p in graph.params if p not in dtensor or objs.reg_paths[p][0][1] not in dtensor[p])
    multi = {p: tuple(gs) for p, gs in owners.items() if len(gs) > 1}
    root_of = _lazy_init_roots(groups)
    multi_raises = {p: len({root_of[g] for g in gs}) < len(gs) for p, gs in multi.items()}
    untied: dict[str, tuple[str, ...]] = {}
    for p in objs.shared:  # only a parameter registered under several paths can be half-sharded
        paths = objs.reg_paths[p]
        plain = [path for path, owner in paths if owner not in dtensor.get(p, ())]
        if plain and len(plain) < len(paths):
            untied[p] = tuple(plain)
    return Prediction2(groups=tuple(groups), unsharded=unsharded, skipped=tuple(skipped), multi=multi,
                       multi_raises=multi_raises, untied=untied, failed=tuple(failed))


def _root_modules(objs: ModuleObjects, modules: Sequence[str]) -> list[str]:
    """The listed modules no other listed module contains, in list order (torch's
    `_get_root_modules`: state goes on these, and the managed-module walk starts from them).

    Example:
        >>> objs = ModuleObjects(ModelGraph.from_names(["a.b.w", "c.w"]))
        >>> _root_modules(objs, ["a.b", "c", "a", "c"])
        ['c', 'a']
    """
    unique = list(dict.fromkeys(modules))
    if len(unique) == 1:
        return unique
    inside = {m: set(objs.subtree(m)) for m in unique}
    return [m for m in unique if not any(o != m and m in inside[o] for o in unique)]


def _group_name(graph: ModelGraph, roots: Sequence[str]) -> str:
    """What torch calls a group (`FSDPParamGroup._module_fqn`): its modules' names in the root's
    `named_modules()` order, joined by ", " (one module: its FQN).

    Example:
        >>> _group_name(ModelGraph.from_names(["a.w", "b.w"]), ["b", "a"])
        'a, b'
    """
    if len(roots) == 1:
        return roots[0]
    position = {m: i for i, m in enumerate(graph.modules)}
    return ", ".join(sorted(roots, key=lambda m: position.get(m, len(position))))


def _ancestors(path: str) -> list[str]:
    """`path` and every module path above it, root `""` included (the paths `within` accepts).

    Example:
        >>> _ancestors("a.b.c")
        ['', 'a', 'a.b', 'a.b.c']
    """
    out = [""]
    i = path.find(".")
    while i != -1:
        out.append(path[:i])
        i = path.find(".", i + 1)
    if path:
        out.append(path)
    return out


def _lazy_init_roots(groups: Sequence[Group]) -> dict[str, str]:
    """Group -> the outermost group whose modules contain it (the FSDP root at lazy init).

    The candidates for a group are found through the ancestors of its first module (a map from
    module to the groups applied to it), not by comparing every pair of groups.
    """
    by_module: dict[str, list[int]] = {}
    for i, r in enumerate(groups):
        for m_r in r.modules:
            by_module.setdefault(m_r, []).append(i)
    out: dict[str, str] = {}
    for g in groups:
        if g.modules:
            cands = sorted({i for a in _ancestors(g.modules[0]) for i in by_module.get(a, ())})
        else:
            cands = list(range(len(groups)))
        containing = [r for r in map(groups.__getitem__, cands)
                      if all(any(within(m, m_r) for m_r in r.modules) for m in g.modules)]
        out[g.name] = min(containing, key=lambda r: min(len(m) for m in r.modules) if r.modules else 0).name
    return out


def _managing(module: str, managed: dict[str, str]) -> str | None:
    """The group managing `module` or its nearest managed ancestor (FTS's `_is_fsdp_managed_module`)."""
    m = module
    while True:
        if m in managed:
            return managed[m]
        if m == "":
            return None
        m = parent_of(m)
