"""Format the IR as canonical `.ftsc` text, keeping comments.

Input: an `ir.Schedule` and (optionally) the comments of the file it came from. Output: text
in the canonical layout: `schedule` block, phases in source order, then sharding blocks; one
selector per `thaw` line; settings in schema order. Comments follow the statement they were
attached to (leading comments above it, trailing comments on its line). A trailing
`# ftsc: ignore[...]` stays on the line of every statement it governed: statements that shared
its source line stay on one output line. `format(parse(t))` is idempotent and
`parse(format(s)) == s`; the file keeps its line endings and byte order mark
(`with_line_endings`, `encoded_like`). Never imports torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ftsc import ir
from ftsc.source import SourceFile

if TYPE_CHECKING:
    from ftsc.parse import Comment

INDENT = "    "
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
_VALUE_KEYWORDS = frozenset({"true", "false", "null"})
_SELECTOR_KEYWORDS = frozenset({"glob", "fts"})


def quote(text: str) -> str:
    """A DSL string literal for `text` (only `\\"` and `\\\\` are escapes; see build_ir)."""
    out: list[str] = []
    for i, c in enumerate(text):
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if c == '"':
            out.append('\\"')
        elif c == "\\" and (nxt in '"\\' or not nxt):
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def regex_literal(pattern: str) -> str:
    """A `/regex/` literal for `pattern`."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            pair = pattern[i : i + 2]
            out.append("\\/" if pair == "\\/" else ("\\n" if pair[1] == "\n" else pair))
            i += 2
            continue
        out.append({"/": "\\/", "\n": "\\n"}.get(c, c))
        i += 1
    return "/" + "".join(out) + "/"


def is_bare(text: str, keywords: frozenset[str]) -> bool:
    """True if `text` can be written without quotes where `keywords` are reserved."""
    return _PATH.fullmatch(text) is not None and text not in keywords


def selector(sel: ir.Selector) -> str:
    """A selector in DSL syntax."""
    match sel.kind:
        case ir.SelectorKind.EXACT:
            return sel.pattern if is_bare(sel.pattern, _SELECTOR_KEYWORDS) else quote(sel.pattern)
        case ir.SelectorKind.REGEX:
            return regex_literal(sel.pattern)
        case ir.SelectorKind.GLOB:
            return "glob " + quote(sel.pattern)
        case ir.SelectorKind.FTS:
            return "fts " + quote(sel.pattern)
        case _:
            raise ValueError(f"Invalid selector kind: {sel.kind}.")


def value(v: ir.Value) -> str:
    """A value in DSL syntax."""
    if v.kind == "list":
        return "[" + ", ".join(value(x) for x in v.data) + "]"  # type: ignore[union-attr]
    if v.kind == "dict":
        return "{" + ", ".join(setting(s) for s in v.data) + "}"  # type: ignore[union-attr]
    data = v.data
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "true" if data else "false"
    if isinstance(data, int):
        return str(data)
    if isinstance(data, float):
        if not math.isfinite(data):
            return quote(repr(data))
        text = repr(data)
        return text if ("." in text or "e" in text) else text + ".0"
    text = str(data)
    return text if is_bare(text, _VALUE_KEYWORDS) else quote(text)


def setting(s: ir.Setting) -> str:
    """`name = value`."""
    name = s.name if is_bare(s.name, frozenset()) else quote(s.name)
    return f"{name} = {value(s.value)}"


def call_args(args: Sequence[ir.Setting] | None) -> str:
    """`(a = 1, b = 2)`, or nothing for None."""
    return "" if args is None else "(" + ", ".join(setting(s) for s in args) + ")"


@dataclass(slots=True)
class _Line:
    depth: int
    text: str
    anchor: int | None  # source offset of the statement, for comment attachment
    members: tuple[int, ...] = ()  # a joined line: the anchors of the statements it holds


_SUPPRESSION = re.compile(r"ftsc:\s*ignore\[")
_LISTS = frozenset({"thaw", "wrap", "ignore"})


