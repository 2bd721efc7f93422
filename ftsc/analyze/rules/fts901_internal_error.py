"""FTS901: an internal error in ftsc (a bug) (reported by the stage that finds it; no analysis pass)."""

from __future__ import annotations

from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS901", name="internal-error", severity=Severity.ERROR,
    summary="an internal error in ftsc (a bug)",
    message="internal error: {detail}",
    doc="""## What it does
Reports a bug in ftsc instead of a traceback.

## Why is this bad?
It is a bug in ftsc; please report it with the input that triggered it.

## Example
There is no example input; any one would be a bug.

## Use instead
Nothing to change in your schedule.
""",
)
