"""FTS208: no optimizer / lr-scheduler reinit in phase 0."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS208", name="reinit-in-phase-zero", severity=Severity.ERROR,
    summary="an optimizer or lr-scheduler reinit in phase 0",
    message="phase 0 cannot reinitialize the {target}: configure it in the LightningModule",
    doc="""## What it does
Reports a `reinit optimizer` or `reinit lr_scheduler` directive in phase 0.

## Why is this bad?
The initial optimizer and scheduler come from `configure_optimizers`; FinetuningScheduler
stops at setup.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
    reinit optimizer torch.optim.SGD(lr = 0.1)
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
    reinit optimizer torch.optim.SGD(lr = 0.1)
}
```
""",
)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report reinit directives in phase 0.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> loaded = load_text(SourceFile("x.ftsc", "phase 0 { thaw a reinit optimizer torch.optim.SGD }"))
        >>> [d.code for d in check(loaded.schedule, AnalysisContext(loaded.source, loaded.kind))]
        ['FTS208']
    """
    for phase in schedule.phases:
        if phase.index != 0:
            continue
        for reinit in phase.reinits:
            yield make("FTS208", ctx.source, reinit.span, target=reinit.target.value.replace("_", " "),
                       label="not allowed in phase 0",
                       help="move it to the phase where the new optimizer or scheduler should start")
