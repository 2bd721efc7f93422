"""Every FinetuningScheduler option does what docs/runtime.md says, or is refused at construction.

Each test fails when its option is ignored (see the comment on each). Parity tests run
FinetuningScheduler (FTS) itself on the same model, data and seed as the oracle.
"""

from __future__ import annotations

import copy
import logging
import math
import pickle
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("finetuning_scheduler")

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from ftsc.cli import main
from ftsc.lightning import FinetuningScheduler, FTSCheckpoint, FTSEarlyStopping

from .runtime_harness import Recorder, TinyModule, loader, run

EPOCHS = {0: {"params": ["model.4.*"], "max_transition_epoch": 1},
          1: {"params": ["model.2.*"], "max_transition_epoch": 2},
          2: {"params": ["model.0.*"], "max_transition_epoch": 3}}
PLATEAU = {0: {"params": ["model.4.*"]}, 1: {"params": ["model.2.*"], "lr": 1e-3}, 2: {"params": ["model.0.*"]}}


def fit(callbacks: list[pl.Callback], tmp: Path, *, epochs: int = 3, module: pl.LightningModule | None = None,
        val_sign: float = 1.0, **trainer_kwargs: Any) -> tuple[pl.Trainer, pl.LightningModule]:
    torch.manual_seed(0)
    module = module if module is not None else TinyModule()
    kwargs: dict[str, Any] = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                              "enable_model_summary": False, "num_sanity_val_steps": 0, "deterministic": True}
    kwargs.update(trainer_kwargs)
    trainer = pl.Trainer(max_epochs=epochs, callbacks=callbacks, default_root_dir=str(tmp), **kwargs)
    trainer.fit(module, loader(0), loader(1, sign=val_sign))
    return trainer, module


def depths(rec: Recorder) -> list[int]:
    return [r["depth"] for r in rec.rows]


# -- values refused as `ftsc check` refuses them ------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"base_max_lr": math.nan}, "`base_max_lr` must be finite"),
    ({"base_max_lr": -1}, "`base_max_lr` must be a positive number"),
    ({"max_depth": -5}, "`max_depth` must be at least -1"),
    ({"gen_ft_sched_only": "yes"}, "`gen_ft_sched_only` must be `true` or `false`"),
    ({"logging_level": "loud"}, "`logging_level` 'loud' is not a logging level"),
    ({"custom_strategy_adapters": {"fsdp": "my.Adapter"}}, "`custom_strategy_adapters` is not supported"),
    ({"verify_sharding": "maybe"}, "`verify_sharding` must be one of"),
    ({"reinit_optim_cfg": "torch.optim.Adam"}, "`reinit_optim_cfg` must be a mapping"),
    ({"reinit_optim_cfg": {"class_path": "torch.optim.Adam"}}, "`reinit_optim_cfg` has no `class_path` key"),
    ({"reinit_lr_cfg": {"lr_scheduler_init": {"init_args": {}}}}, "`reinit_lr_cfg` needs `lr_scheduler_init"),
])
def test_bad_option_values_are_refused_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(MisconfigurationException, match=message.replace("(", r"\(").replace("`", "`")):
        FinetuningScheduler(**kwargs)


def test_the_same_values_in_a_schedule_block_fail_ftsc_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s.ftsc").write_text("schedule { max_depth = -5 }\nphase 0 { thaw a }\n")
    assert main(["check", str(tmp_path / "s.ftsc"), "--format", "concise"]) == 1
    assert "`max_depth` must be at least -1" in capsys.readouterr().out


@pytest.mark.parametrize(("name", "text"), [("empty.yaml", "{}\n"), ("empty.ftsc", "schedule { max_depth = 1 }\n")])
def test_an_empty_schedule_is_refused_by_check_and_by_the_callback(name: str, text: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert main(["check", str(path), "--format", "concise"]) == 1
    assert "error[FTS502]" in capsys.readouterr().out
    with pytest.raises(MisconfigurationException, match="FTS502"):
        fit([FinetuningScheduler(ft_schedule=str(path), restore_best=False)], tmp_path, epochs=1)


def test_a_missing_schedule_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MisconfigurationException, match="cannot read the fine-tuning schedule: .*no such file"):
        fit([FinetuningScheduler(ft_schedule=str(tmp_path / "nowhere.ftsc"), restore_best=False)], tmp_path, epochs=1)


