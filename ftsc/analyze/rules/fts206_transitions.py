"""FTS206: transition epochs that cannot take effect."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, Label, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS206", name="ineffective-transition", severity=Severity.WARNING,
    summary="transition epochs that cannot take effect",
    message="{detail}",
    doc="""## What it does
Reports transition epochs that cannot take effect: a phase's epoch not greater than an
earlier phase's (the phase may run a single epoch), an epoch at or beyond `max_epochs`, a final
phase's epoch (overridden by `max_epochs`), and phases cut off by `max_depth`.

## Why is this bad?
The schedule silently runs differently from how it reads.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
    until epoch 3
}
phase 1 {
    thaw model.body.weight
    until epoch 2
}
phase 2 {
    thaw model.embed.weight
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
    until epoch 2
}
phase 1 {
    thaw model.body.weight
    until epoch 3
}
phase 2 {
    thaw model.embed.weight
}
```
""",
)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report non-increasing epochs, epochs beyond `max_epochs`, final-phase epochs, `max_depth` cut-offs.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> src = "phase 0 { thaw a until epoch 2 } phase 1 { thaw b until epoch 2 } phase 2 { thaw c }"
        >>> loaded = load_text(SourceFile("x.ftsc", src))
        >>> [d.code for d in check(loaded.schedule, AnalysisContext(loaded.source, loaded.kind))]
        ['FTS206']
    """
    phases = sorted(schedule.phases, key=lambda p: p.index)
    if not phases:
        return
    max_depth = schedule.options.get("max_depth", -1)
    max_epochs = schedule.options.get("max_epochs")
    last = len(phases) - 1
    depth = last if max_depth is None or max_depth < 0 else min(max_depth, last)
    if max_depth is not None and 0 <= max_depth < last:
        setting = schedule.options.setting("max_depth")
        cut = phases[max_depth + 1 :]
        yield make("FTS206", ctx.source, setting.span if setting else None,
                   detail=f"`max_depth = {max_depth}` stops before phase {cut[0].index}: "
                          f"{len(cut)} phase(s) never run",
                   label="truncates the schedule",
                   secondary=tuple(Label(span=p.index_span, message="never runs") for p in cut[:3]),
                   help=f"raise `max_depth` to {last} (or -1), or remove the phases that never run")
    watermark: tuple[int, ir.Criterion] | None = None
    for n, phase in enumerate(phases[: depth + 1]):
        epoch = phase.criterion(ir.CriterionKind.EPOCH)
        if epoch is None or epoch.value is None:
            continue
        if n == depth:
            yield make("FTS206", ctx.source, epoch.span,
                       detail=f"phase {phase.index} is the last phase run, so `until epoch {epoch.value}` "
                              "has no effect: training ends at `max_epochs` (or on plateau)",
                       label="no transition after the last phase",
                       notes=("FinetuningScheduler raises `max_epochs` to the largest phase epoch instead",),
                       help="remove the epoch transition from the last phase, or set `max_epochs`")
            continue
        if max_epochs is not None and max_epochs >= 0 and epoch.value >= max_epochs:
            yield make("FTS206", ctx.source, epoch.span,
                       detail=f"phase {phase.index} ends at epoch {epoch.value}, but training stops at "
                              f"`max_epochs = {max_epochs}`",
                       label="never reached", help=f"lower the epoch below {max_epochs} or raise `max_epochs`")
        if watermark is not None and n > 0 and epoch.value <= watermark[0]:
            yield make("FTS206", ctx.source, epoch.span,
                       detail=f"phase {phase.index} ends at epoch {epoch.value}, not after the previous "
                              f"transition at epoch {watermark[0]}: it runs a single epoch",
                       label="not increasing",
                       secondary=(Label(span=watermark[1].span, message="earlier transition"),),
                       notes=("only one phase transition happens per epoch start",),
                       help=f"use an epoch greater than {watermark[0]}")
        if watermark is None or epoch.value > watermark[0]:
            watermark = (epoch.value, epoch)
