"""Selector resolution: which parameters each selector and each phase picks out of a model.

Input: a selector and candidate names, or a whole schedule and a `ModelGraph`.
Output: matched names in registration order; for a schedule, a `Resolution` (per phase, per
selector, the primary parameter FQNs; which phases each parameter is in; what no phase thaws).
Never imports torch.

Semantics per selector kind:
- `fts "p"` (and every FTS YAML pattern): FinetuningScheduler's rule. `p` itself if it is a
  parameter FQN, else every FQN `re.match(p, fqn)` accepts (anchored at the start only).
- exact `name` / `"name"`: that FQN only.
- `/regex/`: every FQN the regex matches in full.
- `glob "..."`: every FQN the glob matches in full (`*` within a segment, `**` across).

Patterns are resolved against primary FQNs only (`named_parameters()`, which lists a shared
parameter once). A selector naming an alias of a shared parameter, and matching nothing
else, is pruned as FinetuningScheduler prunes it: the parameter thaws with its primary name.

Every pattern runs through `ftsc.matching`: Python `re` semantics, in time bounded by pattern
size x name length (no catastrophic backtracking, whatever the pattern and the names).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ftsc import ir
from ftsc.model.graph import ModelGraph
from ftsc.matching import UnsupportedPattern, match_names
from ftsc.regexes import glob_to_regex


def resolve(selector: ir.Selector, names: Sequence[str]) -> list[str]:
    """The names `selector` matches (plain loop; `ModelGraph`-free reference semantics).

    Example:
        >>> from ftsc.ir import Selector, SelectorKind
        >>> names = ["model.1.weight", "model.10.weight"]
        >>> resolve(Selector(kind=SelectorKind.FTS, pattern="model.1"), names)
        ['model.1.weight', 'model.10.weight']
        >>> resolve(Selector(kind=SelectorKind.REGEX, pattern=r"model\\.1\\..*"), names)
        ['model.1.weight']
    """
    match selector.kind:
        case ir.SelectorKind.EXACT:
            return [n for n in names if n == selector.pattern]
        case ir.SelectorKind.FTS:
            if selector.pattern in names:
                return [selector.pattern]
            return match_names(selector.pattern, list(names))
        case ir.SelectorKind.REGEX:
            return match_names(selector.pattern, list(names), full=True)
        case ir.SelectorKind.GLOB:
            return match_names(glob_to_regex(selector.pattern), list(names), full=True)
        case _:
            raise ValueError(f"Invalid selector kind: {selector.kind}.")


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectorMatch:
    """What one selector of one phase resolved to."""

    phase: int
    selector: ir.Selector
    params: tuple[str, ...]
    pruned_alias: str | None = None  # the selector named this alias of a shared parameter
    invalid: bool = False  # the pattern does not compile (reported as FTS101)
    problem: str | None = None  # compiles, but could not be matched against these names in bounded time


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseResolution:
    """A phase's selectors and the parameters they thaw (deduplicated, in resolution order)."""

    index: int
    matches: tuple[SelectorMatch, ...]
    params: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolution:
    """A schedule resolved against a model."""

    phases: tuple[PhaseResolution, ...]
    phases_of: Mapping[str, tuple[int, ...]]  # parameter -> phases that thaw it, in schedule order
    unscheduled: tuple[str, ...]  # parameters no phase thaws, registration order

    def phase(self, index: int) -> PhaseResolution | None:
        """The resolution of phase `index`."""
        return next((p for p in self.phases if p.index == index), None)

    def phase_of(self, param: str) -> int | None:
        """The first phase that thaws `param`, or None."""
        phases = self.phases_of.get(param)
        return phases[0] if phases else None

    def selector_for(self, param: str, phase: int) -> ir.Selector | None:
        """The first selector of `phase` that matched `param`."""
        resolved = self.phase(phase)
        if resolved is None:
            return None
        return next((m.selector for m in resolved.matches if param in m.params), None)


