"""FTS306: an FSDP1 unit whose parameters do not share one dtype (torch refuses to flatten it)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.analyze.rules.fts301_flat_param_phases import unit_label
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity
from ftsc.model.graph import ModelGraph, parent_of

RULE = Rule(
    code="FTS306", name="mixed-dtype-unit", severity=Severity.ERROR, needs_model=True,
    summary="FSDP1: a FlatParameter would hold parameters of different dtypes",
    message="FSDP unit `{unit}` holds parameters of different dtypes ({dtypes})",
    doc="""## What it does
Reports every predicted FSDP1 unit (FlatParameter) whose parameters, as the model is built,
do not all have the same dtype, e.g. trainable parameters upcast to `float32` inside a
`bfloat16` model.

## Why is this bad?
FSDP flattens a unit's parameters into one tensor and refuses mixed dtypes when it wraps the
model (`ValueError: Must flatten tensors with uniform dtype but got torch.float32 and
torch.bfloat16`, with `use_orig_params` either way): the job fails at start-up on every rank.

## Example
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp {
}
```

## Use instead
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp {
    wrap model.head
}
```
""",
)

_LISTED = 4


def dtype_groups(graph: ModelGraph, params: Sequence[str], store: str | None = None) -> dict[str, list[str]]:
    """Parameters by dtype (`store` replaces floating dtypes: Lightning's `*-true` precisions).

    Example:
        >>> from dataclasses import replace
        >>> g = ModelGraph.from_names(["a", "b"])
        >>> g = ModelGraph(replace(g.manifest, parameters=(g.manifest.parameters[0],
        ...                        g.manifest.parameters[1]._replace(dtype="bfloat16"))))
        >>> dtype_groups(g, ["a", "b"])
        {'bfloat16': ['b'], 'float32': ['a']}
    """
    from ftsc.explain.memory import FLOATING

    entries = graph.param_entries
    dtypes = [entries[p].dtype for p in params]
    if store:
        dtypes = [store if d in FLOATING else d for d in dtypes]
    if len(set(dtypes)) == 1:  # the common case: one dtype, no grouping needed
        return {dtypes[0]: list(params)}
    out: dict[str, list[str]] = {}
    for p, dtype in zip(params, dtypes, strict=True):
        out.setdefault(dtype, []).append(p)
    return dict(sorted(out.items()))


def stored_dtype(settings: tuple[ir.Setting, ...]) -> str | None:
    """The dtype Lightning's `*-true` precision stores floating parameters in, else None."""
    precision = next((s.value.py() for s in settings if s.name == "precision"), None)
    return {"bf16-true": "bfloat16", "16-true": "float16", "64-true": "float64", "64": "float64"}.get(str(precision))


def describe(groups: Mapping[str, list[str]]) -> tuple[str, str, list[str]]:
    """(dtypes text, per-dtype parameter listing, modules of the minority dtypes)."""
    dtypes = ", ".join(f"`{d}`" for d in groups)
    listing = "; ".join(f"`{d}`: " + ", ".join(ps[:_LISTED]) + (f", ... and {len(ps) - _LISTED} more"
                                                               if len(ps) > _LISTED else "")
                        for d, ps in groups.items())
    majority = max(groups, key=lambda d: (len(groups[d]), d))
    modules = sorted({parent_of(p) for d, ps in groups.items() if d != majority for p in ps})
    return dtypes, listing, modules


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report FSDP1 units whose parameters mix dtypes.

    Example:
        >>> from dataclasses import replace
        >>> s, ctx = AnalysisContext.example("phase 0 { thaw a.w } fsdp { }", ["a.w", "b.w"])
        >>> m = ctx.graph.manifest
        >>> g = ModelGraph(replace(m, parameters=(m.parameters[0], m.parameters[1]._replace(dtype="bfloat16"))))
        >>> [(d.code, d.data["unit"]) for d in check(s, replace(ctx, graph=g))]
        [('FTS306', '')]
    """
    if ctx.fsdp1 is None or ctx.graph is None or schedule.fsdp is None:
        return
    store = stored_dtype(schedule.fsdp.settings)
    for unit in ctx.fsdp1.prediction.units:
        groups = dtype_groups(ctx.graph, unit.params, store)
        if len(groups) < 2:
            continue
        dtypes, listing, modules = describe(groups)
        wrap = ", ".join(f"`{m or '<root>'}`" for m in modules[:_LISTED])
        yield make("FTS306", ctx.source, schedule.fsdp.span if schedule.fsdp.span.end else None,
                   unit=unit.name or "<root>", dtypes=dtypes.replace("`", ""),
                   label=f"{unit_label(unit.name, unit.root)} mixes dtypes",
                   notes=(f"parameters by dtype: {listing}",
                          ("FSDP wraps the model only if every FlatParameter has one dtype (\"Must flatten tensors "
                           "with uniform dtype\"), with `use_orig_params` either way")),
                   help=f"wrap the modules of the other dtype in their own units ({wrap}), or build the model in "
                        "one dtype (e.g. do not upcast trainable parameters)",
                   data={"unit": unit.name, "dtypes": {d: ps for d, ps in groups.items()}})
