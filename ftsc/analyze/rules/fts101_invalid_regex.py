"""FTS101: a regular expression does not compile (reported by the stage that finds it; no analysis pass)."""

from __future__ import annotations

from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS101", name="invalid-regex", severity=Severity.ERROR,
    summary="a regular expression does not compile",
    message="invalid regular expression: {detail}",
    doc="""## What it does
Reports a parameter or module pattern that Python's `re` cannot compile.

## Why is this bad?
FinetuningScheduler crashes with a raw `re.error` at setup; ftsc reports it with a position.

## Example
```ftsc
phase 0 {
    thaw /model.3.(*/
}
```

## Use instead
```ftsc
phase 0 {
    thaw /model\\.3\\..*/
}
```
""",
)
