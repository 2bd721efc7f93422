"""Default schedules for a model (`ftsc init`).

Input: a `ModelGraph`. Output: an `ir.Schedule` of exact-name selectors. Never imports torch.

Two styles:
- `fts`: FinetuningScheduler's implicit schedule, exactly: parameters in reverse registration
  order, two per phase (the last registered pair first); an odd one out, the first
  registered parameter, is a phase of its own. It is not module-aware: a module's weight and
  bias can land in different phases.
- `module`: the same reverse order, but one phase per module that registers parameters
  directly, so a module's parameters are never split across phases.
"""

from __future__ import annotations

from ftsc import ir
from ftsc.model.graph import ModelGraph, parent_of

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
