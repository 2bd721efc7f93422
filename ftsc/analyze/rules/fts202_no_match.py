"""FTS202: a selector that matches no parameter of the model."""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity
from ftsc.model.graph import ModelGraph
from ftsc.regexes import match_prefix
from ftsc.schema import did_you_mean

RULE = Rule(
    code="FTS202", name="pattern-matches-nothing", severity=Severity.ERROR, needs_model=True,
    summary="a parameter pattern matches no parameter",
    message="`{pattern}` matches no parameter of the model",
    doc="""## What it does
Reports a selector that matches no parameter of the model, with the closest names.

## Why is this bad?
FinetuningScheduler stops at setup ("did not match any named parameter").

## Example
```ftsc
phase 0 {
    thaw model.haed.weight
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
```
""",
)


_MAX_CANDIDATES = 4000


def closest_names(pattern: str, graph: ModelGraph, n: int = 3) -> list[str]:
    """Parameter FQNs closest to `pattern`, looked up among names sharing its longest literal start.

    Example:
        >>> closest_names("model.haed.weight", ModelGraph.from_names(["model.head.weight", "model.body.weight"]))
        ['model.head.weight', 'model.body.weight']
    """
    info = match_prefix(pattern)
    literal = ""
    for ch in info[0] if info else ():
        if ch is None:
            break
        literal += ch
    literal = literal or pattern
    pool: list[str] = []
    for cut in range(len(literal), -1, -1):
        pool = graph.index.with_prefix(literal[:cut])
        if pool:
            break
    if len(pool) > _MAX_CANDIDATES:
        step = len(pool) / _MAX_CANDIDATES
        pool = [pool[int(i * step)] for i in range(_MAX_CANDIDATES)]
    return difflib.get_close_matches(pattern, pool, n=n, cutoff=0.5)


def _module_hint(sel: ir.Selector, graph: ModelGraph) -> str | None:
    name = sel.pattern.rstrip(".")
    if name not in graph.module_entries and name not in graph.module_aliases:
        return None
    if sel.kind is ir.SelectorKind.FTS:
        return None  # an FTS pattern naming a module matches its parameters by prefix already
    return f"`{name}` is a module; to thaw all of its parameters write `glob \"{name}.**\"`"


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report selectors that match no parameter, with the closest parameter names.

    Example:
        >>> s, ctx = AnalysisContext.example("phase 0 { thaw model.haed.weight }", ["model.head.weight"])
        >>> [(d.code, d.help) for d in check(s, ctx)]
        [('FTS202', 'did you mean `model.head.weight`?')]
    """
    if ctx.resolution is None or ctx.graph is None:
        return
    graph = ctx.graph
    for phase in ctx.resolution.phases:
        for m in phase.matches:
            if m.params or m.invalid or m.pruned_alias:
                continue
            sel = m.selector
            notes: list[str] = []
            if sel.kind is ir.SelectorKind.FTS:
                notes.append("FTS patterns match an exact parameter name, else with `re.match` from the start "
                             "of the name (not anywhere in it)")
            help_text = _module_hint(sel, graph) or did_you_mean(closest_names(sel.pattern, graph))
            yield make("FTS202", ctx.source, sel.span, pattern=sel.pattern, label="matches nothing",
                       notes=tuple(notes), help=help_text, data={"pattern": sel.pattern, "phase": phase.index})
