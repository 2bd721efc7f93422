"""Optimizer and lr-scheduler re-initialisation (FinetuningScheduler's `new_optimizer` /
`new_lr_scheduler`, and the schedule-wide `reinit_optim_cfg` / `reinit_lr_cfg`).

Input: the plan, the constructor's implicit configs, the Trainer. Output: the directive in force
at a phase, and a new optimizer / lr scheduler installed in the Trainer's strategy. Imports
torch and lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from ftsc.lower.runtime import RuntimePlan


def directive(plan: RuntimePlan, depth: int, kind: str, reinit_optim_cfg: dict | None,
              reinit_lr_cfg: dict | None) -> dict[str, Any] | None:
    """The optimizer (`kind="optimizer"`) or lr-scheduler reinit directive in force at `depth`
    (the implicit, schedule-wide configs win, as in FinetuningScheduler); None at phase 0."""
    if depth == 0:
        return None
    if kind == "optimizer":
        implicit = reinit_optim_cfg and reinit_optim_cfg.get("optimizer_init")
        return dict(implicit) if implicit else plan.phases[depth].new_optimizer
    if reinit_lr_cfg:
        init = reinit_lr_cfg.get("lr_scheduler_init", {})
        return {"class_path": init.get("class_path"), "init_args": dict(init.get("init_args", {})),
                **{k: v for k, v in reinit_lr_cfg.items() if k != "lr_scheduler_init"}}
    return plan.phases[depth].new_lr_scheduler


def import_class(class_path: str) -> type:
    """The class at `pkg.module.Class`.

    Raises:
        MisconfigurationException: when it cannot be imported.
    """
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise MisconfigurationException(f"cannot import `{class_path}` for re-initialisation: {err}") from None


def install_optimizer(trainer: pl.Trainer, cfg: dict[str, Any], groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """An optimizer of the directive `cfg` over `groups`, now the run's optimizer."""
    optimizer = import_class(cfg["class_path"])(groups, **cfg.get("init_args", {}))
    trainer.strategy.optimizers = [optimizer]
    for config in trainer.lr_scheduler_configs:
        config.scheduler.optimizer = optimizer
    return optimizer


def install_lr_scheduler(trainer: pl.Trainer, cfg: dict[str, Any]) -> None:
    """A new lr scheduler of the directive `cfg` on the current optimizer (its groups' lrs from
    `init_pg_lrs`, the current lrs, or the initial ones)."""
    from lightning.pytorch.utilities.types import LRSchedulerConfig

    optimizer = trainer.optimizers[0]
    key = "lr" if cfg.get("use_current_optimizer_pg_lrs") else "initial_lr"
    current = [g.get(key, g["lr"]) for g in optimizer.param_groups]
    given = cfg.get("init_pg_lrs")
    for group, lr in zip(optimizer.param_groups, given or current, strict=False):
        group["lr"] = float(lr)
        if given:
            group["initial_lr"] = float(lr)
    cls = import_class(cfg["class_path"])
    pl_cfg = dict(cfg.get("pl_lrs_cfg") or {})
    if issubclass(cls, torch.optim.lr_scheduler.ReduceLROnPlateau):
        pl_cfg.setdefault("reduce_on_plateau", True)
        if not pl_cfg.get("monitor"):
            raise MisconfigurationException("a ReduceLROnPlateau re-initialisation needs `pl_lrs_cfg.monitor`")
    trainer.strategy.lr_scheduler_configs = [
        LRSchedulerConfig(scheduler=cls(optimizer=optimizer, **cfg.get("init_args", {})), **pl_cfg)]
