"""FTS408: an FSDP2 `fully_shard` group trains parameters of different original dtypes in a phase."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.analyze.rules.fts306_mixed_dtype_unit import describe, dtype_groups, stored_dtype
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS408", name="mixed-dtype-group", severity=Severity.ERROR, needs_model=True,
    summary="FSDP2: a fully_shard group trains parameters of different dtypes",
    message="`fully_shard` group `{group}` trains parameters of different dtypes ({dtypes}) in phase {phase}",
    doc="""## What it does
Reports, once per `fully_shard` group, the first phase in which the group's trainable
parameters (everything thawed so far) do not all have the same original dtype.

## Why is this bad?
FSDP2 accepts groups that mix dtypes, but only while the mixed parameters are frozen. Its
first forward checks the trainable ones (`FSDP expects uniform original parameter dtype`),
and a phase that thaws a second dtype later fails at its first backward (`FSDP reduce-scatter
expects uniform gradient dtype`). `mp_policy` does not help: the check is on the original
dtypes.

## Example
```ftsc
phase 0 {
    thaw glob "model.body.*"
    thaw glob "model.head.*"
}
fsdp2 {
    shard ""
}
```

## Use instead
```ftsc
phase 0 {
    thaw glob "model.body.*"
    thaw glob "model.head.*"
}
fsdp2 {
    shard model.head
    shard ""
}
```
""",
)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report each FSDP2 group at the first phase whose trainable parameters mix dtypes.

    Example:
        >>> from dataclasses import replace
        >>> from ftsc.model.graph import ModelGraph
        >>> s, ctx = AnalysisContext.example('phase 0 { thaw a.w } phase 1 { thaw b.w } fsdp2 { shard "" }',
        ...                                  ["a.w", "b.w"])
        >>> m = ctx.graph.manifest
        >>> g = ModelGraph(replace(m, parameters=(m.parameters[0], m.parameters[1]._replace(dtype="bfloat16"))))
        >>> [(d.code, d.data["phase"]) for d in check(s, replace(ctx, graph=g))]
        [('FTS408', 1)]
    """
    if ctx.fsdp2 is None or ctx.graph is None or ctx.resolution is None or schedule.fsdp2 is None:
        return
    graph, res = ctx.graph, ctx.resolution
    store = stored_dtype(schedule.fsdp2.settings)
    thawed: set[str] = set()
    reported: set[str] = set()
    for phase in sorted(res.phases, key=lambda p: p.index):
        thawed.update(graph.primary(p) for p in phase.params)
        for group in ctx.fsdp2.prediction.groups:
            if group.name in reported:
                continue
            groups = dtype_groups(graph, [p for p in group.params if p in thawed], store)
            if len(groups) < 2:
                continue
            reported.add(group.name)
            dtypes, listing, modules = describe(groups)
            new = [p for p in group.params if p in phase.params]
            sel = res.selector_for(new[0], phase.index) if new else None
            first = phase.index == min(p.index for p in res.phases)
            when = ("at the first forward (`FSDP expects uniform original parameter dtype`)" if first else
                    "at the first backward of this phase (`FSDP reduce-scatter expects uniform gradient dtype`)")
            shard = ", ".join(f"`{m or '<root>'}`" for m in modules[:4])
            yield make("FTS408", ctx.source, sel.span if sel else None, group=group.name or "<root>",
                       dtypes=dtypes.replace("`", ""), phase=phase.index,
                       label=f"thaws a second dtype into `{group.name or '<root>'}`",
                       notes=(f"trainable parameters by dtype: {listing}", f"FSDP2 fails {when}"),
                       help=f"shard the modules of the other dtype in their own groups ({shard}, listed before the "
                            "group), or build the model in one dtype",
                       data={"group": group.name, "phase": phase.index, "dtypes": {d: ps for d, ps in groups.items()}})
