"""FTS303: an auto-wrap class, a `wrap` override or an `ignore` entry that names no module."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity
from ftsc.regexes import compile_problem
from ftsc.schema import suggest

RULE = Rule(
    code="FTS303", name="wrap-target-matches-nothing", severity=Severity.ERROR, needs_model=True,
    summary="an auto-wrap class, override or ignored module matches nothing",
    message="`{target}` matches no module of the model",
    doc="""## What it does
Reports an auto-wrap policy class, a `wrap` override or an `ignore` entry that matches no
module.

## Why is this bad?
The intended FSDP unit boundary does not exist, so phases end up in the root FlatParameter.

## Example
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp {
    wrap model.haed
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


_WHAT = {"class": "auto-wrap policy class", "wrap": "`wrap` override (awp_overrides)", "ignore": "ignored module"}


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report unmatched policy classes, overrides and ignored modules.

    Example:
        >>> s, ctx = AnalysisContext.example("phase 0 { thaw head.w } fsdp { wrap haed }", ["head.w"])
        >>> [d.message for d in check(s, ctx)]
        ['`haed` matches no module of the model']
    """
    if ctx.fsdp1 is None or ctx.graph is None:
        return
    graph = ctx.graph
    classes = sorted({q.rpartition(".")[2] for m in graph.modules for q in graph.mro(m)})
    for u in ctx.fsdp1.unmatched:
        if u.what != "class" and compile_problem(u.text):
            continue  # reported as FTS101
        if u.what == "class":
            short = u.text.rpartition(".")[2]
            near = [q for m in graph.modules for q in graph.mro(m) if q.rpartition(".")[2] == short]
            help_text = (f"the model's class is `{near[0]}`" if near else
                         "no module of the model is an instance of it; model classes include: "
                         + ", ".join(f"`{c}`" for c in classes[:8]))
        else:
            help_text = suggest(u.text, [m for m in graph.modules if m], n=3)
        yield make("FTS303", ctx.source, u.span, target=u.text, label=f"{_WHAT[u.what]} matches nothing",
                   notes=("the unit boundary it was meant to create does not exist, so its parameters fall to "
                          "the enclosing unit",),
                   help=help_text, data={"kind": u.what, "target": u.text})
