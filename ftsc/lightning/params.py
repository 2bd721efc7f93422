"""Parameters by logical name: freezing, thawing through a phase, BatchNorm tracking.

Input: a LightningModule (plain, DDP-, FSDP1- or FSDP2-wrapped) and a `RuntimePlan`. Output:
`requires_grad` and BatchNorm `track_running_stats` set for the phases thawed so far. Under FSDP1
with `use_orig_params=False` each logical FQN maps to the FlatParameter holding it, which is
thawed as a whole. Imports torch. Never touches the optimizer.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ftsc.lightning import _private
from ftsc.lightning.fsdp1 import clean, logical_names
from ftsc.lower.runtime import RuntimePlan


def unique(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Each parameter object once, in first-seen order (a FlatParameter stands for several names)."""
    return list({id(p): p for p in params}.values())


def logical_params(module: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """`{logical FQN: the parameter object to thaw and optimize}` (wrapper segments dropped)."""
    return {n: p for name, p in module.named_parameters() for n in logical_names(name, p)}


def thaw(module: torch.nn.Module, plan: RuntimePlan, depth: int) -> list[str]:
    """Thaw phase `depth`'s parameters; returns their logical FQNs present in the module."""
    params = logical_params(module)
    names = [n for n in plan.phases[depth].params if n in params]
    for n in names:
        params[n].requires_grad_(True)
    bn_tracking(module, plan)
    return names


def thaw_through(module: torch.nn.Module, plan: RuntimePlan, depth: int) -> None:
    """Freeze every parameter, then thaw phases 0 to `depth`."""
    for p in module.parameters():
        p.requires_grad_(False)
    for d in range(depth + 1):
        thaw(module, plan, d)


def bn_tracking(module: torch.nn.Module, plan: RuntimePlan) -> None:
    """BatchNorm layers track running stats when `frozen_bn_track_running_stats`, when one of their
    parameters is trainable, or when they own none (FinetuningScheduler's rule)."""
    keep = bool(plan.options.get("frozen_bn_track_running_stats", True))
    owned: dict[str, list[torch.nn.Parameter]] = {}  # by module; a FlatParameter's frozenness is its own
    for n, p in logical_params(module).items():
        owned.setdefault(n.rpartition(".")[0], []).append(p)
    base = _private.batchnorm_base()
    for name, m in module.named_modules():
        if isinstance(m, base):
            own = owned.get(clean(name), [])
            m.track_running_stats = keep or any(p.requires_grad for p in own) or not own


def numel(module: torch.nn.Module, names: Iterable[str]) -> int:
    """Elements of the named parameters (each object once)."""
    params = logical_params(module)
    return sum(p.numel() for p in unique(params[n] for n in names if n in params))
