"""transformers' own FSDP2 plan for a model class (`--strategy-config hf`) -> the IR `fsdp2` block.

Input: the model graph, whose manifest `hf` entry holds the model's merged plan as built
(`fsdp_plan`: the class's `_fsdp_plan`, the config's `base_model_fsdp_plan`, children's plans
prefixed), its embeddings and final norm. Output: a `StrategySource`. Semantics read from
transformers 5.24 `distributed/mixin.py` `_resolve_parallel_plans` and `distributed/fsdp.py`
`apply_fully_sharded_data_parallelism`: styles `free_full_weight` / `keep_full_weight` only; rules
that name nothing are warned about and dropped; with tied embeddings the embedding's rule is
dropped and a `keep_full_weight` head rule moves to the embedding; `*` stands for a layer number
(a `.N` segment); rules apply deepest module first; `free_full_weight` modules are sharded with
`reshard_after_forward=True`, then `keep_full_weight` ones with False (exactly a final norm, a
module named `norm` or `*.norm`, and an embedding or the head: one grouped entry, as transformers
makes them one list-form call), then the root. Never imports torch.

Example:
    >>> wildcard("model.layers.12.mlp"), wildcard("w1")
    ('model.layers.*.mlp', 'w1')
"""

from __future__ import annotations

import re

from ftsc import ir
from ftsc.diagnostics import Severity, make
from ftsc.frontend.dialects.accelerate import StrategySource
from ftsc.model.graph import ModelGraph
from ftsc.source import SourceFile

NAME = "hf"
STYLES = ("free_full_weight", "keep_full_weight")
_NUMBER = re.compile(r"\.\d+(\.|$)")


def wildcard(name: str) -> str:
    """A module or parameter name with its layer numbers (`.N` segments) as `*`."""
    return _NUMBER.sub(lambda m: ".*" + m.group(1), name)


def read(source: SourceFile, graph: ModelGraph) -> StrategySource:
    """The model's own FSDP2 plan as transformers applies it (see the module docstring)."""
    out = StrategySource()
    hf = graph.manifest.extra.get("hf") or {}
    plan = dict(hf.get("fsdp_plan") or {})
    if not plan:
        out.diagnostics.append(make("FTS102", source, None, label="no FSDP plan",
                                    detail="the model has no transformers FSDP plan (`_fsdp_plan` / the config's "
                                           "`base_model_fsdp_plan`): transformers refuses `fsdp_size > 1`"))
        return out
    bad = sorted({s for s in plan.values() if s not in STYLES})
    if bad:
        out.diagnostics.append(make("FTS102", source, None, label="unknown FSDP style",
                                    detail=f"unsupported `fsdp_plan` styles {bad}; transformers knows {list(STYLES)}"))
        plan = {k: v for k, v in plan.items() if v in STYLES}
    known = {wildcard(n) for n in graph.modules} | {wildcard(n) for n in graph.params}
    for key in sorted(set(plan) - known):
        out.diagnostics.append(make("FTS402", source, None, severity=Severity.WARNING, key=key,
                                    label="rule names nothing",
                                    notes=("transformers warns that the rule matches nothing and does not apply it",)))
    embed, head = hf.get("input_embeddings"), hf.get("output_embeddings")
    if hf.get("tied_embeddings") and embed is not None and head is not None:
        tied = {k: v for k, v in plan.items() if k != embed}
        if plan.get(head) == "keep_full_weight":
            tied.pop(head, None)
            tied[embed] = "keep_full_weight"
        plan = tied
    expanded = {m: plan[wildcard(m)] for m in graph.modules if wildcard(m) in plan}
    ordered = sorted(expanded.items(), key=lambda item: item[0].count("."), reverse=True)
    free = [m for m, s in ordered if s == "free_full_weight"]
    keep = [m for m, s in ordered if s == "keep_full_weight"]
    heads = {graph.module_aliases.get(m, m) for m in (embed, head) if m is not None}
    pair = (len(keep) == 2 and any(m == "norm" or m.endswith(".norm") for m in keep)
            and any(graph.module_aliases.get(m, m) in heads for m in keep))
    tail = [_entry(keep[0], False, keep[1:])] if pair else [_entry(m, False) for m in keep]
    entries = [_entry(m, True) for m in free] + tail + [_entry("", False)]
    out.fsdp2 = ir.FSDP2Config(plan=tuple(entries))
    return out


def _entry(module: str, reshard: bool, members: list[str] | tuple[str, ...] = ()) -> ir.ShardEntry:
    def exact(m: str) -> ir.Selector:
        return ir.Selector(kind=ir.SelectorKind.EXACT, pattern=m)

    return ir.ShardEntry(selector=exact(module), members=tuple(exact(m) for m in members),
                         kwargs=(ir.Setting(name="reshard_after_forward", value=ir.scalar(reshard)),))
