"""FTS305: FinetuningScheduler's rule that phase 0 must own an FSDP-flattened parameter."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity
from ftsc.frontend import InputKind
from ftsc.model.graph import parent_of

RULE = Rule(
    code="FTS305", name="phase-zero-owns-no-unit", severity=Severity.ERROR, needs_model=True,
    summary="FSDP1: phase 0 owns no FSDP-flattened parameter",
    message="phase 0 owns no FSDP-flattened parameter",
    doc="""## What it does
Reports an FSDP1 configuration in which no phase-0 module is (or contains) its own FSDP unit.

## Why is this bad?
FinetuningScheduler stops at fit start ("requires one or more FSDP parameters to be included
in the optimizer").

## Example
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp {
    use_orig_params = false
}
```

## Use instead
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp {
    use_orig_params = false
    wrap model.head
}
```
""",
)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report phase 0 owning no FSDP-flattened parameter (`use_orig_params=False`: no phase-0
    module is, or contains, its own unit; `True`: no phase-0 parameter is in a unit).

    Example:
        >>> s, ctx = AnalysisContext.example("phase 0 { thaw head.w } fsdp { use_orig_params = false }",
        ...                                  ["head.w"])
        >>> [d.code for d in check(s, ctx)]
        ['FTS305']
    """
    if ctx.fsdp1 is None or ctx.resolution is None or ctx.kind is InputKind.DIALECT:
        return  # a freeze-dialect config runs without FinetuningScheduler, whose rule this is
    phase0 = ctx.resolution.phase(0)
    if phase0 is None or not phase0.params:
        return
    from ftsc.analyze.rules.fts301_flat_param_phases import fix_help
    from ftsc.fix.search import phase_zero_owns_unit  # the fixing stage shares this predicate

    if phase_zero_owns_unit(ctx.fsdp1.prediction, ctx.fsdp1.spec.use_orig_params, phase0.params):
        return
    sel = phase0.matches[0].selector if phase0.matches else None
    mods = sorted({parent_of(p) for p in phase0.params})
    yield make("FTS305", ctx.source, sel.span if sel else None, label="not in a unit of its own",
               notes=(("FinetuningScheduler requires the optimizer to start with FSDP-flattened parameters; with "
                      "use_orig_params=False that means a phase-0 module must be (or contain) its own FSDP unit"),),
               help=fix_help(ctx)[0] or "wrap " + ", ".join(f"`{m}`" for m in mods[:3])
               + " in its own unit (`wrap` / awp_overrides)",
               data={"phase": 0, "modules": mods})
