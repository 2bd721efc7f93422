"""FTS207: an `lr` in phase 0 is ignored."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make


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
