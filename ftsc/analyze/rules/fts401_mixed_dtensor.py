"""FTS401: a phase's parameter group mixes DTensor (FSDP2-managed) and plain-tensor parameters."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS401", name="mixed-dtensor-param-group", severity=Severity.ERROR, needs_model=True,
    summary="FSDP2: a phase's parameter group mixes DTensor and plain tensors",
    message="phase {phase} mixes DTensor and plain-tensor parameters",
    doc="""## What it does
Reports a phase whose parameter group holds both `fully_shard`-managed (DTensor) and plain
parameters.

## Why is this bad?
foreach/fused optimizers (the CUDA default) fail at the first optimizer step of that phase
(`got mixed torch.Tensor and DTensor`; FTS's own auto plan without a root group crashed this
way on an H200); gradient clipping over mixed sets fails in every mode.

## Example
```ftsc
phase 0 {
    thaw /model\\..*/
}
fsdp2 {
    shard model.layers.0
}
```

## Use instead
```ftsc
phase 0 {
    thaw /model\\..*/
}
fsdp2 {
    shard model.layers.0
    shard model
}
```
""",
)


_LISTED = 8


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report each phase whose parameters are partly DTensors and partly plain tensors.

    Example:
        >>> s, ctx = AnalysisContext.example(
        ...     'phase 0 { thaw glob "**" } fsdp2 { shard layers }', ["layers.w", "head.w"])
        >>> [(d.code, d.data["plain_params"]) for d in check(s, ctx)]
        [('FTS401', ['head.w'])]
    """
    if ctx.fsdp2 is None or ctx.resolution is None:
        return
    plain = set(ctx.fsdp2.prediction.unsharded)
    for phase in ctx.resolution.phases:
        dt = [p for p in phase.params if p not in plain]
        nd = [p for p in phase.params if p in plain]
        if not dt or not nd:
            continue
        sel = ctx.resolution.selector_for(nd[0], phase.index)
        shown = ", ".join(nd[:_LISTED]) + (f", ... and {len(nd) - _LISTED} more" if len(nd) > _LISTED else "")
        owners = sorted({p.rpartition(".")[0] for p in nd})
        add = "the root module" if "" in owners or len(owners) > 3 else ", ".join(f"`{o}`" for o in owners)
        yield make("FTS401", ctx.source, sel.span if sel else None, phase=phase.index,
                   label=f"{len(nd)} plain-tensor parameter{'s' if len(nd) > 1 else ''} in a DTensor group",
                   notes=(f"plain tensors (in no `fully_shard` group): {shown}",
                          "foreach and fused optimizers (the CUDA default) fail at the first step with \"got mixed "
                          "torch.Tensor and DTensor\"; gradient clipping over mixed parameters fails in every mode",
                          "plain parameters are not sharded and their gradients are not synchronized across ranks"),
                   help=f"add {add} to the plan (`shard ...` / fsdp_plan), the root last, so every phase "
                        "parameter is a DTensor (FSDP2 unshards a group in its module's forward: when "
                        "`training_step` calls `self.model(...)` rather than the LightningModule's own forward, "
                        "shard `model` last instead of the root `\"\"`; `ftsc check --fix` prints the choice)",
                   data={"phase": phase.index, "dtensor_params": dt, "plain_params": nd})
