"""When a phase ends, and why: pure decisions over plain values (no Trainer, no torch).

Input: the current `RuntimePhase`, how many phases remain, the epoch about to start or the
global step just reached, and whether early stopping reported a plateau (already agreed by
every rank). Output: a `Transition` naming the reason, or None. Never changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftsc.lower.runtime import RuntimePhase


@dataclass(frozen=True, slots=True)
class Transition:
    """Why the phase ends.

    Attributes:
        kind: "epoch", "plateau" or "step".
        epoch: the epoch about to start (epoch and plateau) or running (step).
        step: the global step (step transitions; the step at the epoch start otherwise).
        monitor: the metric that plateaued (plateau only).
        patience: the epochs without improvement that ended the phase (plateau only).
    """

    kind: str
    epoch: int
    step: int
    monitor: str | None = None
    patience: int | None = None

    def reason(self) -> str:
        """The reason in words, e.g. `plateau on `val_loss` after 3 epochs`."""
        if self.kind == "plateau":
            return f"plateau on `{self.monitor}` after {self.patience} epoch{'s' * (self.patience != 1)}"
        if self.kind == "step":
            return f"step {self.step} reached"
        return f"epoch {self.epoch} reached"


def at_epoch_start(phase: RuntimePhase, depth_remaining: int, epoch: int, step: int, plateau: bool,
                   plateau_info: tuple[str, int] | None = None) -> Transition | None:
    """The transition at the start of `epoch`, if the phase ends there.

    A phase ends at an epoch start when the epoch reached its `until epoch` (FTS's
    `max_transition_epoch`) or when early stopping reported a plateau for a phase that ends on
    one; the last phase never transitions. The epoch criterion wins when both hold.

    Example:
        >>> p = RuntimePhase(index=0, params=("a",), lr=None, epoch=2, plateau=True)
        >>> at_epoch_start(p, 1, 1, 8, False) is None
        True
        >>> at_epoch_start(p, 1, 2, 8, False).reason()
        'epoch 2 reached'
        >>> at_epoch_start(p, 1, 1, 8, True, ("val_loss", 3)).reason()
        'plateau on `val_loss` after 3 epochs'
        >>> at_epoch_start(p, 0, 5, 8, True) is None
        True
    """
    if depth_remaining <= 0:
        return None
    if phase.epoch is not None and 0 <= phase.epoch <= epoch:
        return Transition("epoch", epoch, step)
    if phase.plateau and plateau:
        monitor, patience = plateau_info or (None, None)
        return Transition("plateau", epoch, step, monitor, patience)
    return None


def at_step(phase: RuntimePhase, depth_remaining: int, epoch: int, step: int) -> Transition | None:
    """The transition after a training batch, if the global `step` reached the phase's `until step`.

    Example:
        >>> p = RuntimePhase(index=0, params=("a",), lr=None, step=6)
        >>> at_step(p, 1, 1, 5) is None, at_step(p, 1, 1, 6).reason(), at_step(p, 0, 1, 6) is None
        (True, 'step 6 reached', True)
    """
    if depth_remaining > 0 and phase.step is not None and step >= phase.step:
        return Transition("step", epoch, step)
    return None


PLATEAU_ARGS = ("monitor", "patience", "min_delta", "mode", "verbose", "strict", "check_finite",
                "stopping_threshold", "divergence_threshold", "log_rank_zero_only")


def plateau_config(base: dict[str, Any], phase: RuntimePhase) -> dict[str, Any]:
    """The early-stopping settings in force during `phase`: the callback's own (`base`), with the
    phase's `plateau(...)` arguments in their place.

    Raises:
        ValueError: for a plateau argument the runtime cannot apply per phase.

    Example:
        >>> p = RuntimePhase(index=1, params=("a",), lr=0.1, plateau=True, plateau_args={"patience": 1})
        >>> plateau_config({"monitor": "val_loss", "patience": 3, "min_delta": 0.0, "mode": "min"}, p)
        {'monitor': 'val_loss', 'patience': 1, 'min_delta': 0.0, 'mode': 'min'}
    """
    unknown = sorted(set(phase.plateau_args) - set(PLATEAU_ARGS))
    if unknown:
        raise ValueError(f"phase {phase.index}: `plateau({unknown[0]} = ...)` cannot change per phase; "
                         "set it on the early-stopping callback (or the `early_stopping` option) instead")
    return {**base, **{k: v for k, v in phase.plateau_args.items() if k in PLATEAU_ARGS}}
