"""FTS404: FSDP2 tied parameters managed by different groups, half sharded, or re-sharded."""

from __future__ import annotations

from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, Severity, make
from ftsc.diagnostics.rule import Rule

RULE = Rule(
    code="FTS404", name="tie-split-across-groups", severity=Severity.ERROR, needs_model=True,
    summary="FSDP2: tied parameters managed by different fully_shard groups",
    message="tied parameter `{param}` is managed by different `fully_shard` groups",
    doc="""## What it does
Reports tied parameters whose modules land in different `fully_shard` groups, or in one group
and none (a half-sharded tie: the other aliases stay plain tensors).

## Why is this bad?
torch >= 2.13 fails at the first forward; if only one alias is sharded, the tie silently breaks.

## Example
```ftsc
fsdp2 {
    shard model.embed
    shard model.lm_head
}
```

## Use instead
```ftsc
fsdp2 {
    shard model
}
```
""",
)


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report ties split across groups (error at first forward), ties with one alias left plain
    (silent untie), and calls that meet a parameter another group already sharded (error at the call).

    Example:
        >>> s, ctx = AnalysisContext.example('phase 0 { thaw embed.w } fsdp2 { shard head shard embed }',
        ...                                  ["embed.w"], aliases={"head.w": "embed.w"})
        >>> [(d.code, d.data["groups"]) for d in check(s, ctx)]
        [('FTS404', ['head', 'embed'])]
    """
    if ctx.fsdp2 is None or ctx.graph is None:
        return
    pred = ctx.fsdp2.prediction
    span = schedule.fsdp2.span if schedule.fsdp2 else None
    for param, groups in pred.multi.items():
        paths = [param, *ctx.graph.param_entries[param].aliases]
        effect = ("torch >= 2.13 raises at the first forward: \"shared with a parameter already managed by another "
                  "FSDP group\"" if pred.multi_raises.get(param) else
                  "no sharded module contains both groups, so nothing checks them: each alias becomes its own "
                  "DTensor and the tie is silently split (the copies train apart)")
        yield make("FTS404", ctx.source, span, param=param, label="tie split across groups",
                   notes=(f"`{param}` ({', '.join(paths)}) is managed by groups " + ", ".join(
                       f"`{g or '<root>'}`" for g in groups), effect),
                   help="shard the tied modules together: one list-form call `fully_shard([a, b])`, or a common "
                        "ancestor only",
                   data={"param": param, "groups": list(groups)})
    for param, plain in pred.untied.items():
        if param in pred.multi:
            continue
        yield make("FTS404", ctx.source, span, param=param, label="half-sharded tie",
                   notes=(f"the alias{'es' if len(plain) > 1 else ''} {', '.join(f'`{p}`' for p in plain)} "
                          "stay plain tensors while the others become a DTensor: the tie is silently broken",),
                   help="shard a module that contains every alias of the tie",
                   data={"param": param, "plain_paths": list(plain), "groups": [pred.group_of(param)]})
    for group, param in pred.failed:
        yield make("FTS404", ctx.source, span, param=param, label="re-sharded parameter",
                   notes=(f"`fully_shard` on `{group or '<root>'}` meets `{param}`, which an earlier group already "
                          "sharded (a module shared by two sharded subtrees); the call raises",),
                   help="shard the shared module on its own before both users, or shard a common ancestor only",
                   data={"param": param, "groups": [group]})
