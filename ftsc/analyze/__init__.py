"""Analysis passes over the IR.

Input: an `ir.Schedule` and an `AnalysisContext`. Output: diagnostics. `PASSES` is ordered;
a pass's position is its dependency contract. Schedule-level passes need no model; passes
that need one read `ctx.resolution` and return nothing when it is None. Never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.analyze.resolve import resolve_schedule
from ftsc.analyze.rules import (
    fts106_catastrophic_backtracking,
    fts201_contiguity,
    fts202_no_match,
    fts203_multiple_phases,
    fts204_never_thawed,
    fts205_over_matching,
    fts206_transitions,
    fts207_phase_zero_lr,
    fts208_reinit_phase_zero,
    fts209_conflicting_options,
    fts210_empty_phase,
    fts211_unsupported_class,
    fts212_init_pg_lrs,
    fts213_shared_alias,
    fts215_stray_lr_group,
    fts301_flat_param_phases,
    fts302_partial_unit,
    fts303_wrap_target,
    fts304_tie_split,
    fts305_phase_zero_unit,
    fts306_mixed_dtype_unit,
    fts401_mixed_dtensor,
    fts402_plan_key,
    fts403_plan_order,
    fts404_fsdp2_ties,
    fts405_container_target,
    fts407_unsynced_params,
    fts408_mixed_dtype_group,
    fts502_empty_schedule,
)
from ftsc.diagnostics import Diagnostic

Pass = Callable[[ir.Schedule, AnalysisContext], Iterable[Diagnostic]]

PASSES: tuple[Pass, ...] = (
    fts201_contiguity.check,  # first: later passes read phases by index
    fts202_no_match.check,
    fts203_multiple_phases.check,
    fts204_never_thawed.check,
    fts205_over_matching.check,
    fts106_catastrophic_backtracking.check,
    fts206_transitions.check,
    fts207_phase_zero_lr.check,
    fts208_reinit_phase_zero.check,
    fts209_conflicting_options.check,
    fts210_empty_phase.check,
    fts211_unsupported_class.check,
    fts212_init_pg_lrs.check,
    fts213_shared_alias.check,
    fts215_stray_lr_group.check,
    fts303_wrap_target.check,
    fts301_flat_param_phases.check,
    fts302_partial_unit.check,
    fts304_tie_split.check,
    fts305_phase_zero_unit.check,
    fts306_mixed_dtype_unit.check,
    fts402_plan_key.check,
    fts405_container_target.check,
    fts403_plan_order.check,
    fts401_mixed_dtensor.check,
    fts404_fsdp2_ties.check,
    fts407_unsynced_params.check,
    fts408_mixed_dtype_group.check,
    fts502_empty_schedule.check,
)


def prepare(schedule: ir.Schedule, ctx: AnalysisContext) -> AnalysisContext:
    """`ctx` with the model-dependent stages filled in (selector resolution, FSDP1/FSDP2
    predictions) when there is a model; callers that also lower the schedule reuse them."""
    if ctx.graph is None or ctx.resolution is not None:
        return ctx
    from ftsc.shard import fsdp1_analysis, fsdp2_analysis  # the sharding stage builds on resolution

    return replace(ctx, resolution=resolve_schedule(schedule, ctx.graph),
                   fsdp1=fsdp1_analysis(schedule, ctx.graph), fsdp2=fsdp2_analysis(schedule, ctx.graph))


def analyze(schedule: ir.Schedule, ctx: AnalysisContext) -> list[Diagnostic]:
    """Resolve selectors against the model (when there is one), run every pass, return diagnostics."""
    ctx = prepare(schedule, ctx)
    out: list[Diagnostic] = []
    for check in PASSES:
        out.extend(check(schedule, ctx))
    return out


__all__ = ["PASSES", "AnalysisContext", "Pass", "analyze", "prepare"]