def _join_governed(flat: list[_Line | None], line_of: dict[int, int], lines: set[int]) -> list[_Line | None]:
    """Statements that shared a source line carrying `# ftsc: ignore[...]` stay on one line.

    The suppression governs its line, so splitting those statements would move it off some of
    them. They are joined, in canonical order, where the last of them stands: statements only
    move later, past statements of their own block (the language is whitespace-insensitive).
    """
    groups: dict[int, list[int]] = {}
    for i, ln in enumerate(flat):
        if ln is not None and ln.anchor is not None and line_of.get(ln.anchor) in lines:
            groups.setdefault(line_of[ln.anchor], []).append(i)
    joined: dict[int, _Line] = {}
    dropped: set[int] = set()
    for idx in groups.values():
        if len(idx) < 2:
            continue
        parts = [flat[i] for i in idx]
        first = parts[0]
        assert first is not None
        anchors = tuple(p.anchor for p in parts if p is not None and p.anchor is not None)
        texts: list[str] = []
        for p in parts:
            assert p is not None
            head, _, rest = p.text.partition(" ")
            if texts and head in _LISTS and texts[-1].startswith(head + " "):
                texts[-1] += ", " + rest  # `thaw a` + `thaw b` -> `thaw a, b`, as it was written
            else:
                texts.append(p.text)
        joined[idx[-1]] = _Line(first.depth, " ".join(texts), max(anchors), anchors)
        dropped.update(idx[:-1])
    out: list[_Line | None] = []
    for i, ln in enumerate(flat):
        if i in dropped:
            continue
        out.append(joined.get(i, ln))
    while out and out[0] is None:
        out.pop(0)
    # A block wholly moved into a joined line leaves two separators in a row: keep one.
    return [ln for i, ln in enumerate(out) if not (ln is None and i and out[i - 1] is None)]


def _reinit(r: ir.Reinit, depth: int) -> list[_Line]:
    head = f"reinit {r.target.value} {r.class_path}{call_args(r.init_args)}"
    if not r.settings:
        return [_Line(depth, head, r.span.start)]
    lines = [_Line(depth, head + " {", r.span.start)]
    lines += [_Line(depth + 1, setting(s), s.span.start) for s in r.settings]
    lines.append(_Line(depth, "}", max(r.span.end - 1, r.span.start)))
    return lines


def _lr_decay(d: ir.LrDecay, depth: int) -> list[_Line]:
    """`lr TOP decay D PRESET per LAYERS { embeddings SEL ... norm SEL ... }` (or fastai's `slice`)."""
    def num(x: float | None) -> str:
        return value(ir.scalar(x))

    if d.decay is not None:
        head = f"lr {num(d.lr)} decay {num(d.decay)} {d.preset.value}"
    else:
        head = f"lr slice({num(d.start)}, {num(d.lr)})" if d.start is not None else f"lr slice({num(d.lr)})"
    layers = d.layers.pattern if d.layers.kind is ir.SelectorKind.EXACT else "glob " + quote(d.layers.pattern)
    head += f" per {layers}"
    places = [("embeddings", s) for s in d.embeddings] + [("norm", s) for s in d.norm]
    if not places:
        return [_Line(depth, head, d.span.start)]
    lines = [_Line(depth, head + " {", d.span.start)]
    lines += [_Line(depth + 1, f"{kind} {selector(s)}", s.span.start) for kind, s in places]
    lines.append(_Line(depth, "}", max(d.span.end - 1, d.span.start)))
    return lines


def _criterion(c: ir.Criterion) -> str:
    if c.kind is ir.CriterionKind.PLATEAU:
        return "plateau" + (call_args(c.args) if c.args else "")
    return f"{c.kind.value} {c.value}"


def _block(head: str, body: list[_Line], span: ir.Span | None) -> list[_Line]:
    start = span.start if span else None
    end = max(span.end - 1, span.start) if span else None
    return [_Line(0, head + " {", start), *body, _Line(0, "}", end)]


def lines_of(schedule: ir.Schedule) -> list[list[_Line]]:
    """The canonical lines, grouped into top-level blocks."""
    blocks: list[list[_Line]] = []
    opts = schedule.options
    if opts.settings or opts.reinits:
        body = [_Line(1, setting(s), s.span.start) for s in opts.settings]
        for r in opts.reinits:
            body += _reinit(r, 1)
        blocks.append(_block("schedule", body, opts.span if opts.span.end else None))
    for phase in schedule.phases:
        head = f"phase {phase.index}" + (f" {quote(phase.name)}" if phase.name is not None else "")
        body = [_Line(1, "thaw " + selector(s), s.span.start) for s in phase.selectors]
        body += [_Line(1, setting(s), s.span.start) for s in phase.settings]
        if phase.lr_decay is not None:
            body += _lr_decay(phase.lr_decay, 1)
        if phase.until is not None:
            anchor = phase.until[0].span.start if phase.until else None
            text = "until " + " or ".join(_criterion(c) for c in phase.until) if phase.until else None
            if text:
                body.append(_Line(1, text, anchor))
        for r in phase.reinits:
            body += _reinit(r, 1)
        blocks.append(_block(head, body, phase.span if phase.span.end else None))
    if schedule.fsdp is not None:
        f = schedule.fsdp
        body = [_Line(1, setting(s), s.span.start) for s in f.settings]
        body += [_Line(1, "wrap " + selector(s), s.span.start) for s in f.wrap]
        body += [_Line(1, "ignore " + selector(s), s.span.start) for s in f.ignore]
        blocks.append(_block("fsdp", body, f.span if f.span.end else None))
    if schedule.fsdp2 is not None:
        f2 = schedule.fsdp2
        if f2.grouped():  # `convert` refuses these first (FTS501)
            raise ValueError("a grouped `fsdp2` plan entry (one list-form fully_shard call) has no DSL form")
        body = [_Line(1, setting(s), s.span.start) for s in f2.settings]
        body += [_Line(1, "shard " + selector(e.selector) + call_args(e.kwargs), e.span.start) for e in f2.plan]
        blocks.append(_block("fsdp2", body, f2.span if f2.span.end else None))
    return blocks


