"""Checkpoint state: ftsc's format, FinetuningScheduler's, the schedule fingerprint, and FTSCheckpoint.

Input: the scheduler's phase and optimizer groups (to save), a callback state or a checkpoint
file / sharded checkpoint directory (to restore). Output: a validated `SavedState`: the
phase, the parameter groups by FQN and the schedule fingerprint, checked against the plan
before anything is restored; and `FTSCheckpoint`, a ModelCheckpoint that saves after
validation and records the phase of its best checkpoint. Imports torch and lightning.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from ftsc.lightning import _private
from ftsc.lower.runtime import RuntimePlan

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class SavedState:
    """The scheduler state a checkpoint holds, validated.

    Attributes:
        depth: the phase the checkpoint was saved in.
        param_groups: the optimizer's groups, each with `params` as a list of logical FQNs.
        fingerprint: the plan's fingerprint (None for FinetuningScheduler's own checkpoints).
    """

    depth: int
    param_groups: tuple[dict[str, Any], ...]
    fingerprint: str | None

    def to_dict(self) -> dict[str, Any]:
        """The callback state as saved in a checkpoint."""
        return {"version": STATE_VERSION, "fingerprint": self.fingerprint, "depth": self.depth,
                "param_groups": [dict(g) for g in self.param_groups]}


def clean(name: str) -> str:
    """A parameter name without FSDP / activation-checkpointing wrapper segments."""
    return name.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "") \
        .removesuffix("._fsdp_wrapped_module").removesuffix("._checkpoint_wrapped_module")


def parse_state(state: dict[str, Any], where: str = "the checkpoint") -> SavedState:
    """ftsc's or FinetuningScheduler's callback state as a `SavedState`; shape checked, nothing restored.

    Raises:
        MisconfigurationException: naming what is missing or malformed.
    """
    if not isinstance(state, dict):
        raise MisconfigurationException(f"{where}: the fine-tuning scheduler state is not a mapping")
    if "fts_metadata" in state:  # written by finetuning-scheduler itself: phase and named groups, no fingerprint
        depth = (state.get("fts_metadata") or {}).get("current_ckpt_depth")
        groups = (state.get("internal_optimizer_metadata") or {}).get(0)
        if depth is None or groups is None:
            raise MisconfigurationException(
                f"{where}: this finetuning-scheduler checkpoint holds no phase or parameter groups "
                "(`fts_metadata.current_ckpt_depth`, `internal_optimizer_metadata`)")
        fingerprint = None
    else:
        if state.get("version") != STATE_VERSION:
            raise MisconfigurationException(f"{where}: unsupported ftsc checkpoint state version "
                                            f"{state.get('version')!r} (this ftsc reads version {STATE_VERSION})")
        missing = [k for k in ("depth", "param_groups", "fingerprint") if k not in state]
        if missing:
            raise MisconfigurationException(f"{where}: the ftsc scheduler state lacks "
                                            + ", ".join(f"`{k}`" for k in missing))
        depth, groups, fingerprint = state["depth"], state["param_groups"], state["fingerprint"]
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise MisconfigurationException(f"{where}: the saved phase must be an integer, not {depth!r}")
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                               and all(isinstance(n, str) for n in g["params"]) for g in groups):
        raise MisconfigurationException(f"{where}: the saved parameter groups must be mappings with a `params` "
                                        "list of parameter names")
    groups = [{**g, "params": [clean(n) for n in g["params"]]} for g in groups]
    return SavedState(depth=depth, param_groups=tuple(groups), fingerprint=fingerprint)


def check_against(saved: SavedState, plan: RuntimePlan, names: set[str], where: str = "the checkpoint") -> list[str]:
    """What makes `saved` unusable with `plan` and a model with parameters `names` (empty: usable).

    Warnings are not problems: a FinetuningScheduler checkpoint has no fingerprint to compare.
    """
    problems = []
    if not 0 <= saved.depth <= plan.last_depth:
        problems.append(f"{where} was saved in phase {saved.depth}, but this run has phases 0 to {plan.last_depth}")
    if saved.fingerprint is not None and saved.fingerprint != plan.fingerprint():
        problems.append(f"{where} was written by a run with a different fine-tuning schedule or options (fingerprint "
                        f"{saved.fingerprint}, now {plan.fingerprint()}); resume with the schedule it was trained "
                        "with, or start a new fit without ckpt_path")
    unknown = [n for g in saved.param_groups for n in g["params"] if n not in names]
    if unknown:
        problems.append(f"the optimizer in {where} holds parameters this model does not have: "
                        f"{', '.join(unknown[:5])}" + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""))
    return problems


def load_metadata(path: Any) -> dict[str, Any]:
    """A checkpoint file, or a sharded checkpoint directory's metadata file, without mapping tensors in.

    Read with `weights_only=True`; a checkpoint holding objects that mode refuses (custom hyper-
    parameter classes, say) is read in full with a warning naming the reason.
    """
    path = Path(path)
    target = path / _private.metadata_filename() if path.is_dir() else path
    kwargs: dict[str, Any] = {"map_location": "cpu"} | ({} if path.is_dir() else {"mmap": True})
    try:
        return torch.load(target, weights_only=True, **kwargs)
    except pickle.UnpicklingError as err:
        rank_zero_warn(f"ftsc: {target} holds objects `torch.load(weights_only=True)` refuses; reading it in full "
                       f"(load only checkpoints you trust): {str(err).splitlines()[0]}")
        return torch.load(target, weights_only=False, **kwargs)


def state_in_file(path: Any, state_key: str) -> dict[str, Any]:
    """The scheduler's callback state in a checkpoint ({} when it holds none)."""
    ckpt = load_metadata(path)
    return (ckpt.get("callbacks") or {}).get(state_key) or {}


