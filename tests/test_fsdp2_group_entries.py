"""Grouped FSDP2 plan entries (`ir.ShardEntry.members`) through the resolution stage, without
torch: where the group sits in the plan, a member naming nothing (FTS402 at that member), a
member another group already manages (skipped, FTS403), and the kwargs every member gets.
Their agreement with torch's real groups is tests/test_fsdp2_grouped.py."""

from __future__ import annotations

from ftsc import ir
from ftsc.analyze import prepare
from ftsc.analyze.context import AnalysisContext
from ftsc.analyze.rules import fts402_plan_key, fts403_plan_order
from ftsc.frontend import InputKind
from ftsc.model.graph import ModelGraph
from ftsc.shard import fsdp2_analysis
from ftsc.source import SourceFile

GRAPH = ModelGraph.from_names(["embed.w", "layers.0.w", "layers.1.w", "norm.w", "head.w"])


def _exact(name: str) -> ir.Selector:
    return ir.Selector(kind=ir.SelectorKind.EXACT, pattern=name)


def _schedule(*entries: ir.ShardEntry) -> ir.Schedule:
    return ir.Schedule(fsdp2=ir.FSDP2Config(plan=entries))


def _ctx(schedule: ir.Schedule) -> AnalysisContext:
    return prepare(schedule, AnalysisContext(SourceFile("x.ftsc", ""), InputKind.DSL, GRAPH))


def test_a_grouped_entry_is_one_group_at_its_first_modules_place() -> None:
    reshard = (ir.Setting(name="reshard_after_forward", value=ir.scalar(False)),)
    tail = ir.ShardEntry(selector=_exact("norm"), members=(_exact("head"), _exact("embed")), kwargs=reshard)
    a = fsdp2_analysis(_schedule(ir.ShardEntry(selector=_exact("layers.0")), tail,
                                 ir.ShardEntry(selector=_exact(""))), GRAPH)
    assert a is not None
    assert a.plan == ("layers.0", "norm", "") and a.members == {"norm": ("head", "embed")}
    assert [(g.name, g.modules, g.params) for g in a.prediction.groups] == [
        ("layers.0", ("layers.0",), ("layers.0.w",)),
        ("embed, norm, head", ("norm", "head", "embed"), ("norm.w", "head.w", "embed.w")),
        ("", ("",), ("layers.1.w",)),
    ]
    assert a.entry_of["head"] is tail and a.entry_of["embed"] is tail  # every member gets the entry's kwargs


def test_a_member_naming_nothing_is_fts402_at_the_member() -> None:
    tail = ir.ShardEntry(selector=_exact("norm"), members=(_exact("lm_head"),))
    schedule = _schedule(tail)
    a = fsdp2_analysis(schedule, GRAPH)
    assert a is not None and [e.selector.pattern for e in a.unmatched] == ["lm_head"]
    assert [g.params for g in a.prediction.groups] == [("norm.w",)]
    found = list(fts402_plan_key.check(schedule, _ctx(schedule)))
    assert [(d.code, d.data["key"]) for d in found] == [("FTS402", "lm_head")]


def test_a_member_already_managed_is_left_out_and_reported() -> None:
    """`embed` is managed by the root group applied first: FTS's rule skips it, the rest of
    the call still forms one group."""
    schedule = _schedule(ir.ShardEntry(selector=_exact("")),
                         ir.ShardEntry(selector=_exact("norm"), members=(_exact("head"),)),
                         ir.ShardEntry(selector=_exact("layers.1"), members=(_exact("embed"),)))
    a = fsdp2_analysis(schedule, GRAPH)
    assert a is not None
    assert [(s.module, s.by) for s in a.prediction.skipped] == [("norm", ""), ("layers.1", "")]
    schedule = _schedule(ir.ShardEntry(selector=_exact("embed")),
                         ir.ShardEntry(selector=_exact("layers.1"), members=(_exact("embed"), _exact("head"))))
    a = fsdp2_analysis(schedule, GRAPH)
    assert a is not None
    # `embed` was placed by the first entry: the group is formed without it
    assert a.members == {"layers.1": ("head",)}
    assert [g.name for g in a.prediction.groups] == ["embed", "layers.1, head"]


def test_a_member_inside_a_managed_ancestor_is_skipped_with_fts403() -> None:
    schedule = _schedule(ir.ShardEntry(selector=_exact("layers")),
                         ir.ShardEntry(selector=_exact("norm"), members=(_exact("layers.0"),)))
    a = fsdp2_analysis(schedule, GRAPH)
    assert a is not None
    assert [(s.module, s.by) for s in a.prediction.skipped] == [("layers.0", "layers")]
    assert [(g.name, g.params) for g in a.prediction.groups] == [
        ("layers", ("layers.0.w", "layers.1.w")), ("norm", ("norm.w",))]
    found = list(fts403_plan_order.check(schedule, _ctx(schedule)))
    assert [d.code for d in found] == ["FTS403"]
