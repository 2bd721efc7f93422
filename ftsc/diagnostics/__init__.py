"""Diagnostics: the one currency every stage reports in.

Input: a rule code, a source file and spans. Output: immutable `Diagnostic` values that the
renderers in `ftsc.diagnostics.render` print. Never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from ftsc.source import Position, SourceFile, Span


class Severity(StrEnum):
    """How bad a finding is: `error` fails the run, `warning` fails only under `--strict`."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True, kw_only=True)
class Label:
    """A span with a few words about it (in the diagnostic's file unless the span names another)."""

    span: Span
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    """One finding: a rule code, where it is, and what to do about it.

    `primary` points at the narrowest span that explains the problem; `secondary` labels
    point at related places (in their own file when their span names one). `data` holds
    machine-readable facts for JSON.
    """

    code: str
    message: str
    severity: Severity
    file: SourceFile | None = None
    primary: Label | None = None
    secondary: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    help: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The rule's kebab-case name."""
        from ftsc.diagnostics.registry import RULES

        rule = RULES.get(self.code)
        return rule.name if rule else "unknown"

    def start(self) -> Position | None:
        """1-based start position, or None when no source position applies."""
        if self.file is None or self.primary is None:
            return None
        return self.file.position(self.primary.span.start)

    def end(self) -> Position | None:
        """1-based exclusive end position, or None when no source position applies."""
        if self.file is None or self.primary is None:
            return None
        return self.file.position(self.primary.span.end)

    def check_tuple(self) -> tuple[str, int | None, int | None]:
        """`(code, line, column)`, the shape per-rule case tables compare against."""
        start = self.start()
        return (self.code, start.line if start else None, start.column if start else None)

    def sort_key(self) -> tuple[str, int, str]:
        """Order by file, offset, code."""
        return (
            self.file.display_path if self.file else "",
            self.primary.span.start if self.primary else -1,
            self.code,
        )

    def with_severity(self, severity: Severity) -> Diagnostic:
        """A copy at another severity."""
        return replace(self, severity=severity)


def make(
    code: str,
    file: SourceFile | None,
    span: Span | None,
    *,
    label: str = "",
    secondary: tuple[Label, ...] = (),
    notes: tuple[str, ...] = (),
    help: str | None = None,
    data: Mapping[str, Any] | None = None,
    severity: Severity | None = None,
    **fields: Any,
) -> Diagnostic:
    """Build a diagnostic from the registry's message template for `code`.

    Args:
        code: the rule code, e.g. ``"FTS102"``.
        file: the source file the spans refer to.
        span: the primary span (None: no source position).
        label: a few words shown at the primary span.
        secondary: related labels (a span that names no file lies in `file`; others are shown in theirs).
        notes: background lines.
        help: the suggested fix.
        data: machine-readable facts for JSON output.
        severity: overrides the rule's default severity.
        **fields: values for the rule's message template.

    Returns:
        The diagnostic.
    """
    from ftsc.diagnostics.registry import RULES

    rule = RULES[code]
    if file is not None:
        # A span that names no file lies in `file`; say so before the primary span may move the
        # diagnostic to another file (a schedule named by a config), so each label keeps its file.
        secondary = tuple(lab if lab.span.file is not None else
                          replace(lab, span=Span(lab.span.start, lab.span.end, file)) for lab in secondary)
    if span is not None and span.file is not None:
        file = span.file
    return Diagnostic(
        code=code,
        message=rule.message.format(**fields),
        severity=severity or rule.severity,
        file=file,
        primary=Label(span=span, message=label) if span is not None else None,
        secondary=secondary,
        notes=notes,
        help=help,
        data=dict(data or {}),
    )


__all__ = ["Diagnostic", "Label", "Severity", "make"]
