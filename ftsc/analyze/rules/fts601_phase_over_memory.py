"""FTS601: a phase needs more accelerator memory per rank than `--max-memory` allows (`ftsc explain`)."""

from __future__ import annotations

from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS601", name="phase-exceeds-memory", severity=Severity.ERROR,
    summary="a phase needs more memory per rank than `--max-memory`",
    message="phase {phase} needs {need} per rank, over the `--max-memory` budget of {budget}",
    doc="""## What it does
`ftsc explain --max-memory 80GiB` reports every phase whose memory on the busiest rank
exceeds the budget: the estimated peak when `--batch` and `--seq` are given, otherwise the
model states (parameters, buffers, gradients and optimizer state), which are exact. The notes
name the largest categories and the largest units.

## Why is this bad?
Gradual unfreezing makes the last phases the most expensive: every thawed parameter adds a
gradient and optimizer state. A phase that does not fit fails with an out-of-memory error
hours into the run, after the cheaper phases have trained.

## Example
```text
$ ftsc explain schedule.ftsc --manifest llama.json --world-size 2 --max-memory 40GiB
error[FTS601]: phase 3 needs 52.4 GiB per rank, over the `--max-memory` budget of 40.0 GiB
```

## Use instead
```text
$ ftsc explain schedule.ftsc --manifest llama.json --world-size 8 --max-memory 40GiB
```
Shard over more ranks, thaw fewer parameters in the last phase, offload to the CPU, or use
an optimizer with less state.
""",
)

__all__ = ["RULE"]
