"""FTS102: a value has the wrong type or is out of range (reported by the stage that finds it; no analysis pass)."""

from __future__ import annotations

from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS102", name="invalid-value", severity=Severity.ERROR,
    summary="a value has the wrong type or is out of range",
    message="{detail}",
    doc="""## What it does
Reports a setting whose value has the wrong type or is out of range: an `lr` that is not a
positive number, an epoch that is not an integer, a reinit directive without its class, a
duplicated setting, an empty selector.

## Why is this bad?
FinetuningScheduler either crashes with a raw `TypeError`/`KeyError` at setup or, worse,
only after epochs of training.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
    lr = "fast"
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
    lr = 1e-5
}
```
""",
)
