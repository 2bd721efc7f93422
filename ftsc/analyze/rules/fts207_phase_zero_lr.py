"""FTS207: an `lr` in phase 0 is ignored."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS207", name="phase-zero-lr-ignored", severity=Severity.WARNING,
    summary="an `lr` in phase 0 has no effect",
    message="`lr` in phase 0 is ignored: phase 0 uses the optimizer's configured lr",
    doc="""## What it does
Reports an `lr` given for phase 0.

## Why is this bad?
Phase 0's learning rate comes from `configure_optimizers`; FinetuningScheduler deletes the
phase-0 `lr` with a warning.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
    lr = 1e-3
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


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report `lr` in phase 0.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> loaded = load_text(SourceFile("x.ftsc", "phase 0 { thaw a lr = 0.1 }"))
        >>> [d.code for d in check(loaded.schedule, AnalysisContext(loaded.source, loaded.kind))]
        ['FTS207']
    """
    for phase in schedule.phases:
        setting = phase.setting("lr")
        if phase.index == 0 and setting is not None:
            yield make("FTS207", ctx.source, setting.span, label="ignored",
                       help="remove it; set phase 0's lr in `configure_optimizers`")
