"""Lowering: a schedule resolved against a model becomes a pure-data `Plan`.

Input: an `ir.Schedule`, its `Resolution` and the `ModelGraph`. Output: a `Plan` (per-phase
parameter lists, lrs and epoch limits; unscheduled parameters; aliases; sharding units).
Never imports torch.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ftsc import ir
from ftsc.analyze.resolve import Resolution, match_selector
from ftsc.layer_lr import LrGroup, MatchFn, layer_lrs
from ftsc.lower.plan import PhasePlan, Plan, Sharding, Unit
from ftsc.model.graph import ModelGraph

if TYPE_CHECKING:
    from ftsc.shard import FSDP1Analysis, FSDP2Analysis

DEFAULT_BASE_MAX_LR = 1e-5  # FinetuningScheduler's `base_max_lr` default


def graph_matcher(graph: ModelGraph) -> MatchFn:
    """`selector -> primary FQNs` over the model (an unusable pattern matches nothing; FTS101 reports it)."""
    def match(sel: ir.Selector) -> list[str]:
        try:
            return match_selector(sel, graph)[0]
        except (re.error, ValueError, OverflowError, RecursionError):
            return []
    return match


def lower(schedule: ir.Schedule, resolution: Resolution, graph: ModelGraph,
          fsdp1: FSDP1Analysis | None = None, fsdp2: FSDP2Analysis | None = None) -> Plan:
    """Compile `schedule` into a `Plan`.

    Phase 0's lr is None (the optimizer's own, from `configure_optimizers`); later phases
    get their `lr`, else `base_max_lr`, as FinetuningScheduler does. A phase with a layer-wise
    decay form gets its top lr and `lr_groups` (phase 0 too: the runtime applies them).

    Example:
        >>> from ftsc.analyze.context import AnalysisContext
        >>> s, ctx = AnalysisContext.example("phase 0 { thaw a.w } phase 1 { thaw b.w }", ["a.w", "b.w", "c.w"])
        >>> plan = lower(s, ctx.resolution, ctx.graph)
        >>> [(p.params, p.lr) for p in plan.phases], plan.unscheduled
        ([(('a.w',), None), (('b.w',), 1e-05)], ('c.w',))
    """
    base_lr = schedule.options.get("base_max_lr", DEFAULT_BASE_MAX_LR)
    phases = []
    for phase in sorted(schedule.phases, key=lambda p: p.index):
        resolved = resolution.phase(phase.index)
        epoch = phase.criterion(ir.CriterionKind.EPOCH)
        lr = None if phase.index == 0 else float(phase.lr if phase.lr is not None else base_lr)
        params = resolved.params if resolved else ()
        groups = None
        if phase.lr_decay is not None:
            groups = layer_lrs(phase.lr_decay, params, graph.params, graph_matcher(graph))
            lr = phase.lr_decay.lr
        phases.append(PhasePlan(index=phase.index, name=phase.name, params=params, lr=lr,
                                max_transition_epoch=epoch.value if epoch and epoch.value is not None else -1,
                                lr_groups=groups))
    sharding = Sharding()
    if fsdp1 is not None:
        pred = fsdp1.prediction
        sharding = Sharding(kind="fsdp", units=tuple(Unit(name=u.name, params=u.params) for u in pred.units),
                            unsharded=pred.unsharded)
    elif fsdp2 is not None:
        pred2 = fsdp2.prediction
        sharding = Sharding(kind="fsdp2", units=tuple(Unit(name=g.name, params=g.params) for g in pred2.groups),
                            unsharded=pred2.unsharded)
    return Plan(phases=tuple(phases), unscheduled=resolution.unscheduled, aliases=dict(graph.aliases),
                sharding=sharding)


__all__ = ["LrGroup", "PhasePlan", "Plan", "Sharding", "Unit", "lower"]