def match_selector(selector: ir.Selector, graph: ModelGraph) -> tuple[list[str], str | None]:
    """`(primary FQNs matched, alias pruned or None)`.

    Raises:
        re.error: when the pattern does not compile.
        UnsupportedPattern: when it cannot be matched in bounded time (backreferences).
    """
    pattern = selector.pattern
    match selector.kind:
        case ir.SelectorKind.EXACT:
            hits = [pattern] if graph.has_param(pattern) else []
        case ir.SelectorKind.FTS:
            hits = [pattern] if graph.has_param(pattern) else graph.index.match(pattern)
        case ir.SelectorKind.REGEX:
            hits = graph.index.match(pattern, full=True)
        case ir.SelectorKind.GLOB:
            hits = graph.index.match(glob_to_regex(pattern), full=True)
        case _:
            raise ValueError(f"Invalid selector kind: {selector.kind}.")
    if not hits and pattern in graph.aliases and selector.kind in (ir.SelectorKind.EXACT, ir.SelectorKind.FTS):
        return [], pattern
    return hits, None


def match_modules(selector: ir.Selector, graph: ModelGraph) -> list[str]:
    """Module FQNs (primary, `named_modules()` order, root `""` included) `selector` matches.

    Same rules as for parameters: FTS selectors (`awp_overrides`, `fsdp_plan` keys) take the
    exact module name if it exists, else `re.match` over every module name.

    Raises:
        re.error: when the pattern does not compile.
        UnsupportedPattern: when it cannot be matched in bounded time (backreferences).
    """
    pattern = selector.pattern
    index = graph.module_index
    match selector.kind:
        case ir.SelectorKind.EXACT:
            return [pattern] if pattern in graph.module_entries else []
        case ir.SelectorKind.FTS:
            return [pattern] if pattern in graph.module_entries else index.match(pattern)
        case ir.SelectorKind.REGEX:
            return index.match(pattern, full=True)
        case ir.SelectorKind.GLOB:
            return index.match(glob_to_regex(pattern), full=True)
        case _:
            raise ValueError(f"Invalid selector kind: {selector.kind}.")


def resolve_schedule(schedule: ir.Schedule, graph: ModelGraph) -> Resolution:
    """Resolve every phase's selectors against `graph`.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.model.manifest import from_json
        >>> from ftsc.source import SourceFile
        >>> g = ModelGraph(from_json({"format": "ftsc-manifest", "version": 1,
        ...     "modules": [{"name": "", "class": "Net"}],
        ...     "parameters": [{"name": n, "shape": [2]} for n in ("a", "b", "c")]}))
        >>> s = load_text(SourceFile("x.ftsc", "phase 0 { thaw a, a } phase 1 { thaw /[ab]/ }")).schedule
        >>> r = resolve_schedule(s, g)
        >>> [p.params for p in r.phases], r.phases_of["a"], r.unscheduled
        ([('a',), ('a', 'b')], (0, 1), ('c',))
    """
    phases: list[PhaseResolution] = []
    phases_of: dict[str, list[int]] = {}
    for phase in schedule.phases:
        matches: list[SelectorMatch] = []
        seen: dict[str, None] = {}
        for sel in phase.selectors:
            try:
                hits, pruned = match_selector(sel, graph)
            except UnsupportedPattern as err:
                matches.append(SelectorMatch(phase=phase.index, selector=sel, params=(), invalid=True,
                                             problem=str(err)))
                continue
            except (re.error, OverflowError, RecursionError, ValueError):
                matches.append(SelectorMatch(phase=phase.index, selector=sel, params=(), invalid=True))
                continue
            matches.append(SelectorMatch(phase=phase.index, selector=sel, params=tuple(hits), pruned_alias=pruned))
            for h in hits:
                if h not in seen:
                    seen[h] = None
                    owners = phases_of.setdefault(h, [])
                    if phase.index not in owners:
                        owners.append(phase.index)
        phases.append(PhaseResolution(index=phase.index, matches=tuple(matches), params=tuple(seen)))
    unscheduled = tuple(p for p in graph.params if p not in phases_of)
    return Resolution(phases=tuple(phases), phases_of={k: tuple(v) for k, v in phases_of.items()},
                      unscheduled=unscheduled)
