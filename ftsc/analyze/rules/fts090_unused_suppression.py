"""FTS090: a suppression comment suppresses nothing (reported by the stage that finds it; no analysis pass)."""

from __future__ import annotations

from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS090", name="unused-suppression", severity=Severity.WARNING,
    summary="a suppression comment suppresses nothing",
    message="unused suppression of `{rule}`",
    doc="""## What it does
Reports a `# ftsc: ignore[CODE]` or `# ftsc: ignore-file[CODE]` comment that suppressed no
diagnostic, or that names an unknown code.

## Why is this bad?
Stale suppressions hide future problems on that line.

## Example
```ftsc
phase 0 {
    thaw model.head.weight  # ftsc: ignore[FTS205]
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
```
""",
)
