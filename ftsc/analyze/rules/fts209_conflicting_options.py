"""FTS209: options that contradict each other or the phases."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS209", name="conflicting-options", severity=Severity.ERROR,
    summary="schedule options that contradict each other or the phases",
    message="{detail}",
    doc="""## What it does
Reports option combinations FinetuningScheduler rejects: `epoch_transitions_only` with a
phase that has no epoch transition or has a plateau transition; an explicit schedule together
with a schedule-wide `reinit lr_scheduler` (FTS's `reinit_lr_cfg`); `init_pg_lrs` in a
schedule-wide lr-scheduler reinit.

## Why is this bad?
FinetuningScheduler stops at setup.

## Example
```ftsc
schedule {
    epoch_transitions_only = true
}
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
}
```

## Use instead
```ftsc
schedule {
    epoch_transitions_only = true
}
phase 0 {
    thaw model.head.weight
    until epoch 2
}
phase 1 {
    thaw model.body.weight
}
```
""",
)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report `epoch_transitions_only` conflicts and schedule-wide lr-scheduler reinit conflicts.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> src = "schedule { epoch_transitions_only = true } phase 0 { thaw a } phase 1 { thaw b }"
        >>> loaded = load_text(SourceFile("x.ftsc", src))
        >>> [d.code for d in check(loaded.schedule, AnalysisContext(loaded.source, loaded.kind))]
        ['FTS209']
    """
    options = schedule.options
    phases = sorted(schedule.phases, key=lambda p: p.index)
    if options.get("epoch_transitions_only", False):
        # FinetuningScheduler demands an epoch on every phase, the last included (it then replaces
        # the last one by max_epochs); ftsc's runtime needs none on the last phase.
        checked = phases if ctx.fts_semantics else phases[:-1]
        missing = [p for p in checked if p.criterion(ir.CriterionKind.EPOCH) is None]
        if missing:
            which = "every phase, the last included (FinetuningScheduler requires it)" if ctx.fts_semantics \
                else "every phase but the last"
            yield make("FTS209", ctx.source, missing[0].index_span,
                       detail="`epoch_transitions_only` is set but phase(s) "
                              f"{', '.join(str(p.index) for p in missing)} have no epoch transition",
                       label="no `until epoch`" if not ctx.fts_semantics else "no `max_transition_epoch`",
                       help=f"give {which} an epoch transition, or unset `epoch_transitions_only`")
        for phase in phases:
            plateau = phase.criterion(ir.CriterionKind.PLATEAU)
            if plateau is not None and plateau.span.end > 0:
                yield make("FTS209", ctx.source, plateau.span,
                           detail=f"phase {phase.index} ends on plateau, but `epoch_transitions_only` "
                                  "disables plateau transitions",
                           label="never fires", help="remove `plateau` or unset `epoch_transitions_only`")
    implicit_lrs = options.reinit(ir.ReinitTarget.LR_SCHEDULER)
    if implicit_lrs is not None:
        if phases:
            yield make("FTS209", ctx.source, implicit_lrs.span,
                       detail="a schedule-wide `reinit lr_scheduler` (FTS `reinit_lr_cfg`) applies only to the "
                              "implicit schedule, but this schedule lists phases",
                       label="conflicts with explicit phases",
                       help="move the directive into the phases that should reinitialize the scheduler")
        pg = implicit_lrs.setting("init_pg_lrs")
        if pg is not None:
            yield make("FTS209", ctx.source, pg.span,
                       detail="`init_pg_lrs` cannot be used in a schedule-wide lr-scheduler reinit: the same "
                              "config is reused at every phase", label="not allowed here")