class FTSCheckpoint(ModelCheckpoint):
    """ModelCheckpoint for scheduled fine-tuning (FinetuningScheduler's `FTSCheckpoint`).

    Same arguments as Lightning's `ModelCheckpoint`. Differences: it saves after validation
    unless `save_on_train_epoch_end` is given, it records the phase of the latest save
    (`current_ckpt_depth`) and of the best checkpoint (`best_ckpt_depth`, updated when a top-k
    save changes `best_model_path`), and with `restore_best` it requires `monitor` and a
    `save_top_k` other than 0, since restore_best loads its best checkpoint at each transition.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.current_ckpt_depth = 0
        self.best_ckpt_depth = 0

    def _scheduler(self, trainer: Any) -> Any:
        from ftsc.lightning.callback import FinetuningScheduler

        return next((c for c in trainer.callbacks if isinstance(c, FinetuningScheduler)), None)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        fts = self._scheduler(trainer)
        if fts is None:
            raise MisconfigurationException("FTSCheckpoint works with ftsc.lightning.FinetuningScheduler; without "
                                            "one, use Lightning's ModelCheckpoint")
        if fts.restore_best_requested:
            if not self.save_top_k:
                raise MisconfigurationException("restore_best loads the best checkpoint at each transition, but "
                                                "FTSCheckpoint saves none (save_top_k=0); set save_top_k to a "
                                                "non-zero value or restore_best=False")
            if not self.monitor:
                raise MisconfigurationException("restore_best needs a best checkpoint, but FTSCheckpoint monitors "
                                                "nothing (monitor=None); set monitor or restore_best=False")
        if _private.checkpoint_saves_on_train_epoch_end(self) is None:
            _private.checkpoint_saves_on_train_epoch_end(self, False)
        super().setup(trainer, pl_module, stage)

    def _update_best_and_save(self, current: torch.Tensor, trainer: Any, monitor_candidates: dict[str, Any]) -> None:
        before = self.best_model_path
        _private.update_best_and_save(self, current, trainer, monitor_candidates)
        fts = self._scheduler(trainer)
        depth = fts.curr_depth if fts is not None else 0
        self.current_ckpt_depth = depth
        if self.best_model_path != before:
            self.best_ckpt_depth = depth

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "current_ckpt_depth": self.current_ckpt_depth,
                "best_ckpt_depth": self.best_ckpt_depth}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.current_ckpt_depth = int(state_dict.get("current_ckpt_depth", 0))
        self.best_ckpt_depth = int(state_dict.get("best_ckpt_depth", self.current_ckpt_depth))
