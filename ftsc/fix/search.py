"""The fix search for FSDP1: the fewest extra `wrap` overrides that make every unit single-phase
and give phase 0 a unit of its own.

Input: a `ModelGraph`, the `FSDP1Spec`, its `Prediction` and each parameter's phase label.
Output: module FQNs to add as overrides (FTS `awp_overrides`), verified by predicting again,
or None when no set of overrides does it. Never imports torch, never reads or writes files.

Per mixed unit, a tree DP over the modules whose parameters land in it: `cost(v, L)` is the
fewest wraps inside `v`'s subtree so that what stays with `v`'s group is all label `L`; a
child either stays in the group (`cost(c, L)`) or is wrapped on its own
(`1 + min cost(c, L')`). Ties go to the first label in sorted order and to children in
module order, so the answer never depends on hash order. Containers
(`ModuleList`/`ModuleDict`) have no forward and are never proposed. FinetuningScheduler also
requires phase 0 to own a flattened parameter (FTS305): when the cheapest separation leaves
phase 0 without a unit, wrapping a phase-0-only module first is tried as well, and the
smallest verified answer wins.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import replace

from ftsc.model.graph import ModelGraph, parent_of, within
from ftsc.shard.fsdp1 import CONTAINERS, FSDP1Spec, Prediction, Unit, predict

INF = float("inf")
_MAX_SEEDS = 8  # phase-0 modules tried as a first wrap when phase 0 would own no unit


def _order(label: Hashable) -> tuple[int, int, str]:
    """A total order over labels (phase ints and None) that never compares mixed types."""
    if label is None:
        return (1, 0, "")
    return (0, label, "") if isinstance(label, int) else (0, 0, str(label))


def mixed_units(prediction: Prediction, label: Callable[[str], Hashable]) -> list[Unit]:
    """Units whose FlatParameter holds parameters of more than one label."""
    return [u for u in prediction.units if len({label(p) for p in u.params}) > 1]


def phase_zero_owns_unit(prediction: Prediction, use_orig_params: bool, phase0: Iterable[str]) -> bool:
    """FinetuningScheduler's rule for FSDP1 (FTS305): phase 0 owns a flattened parameter.

    With `use_orig_params=False` a phase-0 module must be, or contain, a unit with parameters;
    with `True` some phase-0 parameter must be in a unit. An empty phase 0 passes.

    Example:
        >>> g = ModelGraph.from_names(["head.w", "body.w"])
        >>> spec = FSDP1Spec(use_orig_params=False, overrides=("body",))
        >>> phase_zero_owns_unit(predict(g, spec), False, ["head.w"])
        False
    """
    params = list(phase0)
    if not params:
        return True
    if use_orig_params:
        return any(p in prediction.owners for p in params)
    units = [u.name for u in prediction.units if u.params]
    modules = sorted({parent_of(p) for p in params})
    return any(within(u, m) for m in modules for u in units)


def _unit_overrides(graph: ModelGraph, unit: Unit, unit_names: set[str],
                    label: Callable[[str], Hashable]) -> list[str] | None:
    owner_of = {p: graph.module_aliases.get(parent_of(p), parent_of(p)) for p in unit.params}
    region: dict[str, set[Hashable]] = {}  # module -> labels of unit params registered directly on it
    for p, owner in owner_of.items():
        region.setdefault(owner, set()).add(label(p))
    # Modules on a path from the unit module to a parameter owner form the DP tree.
    keep: dict[str, None] = {}
    base = unit.name
    for owner in region:
        m = owner
        while True:
            keep[m] = None
            if m == base or m == "":
                break
            m = parent_of(m)
    if base not in keep:
        return None
    labels = sorted({label(p) for p in unit.params}, key=_order)
    rank = {m: i for i, m in enumerate(graph.modules)}
    children: dict[str, list[str]] = {m: [] for m in keep}
    for m in sorted(keep, key=lambda m: (rank.get(m, len(rank)), m)):
        if m != base and m:
            children[parent_of(m)].append(m)
    # Labels absent from a subtree all cost the same there (everything labelled must be wrapped
    # away): they share one state, so the DP has sum(|labels in subtree| + 1) states, not
    # modules x labels.
    other = object()
    inside: dict[str, set[Hashable]] = {}
    for m in sorted(keep, key=lambda m: -m.count(".") if m else 1):
        inside.setdefault(m, set()).update(region.get(m, ()))
        if m != base and m:
            inside.setdefault(parent_of(m), set()).update(inside[m])
    memo: dict[tuple[str, object], float] = {}
    wrapped: dict[str, tuple[float, Hashable]] = {}

    def wrappable(m: str) -> bool:
        return m not in unit_names and not any(graph.is_instance(m, c) for c in CONTAINERS)

    def cost(v: str, lab: Hashable) -> float:
        key = (v, lab if lab in inside[v] else other)
        if key not in memo:
            if region.get(v, set()) - {lab}:
                memo[key] = INF
            else:
                memo[key] = sum(min(cost(c, lab), wrap_cost(c)[0]) for c in children[v])
        return memo[key]

    def wrap_cost(c: str) -> tuple[float, Hashable]:
        """The cost of wrapping `c` on its own, and the label its own unit then keeps."""
        if c not in wrapped:
            if not wrappable(c):
                wrapped[c] = (INF, None)
            else:
                lab = min(labels, key=lambda lab: cost(c, lab))
                wrapped[c] = (1 + cost(c, lab), lab)
        return wrapped[c]

    def chosen(v: str, lab: Hashable, out: list[str]) -> None:
        for c in children[v]:
            own, own_lab = wrap_cost(c)
            if cost(c, lab) <= own:
                chosen(c, lab, out)
            else:
                out.append(c)
                chosen(c, own_lab, out)

    lab = min(labels, key=lambda lab: cost(base, lab))
    if cost(base, lab) == INF:
        return None
    out: list[str] = []
    chosen(base, lab, out)
    return out


def minimal_overrides(graph: ModelGraph, spec: FSDP1Spec, prediction: Prediction,
                      label: Callable[[str], Hashable]) -> list[str] | None:
    """Extra override module FQNs that make every unit single-label (verified), [] if none needed.

    Example:
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


