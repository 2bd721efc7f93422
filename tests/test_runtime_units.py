"""Runtime parts tested without a Trainer: the transition decisions (pure logic) and the sharding
settings of a Lightning strategy, read by the same front end as a LightningCLI config."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.torch

from ftsc.lightning.transitions import at_epoch_start, at_step, plateau_config
from ftsc.lower.runtime import RuntimePhase


def phase(**kw: object) -> RuntimePhase:
    return RuntimePhase(index=0, params=("a",), lr=None, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("p", "remaining", "epoch", "plateau", "expected"), [
    (phase(epoch=2), 1, 1, False, None),
    (phase(epoch=2), 1, 2, False, "epoch 2 reached"),
    (phase(epoch=2), 1, 3, False, "epoch 3 reached"),  # a resumed run past the epoch moves on at once
    (phase(epoch=2), 0, 5, True, None),  # the last phase never transitions
    (phase(epoch=-1, plateau=True), 1, 9, False, None),  # FTS's -1: no epoch criterion
    (phase(plateau=True), 1, 4, True, "plateau on `val_loss` after 3 epochs"),
    (phase(plateau=False), 1, 4, True, None),  # a plateau report for a phase that does not end on one
    (phase(epoch=4, plateau=True), 1, 4, True, "epoch 4 reached"),  # both: the epoch criterion is named
])
def test_epoch_start_decisions(p: RuntimePhase, remaining: int, epoch: int, plateau: bool,
                               expected: str | None) -> None:
    t = at_epoch_start(p, remaining, epoch, 16, plateau, ("val_loss", 3))
    assert (t.reason() if t else None) == expected


def test_step_decisions() -> None:
    p = phase(step=10)
    assert [at_step(p, 1, 2, s) is not None for s in (9, 10, 11)] == [False, True, True]
    assert at_step(p, 0, 2, 10) is None
    assert at_step(phase(epoch=1), 1, 2, 10**6) is None


def test_plateau_config_overrides_and_refusals() -> None:
    base = {"monitor": "val_loss", "patience": 3, "min_delta": 0.0, "mode": "min"}
    p = phase(plateau=True, plateau_args={"monitor": "val_acc", "mode": "max"})
    assert plateau_config(base, p) == {"monitor": "val_acc", "patience": 3, "min_delta": 0.0, "mode": "max"}
    assert plateau_config(base, phase(plateau=True)) == base
    with pytest.raises(ValueError, match="check_on_train_epoch_end"):
        plateau_config(base, phase(plateau=True, plateau_args={"check_on_train_epoch_end": True}))


def test_strategy_settings_read_as_a_lightning_cli_config() -> None:
    """An FSDPStrategy object and the LightningCLI config that builds it give the same IR sharding block."""
    from lightning.pytorch.strategies import FSDPStrategy
    from torch import nn

    from ftsc import ir
    from ftsc.frontend import load_text
    from ftsc.lightning.strategies import strategy_config
    from ftsc.source import SourceFile

    strategy = FSDPStrategy(auto_wrap_policy={nn.Linear}, use_orig_params=False)
    from_strategy = strategy_config(strategy, {"awp_overrides": ["model.4"]})
    config = load_text(SourceFile("c.yaml", """\
trainer:
  strategy:
    class_path: lightning.pytorch.strategies.FSDPStrategy
    init_args:
      auto_wrap_policy: [torch.nn.modules.linear.Linear]
      use_orig_params: false
  callbacks:
  - class_path: finetuning_scheduler.FinetuningScheduler
    init_args:
      strategy_adapter_cfg:
        awp_overrides: [model.4]
"""))
    assert from_strategy is not None and from_strategy.schedule is not None and config.schedule is not None

    def plain(block: ir.FSDPConfig | None) -> object:
        assert block is not None
        return ({s.name: s.value.py() for s in block.settings}, [w.pattern for w in block.wrap])

    assert plain(from_strategy.schedule.fsdp) == plain(config.schedule.fsdp) == (
        {"auto_wrap_policy": ["torch.nn.modules.linear.Linear"], "use_orig_params": False}, ["model.4"])
    assert from_strategy.diagnostics == []