# -- early stopping ------------------------------------------------------------------------------------------
def test_plateau_schedule_without_early_stopping_transitions_as_fts_does(tmp_path: Path) -> None:
    """FTS's composed mode adds an FTSEarlyStopping (monitor `val_loss`, patience 3) when none is given.
    Ignoring that, ftsc's run would never leave phase 0."""
    ours, _, trainer = run("ftsc", PLATEAU, tmp_path / "a", epochs=9, worsening_val=True)
    theirs, _, _ = run("fts", copy.deepcopy(PLATEAU), tmp_path / "b", epochs=9, worsening_val=True)  # FTS edits it
    assert [type(c) for c in trainer.callbacks].count(FTSEarlyStopping) == 1
    assert len(ours.rows) == len(theirs.rows) > 0
    assert len(set(depths(theirs))) > 1  # FTS's default early stopping really transitions here
    assert depths(ours) == depths(theirs)
    for a, b in zip(ours.rows, theirs.rows, strict=True):
        assert a["trainable"] == b["trainable"]
        assert math.isclose(a["val_loss"], b["val_loss"], rel_tol=1e-6)


def test_epoch_transitions_only_removes_an_early_stopping_callback(tmp_path: Path) -> None:
    """As FTS: phases end by epoch only, so the EarlyStopping callback is pruned (otherwise its patience
    of 0 would stop training in the first phase)."""
    rec = Recorder()
    es = pl.callbacks.EarlyStopping(monitor="val_loss", patience=0, min_delta=10.0)
    trainer, _ = fit([FinetuningScheduler(ft_schedule=EPOCHS, epoch_transitions_only=True, restore_best=False), es,
                      rec], tmp_path, epochs=4)
    assert es not in trainer.callbacks
    assert depths(rec) == [0, 1, 2, 2]


class Metrics(TinyModule):
    """Also logs `val_const` (100, never improves) and `val_epoch` (grows every epoch, stays below 100)."""

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        self.log("val_const", 100.0)
        self.log("val_epoch", float(self.current_epoch))


def test_per_phase_plateau_monitor_and_mode(tmp_path: Path) -> None:
    """Phase 0 watches `val_const` (ends after 1 epoch without improvement: at epoch 2); phase 1 watches
    `val_epoch` in mode max, which improves every epoch, so it never ends. With the phase monitor ignored,
    phase 0 watches the falling `val_loss` and does not end; with the mode ignored, or the best score of
    `val_const` kept for `val_epoch`, phase 1 ends at epoch 4."""
    sched = tmp_path / "s.ftsc"
    sched.write_text('phase 0 { thaw glob "model.4.*" until plateau(monitor = "val_const", patience = 1) }\n'
                     'phase 1 { thaw glob "model.2.*" until plateau(monitor = "val_epoch", mode = "max", '
                     'patience = 1) }\n'
                     'phase 2 { thaw glob "model.0.*" }\n')
    rec = Recorder()
    fit([FinetuningScheduler(ft_schedule=str(sched), restore_best=False), FTSEarlyStopping(patience=3), rec],
        tmp_path, epochs=6, module=Metrics())
    assert depths(rec) == [0, 0, 1, 1, 1, 1]


def test_per_phase_plateau_patience_and_min_delta(tmp_path: Path) -> None:
    """min_delta 10 makes every epoch after the first one without improvement; phase 0 (patience 1) ends
    at epoch 2, phase 1 (patience 2) at epoch 4. The callback's own patience of 5 would end neither."""
    sched = tmp_path / "s.ftsc"
    sched.write_text('phase 0 { thaw glob "model.4.*" until plateau(patience = 1, min_delta = 10.0) }\n'
                     'phase 1 { thaw glob "model.2.*" until plateau(patience = 2, min_delta = 10.0) }\n'
                     'phase 2 { thaw glob "model.0.*" }\n')
    rec = Recorder()
    fit([FinetuningScheduler(ft_schedule=str(sched), restore_best=False), FTSEarlyStopping(patience=5), rec],
        tmp_path, epochs=6)
    assert depths(rec) == [0, 0, 1, 1, 2, 2]


