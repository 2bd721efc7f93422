"""FTS205: patterns that match more than they look like they should.

Schedule-level part: `{m,n}` after `.`, unescaped `.` separators in regexes. Model-aware part
(FTS patterns, needs `ctx.resolution`): a prefix match that stops inside a name segment and
so catches siblings (`layers.1` -> `layers.10`-`19`), and a `.` that catches names whose
character there is not a `.`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.analyze.resolve import SelectorMatch
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity
from ftsc.matching import UnsupportedPattern
from ftsc.model.graph import ModelGraph
from ftsc.regexes import ends_inside_segment, literal_intent, match_prefix, quantified_dots, unescaped_separator_dots
from ftsc.source import Span

RULE = Rule(
    code="FTS205", name="over-matching-pattern", severity=Severity.WARNING,
    summary="a pattern matches more than it looks like it should",
    message="{detail}",
    doc="""## What it does
Reports patterns that match more than they appear to:
- a regex `{m,n}` quantifier right after a `.`, which repeats *any character* (FTS's DeBERTa
  example `layer.{0,11}.` matches every layer, not layers 0 and 11);
- a `.` used as a separator that is not escaped (it matches any character);
- an FTS pattern (`fts "..."`, or any FTS YAML pattern) whose literal index prefix also
  catches sibling indices: `layers.1` also thaws `layers.10`-`layers.19` (needs a model);
- in a freeze-dialect config, the project's own matching selecting other parameters than the
  entry names: axolotl's literal `.` (`.*` means "dots") and start-only anchoring
  (`model.layers.1` also unfreezes layers 10-19), LLaMA-Factory's substrings (`norm` in every
  `input_layernorm`, `.1.` in another module's `1`); see docs/dialects/.

## Why is this bad?
The phase thaws parameters the author meant for another phase, or thaws everything at once.

## Example
```ftsc
phase 0 {
    thaw fts "model.encoder.layer.{0,11}.attention.*"
}
```

## Use instead
```ftsc
phase 0 {
    thaw /model\\.encoder\\.layer\\.(0|11)\\.attention\\..*/
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
        src_text = (sel.span.file or ctx.source).text
        base = _pattern_offset(sel, src_text)
        exact_in_source = src_text[base : base + len(sel.pattern)] == sel.pattern
        quantified = quantified_dots(sel.pattern)
        for pos, text in quantified:
            span = Span(base + pos, base + pos + len(text), sel.span.file) if exact_in_source else sel.span
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
            span = Span(base + first, base + first + 1, sel.span.file) if exact_in_source else sel.span
            yield make("FTS205", ctx.source, span,
                       detail=f"unescaped `.` in `{sel.pattern}` matches any character",
                       label=f"{len(dots)} unescaped `.`" if len(dots) > 1 else "matches any character",
                       help="escape the separators: `" + _escape_dots(sel.pattern, dots) + "`")
    if ctx.resolution is not None and ctx.graph is not None:
        for phase in ctx.resolution.phases:
            for m in phase.matches:
                yield from _model_aware(m, ctx.graph, ctx)


def _segment_end(name: str, end: int) -> str:
    """`name` up to the end of the segment that position `end` falls in."""
    dot = name.find(".", end)
    return name if dot < 0 else name[:dot]


def _summarize(heads: list[str]) -> str:
    """`a.10`-`a.19` for numbered siblings, else a short list."""
    stems = {h.rstrip("0123456789") for h in heads}
    if len(stems) == 1 and all(h[len(next(iter(stems))):].isdigit() for h in heads) and len(heads) > 2:
        nums = sorted(heads, key=lambda h: int(h[len(next(iter(stems))):]))
        return f"`{nums[0]}`-`{nums[-1]}`"
    shown = ", ".join(f"`{h}`" for h in heads[:4])
    return shown + (f" and {len(heads) - 4} more" if len(heads) > 4 else "")


def _model_aware(m: SelectorMatch, graph: ModelGraph, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """An FTS pattern whose match set is larger than that of the pattern it looks like.

    The pattern it looks like (`regexes.literal_intent`) has literal `.` separators and a final
    `.*` that starts a new segment (`layers.1.*` -> `layers\\.1\\..*`); if the pattern ends inside
    a name segment (`layers.1`), its matches must also stop at a segment boundary. Parameters the
    pattern catches beyond those are reported, with the escaped pattern.
    """
    sel = m.selector
    if sel.kind is not ir.SelectorKind.FTS or not m.params or graph.has_param(sel.pattern):
        return
    intent = literal_intent(sel.pattern) or sel.pattern
    try:
        matcher = graph.index.matcher(intent)
    except (re.error, UnsupportedPattern, ValueError):
        return
    boundary = ends_inside_segment(intent)
    kept: list[str] = []
    extra: list[str] = []
    at_end = False
    for name in m.params:
        end = matcher.match(name)
        if end is None or (boundary and end < len(name) and name[end] != "."):
            extra.append(name)
        else:
            kept.append(name)
            at_end = at_end or end == len(name)
    if not extra or not kept:
        return
    suggestion = intent + ("(\\.|$)" if at_end else "\\.") if boundary else intent
    heads = list(dict.fromkeys(_heads(sel.pattern, extra, graph)))
    noun = "parameter" if len(extra) == 1 else "parameters"
    yield make("FTS205", ctx.source, sel.span,
               detail=f"`{sel.pattern}` also matches {_summarize(heads)} ({len(extra)} {noun}): "
                      "in an FTS pattern `.` is any character and a match need only cover the start of a name",
               label="also matches siblings",
               notes=("FinetuningScheduler uses `re.match`, which only anchors the start of the name; "
                      f"`{sel.pattern}` thaws {len(m.params)} parameters, `{suggestion}` {len(kept)}",),
               help=f"to match only what the pattern names, write `{suggestion}`",
               data={"pattern": sel.pattern, "phase": m.phase, "params": extra, "suggestion": suggestion})


_TRAILING_ANY = re.compile(r"(?<!\\)\.[*+]\$?$")


def _heads(pattern: str, extra: list[str], graph: ModelGraph) -> Iterator[str]:
    """For each extra name, the name up to the end of the segment where the pattern's matching
    part stops: the pattern without a final `.*` (`a.shared_expert.*` stops inside
    `shared_expert_gate`), else where the name leaves the pattern's literal start."""
    try:
        stem = graph.index.matcher(_TRAILING_ANY.sub("", pattern))
    except (re.error, UnsupportedPattern, ValueError):
        stem = None
    info = match_prefix(pattern)
    template = info[0] if info else ()
    for name in extra:
        end = stem.match(name) if stem is not None else None
        yield _segment_end(name, end) if end else _head(template, name)


def _head(template: Sequence[str | None], name: str) -> str:
    """The name up to the end of the segment where it leaves the pattern's literal start
    (`template`: `regexes.match_prefix`'s, one entry per character, None where any character fits)."""
    for i, ch in enumerate(template):
        if i >= len(name):
            break
        if ch is None and name[i] != ".":
            return _segment_end(name, i)
    return _segment_end(name, min(len(template), len(name)))


def _escape_dots(pattern: str, dots: list[int]) -> str:
    out = list(pattern)
    for i in reversed(dots):
        out[i] = "\\."
    return "".join(out)
