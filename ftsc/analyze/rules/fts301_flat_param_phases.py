"""FTS301: with `use_orig_params=False`, a FlatParameter holds parameters of more than one phase."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, Label, make
from ftsc.diagnostics.rule import Rule, Severity
from ftsc.frontend import InputKind

RULE = Rule(
    code="FTS301", name="phase-splits-flat-parameter", severity=Severity.ERROR, needs_model=True,
    summary="FSDP1 (use_orig_params=False): a FlatParameter spans phases",
    message="FSDP unit `{unit}` flattens parameters of more than one phase",
    doc="""## What it does
With `use_orig_params = false`, reports an FSDP unit whose FlatParameter holds parameters of
more than one phase, or scheduled and never-thawed parameters together.

## Why is this bad?
All parameters in one FlatParameter share `requires_grad`; FinetuningScheduler stops at fit
start ("do not have disjoint FSDP-flattened parameter sets").

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.head.bias
}
fsdp {
    use_orig_params = false
}
```

## Use instead
```ftsc
phase 0 {
    thaw /model\\.head\\..*/
}
fsdp {
    use_orig_params = false
    wrap model.head
}
```

## FSDP notes
FSDP1 flattens every parameter of a unit into one FlatParameter; "`requires_grad` must be
uniform" within it unless `use_orig_params=True`.
""",
)


_LISTED = 8


def unit_label(name: str, root: bool) -> str:
    """How a unit is named in messages."""
    return "the root unit" if name == "" else f"`{name}`" + (" (an FSDP root)" if root else "")


def phase_text(phase: int | None) -> str:
    return "never thawed" if phase is None else f"phase {phase}"


_searched: list[object] = [None, None]  # (the FSDP1 analysis searched last, its overrides)


_DIALECT_NOTE = ("with use_orig_params=False FSDP flattens the unit into one FlatParameter, which must be all "
                 "trainable or all frozen: wrapping stops with \"FlatParameter requires uniform requires_grad\"")


def fix_help(ctx: AnalysisContext) -> tuple[str | None, list[str] | None]:
    """The `wrap` overrides `--fix` writes (every unit single-phase, phase 0 in a unit of its own),
    as help text and as names."""
    from ftsc.fix.search import fsdp1_overrides  # the fixing stage: loaded only when a model is sharded

    assert ctx.fsdp1 is not None and ctx.graph is not None and ctx.resolution is not None
    if ctx.kind is InputKind.DIALECT:  # a dialect wraps by class or size only: no per-module overrides
        return ("train every parameter of the unit or none (the config wraps whole `transformer_layer_cls_to_wrap` "
                "modules)" + ("" if ctx.fsdp1.spec.use_orig_params else
                              ", or set `use_orig_params: true` in `fsdp_config`")), None
    if _searched[0] is ctx.fsdp1:  # FTS301, FTS302 and FTS305 of one check share the search
        fix = _searched[1]
    else:
        phase0 = ctx.resolution.phase(0)
        fix = fsdp1_overrides(ctx.graph, ctx.fsdp1.spec, ctx.fsdp1.prediction, ctx.resolution.phase_of,
                              phase0.params if phase0 is not None else ())
        _searched[:] = [ctx.fsdp1, fix]
    if not fix:
        return None, fix
    names = ", ".join(f"`{m}`" for m in fix)
    how = ("add `wrap " + ", ".join(fix) + "` to the `fsdp` block" if not ctx.fts_semantics else
           "add " + ", ".join(f'"{m}"' for m in fix) + " to `strategy_adapter_cfg.awp_overrides`")
    return f"wrap {names} in {'its' if len(fix) == 1 else 'their'} own unit{'s' if len(fix) > 1 else ''}: {how} " \
           "(`ftsc check --fix` applies it)", fix


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report each FlatParameter that mixes phases, or scheduled and never-thawed parameters.

    Example:
        >>> s, ctx = AnalysisContext.example(
        ...     "phase 0 { thaw head.w } phase 1 { thaw body.w } fsdp { use_orig_params = false }",
        ...     ["body.w", "head.w"])
        >>> [(d.code, d.data["unit"], d.data["phases"]) for d in check(s, ctx)]
        [('FTS301', '', [0, 1])]
    """
    if ctx.fsdp1 is None or ctx.resolution is None or ctx.fsdp1.spec.use_orig_params:
        return
    from ftsc.fix.search import mixed_units

    res = ctx.resolution
    bad = mixed_units(ctx.fsdp1.prediction, res.phase_of)
    if not bad:
        return
    help_text, _ = fix_help(ctx)
    for unit in bad:
        by_param = {p: res.phase_of(p) for p in unit.params}
        phases = sorted({ph for ph in by_param.values() if ph is not None})
        unscheduled = [p for p, ph in by_param.items() if ph is None]
        sels: list[tuple[int, ir.Selector]] = []
        for ph in phases:
            first = next(p for p, x in by_param.items() if x == ph)
            sel = res.selector_for(first, ph)
            if sel is not None:
                sels.append((ph, sel))
        what = " and ".join(phase_text(ph) for ph in phases) + (" with never-thawed parameters" if unscheduled else "")
        listed = [f"{p} ({phase_text(ph)})" for p, ph in by_param.items()]
        shown = listed[:_LISTED] + ([f"... and {len(listed) - _LISTED} more"] if len(listed) > _LISTED else [])
        notes = [f"{unit_label(unit.name, unit.root)} flattens {len(by_param)} parameters: " + ", ".join(shown),
                 _DIALECT_NOTE if ctx.kind is InputKind.DIALECT else
                 "with use_orig_params=False a FlatParameter is thawed as a whole: thawing one phase thaws the "
                 "others' parameters too (FinetuningScheduler stops at fit start: \"phases do not have disjoint "
                 "FSDP-flattened parameter sets\")"]
        primary = sels[-1][1].span if sels else (schedule.fsdp.span if schedule.fsdp else None)
        yield make("FTS301", ctx.source, primary, unit=unit.name or "<root>",
                   label=f"thaws part of {unit_label(unit.name, unit.root)} ({what})",
                   secondary=tuple(Label(span=s.span, message=f"phase {ph} thaws part of the same unit")
                                   for ph, s in sels[:-1]),
                   notes=tuple(notes), help=help_text,
                   data={"unit": unit.name, "phases": phases + ([None] if unscheduled else []),
                         "params": by_param})
