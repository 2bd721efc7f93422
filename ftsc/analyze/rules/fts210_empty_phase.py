"""FTS210: a phase that thaws nothing."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS210", name="empty-phase", severity=Severity.WARNING,
    summary="a phase thaws nothing",
    message="phase {phase} thaws no parameters",
    doc="""## What it does
Reports a phase with no selectors.

## Why is this bad?
The phase adds no parameter group; it only spends epochs.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    until epoch 3
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
    """Report phases with no selectors.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> loaded = load_text(SourceFile("x.ftsc", "phase 0 { thaw a } phase 1 { until epoch 3 }"))
        >>> [d.code for d in check(loaded.schedule, AnalysisContext(loaded.source, loaded.kind))]
        ['FTS210']
    """
    for phase in schedule.phases:
        if not phase.selectors:
            yield make("FTS210", ctx.source, phase.index_span, phase=phase.index, label="empty",
                       notes=("at its transition no parameter group is added; the phase only spends epochs",),
                       help="add `thaw` selectors or remove the phase")
