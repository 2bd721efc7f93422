"""FTS407: with FSDP2, trainable parameters outside every `fully_shard` group train unsynchronized."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS407", name="unsynchronized-parameters", severity=Severity.WARNING, needs_model=True,
    summary="FSDP2: trainable parameters outside every fully_shard group",
    message="{count} trainable parameters are in no `fully_shard` group: their gradients are not synchronized",
    doc="""## What it does
With an FSDP2 plan, reports (once) the parameters that some phase thaws but that no
`fully_shard` group manages.

## Why is this bad?
They stay plain tensors: not sharded, and their gradients are never all-reduced, so every
rank trains its own copy and the replicas drift apart without any error.

## Example
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp2 {
    shard model.body
}
```

## Use instead
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp2 {
    shard model.body
    shard ""
}
```
""",
)


_LISTED = 10


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report, once, scheduled parameters that no group manages.

    Example:
        >>> s, ctx = AnalysisContext.example('phase 0 { thaw glob "**" } fsdp2 { shard a }', ["a.w", "b.w"])
        >>> [(d.code, d.data["params"]) for d in check(s, ctx)]
        [('FTS407', ['b.w'])]
    """
    if ctx.fsdp2 is None or ctx.resolution is None or not ctx.fsdp2.prediction.groups:
        return
    plain = [p for p in ctx.fsdp2.prediction.unsharded if p in ctx.resolution.phases_of]
    if not plain:
        return
    shown = ", ".join(plain[:_LISTED]) + (f", ... and {len(plain) - _LISTED} more" if len(plain) > _LISTED else "")
    span = schedule.fsdp2.span if schedule.fsdp2 else None
    yield make("FTS407", ctx.source, span, count=len(plain), label="leaves trainable parameters unsharded",
               notes=(f"plain tensors that phases thaw: {shown}",
                      "FSDP2 neither shards these nor all-reduces their gradients: each rank trains its own copy "
                      "and they drift apart silently"),
               help="add their modules (or the root, last) to the plan",
               data={"params": plain})
