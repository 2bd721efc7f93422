"""FTS402: an FSDP2 plan key that matches no module."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity
from ftsc.regexes import compile_problem
from ftsc.schema import suggest

RULE = Rule(
    code="FTS402", name="plan-key-matches-nothing", severity=Severity.ERROR, needs_model=True,
    summary="FSDP2: an fsdp_plan key matches no module",
    message="plan key `{key}` matches no module",
    doc="""## What it does
Reports a `shard` entry that matches no module.

## Why is this bad?
FinetuningScheduler stops at setup.

## Example
```ftsc
fsdp2 {
    shard model.haed
}
```

## Use instead
```ftsc
fsdp2 {
    shard model.head
}
```
""",
)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report plan entries whose selector names no module.

    Example:
        >>> s, ctx = AnalysisContext.example('phase 0 { thaw a.w } fsdp2 { shard b }', ["a.w"])
        >>> [d.code for d in check(s, ctx)]
        ['FTS402']
    """
    if ctx.fsdp2 is None or ctx.graph is None:
        return
    for entry in ctx.fsdp2.unmatched:
        key = entry.selector.pattern
        if compile_problem(key):
            continue  # FTS101
        yield make("FTS402", ctx.source, entry.selector.span, key=key, label="matches no module",
                   notes=("FinetuningScheduler stops at setup: \"did not match any named modules\"",),
                   help=suggest(key, [m for m in ctx.graph.modules if m], n=3),
                   data={"key": key})
