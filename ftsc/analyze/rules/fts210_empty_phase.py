"""FTS210: a phase that thaws nothing."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make


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