def _phase_zero_seeds(graph: ModelGraph, spec: FSDP1Spec, prediction: Prediction,
                      label: Callable[[str], Hashable], phase0: list[str]) -> list[str]:
    """Modules holding only phase-0 parameters, highest first, that could become units."""
    unit_names = {u.name for u in prediction.units}
    by_module: dict[str, set[Hashable]] = {}
    for p in graph.params:
        m = parent_of(p)
        while True:
            by_module.setdefault(m, set()).add(label(p))
            if m == "":
                break
            m = parent_of(m)
    found: list[str] = []
    for p in phase0:
        m, best = parent_of(p), None
        while m and by_module.get(m) == {0}:
            if m not in unit_names and m not in spec.ignored and not any(graph.is_instance(m, c) for c in CONTAINERS):
                best = m
            m = parent_of(m)
        if best is not None and best not in found:
            found.append(best)
    found.sort(key=lambda m: (m.count("."), m))
    return found[:_MAX_SEEDS]


def fsdp1_overrides(graph: ModelGraph, spec: FSDP1Spec, prediction: Prediction,
                    label: Callable[[str], Hashable], phase0: Iterable[str]) -> list[str] | None:
    """The fewest extra overrides after which no unit mixes labels and phase 0 owns a unit
    (FTS301/FTS302 and FTS305), verified by predicting again; [] when nothing is needed, None
    when no answer was found.

    Example:
        >>> g = ModelGraph.from_names(["head.w", "layers.0.w", "layers.1.w"])
        >>> spec = FSDP1Spec(use_orig_params=False)
        >>> phase = {"head.w": 0, "layers.0.w": 1, "layers.1.w": 1}.get
        >>> fsdp1_overrides(g, spec, predict(g, spec), phase, ["head.w"])
        ['head']
    """
    phase0 = list(phase0)

    def done(pred: Prediction) -> bool:
        return not mixed_units(pred, label) and phase_zero_owns_unit(pred, spec.use_orig_params, phase0)

    if done(prediction):
        return []
    answers: list[list[str]] = []
    for seed in [None, *_phase_zero_seeds(graph, spec, prediction, label, phase0)]:
        first = [] if seed is None else [seed]
        seeded = replace(spec, overrides=tuple(dict.fromkeys((*spec.overrides, *first))))
        pred = predict(graph, seeded) if first else prediction
        rest = minimal_overrides(graph, seeded, pred, label)
        if rest is None:
            continue
        extra = list(dict.fromkeys((*first, *rest)))
        if done(predict(graph, replace(spec, overrides=tuple(dict.fromkeys((*spec.overrides, *extra)))))):
            answers.append(extra)
    return min(answers, key=len) if answers else None
