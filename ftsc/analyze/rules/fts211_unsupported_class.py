"""FTS211: reinit classes FinetuningScheduler does not support, or that ftsc will not import."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, Severity, make
from ftsc.diagnostics.rule import Rule

RULE = Rule(
    code="FTS211", name="unsupported-class", severity=Severity.ERROR,
    summary="a reinit class FinetuningScheduler does not support",
    message="{detail}",
    doc="""## What it does
Reports a reinit `lr_scheduler` class outside the ten torch schedulers FinetuningScheduler
supports (unless `allow_untested = true`, then a warning), a `ZeroRedundancyOptimizer` reinit,
and class paths outside `torch.optim` (ftsc never imports other classes from a schedule unless
`allow_untested = true`).

## Why is this bad?
FinetuningScheduler stops at setup, or the class path imports arbitrary code.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
    reinit lr_scheduler torch.optim.lr_scheduler.CyclicLR(base_lr = 0.1, max_lr = 1.0)
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
    reinit lr_scheduler torch.optim.lr_scheduler.StepLR(step_size = 1)
}
```
""",
)


SUPPORTED_LR_SCHEDULERS = ("LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ExponentialLR",
                           "CosineAnnealingLR", "ReduceLROnPlateau", "CosineAnnealingWarmRestarts",
                           "ConstantLR", "LinearLR")


def _reinits(schedule: ir.Schedule) -> Iterator[ir.Reinit]:
    yield from schedule.options.reinits
    for phase in schedule.phases:
        yield from phase.reinits


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report unsupported lr schedulers, ZeRO optimizer reinit, and class paths outside `torch.optim`.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> src = "phase 0 { thaw a } phase 1 { thaw b reinit lr_scheduler torch.optim.lr_scheduler.CyclicLR }"
        >>> loaded = load_text(SourceFile("x.ftsc", src))
        >>> [d.code for d in check(loaded.schedule, AnalysisContext(loaded.source, loaded.kind))]
        ['FTS211']
    """
    untested = bool(schedule.options.get("allow_untested", False))
    soft = Severity.WARNING if untested else None
    for reinit in _reinits(schedule):
        path = reinit.class_path
        short = path.rsplit(".", 1)[-1]
        if not path.startswith("torch.optim."):
            if not untested:
                yield make("FTS211", ctx.source, reinit.span, label="outside `torch.optim`",
                           detail=f"`{path}` is not a `torch.optim` class; ftsc imports schedule classes only "
                                  "from `torch.optim` unless `allow_untested = true`",
                           help="use a `torch.optim` class, or set `allow_untested = true` in the schedule block")
            continue
        if reinit.target is ir.ReinitTarget.OPTIMIZER and short == "ZeroRedundancyOptimizer":
            yield make("FTS211", ctx.source, reinit.span, label="not supported",
                       detail="`ZeroRedundancyOptimizer` cannot be used for optimizer reinitialization")
        elif reinit.target is ir.ReinitTarget.LR_SCHEDULER and short not in SUPPORTED_LR_SCHEDULERS:
            yield make("FTS211", ctx.source, reinit.span, severity=soft, label="not supported",
                       detail=f"`{short}` is not one of the lr schedulers FinetuningScheduler supports",
                       notes=("supported: " + ", ".join(SUPPORTED_LR_SCHEDULERS),),
                       help="use a supported scheduler, or set `allow_untested = true` to try it anyway")
