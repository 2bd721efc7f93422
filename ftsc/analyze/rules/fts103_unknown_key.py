"""FTS103: an unknown key or option (a warning in FTS YAML, which ignores them) (reported by the stage that finds it; no analysis pass)."""

from __future__ import annotations

from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS103", name="unknown-key", severity=Severity.ERROR,
    summary="an unknown key or option (a warning in FTS YAML, which ignores them)",
    message="unknown {where} `{key}`",
    doc="""## What it does
Reports a key or setting that ftsc does not know. In FTS YAML schedules this is a warning,
since FinetuningScheduler silently ignores such keys; in `.ftsc` files it is an error.

## Why is this bad?
A typo such as `max_transition_epochs` is silently ignored by FinetuningScheduler, and the
phase never ends by epoch.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
    max_transition_epochs = 3
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
    until epoch 3
}
phase 1 {
    thaw model.body.weight
}
```
""",
)
