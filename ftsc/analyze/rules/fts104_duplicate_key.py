"""FTS104: a key appears twice in one mapping (reported by the stage that finds it; no analysis pass)."""

from __future__ import annotations

from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS104", name="duplicate-key", severity=Severity.ERROR,
    summary="a key appears twice in one mapping",
    message="duplicate key `{key}`",
    doc="""## What it does
Reports a key written twice in one YAML mapping or one `.ftsc` block.

## Why is this bad?
FinetuningScheduler refuses schedules with duplicate keys; plain YAML loaders silently keep
the last one.

## Example
```ftsc
schedule {
    max_depth = 1
    max_depth = 2
}
phase 0 {
    thaw model.head.weight
}
```

## Use instead
```ftsc
schedule {
    max_depth = 2
}
phase 0 {
    thaw model.head.weight
}
```
""",
)
