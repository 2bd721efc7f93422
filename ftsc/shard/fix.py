"""Fix suggestions for FSDP1: the fewest extra `wrap` overrides that make every unit single-phase.

Input: a `ModelGraph`, the `FSDP1Spec`, its `Prediction` and each parameter's phase label.
Output: module FQNs to add as overrides (FTS `awp_overrides`), verified by predicting again,
or None when no set of overrides can separate the phases. Never imports torch.

Per mixed unit, a tree DP over the modules whose parameters land in it: `cost(v, L)` is the
fewest wraps inside `v`'s subtree so that what stays with `v`'s group is all label `L`; a
child either stays in the group (`cost(c, L)`) or is wrapped on its own
(`1 + min cost(c, L')`). Containers (`ModuleList`/`ModuleDict`) have no forward and are
never proposed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import replace

from ftsc.model.graph import ModelGraph, parent_of
from ftsc.shard.fsdp1 import CONTAINERS, FSDP1Spec, Prediction, Unit, predict

INF = float("inf")


def mixed_units(prediction: Prediction, label: Callable[[str], Hashable]) -> list[Unit]:
    """Units whose FlatParameter holds parameters of more than one label."""
    return [u for u in prediction.units if len({label(p) for p in u.params}) > 1]


def _unit_overrides(graph: ModelGraph, unit: Unit, unit_names: set[str],
                    label: Callable[[str], Hashable]) -> list[str] | None:
    owner_of = {p: graph.module_aliases.get(parent_of(p), parent_of(p)) for p in unit.params}
    region: dict[str, set[Hashable]] = {}  # module -> labels of unit params registered directly on it
    for p, owner in owner_of.items():
        region.setdefault(owner, set()).add(label(p))
    # Modules on a path from the unit module to a parameter owner form the DP tree.
    keep: set[str] = set()
    base = unit.name
    for owner in region:
        m = owner
        while True:
            keep.add(m)
            if m == base or m == "":
                break
            m = parent_of(m)
    if base not in keep:
        return None
    labels = {label(p) for p in unit.params}
    children: dict[str, list[str]] = {m: [] for m in keep}
    for m in keep:
        if m != base and m:
            children[parent_of(m)].append(m)
    memo: dict[tuple[str, Hashable], tuple[float, list[str]]] = {}

    def wrappable(m: str) -> bool:
        return m not in unit_names and not any(graph.is_instance(m, c) for c in CONTAINERS)

    def cost(v: str, lab: Hashable) -> tuple[float, list[str]]:
        key = (v, lab)
        if key in memo:
            return memo[key]
        if region.get(v, set()) - {lab}:
            memo[key] = (INF, [])
            return memo[key]
        total, chosen = 0.0, []
        for c in children[v]:
            stay = cost(c, lab)
            own = wrap_cost(c)
            best = stay if stay[0] <= own[0] else own
            total += best[0]
            chosen += best[1]
        memo[key] = (total, chosen)
        return memo[key]

    def wrap_cost(c: str) -> tuple[float, list[str]]:
        if not wrappable(c):
            return (INF, [])
        best = min((cost(c, lab) for lab in labels), key=lambda t: t[0])
        return (1 + best[0], [c, *best[1]])

    best = min((cost(base, lab) for lab in labels), key=lambda t: t[0])
    return best[1] if best[0] < INF else None


def minimal_overrides(graph: ModelGraph, spec: FSDP1Spec, prediction: Prediction,
                      label: Callable[[str], Hashable]) -> list[str] | None:
    """Extra override module FQNs that make every unit single-label (verified), [] if none needed.

    Example:
        >>> from ftsc.shard.fsdp1 import predict
        >>> g = ModelGraph.from_names(["enc.a.w", "enc.b.w", "head.w"])
        >>> spec = FSDP1Spec(use_orig_params=False)
        >>> phase = {"enc.a.w": 1, "enc.b.w": 1, "head.w": 0}.get
        >>> minimal_overrides(g, spec, predict(g, spec), phase)
        ['enc']
    """
    bad = mixed_units(prediction, label)
    if not bad:
        return []
    unit_names = {u.name for u in prediction.units}
    extra: list[str] = []
    for unit in bad:
        found = _unit_overrides(graph, unit, unit_names, label)
        if found is None:
            return None
        extra += found
    extra = list(dict.fromkeys(extra))
    fixed = predict(graph, replace(spec, overrides=tuple(dict.fromkeys((*spec.overrides, *extra)))))
    return extra if not mixed_units(fixed, label) else None
