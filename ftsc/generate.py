"""Default schedules for a model (`ftsc init`).

Input: a `ModelGraph`. Output: an `ir.Schedule` of exact-name selectors. Never imports torch.

Two styles:
- `fts`: FinetuningScheduler's implicit schedule, exactly: parameters in reverse registration
  order, two per phase (the last registered pair first); an odd one out, the first
  registered parameter, is a phase of its own. It is not module-aware: a module's weight and
  bias can land in different phases.
- `module`: the same reverse order, but one phase per module that registers parameters
  directly, so a module's parameters are never split across phases.
- `unit` (with an FSDP strategy): one phase per FSDP unit / `fully_shard` group with
  parameters, last wrapped first (the root's leftovers thaw last), then the parameters in no
  unit; no FlatParameter or group ever spans phases.
"""

from __future__ import annotations

from collections.abc import Sequence

from ftsc import ir
from ftsc.model.graph import ModelGraph, parent_of, within

STYLES = ("fts", "module")


def _phase(index: int, names: list[str]) -> ir.Phase:
    return ir.Phase(index=index, selectors=tuple(ir.Selector(kind=ir.SelectorKind.EXACT, pattern=n) for n in names))


def default_groups(graph: ModelGraph, style: str = "fts") -> list[list[str]]:
    """Parameter groups, one per phase, for `style`.

    Example:
        >>> g = ModelGraph.from_names(["model.0.weight", "model.0.bias", "model.2.weight", "extra"])
        >>> default_groups(g, "fts")
        [['extra', 'model.2.weight'], ['model.0.bias', 'model.0.weight']]
        >>> default_groups(g, "module")
        [['extra'], ['model.2.weight'], ['model.0.bias', 'model.0.weight']]
    """
    if style not in STYLES:
        raise ValueError(f"Invalid style: {style}. Expected one of: {', '.join(STYLES)}.")
    reversed_params = list(reversed(graph.params))
    if style == "fts":
        groups = [reversed_params[i : i + 2] for i in range(0, len(reversed_params), 2)]
        return groups
    by_owner: dict[str, list[str]] = {}
    for name in reversed_params:
        by_owner.setdefault(parent_of(name), []).append(name)
    return list(by_owner.values())


def default_schedule(graph: ModelGraph, style: str = "fts") -> ir.Schedule:
    """The default schedule of `style` as IR."""
    return ir.Schedule(phases=tuple(_phase(i, g) for i, g in enumerate(default_groups(graph, style))))


def unit_schedule(graph: ModelGraph, units: Sequence[tuple[str, Sequence[str]]],
                  unsharded: Sequence[str]) -> ir.Schedule:
    """One phase per unit with parameters, then the unsharded parameters.

    `units` are `(module FQN, params)` in wrap/application order. Leaf units come first, last
    wrapped first (the head before the body); units that enclose other units (FSDP roots
    holding the leftovers) follow, innermost first. A tied parameter copied into two units
    thaws with the first phase that lists it.

    Example:
        >>> g = ModelGraph.from_names(["a.w", "b.w", "c.w", "d.w"])
        >>> s = unit_schedule(g, [("a", ["a.w"]), ("b", ["b.w"]), ("", ["c.w"])], ["d.w"])
        >>> [p.selectors[0].pattern for p in s.phases]
        ['b.w', 'a.w', 'c.w', 'd.w']
    """
    names = [n for n, _ in units]
    ordered = list(reversed(list(units)))
    def encloses(outer: str) -> bool:
        return any(n != outer and within(n, outer) for n in names)

    leaves = [u for u in ordered if not encloses(u[0])]
    outers = [u for u in units if encloses(u[0])]
    groups: list[list[str]] = []
    seen: set[str] = set()
    for params in [*(list(p) for _, p in leaves), *(list(p) for _, p in outers), list(unsharded)]:
        fresh = [p for p in params if p not in seen]
        seen.update(fresh)
        if fresh:
            groups.append(fresh)
    return ir.Schedule(phases=tuple(_phase(i, g) for i, g in enumerate(groups)))
