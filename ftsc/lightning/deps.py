"""The callbacks the scheduler works with: early stopping and checkpointing, as FTS arranges them.

Input: the Trainer's callbacks, the plan, and the schedule's `early_stopping` / `checkpoint`
options. Output: the Trainer's callback list with an `FTSEarlyStopping` when a phase ends on
plateau and none was given (FTS's composed-mode default; a plain `EarlyStopping` is converted),
none under `epoch_transitions_only`, and an `FTSCheckpoint` built from the schedule's
`checkpoint` option in place of plain ModelCheckpoints. Imports lightning.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from ftsc.lightning import _private
from ftsc.lightning.checkpoint import FTSCheckpoint
from ftsc.lightning.early_stopping import FTSEarlyStopping
from ftsc.lower.runtime import RuntimePlan

log = logging.getLogger("lightning.pytorch.ftsc")


def _es_kwargs(es: EarlyStopping) -> dict[str, Any]:
    """A plain EarlyStopping's configuration as FTSEarlyStopping arguments."""
    return {"monitor": es.monitor, "min_delta": abs(es.min_delta), "patience": es.patience, "verbose": es.verbose,
            "mode": es.mode, "strict": es.strict, "check_finite": es.check_finite,
            "stopping_threshold": es.stopping_threshold, "divergence_threshold": es.divergence_threshold,
            "check_on_train_epoch_end": _private.es_check_on_train_epoch_end(es),
            "log_rank_zero_only": es.log_rank_zero_only}


def arrange(trainer: pl.Trainer, pl_module: pl.LightningModule, plan: RuntimePlan, stage: str) -> list[pl.Callback]:
    """Arrange the early-stopping and checkpoint callbacks for `plan`; returns those added (set up here).

    Raises:
        MisconfigurationException: when the schedule's `early_stopping` / `checkpoint` option and a
            callback of that kind are both given, or several early-stopping callbacks are.
    """
    es_cfg: dict[str, Any] | None = plan.options.get("early_stopping")
    ckpt_cfg: dict[str, Any] | None = plan.options.get("checkpoint")
    callbacks = list(trainer.callbacks)
    added: list[pl.Callback] = []
    stoppers = [c for c in callbacks if isinstance(c, EarlyStopping)]
    epoch_only = bool(plan.options.get("epoch_transitions_only"))
    plateau = any(p.plateau for p in plan.phases[: plan.last_depth + 1])
    if len(stoppers) > 1:
        raise MisconfigurationException("several EarlyStopping callbacks are given; the scheduler works with one")
    if es_cfg is not None and stoppers:
        raise MisconfigurationException("early stopping is configured twice: by the schedule's `early_stopping` "
                                        f"option and by a {type(stoppers[0]).__name__} callback; keep one")
    if epoch_only and stoppers:
        rank_zero_warn("ftsc: epoch_transitions_only is set: the EarlyStopping callback is removed (phases end by "
                       "epoch only, as in FinetuningScheduler)")
        callbacks = [c for c in callbacks if not isinstance(c, EarlyStopping)]
    elif not epoch_only and plateau and not any(isinstance(c, FTSEarlyStopping) for c in stoppers):
        if stoppers:
            rank_zero_warn("ftsc: phases end on plateau, which needs FTSEarlyStopping: the EarlyStopping callback is "
                           "replaced by an FTSEarlyStopping with its settings")
            kwargs = _es_kwargs(stoppers[0])
            callbacks = [c for c in callbacks if c is not stoppers[0]]
        elif es_cfg is not None:
            kwargs = dict(es_cfg)
        else:
            rank_zero_warn("ftsc: phases end on plateau and no FTSEarlyStopping callback is given: adding one "
                           "(monitor `val_loss`, patience 3), as FinetuningScheduler does")
            kwargs = {}
        es = FTSEarlyStopping(**kwargs)
        callbacks.append(es)
        added.append(es)
    if ckpt_cfg is not None:
        if any(isinstance(c, FTSCheckpoint) for c in callbacks):
            raise MisconfigurationException("checkpointing is configured twice: by the schedule's `checkpoint` option "
                                            "and by an FTSCheckpoint callback; keep one")
        plain = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
        if plain:
            rank_zero_warn("ftsc: the schedule's `checkpoint` option replaces the ModelCheckpoint callback with an "
                           "FTSCheckpoint")
            callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
        ckpt = FTSCheckpoint(**ckpt_cfg)
        callbacks.append(ckpt)  # checkpoints save last (Lightning orders them after the other callbacks)
        added.append(ckpt)
    if callbacks != list(trainer.callbacks):
        trainer.callbacks = callbacks
    for cb in added:  # Lightning's setup loop has moved past them
        cb.setup(trainer, pl_module, stage)
    return added
