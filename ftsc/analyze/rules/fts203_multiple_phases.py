"""FTS203: parameters that selectors of more than one phase thaw."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, Label, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS203", name="param-in-multiple-phases", severity=Severity.ERROR, needs_model=True,
    summary="a parameter is thawed in more than one phase",
    message="{detail}",
    doc="""## What it does
Reports a parameter that selectors of two different phases both thaw. (A parameter matched
twice inside one phase is fine, unlike FinetuningScheduler's check.)

## Why is this bad?
Every parameter must belong to exactly one phase; FinetuningScheduler stops at setup.

## Example
```ftsc
phase 0 {
    thaw /model\\.layers\\.[0-3]\\..*/
}
phase 1 {
    thaw /model\\.layers\\.3\\..*/
}
```

## Use instead
```ftsc
phase 0 {
    thaw /model\\.layers\\.[0-2]\\..*/
}
phase 1 {
    thaw /model\\.layers\\.3\\..*/
}
```
""",
)


_LISTED = 10


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report each pair of selectors (in different phases) that thaw the same parameters.

    A parameter matched twice inside one phase is not reported (FinetuningScheduler's
    disjointness check is a false positive there).

    Example:
        >>> s, ctx = AnalysisContext.example("phase 0 { thaw a.w, a.w } phase 1 { thaw /a\\\\..*/ }", ["a.w", "a.b"])
        >>> [(d.code, dict(d.data)) for d in check(s, ctx)]
        [('FTS203', {'params': {'a.w': [0, 1]}, 'phases': [0, 1]})]
    """
    if ctx.resolution is None:
        return
    res = ctx.resolution
    # For each parameter in several phases: the first selector of each of those phases that matched it.
    first_match: dict[tuple[int, str], ir.Selector] = {}
    for phase in res.phases:
        for m in phase.matches:
            for p in m.params:
                if len(res.phases_of.get(p, ())) > 1:
                    first_match.setdefault((phase.index, p), m.selector)
    groups: dict[tuple[int, ...], list[str]] = {}
    selectors: dict[tuple[int, ...], tuple[ir.Selector, ...]] = {}
    for p, phases in res.phases_of.items():
        if len(phases) < 2:
            continue
        sels = tuple(first_match[(ph, p)] for ph in phases)
        key = tuple(id(s) for s in sels)
        groups.setdefault(key, []).append(p)
        selectors[key] = sels
    for key, params in groups.items():
        sels = selectors[key]
        phases = list(res.phases_of[params[0]])
        what = f"`{params[0]}`" if len(params) == 1 else f"{len(params)} parameters"
        shown = [f"{p}" for p in params[:_LISTED]] + ([f"... and {len(params) - _LISTED} more"]
                                                      if len(params) > _LISTED else [])
        phase_list = ", ".join(str(p) for p in phases)
        yield make("FTS203", ctx.source, sels[-1].span,
                   detail=f"{what} {'is' if len(params) == 1 else 'are'} thawed in phases {phase_list}",
                   label=f"also thawed in phase {phases[0]}",
                   secondary=tuple(Label(span=s.span, message=f"thawed in phase {ph}")
                                   for s, ph in zip(sels[:-1], phases[:-1], strict=True)),
                   notes=(("parameters: " + ", ".join(shown)),) if len(params) > 1 else (),
                   help="narrow one of the selectors so that each parameter belongs to one phase",
                   data={"params": {p: list(res.phases_of[p]) for p in params}, "phases": phases})
