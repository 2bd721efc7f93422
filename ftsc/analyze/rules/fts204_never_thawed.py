"""FTS204: parameters that no phase thaws."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity
from ftsc.frontend import InputKind

RULE = Rule(
    code="FTS204", name="never-thawed", severity=Severity.INFO, needs_model=True,
    summary="parameters never thawed by any phase",
    message="{count} parameters ({numel} elements) are never thawed by any phase",
    doc="""## What it does
Lists, once, the parameters no phase thaws, with their total numel.

## Why is this bad?
They stay frozen for the whole run, silently. Not reported for a freeze-dialect config (axolotl,
LLaMA-Factory): it names what trains, and freezes the rest on purpose.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw /(?!model\\.head\\.weight).*/
}
```
""",
)


_LISTED = 10


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report, once, the parameters no phase thaws, with their total numel (not for a schedule
    without phases: FTS's implicit schedule, or one that could not be read).

    Example:
        >>> s, ctx = AnalysisContext.example("phase 0 { thaw a.w }", ["a.w", "b.w", "b.b"])
        >>> [(d.message, d.data["numel"]) for d in check(s, ctx)]
        [('2 parameters (4 elements) are never thawed by any phase', 4)]
    """
    if ctx.resolution is None or ctx.graph is None or not ctx.resolution.unscheduled:
        return
    if ctx.kind is InputKind.DIALECT:
        # A freeze-dialect config (axolotl, LLaMA-Factory) is a trainable set: everything else is
        # frozen on purpose, so listing it is noise (`ftsc explain` shows what trains).
        return
    if not schedule.phases:
        # No phases read: FTS's implicit schedule (it thaws everything), or a schedule file that
        # was not found or could not be read (reported where it failed). Either way, nothing to list.
        return
    names = ctx.resolution.unscheduled
    numel = ctx.graph.total_numel(names)
    total = ctx.graph.numel_all
    shown = ", ".join(names[:_LISTED]) + (f", ... and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
    yield make("FTS204", ctx.source, None, count=len(names), numel=f"{numel:,}",
               notes=(f"never thawed: {shown}",
                      f"{numel:,} of {total:,} elements ({100 * numel / max(total, 1):.1f}%) stay frozen "
                      "for the whole run"),
               help="add them to a phase if they should train",
               data={"params": list(names), "numel": numel})
