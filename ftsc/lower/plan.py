"""The compiled plan: pure data a runtime executes and `ftsc compile` prints.

Input: nothing (built by `ftsc.lower.lower`). Output: `Plan` and its SPEC §5.2 JSON form.
Never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ftsc.layer_lr import LrGroup

JSON_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class PhasePlan:
    """One phase: the parameters it thaws, its lr (None: the optimizer's own), its epoch limit.

    `lr_groups` (a layer-wise decay form) splits the phase's parameters into groups with their
    own lrs; `lr` is then the top (undecayed) lr.
    """

    index: int
    name: str | None
    params: tuple[str, ...]
    lr: float | None
    max_transition_epoch: int = -1
    lr_groups: tuple[LrGroup, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    """A sharding unit: an FSDP1 FlatParameter's module or an FSDP2 `fully_shard` group."""

    name: str
    params: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Sharding:
    """How parameters are sharded: `none`, `fsdp` or `fsdp2`, units in wrap/application order."""

    kind: str = "none"
    units: tuple[Unit, ...] = ()
    unsharded: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A schedule compiled against a model."""

    phases: tuple[PhasePlan, ...]
    unscheduled: tuple[str, ...]
    aliases: Mapping[str, str]
    sharding: Sharding = field(default_factory=Sharding)

    def to_json(self, diagnostics: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """SPEC §5.2."""
        return {
            "version": JSON_VERSION,
            "phases": [_phase_json(p) for p in self.phases],
            "unscheduled": list(self.unscheduled),
            "aliases": dict(self.aliases),
            "sharding": {"kind": self.sharding.kind,
                         "units": [{"name": u.name, "params": list(u.params)} for u in self.sharding.units],
                         "unsharded": list(self.sharding.unsharded)},
            "diagnostics": list(diagnostics or []),
        }


def _phase_json(p: PhasePlan) -> dict[str, Any]:
    """A phase object; `lr_groups` is added (never replacing a field) when the phase has a decay form."""
    out: dict[str, Any] = {"index": p.index, "name": p.name, "params": list(p.params), "lr": p.lr,
                           "max_transition_epoch": p.max_transition_epoch}
    if p.lr_groups is not None:
        out["lr_groups"] = [{"name": g.label, "layer_id": g.layer_id, "scale": g.scale, "lr": g.lr,
                             "params": list(g.params)} for g in p.lr_groups]
    return out
