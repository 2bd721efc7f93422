"""FTS407: with FSDP2, trainable parameters outside every `fully_shard` group train unsynchronized."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make

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
