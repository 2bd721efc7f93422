"""FTS107: a value FinetuningScheduler converts before use (reported by the stage that finds it; no analysis pass)."""

from __future__ import annotations

from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS107", name="converted-value", severity=Severity.INFO,
    summary="a value FinetuningScheduler converts before use (a quoted phase key read as an integer)",
    message="{detail}",
    doc="""## What it does
Notes a value that is valid only because FinetuningScheduler converts it before use: a phase
key written as a string (`"1":`) that FTS reads with `int()`. The schedule means what it says;
the note points at the spelling that does not need the conversion. Informational: it never
fails a check, and `--ignore FTS107` hides it without hiding invalid values (FTS102).

## Why is this bad?
It is not, at run time. But a key FTS must convert is easy to get wrong next time (`"1a"`,
`"one"` are errors), and tools other than FTS that read the schedule see a string.

## Example
```yaml
0:
  params:
  - model.classifier.weight
"1":
  params:
  - model.pooler.dense.weight
```

## Use instead
```yaml
0:
  params:
  - model.classifier.weight
1:
  params:
  - model.pooler.dense.weight
```
""",
)
