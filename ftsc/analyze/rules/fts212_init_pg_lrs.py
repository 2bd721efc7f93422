"""FTS212: `init_pg_lrs` length versus the parameter groups the optimizer will hold."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS212", name="init-pg-lrs-mismatch", severity=Severity.WARNING,
    summary="`init_pg_lrs` lists a different number of lrs than there are parameter groups",
    message="{detail}",
    doc="""## What it does
Counts the parameter groups the optimizer will hold when a phase's lr scheduler is
reinitialized (one per thawing phase so far, replayed from phase 0 after an optimizer reinit;
two per phase when the LightningModule defines `no_decay`) and reports an `init_pg_lrs` list
that matches neither count.

## Why is this bad?
FinetuningScheduler zips the list against the groups: extra lrs are dropped and missing ones
leave groups at their old lr, silently.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
    reinit lr_scheduler torch.optim.lr_scheduler.StepLR(step_size = 1) {
        init_pg_lrs = [1e-5, 1e-5, 1e-5]
    }
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
    reinit lr_scheduler torch.optim.lr_scheduler.StepLR(step_size = 1) {
        init_pg_lrs = [1e-5, 1e-5]
    }
}
```
""",
)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Count groups per phase (replayed after an optimizer reinit) and compare with `init_pg_lrs`.

    Groups: one per thawing phase so far (two when the module defines `no_decay`). An optimizer
    reinit replays phases 0..d into a fresh optimizer, which gives the same count.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> src = ("phase 0 { thaw a } phase 1 { thaw b reinit lr_scheduler torch.optim.lr_scheduler.StepLR"
        ...        "(step_size = 1) { init_pg_lrs = [0.1, 0.1, 0.1] } }")
        >>> loaded = load_text(SourceFile("x.ftsc", src))
        >>> [d.code for d in check(loaded.schedule, AnalysisContext(loaded.source, loaded.kind))]
        ['FTS212']
    """
    groups = 0
    for phase in sorted(schedule.phases, key=lambda p: p.index):
        if phase.selectors:
            groups += 1
        reinit = phase.reinit(ir.ReinitTarget.LR_SCHEDULER)
        setting = reinit.setting("init_pg_lrs") if reinit else None
        if setting is None or setting.value.kind != "list":
            continue
        given = len(setting.value.data)  # type: ignore[arg-type]
        if given not in (groups, 2 * groups):
            yield make("FTS212", ctx.source, setting.value.span, label=f"{given} lrs",
                       detail=f"`init_pg_lrs` of phase {phase.index} lists {given} lrs, but the optimizer will "
                              f"hold {groups} parameter groups ({2 * groups} if the module defines `no_decay`)",
                       notes=("FinetuningScheduler zips the list against the groups: extra lrs are dropped, "
                              "missing ones leave groups at their old lr",),
                       help=f"list {groups} lrs (one per group, in phase order)")
