"""FTS407: with FSDP2, trainable parameters outside every `fully_shard` group train unsynchronized."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS407", name="unsynchronized-parameters", severity=Severity.ERROR, needs_model=True,
    summary="FSDP2: trainable parameters outside every fully_shard group",
    message="{count} trainable parameters are in no `fully_shard` group: their gradients are not synchronized",
    doc="""## What it does
With an FSDP2 plan, reports (once) the parameters that some phase thaws but that no
`fully_shard` group manages, when training runs on more than one rank.

## Why is this bad?
They stay plain tensors: not sharded, and their gradients are never all-reduced, so every
rank trains its own copy and the replicas drift apart without any error.

## Example
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp2 {
    shard model.body
}
```

## Use instead
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp2 {
    shard model.body
    shard ""
}
```

## World size
The rule is skipped when the configuration fixes the world size at 1 (`data_parallel_size`
and `tensor_parallel_size` both 1). Otherwise ftsc assumes more than one rank: a LightningCLI
config's `trainer.devices` and `num_nodes` are not read, and `auto` sizes are decided at launch.

## Fix
`ftsc check --fix` does not add a group for these parameters: the root `""` works when
`training_step` calls the LightningModule's own forward, the wrapped model (`model`) when it
calls `self.model(...)`, and ftsc does not read `training_step`. `--fix` prints both choices.
""",
)


_LISTED = 10


def world_size(config: ir.FSDP2Config) -> int | None:
    """The number of ranks when the config fixes it (`data_parallel_size` x `tensor_parallel_size`,
    both integers), else None (decided at launch from devices and nodes, which ftsc does not read).

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> cfg = load_text(SourceFile("x.ftsc", "phase 0 { thaw a } fsdp2 { data_parallel_size = 1 "
        ...                                      "tensor_parallel_size = 1 shard a }")).schedule.fsdp2
        >>> world_size(cfg), world_size(ir.FSDP2Config())
        (1, None)
    """
    sizes = [config.setting(k) for k in ("data_parallel_size", "tensor_parallel_size")]
    values = [s.value.data if s is not None else None for s in sizes]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return values[0] * values[1]  # type: ignore[operator]
    return None


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report, once, scheduled parameters that no group manages.

    Example:
        >>> s, ctx = AnalysisContext.example('phase 0 { thaw glob "**" } fsdp2 { shard a }', ["a.w", "b.w"])
        >>> [(d.code, d.data["params"]) for d in check(s, ctx)]
        [('FTS407', ['b.w'])]
    """
    if ctx.fsdp2 is None or ctx.resolution is None or not ctx.fsdp2.prediction.groups:
        return
    if schedule.fsdp2 is not None and world_size(schedule.fsdp2) == 1:
        return
    plain = [p for p in ctx.fsdp2.prediction.unsharded if p in ctx.resolution.phases_of]
    if not plain:
        return
    shown = ", ".join(plain[:_LISTED]) + (f", ... and {len(plain) - _LISTED} more" if len(plain) > _LISTED else "")
    span = schedule.fsdp2.span if schedule.fsdp2 else None
    yield make("FTS407", ctx.source, span, count=len(plain), label="leaves trainable parameters unsharded",
               notes=(f"plain tensors that phases thaw: {shown}",
                      "FSDP2 neither shards these nor all-reduces their gradients: each rank trains its own copy "
                      "and they drift apart silently"),
               help="add their modules to the plan, or, last, the root `\"\"` (when `training_step` calls the "
                    "LightningModule's forward) or the model it calls (`self.model(...)`: shard `model`); "
                    "`ftsc check --fix` prints the choice",
               data={"params": plain})
