"""FTS213: a selector naming an alias of a shared (tied) parameter."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, Severity, make
from ftsc.diagnostics.rule import Rule

RULE = Rule(
    code="FTS213", name="shared-parameter-alias", severity=Severity.WARNING, needs_model=True,
    summary="a selector names an alias of a shared (tied) parameter",
    message="`{alias}` is an alias of shared parameter `{primary}`: pruned from the schedule",
    doc="""## What it does
Reports a selector that names a shared parameter by an alias (a later registration of the
same tensor, e.g. tied input/output embeddings). Like FinetuningScheduler, ftsc prunes it:
the tensor thaws where its primary name (its first registration) thaws. A warning when that
is another phase or no phase; an info when it is the same phase.

## Why is this bad?
`named_parameters()` lists a shared tensor once, under its primary name; the alias thaws
nothing by itself, and the tensor may thaw in a different phase than this one, or never.

## Example
```ftsc
phase 0 {
    thaw model.lm_head.weight  # tied to model.embed.weight
}
phase 1 {
    thaw model.embed.weight
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.embed.weight
}
```
""",
)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report selectors pruned because they name a shared parameter's alias.

    An info when the primary parameter thaws in the same phase; a warning when it thaws in
    another phase or never.

    Example:
        >>> s, ctx = AnalysisContext.example("phase 0 { thaw b.w }", ["a.w"], aliases={"b.w": "a.w"})
        >>> [(d.code, d.severity.value) for d in check(s, ctx)]
        [('FTS213', 'warning')]
    """
    if ctx.resolution is None or ctx.graph is None:
        return
    for phase in ctx.resolution.phases:
        for m in phase.matches:
            if m.pruned_alias is None:
                continue
            primary = ctx.graph.primary(m.pruned_alias)
            owners = ctx.resolution.phases_of.get(primary, ())
            if phase.index in owners:
                where, severity = f"which phase {phase.index} thaws too", Severity.INFO
            elif owners:
                where, severity = f"so it thaws in phase {owners[0]}, not {phase.index}", Severity.WARNING
            else:
                where, severity = "which no phase thaws, so it never thaws", Severity.WARNING
            yield make("FTS213", ctx.source, m.selector.span, alias=m.pruned_alias, primary=primary,
                       severity=severity, label="pruned",
                       notes=(f"`{m.pruned_alias}` and `{primary}` are the same tensor; schedules name it by its "
                              f"first registration, `{primary}`, {where}",),
                       help=f"name `{primary}` instead",
                       data={"alias": m.pruned_alias, "primary": primary, "phase": phase.index})
