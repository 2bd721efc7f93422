"""Inline suppressions: `# ftsc: ignore[CODE, ...]` (its line) and `# ftsc: ignore-file[CODE]`.

Input: a file's text and its diagnostics. Output: the diagnostics left after suppression, plus
FTS090 for suppressions that suppressed nothing or name unknown codes. Works for `.ftsc` and
YAML alike (both use `#` comments). Never imports torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.registry import lookup
from ftsc.source import SourceFile, Span

_DIRECTIVE = re.compile(r"#\s*ftsc:\s*(ignore|ignore-file)\[([^\]\n]*)\]")


@dataclass(slots=True)
class _Directive:
    line: int
    whole_file: bool
    code: str
    span: Span
    used: bool = False


def _directives(source: SourceFile) -> tuple[list[_Directive], list[Diagnostic]]:
    found: list[_Directive] = []
    problems: list[Diagnostic] = []
    if "ftsc:" not in source.text:
        return found, problems
    for m in _DIRECTIVE.finditer(source.text):
        line = source.position(m.start()).line
        offset = m.start(2)
        for raw in m.group(2).split(","):
            item = raw.strip()
            start = offset + raw.find(item) if item else offset
            offset += len(raw) + 1
            span = Span(start, start + len(item))
            rule = lookup(item) if item else None
            if rule is None:
                problems.append(make("FTS090", source, span, rule=item or "<empty>", label="unknown code",
                                     help="use a code such as `FTS205` or its name"))
                continue
            found.append(_Directive(line, m.group(1) == "ignore-file", rule.code, span))
    return found, problems


def suppressed_codes(source: SourceFile) -> list[str]:
    """The codes `source`'s suppression comments name (line and file level), sorted, unique.

    Example:
        >>> suppressed_codes(SourceFile("x.ftsc", "thaw a  # ftsc: ignore[FTS205]\\n# ftsc: ignore-file[FTS210]"))
        ['FTS205', 'FTS210']
    """
    return sorted({d.code for d in _directives(source)[0]})


def apply_suppressions(source: SourceFile, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Drop suppressed diagnostics of `source`; add FTS090 for unused or unknown suppressions."""
    directives, problems = _directives(source)
    if not directives:
        return diagnostics + problems
    kept: list[Diagnostic] = []
    for d in diagnostics:
        if d.file is not source:
            kept.append(d)
            continue
        start = d.start()
        hit = next((x for x in directives if x.code == d.code and (
            x.whole_file or (start is not None and x.line == start.line))), None)
        if hit is None:
            kept.append(d)
        else:
            hit.used = True
    for x in directives:
        if not x.used:
            kept.append(make("FTS090", source, x.span, rule=x.code, label="suppresses nothing",
                             help="remove it"))
    return kept + problems
