"""FTS201: phase numbers must be exactly 0..N-1."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, Label, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS201", name="non-contiguous-phases", severity=Severity.ERROR,
    summary="phase numbers are not contiguous from 0",
    message="phase numbers must run 0, 1, 2, ... without gaps: {detail}",
    doc="""## What it does
Reports phases whose numbers are not exactly `0..N-1` (a gap, a duplicate, a negative or
non-integer number).

## Why is this bad?
FinetuningScheduler stops at setup with "non-contiguous or non-zero-indexed keys".

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 2 {
    thaw model.body.weight
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
}
```
""",
)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report duplicate, negative, and missing phase numbers.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> loaded = load_text(SourceFile("x.ftsc", "phase 1 { thaw a }"))
        >>> [d.code for d in check(loaded.schedule, AnalysisContext(loaded.source, loaded.kind))]
        ['FTS201']
    """
    seen: dict[int, ir.Phase] = {}
    for phase in schedule.phases:
        if phase.index in seen:
            first = seen[phase.index]
            yield make("FTS201", ctx.source, phase.index_span, detail=f"phase {phase.index} is defined twice",
                       label="defined again", secondary=(Label(span=first.index_span, message="first defined here"),),
                       help="renumber the phases 0, 1, 2, ...")
            continue
        if phase.index < 0:
            yield make("FTS201", ctx.source, phase.index_span, detail=f"phase {phase.index} is negative",
                       label="negative", help="number the phases from 0")
            continue
        seen[phase.index] = phase
    if not seen:
        return
    # The first few missing numbers, without materialising 0..max (a phase may be numbered 10**300).
    missing: list[int] = []
    expected = 0
    for index in sorted(seen):
        while expected < index and len(missing) <= 10:
            missing.append(expected)
            expected += 1
        expected = index + 1
    if missing:
        listed = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        after = [p for i, p in sorted(seen.items()) if i > missing[0]]
        order = sorted(seen.values(), key=lambda p: p.index)
        renumber = [f"{p.index} -> {n}" for n, p in enumerate(order) if p.index != n]
        yield make("FTS201", ctx.source, after[0].index_span if after else None,
                   detail=f"phase {listed} missing", label=f"phase {missing[0]} is missing before this one",
                   help="renumber: " + ", ".join(renumber[:10]) + (" ..." if len(renumber) > 10 else ""),
                   notes=("FinetuningScheduler stops at setup with \"non-contiguous or non-zero-indexed keys\"",))
