"""The runtime plan: everything the Lightning callback needs, as plain data (no torch).

Input: an `ir.Schedule` and its `Resolution`. Output: a `RuntimePlan`: per phase the FQNs it
thaws, its lr (or, with a layer-wise decay form, its lr groups), how it ends (epoch, step, plateau) and what it re-initialises; the schedule
options; and a fingerprint that checkpoints carry so a resume with another schedule is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ftsc import ir
from ftsc.analyze.resolve import Resolution
from ftsc.layer_lr import layer_lrs
from ftsc.lower import DEFAULT_BASE_MAX_LR

OPTION_DEFAULTS: dict[str, Any] = {
    "max_depth": -1,
    "restore_best": True,
    "epoch_transitions_only": False,
    "enforce_phase0_params": True,
    "frozen_bn_track_running_stats": True,
    "apply_lambdas_new_pgs": False,
    "base_max_lr": DEFAULT_BASE_MAX_LR,
    "allow_untested": False,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimePhase:
    """One phase as the callback executes it."""

    index: int
    params: tuple[str, ...]
    lr: float | None  # None for phase 0: the optimizer's own lr
    epoch: int | None = None  # ends when the epoch about to start is >= this
    step: int | None = None  # ends when the global step reaches this
    plateau: bool = False  # ends when FTSEarlyStopping reports a plateau
    plateau_args: dict[str, Any] = field(default_factory=dict)  # per-phase early-stopping overrides
    new_optimizer: dict[str, Any] | None = None  # {"class_path", "init_args"}
    new_lr_scheduler: dict[str, Any] | None = None  # {"lr_scheduler_init", "pl_lrs_cfg", "init_pg_lrs", ...}
    # A layer-wise decay form: one group per lr, lowest layer first: {"name", "lr", "params": [FQN, ...]}.
    # `lr` is then the top lr; in phase 0 too, where the groups replace the optimizer's own.
    lr_groups: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimePlan:
    """A schedule compiled for execution."""

    phases: tuple[RuntimePhase, ...]
    options: dict[str, Any]

    @property
    def last_depth(self) -> int:
        """The deepest phase this run executes (`max_depth`, -1 = all)."""
        max_depth = self.options.get("max_depth", -1)
        last = len(self.phases) - 1
        return last if max_depth is None or max_depth < 0 else min(max_depth, last)

    def fingerprint(self) -> str:
        """A hash of what determines the training trajectory (phases and options)."""
        phases = [{k: v for k, v in asdict(p).items() if not (k == "lr_groups" and v is None)} for p in self.phases]
        doc = {"phases": phases, "options": self.options}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _reinit(r: ir.Reinit | None) -> dict[str, Any] | None:
    if r is None:
        return None
    out: dict[str, Any] = {"class_path": r.class_path,
                           "init_args": {a.name: a.value.py() for a in r.init_args or ()}}
    for s in r.settings:
        out[s.name] = s.value.py()
    return out


def lower_runtime(schedule: ir.Schedule, resolution: Resolution) -> RuntimePlan:
    """Compile `schedule` (resolved against the model) into a `RuntimePlan`.

    Example:
        >>> from ftsc.analyze.context import AnalysisContext
        >>> s, ctx = AnalysisContext.example("phase 0 { thaw a.w until epoch 2 } phase 1 { thaw b.w lr = 0.1 }",
        ...                                  ["a.w", "b.w"])
        >>> plan = lower_runtime(s, ctx.resolution)
        >>> [(p.params, p.lr, p.epoch, p.plateau) for p in plan.phases]
        [(('a.w',), None, 2, False), (('b.w',), 0.1, None, True)]
    """
    options = dict(OPTION_DEFAULTS)
    for s in schedule.options.settings:
        options[s.name] = s.value.py()
    implicit_opt = _reinit(schedule.options.reinit(ir.ReinitTarget.OPTIMIZER))
    implicit_lrs = _reinit(schedule.options.reinit(ir.ReinitTarget.LR_SCHEDULER))
    base_lr = float(options.get("base_max_lr") or DEFAULT_BASE_MAX_LR)
    epoch_only = bool(options.get("epoch_transitions_only"))
    model = [*resolution.phases_of, *resolution.unscheduled]  # every parameter (primary FQNs)
    phases = []
    for phase in sorted(schedule.phases, key=lambda p: p.index):
        resolved = resolution.phase(phase.index)
        until = phase.until
        epoch = step = None
        plateau_args: dict[str, Any] = {}
        if until is None:  # FTS's default: the phase ends on plateau
            plateau = not epoch_only
        else:
            plateau = False
            for c in until:
                if c.kind is ir.CriterionKind.EPOCH:
                    epoch = c.value
                elif c.kind is ir.CriterionKind.STEP:
                    step = c.value
                else:
                    plateau = not epoch_only
                    plateau_args = {a.name: a.value.py() for a in c.args or ()}
        lr = None if phase.index == 0 else float(phase.lr if phase.lr is not None else base_lr)
        params = resolved.params if resolved else ()
        groups = None
        if phase.lr_decay is not None:
            lr = phase.lr_decay.lr
            groups = tuple({"name": g.label, "lr": g.lr, "params": list(g.params)}
                           for g in layer_lrs(phase.lr_decay, params, model))
        new_opt = implicit_opt if phase.index else None
        new_opt = new_opt or _reinit(phase.reinit(ir.ReinitTarget.OPTIMIZER))
        new_lrs = (implicit_lrs if phase.index else None) or _reinit(phase.reinit(ir.ReinitTarget.LR_SCHEDULER))
        phases.append(RuntimePhase(index=phase.index, params=params, lr=lr, lr_groups=groups,
                                   epoch=epoch, step=step, plateau=plateau, plateau_args=plateau_args,
                                   new_optimizer=new_opt if phase.index else None,
                                   new_lr_scheduler=new_lrs if phase.index else None))
    return RuntimePlan(phases=tuple(phases), options=options)
