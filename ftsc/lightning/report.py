"""What a run says about its phases: the plan table at fit start and one line per transition.

Input: the `RuntimePlan`, per-phase tensor counts and element counts, the early-stopping
settings, the sharding self-check verdict; at a transition, the `Transition` and what changed.
Output: text for the `lightning.pytorch.ftsc` logger (shown by Lightning's default logging
on rank zero; `logging_level` quiets it). Never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftsc.lightning.transitions import Transition
from ftsc.lower.runtime import RuntimePhase, RuntimePlan

LOGGER = "lightning.pytorch.ftsc"


def _lr(lr: float | None) -> str:
    return "-" if lr is None else f"{lr:g}"


def ends(phase: RuntimePhase, plan: RuntimePlan, monitor: str | None, patience: int | None) -> str:
    """How a phase ends, in words.

    Example:
        >>> plan = RuntimePlan(phases=(RuntimePhase(index=0, params=(), lr=None, epoch=2, plateau=True),
        ...                            RuntimePhase(index=1, params=(), lr=0.1, plateau=True)), options={})
        >>> ends(plan.phases[0], plan, "val_loss", 3), ends(plan.phases[1], plan, "val_loss", 3)
        ('epoch 2 or plateau on `val_loss` (patience 3)', 'last phase: max_epochs or early stopping')
    """
    if phase.index > plan.last_depth:
        return "not run (max_depth)"
    plateau = phase.plateau and monitor is not None
    if phase.index == plan.last_depth:
        return "last phase: max_epochs" + (" or early stopping" if plateau else "")
    parts = []
    if phase.epoch is not None and phase.epoch >= 0:
        parts.append(f"epoch {phase.epoch}")
    if phase.step is not None:
        parts.append(f"step {phase.step}")
    if plateau:
        m = phase.plateau_args.get("monitor", monitor)
        p = phase.plateau_args.get("patience", patience)
        parts.append(f"plateau on `{m}` (patience {p})")
    return " or ".join(parts) or "never (no criterion)"


def plan_table(plan: RuntimePlan, counts: Sequence[tuple[int, int]], phase0_lr: float | None, monitor: str | None,
               patience: int | None, schedule_name: str, sharding: str) -> str:
    """The compiled plan as a table: phase, tensors and elements it thaws, lr, how it ends.

    Example:
        >>> plan = RuntimePlan(phases=(RuntimePhase(index=0, params=("a",), lr=None, epoch=1),
        ...                            RuntimePhase(index=1, params=("b", "c"), lr=0.001)), options={})
        >>> print(plan_table(plan, [(1, 8), (2, 72)], 0.01, None, None, "s.ftsc", "no sharding"))
        ftsc: fine-tuning plan from s.ftsc (2 phases; sharding: no sharding)
          phase  tensors     elements  lr      ends
          0            1            8  0.01    epoch 1
          1            2           72  0.001   last phase: max_epochs
    """
    rows = [("phase", "tensors", "elements", "lr", "ends")]
    for phase, (n, numel) in zip(plan.phases, counts, strict=True):
        lr = phase0_lr if phase.index == 0 else phase.lr
        rows.append((str(phase.index), str(n), f"{numel:,}", _lr(lr), ends(phase, plan, monitor, patience)))
    n_phases = len(plan.phases)
    lines = [f"ftsc: fine-tuning plan from {schedule_name} ({n_phases} phase{'s' * (n_phases != 1)}; sharding: {sharding})"]
    for r in rows:
        lines.append(f"  {r[0]:<5}  {r[1]:>7}  {r[2]:>11}  {r[3]:<6}  {r[4]}".rstrip())
    return "\n".join(lines)


def transition_line(t: Transition, old: int, new: int, names: Sequence[str], numel: int, lrs: Sequence[float],
                    restored: tuple[Any, int] | None = None) -> str:
    """One line for a transition: when, why, what was thawed, the new groups' lrs, what was restored.

    Example:
        >>> t = Transition("plateau", 3, 12, "val_loss", 1)
        >>> print(transition_line(t, 0, 1, ["m.2.weight", "m.2.bias"], 72, [0.001], ("best-epoch=1.ckpt", 0)))
        ftsc: epoch 3 (step 12): phase 0 -> 1 (plateau on `val_loss` after 1 epoch); thawed 2 tensors (72 elements): m.2.weight, m.2.bias; new groups' lr 0.001; restored best checkpoint best-epoch=1.ckpt (phase 0)
    """
    first = ", ".join(names[:3]) + (f", ... ({len(names) - 3} more)" if len(names) > 3 else "")
    line = (f"ftsc: epoch {t.epoch} (step {t.step}): phase {old} -> {new} ({t.reason()}); "
            f"thawed {len(names)} tensor{'s' * (len(names) != 1)} ({numel:,} elements)" + (f": {first}" if names else ""))
    if lrs:
        line += "; new groups' lr " + ", ".join(_lr(lr) for lr in lrs)
    if restored is not None:
        line += f"; restored best checkpoint {restored[0]} (phase {restored[1]})"
    return line