def line_ending(text: str) -> str:
    """The line ending of a text: that of its first line (`"\\r\\n"` or `"\\n"`)."""
    i = text.find("\n")
    return "\r\n" if i > 0 and text[i - 1] == "\r" else "\n"


def with_line_endings(formatted: str, source: SourceFile) -> str:
    """`formatted` (written with `\\n`) with the line endings of `source`.

    Example:
        >>> with_line_endings("a\\nb\\n", SourceFile("x.ftsc", "x\\r\\n"))
        'a\\r\\nb\\r\\n'
    """
    ending = line_ending(source.text)
    return formatted if ending == "\n" else formatted.replace("\n", ending)


def encoded_like(text: str, source: SourceFile) -> bytes:
    """`text` as UTF-8 bytes, with a byte order mark when `source` had one."""
    return (b"\xef\xbb\xbf" if source.bom else b"") + text.encode("utf-8")


def format_schedule(schedule: ir.Schedule, comments: Sequence[Comment] = (),
                    source: SourceFile | None = None) -> str:
    """Format a schedule, re-attaching `comments` from `source`.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> loaded = load_text(SourceFile("x.ftsc", "phase 0 {thaw a.b,/c/ # head\\n}"))
        >>> print(format_schedule(loaded.schedule, loaded.comments, loaded.source), end="")
        phase 0 {
            thaw a.b
            thaw /c/  # head
        }
    """
    blocks = lines_of(schedule)
    standalone: list[Comment] = []
    trailing: dict[int, list[Comment]] = {}
    suppressed_lines: set[int] = set()
    line_of: dict[int, int] = {}
    if source is not None and comments:
        anchored = sorted({ln.anchor for block in blocks for ln in block if ln.anchor is not None})
        line_of = {off: source.position(off).line for off in anchored}
        by_line: dict[int, int] = {}
        for off in anchored:
            by_line[line_of[off]] = off  # last statement starting on that line
        for c in comments:
            line = source.position(c.span.start).line
            before = source.text[source.offset(line, 1) : c.span.start]
            if not before.strip():
                standalone.append(c)
                continue
            # On a statement's line: that statement; inside a statement spanning lines: the
            # statement it continues (the last one starting before the comment).
            owner = by_line.get(line)
            if owner is None:
                earlier = [off for off in anchored if off < c.span.start]
                owner = earlier[-1] if earlier else None
            if owner is None:
                standalone.append(c)
                continue
            trailing.setdefault(owner, []).append(c)
            if _SUPPRESSION.search(c.text):
                suppressed_lines.add(line_of[owner])
    flat: list[_Line | None] = []
    for n, block in enumerate(blocks):
        if n:
            flat.append(None)
        flat.extend(block)
    if suppressed_lines:
        flat = _join_governed(flat, line_of, suppressed_lines)
    standalone.sort(key=lambda c: c.span.start)
    out: list[str] = []
    pending = list(standalone)
    for ln in flat:
        if ln is None:
            out.append("")
            continue
        while pending and ln.anchor is not None and pending[0].span.start < ln.anchor:
            depth = ln.depth + (1 if ln.text == "}" else 0)
            out.append(INDENT * depth + pending.pop(0).text.rstrip())
        text = INDENT * ln.depth + ln.text
        for anchor in ln.members or ((ln.anchor,) if ln.anchor is not None else ()):
            for c in trailing.get(anchor, []):
                text += "  " + c.text.rstrip()
        out.append(text)
    if pending:
        if out:
            out.append("")
        out.extend(c.text.rstrip() for c in pending)
    return "\n".join(out) + "\n" if out else ""
