"""FTS105: a LightningCLI config names a schedule file that cannot be found (reported by the stage that finds it; no analysis pass)."""

from __future__ import annotations

from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS105", name="schedule-not-found", severity=Severity.WARNING,
    summary="a LightningCLI config names a schedule file that cannot be found or read",
    message="schedule file `{path}` named by `ft_schedule` {outcome}",
    doc="""## What it does
Reports a LightningCLI config whose scheduler callback's `ft_schedule` path exists neither
relative to the working directory nor relative to the config file, or names a file ftsc does
not read: one outside the project folder (the folder holding `.git` or `[tool.ftsc]`), one that
is not a regular file or is too large, or a name the system cannot open (too long). Such a file
is named, never quoted. Schedule checks are skipped; options and strategy settings are still
checked.

## Why is this bad?
FinetuningScheduler resolves the path relative to the directory training is launched from.
If it is missing there too, training stops at setup.

## Example
```yaml
trainer:
  callbacks:
  - class_path: finetuning_scheduler.FinetuningScheduler
    init_args:
      ft_schedule: ./does/not/exist.yaml
```

## Use instead
Run `ftsc check` from the launch directory, or pass the schedule file itself.
""",
)
