"""FTS302: with `use_orig_params=True`, a FlatParameter that is only partly thawed in some phase."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.analyze.rules.fts301_flat_param_phases import fix_help, unit_label
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS302", name="partially-thawed-unit", severity=Severity.WARNING, needs_model=True,
    summary="FSDP1 (use_orig_params=True): a FlatParameter is partially thawed",
    message="FSDP unit `{unit}` is partially thawed in phase {phase}",
    doc="""## What it does
With `use_orig_params = true`, reports FSDP units partially thawed in some phase, with the
wasted gradient numel per phase.

## Why is this bad?
Frozen parameters inside a thawed FlatParameter still cost gradient memory and traffic.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.head.bias
}
fsdp {
    wrap model.head
}
```

## Use instead
```ftsc
phase 0 {
    thaw /model\\.head\\..*/
}
fsdp {
    wrap model.head
}
```
""",
)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report partially thawed units with the frozen (wasted-gradient) numel per phase.

    Example:
        >>> s, ctx = AnalysisContext.example("phase 0 { thaw head.w } phase 1 { thaw body.w } fsdp { }",
        ...                                  ["body.w", "head.w"])
        >>> [(d.code, d.data["wasted"]) for d in check(s, ctx)]
        [('FTS302', {0: 2})]
    """
    if ctx.fsdp1 is None or ctx.resolution is None or ctx.graph is None or not ctx.fsdp1.spec.use_orig_params:
        return
    res, graph = ctx.resolution, ctx.graph
    order = [p.index for p in res.phases]
    help_text: str | None = None
    computed = False
    for unit in ctx.fsdp1.prediction.units:
        by_param = {p: res.phase_of(p) for p in unit.params}
        if len(set(by_param.values())) < 2:  # one phase (or none) for the whole unit: never partial
            continue
        wasted: dict[int, int] = {}
        for n, phase in enumerate(order):
            done = set(order[: n + 1])
            thawed = [p for p, ph in by_param.items() if ph in done]
            frozen = [p for p, ph in by_param.items() if ph not in done]
            if thawed and frozen:
                wasted[phase] = sum(graph.numel(p) for p in frozen)
        if not wasted:
            continue
        if not computed:
            help_text, computed = fix_help(ctx)[0], True
        first = min(wasted)
        thawing = [p for p, ph in by_param.items() if ph == first]
        sel = res.selector_for(thawing[0], first) if thawing else None
        total = sum(graph.numel(p) for p in unit.params)
        per_phase = ", ".join(f"phase {ph}: {n:,}" for ph, n in wasted.items())
        yield make("FTS302", ctx.source, sel.span if sel else None, unit=unit.name or "<root>", phase=first,
                   label=f"thaws part of {unit_label(unit.name, unit.root)}",
                   notes=(f"frozen elements that still get gradients ({total:,} in the unit): {per_phase}",
                          "FSDP computes, stores and reduce-scatters the gradient of the whole FlatParameter; "
                          "the frozen part is wasted memory and traffic (no optimizer state is kept for it)"),
                   help=help_text,
                   data={"unit": unit.name, "phases": sorted(wasted), "params": by_param, "wasted": wasted})
