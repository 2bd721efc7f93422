"""FTS208: no optimizer / lr-scheduler reinit in phase 0."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make


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
