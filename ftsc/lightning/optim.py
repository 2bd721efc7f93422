"""Optimizer and lr-scheduler surgery: phase 0's groups, a new phase's groups, the groups a
checkpoint was saved with, and restore_best's replay.

Input: the `RuntimePlan`, the Trainer and the LightningModule. Output: the Trainer's optimizer
holding exactly the thawed phases' parameters in FinetuningScheduler's group layout (one group
per phase, two with `no_decay`; with layer-wise lrs, that per decay group), its lr schedulers extended to the new groups, and
re-initialisations applied. Imports torch and lightning. Never decides *when* a phase ends.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from ftsc.lightning import _private, reinit
from ftsc.lightning.fsdp1 import is_flat_param
from ftsc.lightning.params import logical_params, thaw, unique
from ftsc.lower.runtime import RuntimePlan

LrState = tuple[dict[str, Any], list[float]]


class OptimizerSurgery:
    """Edits the Trainer's optimizer and lr schedulers as phases are thawed.

    Args:
        plan: the compiled schedule.
        reinit_optim_cfg, reinit_lr_cfg: the schedule-wide re-initialisation directives.
        log: where warnings go.
    """

    def __init__(self, plan: RuntimePlan, reinit_optim_cfg: dict | None, reinit_lr_cfg: dict | None,
                 log: logging.Logger) -> None:
        self.plan = plan
        self.reinit_optim_cfg, self.reinit_lr_cfg = reinit_optim_cfg, reinit_lr_cfg
        self.log = log
        self.base_optimizer: torch.optim.Optimizer | None = None
        self.base_schedulers: list[Any] | None = None
        self._no_decay_warned = False

    def remember(self, trainer: pl.Trainer) -> None:
        """Record the optimizer and schedulers `configure_optimizers` built (re-initialisation replaces them)."""
        self.base_optimizer = trainer.optimizers[0]
        self.base_schedulers = list(trainer.lr_scheduler_configs)

    def directive(self, depth: int, kind: str) -> dict[str, Any] | None:
        """The re-initialisation directive of `kind` in force at `depth`."""
        return reinit.directive(self.plan, depth, kind, self.reinit_optim_cfg, self.reinit_lr_cfg)

    # -- groups ----------------------------------------------------------------------------------
    def groups(self, pl_module: pl.LightningModule, params: list[tuple[str, torch.nn.Parameter]],
               **extra: Any) -> list[dict[str, Any]]:
        """One group, or two when the LightningModule lists `no_decay` name fragments (FTS's convention:
        the second group holds the matching parameters with `weight_decay = 0`). A FlatParameter cannot be
        split by name: there `no_decay` is ignored, with one warning (as FTS does)."""
        no_decay = getattr(pl_module, "no_decay", None)
        if no_decay and any(is_flat_param(p) for _, p in params):
            if not self._no_decay_warned:
                self.log.warning("ftsc: `no_decay` (%s) is ignored: FSDP with use_orig_params=False flattens "
                                 "parameters into FlatParameters, which cannot be split by name.", no_decay)
                self._no_decay_warned = True
            no_decay = None
        if not no_decay:
            return [{"params": unique(p for _, p in params), **extra}]
        return [{"params": [p for n, p in params if not any(nd in n for nd in no_decay)], **extra},
                {"params": [p for n, p in params if any(nd in n for nd in no_decay)], "weight_decay": 0.0, **extra}]

    @staticmethod
    def group_names(pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer) -> list[list[str]]:
        """Each group's logical FQNs (all those of a FlatParameter)."""
        names: dict[int, list[str]] = {}
        for n, p in logical_params(pl_module).items():
            names.setdefault(id(p), []).append(n)
        return [[n for p in g["params"] for n in names.get(id(p), [])] for g in optimizer.param_groups]

    def phase_groups(self, pl_module: pl.LightningModule, depth: int, names: list[str],
                     **extra: Any) -> list[dict[str, Any]]:
        """The groups for `names` of phase `depth`: `groups()` of them all, or, when the phase has a
        layer-wise lr decay, `groups()` of each decay group at its own lr (lowest layer first)."""
        params = logical_params(pl_module)
        decay = self.plan.phases[depth].lr_groups
        if not decay:
            return self.groups(pl_module, [(n, params[n]) for n in names], **extra)
        wanted = set(names)
        owner: dict[int, str] = {}
        out: list[dict[str, Any]] = []
        for g in decay:
            chunk = [(n, params[n]) for n in g["params"] if n in wanted]
            for n, p in chunk:
                if owner.setdefault(id(p), g["name"]) != g["name"]:
                    raise MisconfigurationException(
                        f"phase {depth}'s layer-wise lrs put `{n}` in group `{g['name']}`, but it shares one "
                        f"FlatParameter with parameters of group `{owner[id(p)]}` (FSDP with use_orig_params=False "
                        "cannot give them different lrs); set use_orig_params=True or wrap each layer in its own unit")
            if chunk:
                lr = float(g["lr"])
                out += self.groups(pl_module, chunk, **{**extra, "lr": lr, "initial_lr": lr})
        return out

    def add_group(self, trainer: pl.Trainer, pl_module: pl.LightningModule, names: list[str], lr: float,
                  depth: int) -> int:
        """Add the not-yet-optimized trainable parameters among `names` as new group(s) at `lr` (or at their
        layer-wise decay lrs), and extend the lr schedulers to them; returns the number of groups added."""
        optimizer = trainer.optimizers[0]
        params = logical_params(pl_module)
        present = {id(p) for g in optimizer.param_groups for p in g["params"]}
        new = [(n, params[n]) for n in names if id(params[n]) not in present and params[n].requires_grad]
        if not new:
            self.log.warning("ftsc: phase %d thaws no new parameters; no parameter group added.", depth)
            return 0
        factor = 1.0
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if self.plan.options.get("apply_lambdas_new_pgs") and getattr(sched, "lr_lambdas", None):
                factor = sched.lr_lambdas[-1](sched.last_epoch)
        groups = self.phase_groups(pl_module, depth, [n for n, _ in new], lr=lr, initial_lr=lr)
        base_lrs = [g["lr"] for g in groups]
        for group in groups:
            group["lr"] = group["initial_lr"] = group["lr"] * factor if factor != 1.0 else group["lr"]
            optimizer.add_param_group(group)
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.min_lrs.extend([sched.min_lrs[0]] * len(groups))
                continue
            if hasattr(sched, "base_lrs"):
                sched.base_lrs.extend(base_lrs)
            if getattr(sched, "lr_lambdas", None):
                sched.lr_lambdas.extend([sched.lr_lambdas[-1]] * max(len(sched.base_lrs) - len(sched.lr_lambdas), 0))
        return len(groups)

    @staticmethod
    def reset_schedulers(trainer: pl.Trainer) -> None:
        """Size every scheduler's per-group lists to the optimizer's groups."""
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            groups = sched.optimizer.param_groups
            if hasattr(sched, "base_lrs"):
                sched.base_lrs = [g.get("initial_lr", g["lr"]) for g in groups]
            if hasattr(sched, "lr_lambdas"):
                sched.lr_lambdas = (list(sched.lr_lambdas) + [sched.lr_lambdas[-1]] * len(groups))[: len(groups)]
            if hasattr(sched, "min_lrs"):
                sched.min_lrs = (list(sched.min_lrs) + [sched.min_lrs[0]] * len(groups))[: len(groups)]

    def enforce_phase0(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        """Make the optimizer hold exactly phase 0's parameters (`enforce_phase0_params`); True if it changed."""
        optimizer = trainer.optimizers[0]
        names = list(self.plan.phases[0].params)
        params = logical_params(pl_module)
        current = [p for g in optimizer.param_groups for p in g["params"]]
        decay = self.plan.phases[0].lr_groups  # layer-wise lrs: phase 0's groups are rebuilt at their lrs
        if not decay and {id(p) for p in current} == {id(params[n]) for n in names} and \
                all(p.requires_grad for p in current):
            return False
        if not self.plan.options.get("enforce_phase0_params", True):
            self.log.warning("ftsc: the optimizer does not hold exactly the phase 0 parameters "
                             "(enforce_phase0_params=False)%s.", "; phase 0's layer-wise lrs are not applied"
                             if decay else "")
            return False
        lr = optimizer.defaults["lr"]
        groups = self.phase_groups(pl_module, 0, names, lr=lr, initial_lr=lr)
        optimizer.param_groups.clear()
        optimizer.state.clear()
        for group in groups:
            optimizer.add_param_group(group)
        self.reset_schedulers(trainer)
        for config in trainer.lr_scheduler_configs:
            _private.restart_lr_scheduler(config.scheduler)
        return True

    def rebuild(self, trainer: pl.Trainer, pl_module: pl.LightningModule, saved_groups: list[dict[str, Any]] |
                tuple[dict[str, Any], ...], depth: int) -> None:
        """Give the optimizer (and schedulers) the classes and groups a checkpoint at `depth` was saved with;
        the names were validated (`checkpoint.check_against`)."""
        params = logical_params(pl_module)
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": unique(params[n] for n in g["params"])}
                  for g in saved_groups]
        # The optimizer / scheduler in the checkpoint are those of the last re-initialisation up to this
        # phase, not the ones configure_optimizers built: rebuild those classes before Lightning loads
        # their state (FTS fails here with `KeyError: 'momentum'` after an optimizer reinit).
        opt_cfg = next((c for d in range(depth, 0, -1) if (c := self.directive(d, "optimizer"))), None)
        if opt_cfg:
            optimizer = reinit.install_optimizer(trainer, opt_cfg, groups)
        else:  # the optimizer configure_optimizers built (a later reinit may have replaced it since)
            optimizer = self.base_optimizer or trainer.optimizers[0]
            optimizer.param_groups.clear()
            optimizer.state.clear()
            for group in groups:
                optimizer.add_param_group(group)
            if trainer.optimizers[0] is not optimizer:
                trainer.strategy.optimizers = [optimizer]
        lrs_cfg = next((c for d in range(depth, 0, -1) if (c := self.directive(d, "lr_scheduler"))), None)
        if lrs_cfg:
            reinit.install_lr_scheduler(trainer, {k: v for k, v in lrs_cfg.items() if k != "init_pg_lrs"})
        elif self.base_schedulers is not None:
            trainer.strategy.lr_scheduler_configs = list(self.base_schedulers)
        for config in trainer.lr_scheduler_configs:
            config.scheduler.optimizer = optimizer
        self.reset_schedulers(trainer)

    # -- a transition ------------------------------------------------------------------------------
    @staticmethod
    def save_lr_state(trainer: pl.Trainer) -> LrState:
        """The first scheduler's state and the groups' lrs (restored when the new phase is added)."""
        state = copy.deepcopy(trainer.lr_scheduler_configs[0].scheduler.state_dict()) \
            if trainer.lr_scheduler_configs else {}
        return state, [g["lr"] for g in trainer.optimizers[0].param_groups]

    @staticmethod
    def _restore_lr_state(trainer: pl.Trainer, state: dict[str, Any], lrs: list[float]) -> None:
        for config in trainer.lr_scheduler_configs:
            config.scheduler.load_state_dict(state)
        for group, lr in zip(trainer.optimizers[0].param_groups, lrs, strict=False):
            group["lr"] = lr

    def add_phase(self, trainer: pl.Trainer, pl_module: pl.LightningModule, i: int, target: int,
                  pre: LrState) -> tuple[list[str], list[float]]:
        """Thaw phase `i` and add its groups; at the target phase first restore the latest lr state (the
        schedule of existing groups continues), and afterwards re-initialise the lr scheduler if asked.
        Returns the names thawed and the lrs of the groups added."""
        phase = self.plan.phases[i]
        names = thaw(pl_module, self.plan, i)
        if i == target and target > 0:
            self._restore_lr_state(trainer, *pre)
        lr = float(phase.lr if phase.lr is not None else trainer.optimizers[0].defaults["lr"])
        added = self.add_group(trainer, pl_module, names, lr, i)
        cfg = self.directive(i, "lr_scheduler") if target > 0 else None
        if cfg:
            reinit.install_lr_scheduler(trainer, cfg)
        groups = trainer.optimizers[0].param_groups
        return names, [g["lr"] for g in groups[len(groups) - added:]] if added else []

    def advance(self, trainer: pl.Trainer, pl_module: pl.LightningModule, depth: int, restored: int | None,
                pre: LrState) -> tuple[list[str], list[float]]:
        """Bring the optimizer to phase `depth` after the weights of phase `restored` were loaded
        (None: nothing was restored); returns the names phase `depth` thawed and its groups' lrs."""
        # An optimizer reinit in this phase, or in a phase replayed after restoring an older checkpoint
        # (FTS only looks at the new phase and trains on with the restored optimizer class).
        replayed = range(depth if restored is None else restored + 1, depth + 1)
        new_optimizer = next((c for d in reversed(replayed) if (c := self.directive(d, "optimizer"))), None)
        names: list[str] = []
        lrs: list[float] = []
        if new_optimizer:  # replay every phase into a fresh optimizer
            first = thaw(pl_module, self.plan, 0)
            optimizer = reinit.install_optimizer(trainer, new_optimizer, self.phase_groups(pl_module, 0, first))
            for group in optimizer.param_groups:
                group["initial_lr"] = group.get("initial_lr", group["lr"])
            for i in range(1, depth + 1):
                names, lrs = self.add_phase(trainer, pl_module, i, depth, pre)
        else:  # the phases after the restored one (only the new phase without restore_best)
            for i in replayed:
                names, lrs = self.add_phase(trainer, pl_module, i, depth, pre)
        return names, lrs
