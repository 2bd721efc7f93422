"""FTSEarlyStopping: early stopping that ends a phase on plateau, with per-phase settings.

Input: Lightning `EarlyStopping`'s arguments; at each phase, the phase's `plateau(...)`
arguments (`transitions.plateau_config`). Output: `es_phase_complete` set when patience runs
out before the last phase (the scheduler transitions at the next epoch start); training stops
only in the last phase. Imports torch and lightning.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import EarlyStopping

from ftsc.lightning import _private


class FTSEarlyStopping(EarlyStopping):
    """EarlyStopping that ends a *phase* on plateau, and training only in the last phase.

    Same arguments as Lightning's `EarlyStopping` (`monitor` defaults to `val_loss`, checks run
    after validation). When patience runs out before the last phase, `es_phase_complete` is set
    and the wait count restarts; the best score is kept across phases, as FinetuningScheduler
    does, unless a phase's `plateau(...)` watches another metric or mode (then it starts afresh).
    Non-finite metrics and thresholds stop training in any phase.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("monitor", "val_loss")
        kwargs.setdefault("check_on_train_epoch_end", False)
        super().__init__(*args, **kwargs)
        self.es_phase_complete = False
        self.final_phase = False
        self._base = self.settings()
        self._key = super().state_key  # stays the same when a phase watches another metric

    @property
    def state_key(self) -> str:
        return self._key

    def settings(self) -> dict[str, Any]:
        """The settings a phase can override, as now in force."""
        return {"monitor": self.monitor, "patience": self.patience, "min_delta": abs(self.min_delta),
                "mode": self.mode, "verbose": self.verbose, "strict": self.strict, "check_finite": self.check_finite,
                "stopping_threshold": self.stopping_threshold, "divergence_threshold": self.divergence_threshold,
                "log_rank_zero_only": self.log_rank_zero_only}

    @property
    def base_settings(self) -> dict[str, Any]:
        """The settings this callback was constructed with (phases without `plateau(...)` use them)."""
        return dict(self._base)

    def use_settings(self, cfg: dict[str, Any]) -> None:
        """Apply a phase's settings (`base_settings` with the phase's overrides)."""
        fresh = cfg["monitor"] != self.monitor or cfg["mode"] != self.mode
        for key in ("monitor", "patience", "mode", "verbose", "strict", "check_finite", "stopping_threshold",
                    "divergence_threshold", "log_rank_zero_only"):
            setattr(self, key, cfg[key])
        if self.mode not in self.mode_dict:
            raise ValueError(f"`mode` must be `min` or `max`, not {self.mode!r}")
        self.min_delta = abs(float(cfg["min_delta"])) * (1 if self.monitor_op == torch.gt else -1)
        if fresh:  # another metric or direction: the old best says nothing about it
            self.best_score = torch.tensor(torch.inf if self.monitor_op == torch.lt else -torch.inf)
            self.wait_count = 0

    def _evaluate_stopping_criteria(self, current: torch.Tensor) -> tuple[bool, str | None]:
        should_stop, reason = _private.evaluate_stopping_criteria(self, current)
        if should_stop and not self.final_phase and self.wait_count >= self.patience and torch.isfinite(current):
            self.es_phase_complete = True
            self.wait_count = 0
            return False, f"Monitored metric {self.monitor} plateaued: the phase ends at the next epoch."
        return should_stop, reason

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "es_phase_complete": self.es_phase_complete, "final_phase": self.final_phase,
                "phase_settings": self.settings()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "phase_settings" in state_dict:  # the phase's settings, without starting its best score afresh
            best = self.best_score
            self.use_settings(state_dict["phase_settings"])
            self.best_score = best
        super().load_state_dict(state_dict)
        self.es_phase_complete = bool(state_dict.get("es_phase_complete", False))
        self.final_phase = bool(state_dict.get("final_phase", False))
