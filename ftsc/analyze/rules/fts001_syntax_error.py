"""FTS001: the file cannot be parsed (reported by the stage that finds it; no analysis pass)."""

from __future__ import annotations

from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS001", name="syntax-error", severity=Severity.ERROR,
    summary="the file cannot be parsed",
    message="{detail}",
    doc="""## What it does
Reports a file that cannot be parsed: a DSL syntax error, malformed YAML, a file that is not
UTF-8 text, or input nested too deeply to process.

## Why is this bad?
Nothing else can be checked until the file parses.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
```
""",
)
