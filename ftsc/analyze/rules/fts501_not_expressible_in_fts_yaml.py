"""FTS501: a DSL feature FTS YAML cannot express (reported by the stage that finds it; no analysis pass)."""

from __future__ import annotations

from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS501", name="not-expressible-in-fts-yaml", severity=Severity.ERROR,
    summary="a DSL feature FTS YAML cannot express",
    message="{detail}",
    doc="""## What it does
Reports, during `ftsc convert --to fts-yaml`, a feature of the schedule that an FTS YAML
schedule cannot express (step transitions, per-phase plateau criteria, globs that have no
start-anchored regex form, ...).

## Why is this bad?
The converted file would mean something else.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
    until step 1000
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
    until epoch 2
}
```
""",
)
