"""FTS304: a tied parameter (or a shared module's parameters) split across FSDP units."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS304", name="tie-split-across-units", severity=Severity.ERROR, needs_model=True,
    summary="a tied/shared parameter or module is split across FSDP units",
    message="tied parameter `{param}` is split across FSDP units",
    doc="""## What it does
Reports tied parameters or shared modules whose users land in different FSDP units.

## Why is this bad?
With `use_orig_params=False` the tie is copied into two FlatParameters and silently broken
(the copies train apart). With `use_orig_params=True` one unit owns it and the other path
sees a sharded 1-D view: the first forward fails.

## Example
```ftsc
phase 0 {
    thaw glob "**"
}
fsdp {
    wrap model.lm_head  # tied to model.embed.weight
}
```

## Use instead
```ftsc
phase 0 {
    thaw glob "**"
}
fsdp {
    wrap model
}
```
""",
)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report ties copied into two FlatParameters, or used from a unit that does not own them.

    Example:
        >>> s, ctx = AnalysisContext.example("phase 0 { thaw glob \\"**\\" } fsdp { wrap head }",
        ...                                  ["embed.w"], aliases={"head.w": "embed.w"})
        >>> [(d.code, d.data["owners"]) for d in check(s, ctx)]
        [('FTS304', ['head'])]
    """
    if ctx.fsdp1 is None:
        return
    pred, spec = ctx.fsdp1.prediction, ctx.fsdp1.spec
    span = schedule.fsdp.span if schedule.fsdp else None
    for param, paths in pred.executing.items():
        owners = list(pred.owners.get(param, ()))
        if not owners:
            continue
        users = {path: unit for path, unit in paths.items()}
        strangers = {path: unit for path, unit in users.items() if unit not in owners}
        if len(owners) < 2 and not strangers:
            continue
        where = "; ".join(f"`{path}` runs in {'the root unit' if unit == '' else f'`{unit}`'}"
                          for path, unit in users.items())
        if len(owners) > 1:
            effect = ("the tie is copied into the FlatParameters of " + ", ".join(f"`{o or '<root>'}`" for o in owners)
                      + ": the copies train apart after the first optimizer step, silently")
        elif spec.use_orig_params:
            effect = (f"only `{owners[0] or '<root>'}` owns it; the other path sees a sharded 1-D view and the first "
                      "forward fails")
        else:
            effect = "the other path reads a view into another unit's freed FlatParameter; the first forward fails"
        yield make("FTS304", ctx.source, span, param=param, label="splits a tie",
                   notes=(where, effect),
                   help="wrap a module that contains every path of the tie (or neither path) so they share one unit",
                   data={"param": param, "owners": owners, "paths": users})
