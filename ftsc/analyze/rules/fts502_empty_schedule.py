"""FTS502: a schedule file with no phases."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity
from ftsc.source import Span

RULE = Rule(
    code="FTS502", name="empty-schedule", severity=Severity.ERROR,
    summary="the schedule has no phases",
    message="the schedule has no phases: there is nothing to fine-tune",
    doc="""## What it does
Reports a `.ftsc` file or FTS YAML schedule that defines no phase (an empty mapping `{}`, or a
`.ftsc` file with only a `schedule { }` block). Not reported: a file with only sharding blocks
(`fsdp { }` / `fsdp2 { }`, checked on their own), and a LightningCLI config without
`ft_schedule` (it asks for FinetuningScheduler's implicit schedule).

## Why is this bad?
There is no phase 0 to train: FinetuningScheduler and ftsc's runtime stop at setup.

## Example
```ftsc
schedule {
    max_depth = 1
}
```

## Use instead
```ftsc
schedule {
    max_depth = 1
}
phase 0 {
    thaw model.head.weight
}
```
""",
)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report a schedule file without phases.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> loaded = load_text(SourceFile("x.yaml", "{}\\n"))
        >>> [d.code for d in check(loaded.schedule, AnalysisContext(loaded.source, loaded.kind))]
        ['FTS502']
    """
    from ftsc.frontend import InputKind

    if schedule.phases or schedule.fsdp is not None or schedule.fsdp2 is not None \
            or ctx.kind in (InputKind.LIGHTNING_CONFIG, InputKind.DIALECT):
        return  # phases, a sharding-only file, a config (FTS's implicit schedule), or a dialect config
        # read without the model (LLaMA-Factory's trainable layers depend on the layer count)
    text = ctx.source.text
    end = text.find("\n")
    yield make("FTS502", ctx.source, Span(0, len(text) if end < 0 else end), label="no phase defined",
               help="add `phase 0 { thaw ... }` (FTS YAML: `0: {params: [...]}`), or leave `ft_schedule` out "
                    "for FinetuningScheduler's implicit schedule")
