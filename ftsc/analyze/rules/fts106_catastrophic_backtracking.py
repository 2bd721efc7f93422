"""FTS106: a pattern on which Python's backtracking `re` can take exponential time.

Schedule-level (no model): FTS patterns (matched with `re.match`) and `/regex/` selectors
(matched in full) are analysed by `ftsc.backtracking`. Never runs the pattern. With a model,
a pattern ftsc's bounded matcher gave up on (too many steps against these names) is reported
as FTS101: its resolution is unknown.
"""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.backtracking import exponential_backtracking
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS106", name="catastrophic-backtracking", severity=Severity.WARNING,
    summary="a pattern can make Python's `re` backtrack for exponential time",
    message="{detail}",
    doc="""## What it does
Reports a pattern with nested or overlapping repetition, such as `(a+)+$`, `(a|aa)+$` or
`(.*a){25}`, where one piece of a name can be matched in many ways and a backtracking engine
tries them all before it fails.

## Why is this bad?
FinetuningScheduler matches patterns with Python's `re`, which backtracks: on a model whose
names contain a long run of one character it can take exponential time, and the run hangs at
fit time. ftsc itself matches every pattern in bounded time (RE2 or a memoised matcher), so
`ftsc check` returns; the schedule would still hang FinetuningScheduler.

## Example
```ftsc
phase 0 {
    thaw fts "model.(layers.+)+$"
}
```

## Use instead
```ftsc
phase 0 {
    thaw fts "model.layers.+$"
}
```
""",
)


def _selectors(schedule: ir.Schedule) -> Iterator[ir.Selector]:
    for phase in schedule.phases:
        yield from phase.selectors
    if schedule.fsdp:
        yield from schedule.fsdp.wrap
        yield from schedule.fsdp.ignore
    if schedule.fsdp2:
        yield from (e.selector for e in schedule.fsdp2.plan)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report FTS patterns and regexes whose backtracking time can grow exponentially.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> loaded = load_text(SourceFile("x.ftsc", 'phase 0 { thaw fts "(a|aa)+$", fts "(a+)+" }'))
        >>> [d.code for d in check(loaded.schedule, AnalysisContext(loaded.source, loaded.kind))]
        ['FTS106']
    """
    seen: set[tuple[str, ir.SelectorKind]] = set()
    for sel in _selectors(schedule):
        if sel.kind not in (ir.SelectorKind.FTS, ir.SelectorKind.REGEX) or (sel.pattern, sel.kind) in seen:
            continue
        seen.add((sel.pattern, sel.kind))
        full = sel.kind is ir.SelectorKind.REGEX
        if not exponential_backtracking(sel.pattern, full=full):
            continue
        how = "matched in full" if full else "matched with `re.match`"
        yield make("FTS106", ctx.source, sel.span,
                   detail=f"`{sel.pattern}` can make Python's `re` backtrack for exponential time ({how})",
                   label="nested or overlapping repetition",
                   notes=("a repeated group can match the same part of a name in more than one way; on a name "
                          "with a long run of one character a backtracking engine tries them all",
                          "ftsc matches in bounded time; FinetuningScheduler uses Python's `re` and can hang"),
                   help="repeat each piece only once, so that every part of a name matches one way: `(a+)+` "
                        "is `a+`, `(a|aa)+` is `a+`, `(.*x){n}` is `(?:[^x]*x){n}`")
    if ctx.resolution is not None:
        reported: set[tuple[str, int]] = set()
        for phase in ctx.resolution.phases:
            for m in phase.matches:
                if m.problem and (m.selector.pattern, m.selector.span.start) not in reported:
                    reported.add((m.selector.pattern, m.selector.span.start))
                    yield make("FTS101", ctx.source, m.selector.span, detail=m.problem,
                               label="not matched in bounded time",
                               help="remove lookaround, atomic groups and possessive repeats, or shorten them")
