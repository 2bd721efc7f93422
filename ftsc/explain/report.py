"""The explain report: phases x sharding units, with memory per rank, as SPEC §5.3's JSON dict.

Input: a schedule, its prepared `AnalysisContext` (resolution and sharding predictions), a
`Setup` and the estimate inputs. Output: the `Explanation` (groups, cells, memory per phase)
and `to_json()`, the contract dict. Never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.explain import setup as setups
from ftsc.explain.activations import LOSS_BACKWARD_TENSORS, activation_bytes, head_bytes, transformer_blocks
from ftsc.explain.matrix import Cell, cell
from ftsc.explain.memory import Group, Memory, RankMemory, Setup, buffer_bytes, itemsize, phase_memory
from ftsc.layer_lr import LrGroup, layer_lrs
from ftsc.lower import graph_matcher
from ftsc.model.graph import ModelGraph, parent_of
from ftsc.shard.fsdp1 import BATCHNORM

UNSHARDED = "<unsharded>"


@dataclass(frozen=True, slots=True)
class PhaseReport:
    """One phase: its cells (one per group), what trains, and what it costs on the busiest rank."""

    index: int
    trainable: frozenset[str]
    cells: tuple[Cell, ...]
    memory: RankMemory
    activations: int | None
    peak: int | None
    lr_groups: tuple[LrGroup, ...] | None = None  # a layer-wise lr decay form's groups

    @property
    def trainable_numel(self) -> int:
        """Elements that train in this phase."""
        return sum(c.trainable_numel for c in self.cells)


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything `ftsc explain` shows."""

    graph: ModelGraph
    setup: Setup
    groups: tuple[Group, ...]
    numels: tuple[int, ...]
    dtypes: tuple[str, ...]
    phases: tuple[PhaseReport, ...]
    estimated: bool  # activations and peak were estimated (--batch and --seq given, transformer blocks found)
    no_blocks: bool = False  # --batch/--seq given, but the model has no transformer blocks to estimate

    def to_json(self, diagnostics: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        """SPEC §5.3's JSON object."""
        def mem(m: Memory) -> dict[str, Any]:
            return {"params": m.params, "buffers": m.buffers, "grads": m.grads, "optimizer": m.optimizer,
                    "model_states": m.model_states}

        phases = []
        for ph in self.phases:
            memory = mem(ph.memory.device) | {"activations": ph.activations, "peak": ph.peak}
            if ph.memory.host is not None:
                memory["host"] = mem(ph.memory.host)
            phases.append({"index": ph.index, "trainable_numel": ph.trainable_numel,
                           "units": [{"name": g.name, "state": c.state, "trainable_numel": c.trainable_numel}
                                     for g, c in zip(self.groups, ph.cells, strict=True)],
                           "memory": memory})
            if ph.lr_groups is not None:  # additive: only phases with a decay form have it
                phases[-1]["lr_groups"] = [{"name": g.label, "lr": g.lr, "params": list(g.params)}
                                           for g in ph.lr_groups]
        return {"version": 1, "world_size": self.setup.world_size, "optimizer": self.setup.optimizer,
                "units": [{"name": g.name, "numel": n, "dtype": d}
                          for g, n, d in zip(self.groups, self.numels, self.dtypes, strict=True)],
                "phases": phases, "diagnostics": list(diagnostics)}


def _top_level(graph: ModelGraph, params: Sequence[str], layout: str = "replica") -> list[Group]:
    """Parameters grouped by top-level module (`""` for those registered on the root)."""
    by: dict[str, list[str]] = {}
    for p in params:
        by.setdefault(p.partition(".")[0] if "." in p else "", []).append(p)
    return [Group(name=name, params=tuple(ps), layout=layout) for name, ps in by.items()]


def sharding_groups(schedule: ir.Schedule, ctx: AnalysisContext, setup: Setup) -> list[Group]:
    """The groups the memory arithmetic and the matrix walk, in wrap / plan order.

    FSDP1: one per unit (root `""` last of its tree); FSDP2: one per `fully_shard` group;
    parameters in no unit or group: one `<unsharded>` group; unsharded strategies: one group
    per top-level module.
    """
    graph = ctx.graph
    assert graph is not None
    if ctx.fsdp1 is not None:
        offload = setups.fsdp1_offloads(schedule)
        mixed = ctx.fsdp1.spec.mixed_precision
        groups = [Group(name=u.name, params=u.params, layout="flat", offload=offload,
                        no_buffer_cast=mixed and bool(u.name) and graph.is_instance(u.name, BATCHNORM))
                  for u in ctx.fsdp1.prediction.units]
        unsharded = ctx.fsdp1.prediction.unsharded
    elif ctx.fsdp2 is not None:
        groups = []
        for g in ctx.fsdp2.prediction.groups:
            entry = ctx.fsdp2.entry_of.get(g.modules[0]) if g.source == "plan" else None
            kwargs = setups.fsdp2_kwargs(schedule, entry)
            groups.append(Group(name=g.name, params=g.params, layout="dim0", offload=setups.fsdp2_offloads(kwargs)))
        unsharded = ctx.fsdp2.prediction.unsharded
    else:
        return _top_level(graph, graph.params)
    if unsharded:
        groups.append(Group(name=UNSHARDED, params=tuple(unsharded), layout="replica"))
    return groups


def _uncast_buffers(graph: ModelGraph, groups: Sequence[Group], ctx: AnalysisContext) -> list[str]:
    """Buffers FSDP1 mixed precision leaves in their dtype: outside every unit, ignored, or in a
    unit with mixed precision off (BatchNorm)."""
    if ctx.fsdp1 is None:
        return []
    units = {g.name: g.no_buffer_cast for g in groups if g.layout == "flat"}
    ignored = set(ctx.fsdp1.spec.ignored)
    out = []
    for b in graph.manifest.buffers:
        owner = parent_of(b.name)
        while owner not in units and owner not in ignored and owner:  # innermost unit or ignored module
            owner = parent_of(owner)
        if owner in ignored or owner not in units or units[owner]:
            out.append(b.name)
    return out


def _receiving_grads(groups: Sequence[Group], trainable: frozenset[str], setup: Setup) -> frozenset[str]:
    """The parameters autograd computes gradients for: the trainable ones, and under FSDP1 every
    member of a FlatParameter with a trainable member (in forward they are views of it)."""
    if setup.kind != "fsdp" or not trainable:
        return trainable
    return trainable.union(*(g.params for g in groups if g.layout == "flat" and not trainable.isdisjoint(g.params)))


def _step_transient(memory: RankMemory, setup: Setup) -> int:
    """The optimizer step's temporaries on the device: torch's multi-tensor Adam and AdamW (the
    default on CUDA) compute `sqrt(v) + eps` into new tensors as large as one state (measured on an
    H200: 125 MiB for a 125 MiB head); SGD, with or without momentum, updates in place."""
    return memory.device.optimizer // 2 if setup.optimizer in ("adam", "adamw") else 0


def _transient(graph: ModelGraph, groups: Sequence[Group], trainable: frozenset[str], setup: Setup) -> int:
    """Estimated all-gather and unsharded-gradient bytes at the peak: the two largest groups
    unsharded in the compute dtype (current and prefetched), plus the largest trainable one's
    unsharded gradient."""
    if setup.kind not in ("fsdp", "fsdp2"):
        return 0
    size = itemsize(setup.compute_dtype)
    full = sorted((sum(graph.numel(p) for p in g.params) for g in groups if g.layout != "replica"), reverse=True)
    grads = [sum(graph.numel(p) for p in g.params) for g in groups
             if g.layout != "replica" and any(p in trainable for p in g.params)]
    return (sum(full[:2]) + max(grads, default=0)) * size


def explain(schedule: ir.Schedule, ctx: AnalysisContext, setup: Setup, *, batch: int | None = None,
            seq: int | None = None) -> Explanation:
    """Phases x units with memory per rank for a schedule whose context has been prepared.

    Args:
        schedule: the schedule (its sharding block gives offload and activation checkpointing).
        ctx: the context `ftsc.analyze.prepare` filled (model graph, resolution, predictions).
        setup: strategy, world size, optimizer, precision.
        batch: micro-batch size per rank, for the activation estimate.
        seq: sequence length, for the activation estimate.

    Returns:
        The explanation; `to_json()` gives SPEC §5.3's dict.
    """
    graph, res = ctx.graph, ctx.resolution
    assert graph is not None and res is not None
    groups = sharding_groups(schedule, ctx, setup)
    buffers = buffer_bytes(graph, setup, _uncast_buffers(graph, groups, ctx))
    blocks, hidden = transformer_blocks(graph)
    ckpt = setups.uses_act_ckpt(schedule, setups.fsdp2_kwargs(schedule, None))
    asked = batch is not None and seq is not None
    estimated = asked and bool(blocks)
    phases = []
    thawed: set[str] = set()
    layouts: dict[int, object] = {}
    decays = {p.index: p.lr_decay for p in schedule.phases if p.lr_decay is not None}
    for ph in sorted(res.phases, key=lambda p: p.index):
        thawed.update(graph.primary(p) for p in ph.params)
        decay = decays.get(ph.index)
        lr_groups = layer_lrs(decay, ph.params, graph.params, graph_matcher(graph)) if decay else None
        trainable = frozenset(thawed)
        memory = phase_memory(graph, setup, groups, trainable, buffers, layouts)
        acts = peak = None
        if estimated:
            assert batch is not None and seq is not None
            logits = head_bytes(graph, trainable, batch=batch, seq=seq)
            acts = activation_bytes(graph, _receiving_grads(groups, trainable, setup), batch=batch, seq=seq,
                                    compute_dtype=setup.compute_dtype, checkpointing=ckpt, blocks=blocks,
                                    hidden=hidden) + logits
            backward = (memory.device.model_states + acts + _transient(graph, groups, trainable, setup)
                        + LOSS_BACKWARD_TENSORS * logits)
            peak = max(backward, memory.device.model_states + _step_transient(memory, setup))
        phases.append(PhaseReport(index=ph.index, trainable=trainable,
                                  cells=tuple(cell(graph, g, trainable) for g in groups),
                                  memory=memory, activations=acts, peak=peak, lr_groups=lr_groups))
    numel = graph.numels.__getitem__
    numels = tuple(sum(map(numel, g.params)) for g in groups)
    dtypes = tuple(_dtype_of(graph, g, setup) for g in groups)
    return Explanation(graph=graph, setup=setup, groups=tuple(groups), numels=numels, dtypes=dtypes, phases=tuple(phases),
                       estimated=estimated, no_blocks=asked and not blocks)


def _dtype_of(graph: ModelGraph, group: Group, setup: Setup) -> str:
    """The group's storage dtype; several joined with `+` (sorted) when they differ."""
    from ftsc.explain.memory import FLOATING

    entries = graph.param_entries
    kinds = sorted({setup.store_dtype if setup.store_dtype and d in FLOATING else d
                    for d in {entries[p].dtype for p in group.params}})
    return "+".join(kinds) if kinds else "none"
