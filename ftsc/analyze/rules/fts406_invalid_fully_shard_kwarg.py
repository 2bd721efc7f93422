"""FTS406: FSDP2: unknown fully_shard keyword or alias value (reported by the stage that finds it; no analysis pass)."""

from __future__ import annotations

from ftsc.diagnostics.rule import Rule, Severity

RULE = Rule(
    code="FTS406", name="invalid-fully-shard-kwarg", severity=Severity.ERROR,
    summary="FSDP2: unknown fully_shard keyword or alias value",
    message="{detail}",
    doc="""## What it does
Reports an unknown `fully_shard` keyword in a `shard` entry or in `fsdp_default_kwargs`, and
invalid `act_ckpt` / `cpu_offload_policy` alias values (including a bare-string `act_ckpt`,
which crashes FinetuningScheduler).

## Why is this bad?
FinetuningScheduler crashes with a `TypeError` while applying the plan, after the process
group and model are set up.

## Example
```ftsc
fsdp2 {
    shard model.layers.0(reshard_after_fwd = true)
}
```

## Use instead
```ftsc
fsdp2 {
    shard model.layers.0(reshard_after_forward = true)
}
```
""",
)