def test_schedule_block_early_stopping_and_checkpoint_are_applied(tmp_path: Path) -> None:
    """`schedule { early_stopping { } checkpoint { } }` builds the callbacks: patience 1 / min_delta 10
    end phase 0 at epoch 2 (the default early stopping, patience 3, would not), and an FTSCheckpoint
    saves the best checkpoint into the configured directory."""
    sched = tmp_path / "s.ftsc"
    ckpt_dir = tmp_path / "best"
    sched.write_text("schedule {\n"
                     "    early_stopping = {patience = 1, min_delta = 10.0}\n"
                     f'    checkpoint = {{monitor = "val_loss", save_top_k = 1, dirpath = "{ckpt_dir.as_posix()}"}}\n'
                     "}\n"
                     'phase 0 { thaw glob "model.4.*" }\n'
                     'phase 1 { thaw glob "model.2.*" }\n')
    rec = Recorder()
    trainer, _ = fit([FinetuningScheduler(ft_schedule=str(sched), restore_best=False), rec], tmp_path, epochs=4)
    assert depths(rec)[:3] == [0, 0, 1]
    ckpts = [c for c in trainer.callbacks if isinstance(c, FTSCheckpoint)]
    assert len(ckpts) == 1 and ckpts[0].save_top_k == 1
    assert len(list(ckpt_dir.glob("*.ckpt"))) == 1


# -- FTSCheckpoint -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("worsening", [True, False], ids=["best-in-phase-0", "best-in-last-phase"])
def test_fts_checkpoint_tracks_depths_as_fts_does(worsening: bool, tmp_path: Path) -> None:
    """FTS configs migrate by the package name: the same FTSCheckpoint arguments, the same saved
    depth metadata (phase of the latest save and of the best checkpoint) as FTS's FTSCheckpoint."""
    import finetuning_scheduler as fts

    got = {}
    for name, pkg in (("ftsc", None), ("fts", fts)):
        sched_cls = pkg.FinetuningScheduler if pkg else FinetuningScheduler
        ckpt_cls = pkg.FTSCheckpoint if pkg else FTSCheckpoint
        ckpt = ckpt_cls(dirpath=str(tmp_path / name), monitor="val_loss", save_top_k=1)
        fit([sched_cls(ft_schedule=copy.deepcopy(EPOCHS), epoch_transitions_only=True,  # FTS edits it
                       restore_best=False), ckpt],
            tmp_path / f"run-{name}", epochs=4, val_sign=-1.0 if worsening else 1.0, enable_checkpointing=True)
        got[name] = (ckpt.current_ckpt_depth, ckpt.best_ckpt_depth, Path(ckpt.best_model_path).name,
                     ckpt._save_on_train_epoch_end)
    assert got["ftsc"] == got["fts"]
    assert got["ftsc"][1] == (0 if worsening else 2)
    assert got["ftsc"][3] is False  # saves after validation


def test_restore_best_with_a_checkpoint_that_saves_nothing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MisconfigurationException, match="save_top_k=0"):
        fit([FinetuningScheduler(ft_schedule=EPOCHS, epoch_transitions_only=True),
             FTSCheckpoint(dirpath=str(tmp_path), monitor="val_loss", save_top_k=0)], tmp_path, epochs=1,
            enable_checkpointing=True)


# -- the schedule file: gen_ft_sched_only, log_dir -------------------------------------------------------------
def test_gen_ft_sched_only_writes_fts_implicit_schedule_and_exits(tmp_path: Path) -> None:
    """The implicit schedule lands where FTS writes it, with FTS's content, and no training happens."""
    import finetuning_scheduler as fts

    files = {}
    for name, cls in (("ftsc", FinetuningScheduler), ("fts", fts.FinetuningScheduler)):
        log_dir = tmp_path / name
        module = TinyModule()
        before = {k: v.clone() for k, v in module.state_dict().items()}
        with pytest.raises(SystemExit) as exc:
            fit([cls(gen_ft_sched_only=True, log_dir=str(log_dir))], tmp_path / f"run-{name}", module=module)
        assert exc.value.code in (0, None)
        assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
        files[name] = [p.name for p in log_dir.iterdir()]
        files[name + "-content"] = yaml.safe_load((log_dir / "TinyModule_ft_schedule.yaml").read_text())
    assert files["ftsc"] == files["fts"] == ["TinyModule_ft_schedule.yaml"]
    assert files["ftsc-content"] == files["fts-content"]


