"""FTS205: patterns that match more than they look like they should (schedule-level part)."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.regexes import quantified_dots, unescaped_separator_dots
from ftsc.source import Span


def _selectors(schedule: ir.Schedule) -> Iterator[ir.Selector]:
    for phase in schedule.phases:
        yield from phase.selectors
    if schedule.fsdp:
        yield from schedule.fsdp.wrap
        yield from schedule.fsdp.ignore
    if schedule.fsdp2:
        yield from (e.selector for e in schedule.fsdp2.plan)


def _pattern_offset(sel: ir.Selector, src_text: str) -> int:
    """Offset of the pattern's first character inside the selector's span (best effort)."""
    text = src_text[sel.span.start : sel.span.end]
    idx = text.find(sel.pattern[:8]) if sel.pattern else -1
    return sel.span.start + max(idx, 0)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report `{m,n}` after an unescaped `.`, and unescaped `.` separators in regexes.

    Plain names in FTS form (`model.layers.1`) are left to the model-aware part of FTS205,
    which can tell whether `.` and prefix matching actually catch other parameters.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> loaded = load_text(SourceFile("x.ftsc", 'phase 0 { thaw fts "a.{0,11}.b" }'))
        >>> [d.code for d in check(loaded.schedule, AnalysisContext(loaded.source, loaded.kind))]
        ['FTS205']
    """
    for sel in _selectors(schedule):
        if sel.kind not in (ir.SelectorKind.REGEX, ir.SelectorKind.FTS):
            continue
        base = _pattern_offset(sel, ctx.source.text)
        exact_in_source = ctx.source.text[base : base + len(sel.pattern)] == sel.pattern
        quantified = quantified_dots(sel.pattern)
        for pos, text in quantified:
            span = Span(base + pos, base + pos + len(text)) if exact_in_source else sel.span
            yield make("FTS205", ctx.source, span,
                       detail=f"`{text[1:]}` repeats the `.` before it: it matches {text[1:]} arbitrary "
                              "characters, not a choice of indices",
                       label="quantifies any character",
                       notes=("`layer.{0,11}.` matches every layer index, not layers 0 and 11",),
                       help="to choose indices write an alternation such as `\\.(0|11)\\.`; to match any "
                            "characters write `.*`")
        # FTS patterns use `.` as a wildcard idiomatically; whether it over-matches depends on the
        # model's names, so only the model-aware part of FTS205 judges them.
        if quantified or sel.kind is ir.SelectorKind.FTS:
            continue
        dots = unescaped_separator_dots(sel.pattern)
        if dots:
            first = dots[0]
            span = Span(base + first, base + first + 1) if exact_in_source else sel.span
            yield make("FTS205", ctx.source, span,
                       detail=f"unescaped `.` in `{sel.pattern}` matches any character",
                       label=f"{len(dots)} unescaped `.`" if len(dots) > 1 else "matches any character",
                       help="escape the separators: `" + _escape_dots(sel.pattern, dots) + "`")


def _escape_dots(pattern: str, dots: list[int]) -> str:
    out = list(pattern)
    for i in reversed(dots):
        out[i] = "\\."
    return "".join(out)
