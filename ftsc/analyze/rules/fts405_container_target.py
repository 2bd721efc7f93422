"""FTS405: an FSDP2 plan entry that targets a ModuleList/ModuleDict (pruned by FTS)."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity
from ftsc.frontend import InputKind

RULE = Rule(
    code="FTS405", name="plan-targets-container", severity=Severity.WARNING, needs_model=True,
    summary="FSDP2: a plan entry targets a ModuleList/ModuleDict",
    message="plan entry `{key}` targets a container module with no forward",
    doc="""## What it does
Reports a `shard` entry that resolves to a `ModuleList` or `ModuleDict`.

## Why is this bad?
Containers have no forward, so FSDP2's hooks never run; FinetuningScheduler prunes the entry.

## Example
```ftsc
fsdp2 {
    shard model.layers
}
```

## Use instead
```ftsc
fsdp2 {
    shard /model\\.layers\\.\\d+/
}
```
""",
)


_DIALECT_NOTE = ("accelerate's size policy selects it and calls `fully_shard` on it, which raises \"fully_shard "
                 "does not support containers that do not implement forward\" at launch")


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report plan entries selecting containers without a forward.

    Example:
        >>> s, ctx = AnalysisContext.example('phase 0 { thaw a.w } fsdp2 { shard x }', ["a.w"])
        >>> list(check(s, ctx))
        []
    """
    if ctx.fsdp2 is None:
        return
    by_entry: dict[int, tuple[ir.ShardEntry, list[str]]] = {}
    for entry, module in ctx.fsdp2.containers:
        by_entry.setdefault(id(entry), (entry, []))[1].append(module)
    for entry, modules in by_entry.values():
        yield make("FTS405", ctx.source, entry.selector.span, key=entry.selector.pattern,
                   label=f"selects {', '.join(f'`{m}`' for m in modules[:3])}",
                   notes=(_DIALECT_NOTE if ctx.kind is InputKind.DIALECT else
                          "`fully_shard` refuses containers that do not implement forward; FinetuningScheduler "
                          "prunes the entry with a warning",),
                   help=f"shard the container's children instead, e.g. `{modules[0]}.N` for each N (a regex such "
                        f"as `{modules[0]}\\.\\d+$`)",
                   data={"key": entry.selector.pattern, "modules": modules})