def test_log_dir_receives_the_resolved_schedule(tmp_path: Path) -> None:
    sched = tmp_path / "s.ftsc"
    sched.write_text('phase 0 { thaw glob "model.4.*" until epoch 1 }\n'
                     'phase 1 { thaw glob "model.[02].*" lr = 0.001 }\n')
    fit([FinetuningScheduler(ft_schedule=str(sched), log_dir=str(tmp_path / "logs"), restore_best=False,
                             epoch_transitions_only=True)], tmp_path / "run", epochs=1)
    written = yaml.safe_load((tmp_path / "logs" / "TinyModule_ft_schedule.yaml").read_text())
    assert written == {0: {"params": ["model.4.weight", "model.4.bias"], "max_transition_epoch": 1},
                       1: {"params": ["model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias"],
                           "lr": 0.001}}
    assert not (tmp_path / "run" / "TinyModule_ft_schedule.yaml").exists()


# -- options that shape the optimizer ------------------------------------------------------------------------
def test_base_max_lr_is_the_lr_of_phases_without_one(tmp_path: Path) -> None:
    rec = Recorder()
    fit([FinetuningScheduler(ft_schedule=EPOCHS, epoch_transitions_only=True, restore_best=False, base_max_lr=0.125),
         rec], tmp_path, epochs=2)
    assert rec.rows[1]["lrs"][1:] == [0.125]


@pytest.mark.parametrize("enforce", [True, False])
def test_enforce_phase0_params(enforce: bool, tmp_path: Path) -> None:
    """TinyModule's optimizer holds all 6 parameters; enforced, it holds phase 0's 2."""
    rec = Recorder()
    trainer, _ = fit([FinetuningScheduler(ft_schedule=EPOCHS, epoch_transitions_only=True, restore_best=False,
                                          enforce_phase0_params=enforce), rec], tmp_path, epochs=1)
    held = sum(len(g["params"]) for g in trainer.optimizers[0].param_groups)
    assert held == (2 if enforce else 6)


@pytest.mark.parametrize("log_phase", [True, False])
def test_log_phase(log_phase: bool, tmp_path: Path) -> None:
    trainer, _ = fit([FinetuningScheduler(ft_schedule=EPOCHS, epoch_transitions_only=True, restore_best=False,
                                          log_phase=log_phase)], tmp_path, epochs=2)
    assert ("finetuning_phase" in trainer.callback_metrics) is log_phase
    if log_phase:
        assert float(trainer.callback_metrics["finetuning_phase"]) == 1.0


def test_reinit_optim_cfg_replaces_the_optimizer_at_each_transition(tmp_path: Path) -> None:
    cfg = {"optimizer_init": {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-3}}}
    trainer, _ = fit([FinetuningScheduler(ft_schedule=EPOCHS, epoch_transitions_only=True, restore_best=False,
                                          reinit_optim_cfg=cfg)], tmp_path, epochs=2)
    assert type(trainer.optimizers[0]) is torch.optim.Adam


def test_reinit_lr_cfg_replaces_the_lr_scheduler_at_each_transition(tmp_path: Path) -> None:
    cfg = {"lr_scheduler_init": {"class_path": "torch.optim.lr_scheduler.ExponentialLR", "init_args": {"gamma": 0.5}}}
    trainer, _ = fit([FinetuningScheduler(restore_best=False, reinit_lr_cfg=cfg),
                      FTSEarlyStopping(patience=1, min_delta=10.0)], tmp_path, epochs=3)
    assert type(trainer.lr_scheduler_configs[0].scheduler) is torch.optim.lr_scheduler.ExponentialLR


# -- strategies and compiled models ---------------------------------------------------------------------------
class FakeXLAStrategy(pl.strategies.SingleDeviceStrategy):
    """A strategy of a family ftsc was not built for (its name says XLA; it runs on the CPU)."""


@pytest.mark.parametrize("allow", [False, True])
def test_allow_untested(allow: bool, tmp_path: Path) -> None:
    callbacks = [FinetuningScheduler(ft_schedule=EPOCHS, epoch_transitions_only=True, restore_best=False,
                                     allow_untested=allow)]
    strategy = FakeXLAStrategy(device=torch.device("cpu"))
    if allow:
        fit(callbacks, tmp_path, epochs=1, strategy=strategy)
    else:
        with pytest.raises(MisconfigurationException, match="allow_untested=True"):
            fit(callbacks, tmp_path, epochs=1, strategy=strategy)


