"""What every freeze-dialect importer returns, and helpers they share.

Input: none (types and small helpers). Output: `Imported` (schedule, diagnostics, the model as
the dialect leaves it) and builders for the one-phase schedule. Never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ftsc import ir
from ftsc.diagnostics import Diagnostic
from ftsc.frontend.yaml_nodes import YNode
from ftsc.model.graph import ModelGraph
from ftsc.source import Span

FLOATING = frozenset({"float16", "bfloat16", "float32", "float64"})


@dataclass(frozen=True, slots=True)
class Imported:
    """A dialect config read into the IR.

    Attributes:
        schedule: one phase (the trainable set; every other parameter stays frozen) and the
            sharding block the config implies.
        diagnostics: problems found while reading (the analysis adds its own later).
        graph: the model as the dialect leaves it before wrapping (dtype casts applied), or
            None when no model was given.
    """

    schedule: ir.Schedule
    diagnostics: list[Diagnostic]
    graph: ModelGraph | None


def exact_phase(trainable: Sequence[str], span: Span, spans: Mapping[str, Span] | None = None) -> ir.Phase:
    """Phase 0 thawing exactly `trainable` (parameter FQNs, model order); each name's selector
    points at `spans[name]` (the config entry that selected it) where given, else at `span`."""
    where = spans or {}
    return ir.Phase(index=0, selectors=tuple(ir.Selector(kind=ir.SelectorKind.EXACT, pattern=n, span=where.get(n, span))
                                             for n in trainable), span=span)


def key_span(node: YNode, key: str) -> Span:
    """The span of `key` in mapping `node` (the node's own span without it)."""
    found = node.key_nodes.get(key)
    return found.span if found is not None else node.span


def with_dtypes(graph: ModelGraph, dtypes: Mapping[str, str]) -> ModelGraph:
    """`graph` with the given parameters' dtypes replaced (a cast before wrapping)."""
    if not dtypes:
        return graph
    params = tuple(p._replace(dtype=dtypes[p.name]) if p.name in dtypes else p for p in graph.manifest.parameters)
    return ModelGraph(replace(graph.manifest, parameters=params))
