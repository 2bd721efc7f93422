"""FTS403: FSDP2 plan entries skipped because an ancestor was sharded first."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, Label, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS403", name="plan-not-bottom-up", severity=Severity.WARNING, needs_model=True,
    summary="FSDP2: a child listed after an ancestor is folded into the ancestor",
    message="`{child}` is sharded after its ancestor `{ancestor}` and is folded into it",
    doc="""## What it does
Reports plan entries that come after an entry for one of their ancestors.

## Why is this bad?
`fully_shard` must be applied bottom-up; the later child entry is skipped.

## Example
```ftsc
fsdp2 {
    shard model
    shard model.layers.0
}
```

## Use instead
```ftsc
fsdp2 {
    shard model.layers.0
    shard model
}
```
""",
)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report, per plan entry, the modules folded into an ancestor's group (not bottom-up).

    Example:
        >>> s, ctx = AnalysisContext.example('phase 0 { thaw a.b.w } fsdp2 { shard a shard a.b }', ["a.b.w"])
        >>> [(d.code, d.data["skipped"]) for d in check(s, ctx)]
        [('FTS403', {'a.b': 'a'})]
    """
    if ctx.fsdp2 is None:
        return
    by_entry: dict[int, tuple[ir.ShardEntry, dict[str, str]]] = {}
    for skip in ctx.fsdp2.prediction.skipped:
        entry = ctx.fsdp2.entry_of.get(skip.module)
        if entry is None:
            continue
        by_entry.setdefault(id(entry), (entry, {}))[1][skip.module] = skip.by
    for entry, skipped in by_entry.values():
        first, ancestor = next(iter(skipped.items()))
        anc_entry = ctx.fsdp2.entry_of.get(ancestor.split(", ")[0])
        same = anc_entry is entry
        notes = [f"skipped: {', '.join(skipped)}" if len(skipped) > 1 else f"`{first}` gets no group of its own",
                 "FinetuningScheduler skips a module whose ancestor is already sharded (a warning); raw "
                 "`fully_shard` on it would raise"]
        if same:
            help_text = "this pattern also matches the modules below the ones it means; anchor it with `$`"
        else:
            help_text = "list children before their ancestors (bottom-up), the root last"
        yield make("FTS403", ctx.source, entry.selector.span, child=first, ancestor=ancestor or "<root>",
                   label=f"{len(skipped)} module{'s' if len(skipped) > 1 else ''} folded into an ancestor",
                   secondary=(Label(span=anc_entry.selector.span, message="the ancestor is sharded here"),)
                   if anc_entry is not None and not same else (),
                   notes=tuple(notes), help=help_text, data={"skipped": skipped})