def test_compiled_models_drop_dynamo_graphs_at_each_transition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FTS resets dynamo at each transition (a thawed parameter changes the compiled graphs); so does ftsc."""
    import torch._dynamo

    calls = []
    original = torch._dynamo.reset
    monkeypatch.setattr(torch._dynamo, "reset", lambda: (calls.append(1), original())[1])
    module = torch.compile(TinyModule(), backend="eager")
    fit([FinetuningScheduler(ft_schedule=EPOCHS, epoch_transitions_only=True, restore_best=False)], tmp_path,
        epochs=3, module=module)
    assert len(calls) == 2


def test_verify_sharding_modes() -> None:
    """A difference between the real and the predicted units: "error" raises, "warn" warns, "off" does not look."""
    from ftsc.lightning.strategies import FSDP1Sharding

    predicted, real = {"model": ["a", "b"]}, {"model": ["a"], "model.x": ["b"]}
    with pytest.raises(MisconfigurationException, match="differ from ftsc's prediction"):
        FSDP1Sharding(None, None, None, "error")._report("FSDP units", predicted, real)  # type: ignore[arg-type]
    verdict = FSDP1Sharding(None, None, None, "warn")._report("FSDP units", predicted, real)  # type: ignore[arg-type]
    assert "differ from the prediction" in verdict
    off = FSDP1Sharding(None, None, None, "off")  # type: ignore[arg-type]
    off.analysis = object()
    assert "not checked" in off.self_check(None)  # type: ignore[arg-type]


# -- checkpoint state, validated before anything is restored ------------------------------------------------
def _ckpt(tmp_path: Path) -> Path:
    fit([FinetuningScheduler(ft_schedule=EPOCHS, epoch_transitions_only=True, restore_best=False),
         pl.callbacks.ModelCheckpoint(dirpath=str(tmp_path / "c"), filename="last", save_top_k=-1)],
        tmp_path / "first", epochs=2, enable_checkpointing=True)
    return tmp_path / "c" / "last.ckpt"


def _edit(path: Path, out: Path, edit: Any) -> Path:
    ckpt = torch.load(path, weights_only=True)
    key = next(k for k in ckpt["callbacks"] if k.startswith("FinetuningScheduler"))
    edit(ckpt["callbacks"][key])
    torch.save(ckpt, out)
    return out


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.update(depth=7), "saved in phase 7, but this run has phases 0 to 2"),
    (lambda s: s.pop("param_groups"), "lacks `param_groups`"),
    (lambda s: s.update(depth="1"), "the saved phase must be an integer"),
])
def test_bad_checkpoint_state_is_refused_before_training(edit: Any, message: str, tmp_path: Path) -> None:
    bad = _edit(_ckpt(tmp_path), tmp_path / "bad.ckpt", edit)
    rec = Recorder()
    callback = FinetuningScheduler(ft_schedule=EPOCHS, epoch_transitions_only=True, restore_best=False)
    with pytest.raises(MisconfigurationException, match=message):
        torch.manual_seed(0)
        trainer = pl.Trainer(max_epochs=4, callbacks=[callback, rec], logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
        trainer.fit(TinyModule(), loader(0), loader(1), ckpt_path=str(bad))
    assert rec.rows == []  # no epoch started


class Opaque:
    """An object `torch.load(weights_only=True)` refuses."""


def test_checkpoint_metadata_is_read_with_weights_only(tmp_path: Path) -> None:
    from ftsc.lightning.checkpoint import load_metadata

    good = _ckpt(tmp_path)
    assert "callbacks" in load_metadata(good)
    odd = tmp_path / "odd.ckpt"
    torch.save({"callbacks": {}, "extra": Opaque()}, odd)
    with pytest.warns(UserWarning, match="weights_only=True"):
        assert isinstance(load_metadata(odd)["extra"], Opaque)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(odd, weights_only=True)


# -- logging ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", [logging.INFO, "WARNING"])
def test_logging_level_quiets_the_phase_lines(level: Any, tmp_path: Path) -> None:
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger("lightning.pytorch.ftsc")
    logger.addHandler(handler)
    try:
        fit([FinetuningScheduler(ft_schedule=EPOCHS, epoch_transitions_only=True, restore_best=False,
                                 logging_level=level)], tmp_path, epochs=2)
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in seen]
    plan = [m for m in messages if m.startswith("ftsc: fine-tuning plan")]
    moves = [m for m in messages if "phase 0 -> 1" in m]
    assert (len(plan), len(moves)) == ((1, 1) if level == logging.INFO else (0, 0))
