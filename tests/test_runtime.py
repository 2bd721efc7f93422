"""The runtime callback: parity with FinetuningScheduler's uninterrupted trajectories, resume
equality at every epoch, schedule fingerprints, and `.ftsc` schedules driving training."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("finetuning_scheduler")

import torch

from .runtime_harness import run

TOL = 1e-6  # relative tolerance on lrs and validation losses (same seed, same CPU, same op order)

EPOCHS = {0: {"params": ["model.4.*"], "max_transition_epoch": 1},
          1: {"params": ["model.2.*"], "max_transition_epoch": 3},
          2: {"params": ["model.0.*"], "max_transition_epoch": 5}}  # FTS wants one on every phase here
LRS = {0: {"params": ["model.4.*"], "max_transition_epoch": 1},
       1: {"params": ["model.2.*"], "lr": 1e-3, "max_transition_epoch": 2},
       2: {"params": ["model.0.*"], "lr": 5e-4, "max_transition_epoch": 5}}
PLATEAU = {0: {"params": ["model.4.*"]}, 1: {"params": ["model.2.*"], "lr": 1e-3}, 2: {"params": ["model.0.*"]}}
COMPOSED = {0: {"params": ["model.4.*"], "max_transition_epoch": 3},
            1: {"params": ["model.2.*"], "max_transition_epoch": 4}, 2: {"params": ["model.0.*"]}}

REINIT_LRS = {0: {"params": ["model.4.*"], "max_transition_epoch": 1},
              1: {"params": ["model.2.*"], "lr": 1e-3, "max_transition_epoch": 2,
                  "new_lr_scheduler": {
                      "lr_scheduler_init": {"class_path": "torch.optim.lr_scheduler.StepLR",
                                            "init_args": {"step_size": 1, "gamma": 0.5}},
                      "pl_lrs_cfg": {"interval": "epoch", "frequency": 1, "name": "reinit"},
                      "init_pg_lrs": [2e-3, 1e-3]}},
              2: {"params": ["model.0.*"], "lr": 5e-4, "max_transition_epoch": 5}}
REINIT_OPT = {0: {"params": ["model.4.*"], "max_transition_epoch": 1},
              1: {"params": ["model.2.*"], "lr": 1e-3, "max_transition_epoch": 3,
                  "new_optimizer": {"optimizer_init": {"class_path": "torch.optim.AdamW",
                                                       "init_args": {"lr": 5e-3, "weight_decay": 0.01}}}},
              2: {"params": ["model.0.*"], "lr": 5e-4, "max_transition_epoch": 5,
                  "new_lr_scheduler": {"lr_scheduler_init": {"class_path": "torch.optim.lr_scheduler.ExponentialLR",
                                                             "init_args": {"gamma": 0.8}},
                                       "use_current_optimizer_pg_lrs": True}}}

CASES: list[tuple[str, Any, dict[str, Any]]] = [
    ("lr-scheduler-reinit", REINIT_LRS, {"epoch_transitions_only": True}),
    # restore_best: the validation set gets worse as training goes, so the best checkpoint is an old one
    ("restore-best", LRS, {"epoch_transitions_only": True, "restore_best": True, "worsening_val": True}),
    ("restore-best-plateau", PLATEAU, {"restore_best": True, "worsening_val": True,
                                       "_es": {"monitor": "val_loss", "patience": 1, "min_delta": 10.0}}),

    ("optimizer-reinit", REINIT_OPT, {"epoch_transitions_only": True}),
    ("epoch-only", EPOCHS, {"epoch_transitions_only": True}),
    ("per-phase-lr", LRS, {"epoch_transitions_only": True}),
    ("max-depth", LRS, {"epoch_transitions_only": True, "max_depth": 1}),
    ("lambda-new-pgs", LRS, {"epoch_transitions_only": True, "apply_lambdas_new_pgs": True,
                             "_module": {"scheduler": "lambda"}}),
    ("plateau", PLATEAU, {"_es": {"monitor": "val_loss", "patience": 1, "min_delta": 10.0}}),
    ("composed", COMPOSED, {"_es": {"monitor": "val_loss", "patience": 2, "min_delta": 10.0}}),
    ("implicit-schedule", None, {"epoch_transitions_only": False,
                                 "_es": {"monitor": "val_loss", "patience": 1, "min_delta": 10.0}}),
    ("frozen-bn", EPOCHS, {"epoch_transitions_only": True, "_module": {"with_bn": True}}),
]


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    opts = dict(options)
    return opts, opts.pop("_es", None), opts.pop("_module", None)


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOL, abs_tol=1e-12)


@pytest.mark.parametrize(("name", "schedule", "options"), CASES, ids=[c[0] for c in CASES])
def test_parity_with_fts(name: str, schedule: Any, options: dict[str, Any], tmp_path: Path) -> None:
    """Per epoch: the same phase, trainable set, param-group lrs and validation loss as FTS."""
    opts, es, module = _split(options)
    if name == "frozen-bn":
        schedule = {0: {"params": ["model.5.*"], "max_transition_epoch": 1},
                    1: {"params": ["model.3.*"], "max_transition_epoch": 3},
                    2: {"params": ["model.0.*", "model.1.*"], "max_transition_epoch": 5}}
    ours, _, _ = run("ftsc", schedule, tmp_path / "a", es=es, module_kwargs=module, **opts)
    theirs, _, _ = run("fts", schedule, tmp_path / "b", es=es, module_kwargs=module, **opts)
    assert len(ours.rows) == len(theirs.rows) > 0
    assert len({r["depth"] for r in ours.rows}) > 1  # the schedule really transitions
    for a, b in zip(ours.rows, theirs.rows, strict=True):
        assert (a["epoch"], a["depth"], a["trainable"]) == (b["epoch"], b["depth"], b["trainable"])
        assert len(a["lrs"]) == len(b["lrs"]) and all(map(_same, a["lrs"], b["lrs"])), (a, b)
        assert _same(a["val_loss"], b["val_loss"]), (a, b)


RESUME_CASES = [c for c in CASES if c[0] in ("per-phase-lr", "composed", "lr-scheduler-reinit", "optimizer-reinit",
                                              "restore-best", "restore-best-plateau")]


@pytest.mark.parametrize("via_trainer", [False, True], ids=["fit-ckpt_path", "trainer.ckpt_path"])
@pytest.mark.parametrize(("name", "schedule", "options"), RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_resume_at_every_epoch_equals_the_uninterrupted_run(name: str, schedule: Any, options: dict[str, Any],
                                                            via_trainer: bool, tmp_path: Path) -> None:
    """Resuming from each epoch's checkpoint (`fit(ckpt_path=...)`, or `trainer.ckpt_path = ...`) ends
    with the same weights, phase and lrs as the uninterrupted run."""
    opts, es, module = _split(options)
    full, full_module, _ = run("ftsc", schedule, tmp_path / "full", es=es, save_every_epoch=True, **opts)
    ckpts = sorted((tmp_path / "full" / "ckpt").glob("epoch=*.ckpt"))
    assert len(ckpts) == len(full.rows) >= 4  # one per epoch (early stopping may end the last phase sooner)
    for ckpt in ckpts[:-1]:
        resumed, module_r, trainer = run("ftsc", schedule, tmp_path / ckpt.stem, es=es, ckpt_path=str(ckpt),
                                         ckpt_via_trainer=via_trainer, best_dir=tmp_path / "full" / "best", **opts)
        assert resumed.rows[-1]["depth"] == full.rows[-1]["depth"]
        assert resumed.rows[-1]["trainable"] == full.rows[-1]["trainable"]
        assert len(resumed.rows[-1]["lrs"]) == len(full.rows[-1]["lrs"])
        assert all(map(_same, resumed.rows[-1]["lrs"], full.rows[-1]["lrs"]))
        for (n, a), b in zip(full_module.state_dict().items(), module_r.state_dict().values(), strict=True):
            assert torch.allclose(a, b, rtol=1e-6, atol=1e-7), (ckpt.name, n)


FROM_FTS = [c for c in CASES if c[0] in ("per-phase-lr", "composed", "lr-scheduler-reinit")]


@pytest.mark.parametrize(("name", "schedule", "options"), FROM_FTS, ids=[c[0] for c in FROM_FTS])
def test_resume_an_fts_checkpoint(name: str, schedule: Any, options: dict[str, Any], tmp_path: Path) -> None:
    """Migrating mid-run: ftsc resumes each epoch's checkpoint written by FinetuningScheduler itself
    (its phase and named parameter groups) and ends where FTS's uninterrupted run ends."""
    opts, es, module = _split(options)
    full, full_module, _ = run("fts", schedule, tmp_path / "fts", es=es, save_every_epoch=True, **opts)
    ckpts = sorted((tmp_path / "fts" / "fts_ckpt").glob("epoch=*.ckpt"))
    assert len(ckpts) == len(full.rows) >= 4
    for ckpt in ckpts[:-1]:
        resumed, module_r, _ = run("ftsc", schedule, tmp_path / ckpt.stem, es=es, ckpt_path=str(ckpt), **opts)
        assert resumed.rows[0]["epoch"] == int(ckpt.stem.split("=")[1]) + 1
        for a, b in zip(resumed.rows, full.rows[-len(resumed.rows):], strict=True):
            assert (a["epoch"], a["depth"], a["trainable"]) == (b["epoch"], b["depth"], b["trainable"]), ckpt.name
            assert len(a["lrs"]) == len(b["lrs"]) and all(map(_same, a["lrs"], b["lrs"])), (ckpt.name, a, b)
        for (n, a), b in zip(full_module.state_dict().items(), module_r.state_dict().values(), strict=True):
            assert torch.allclose(a, b, rtol=1e-6, atol=1e-7), (ckpt.name, n)


def test_restore_best_after_optimizer_reinit(tmp_path: Path) -> None:
    """FTS crashes here (it loads the best checkpoint's SGD state into the re-initialised AdamW:
    `KeyError: 'betas'`); ftsc rebuilds the optimizer the checkpoint was saved with, restores it,
    then replays the re-initialisation, and training completes through every phase."""
    opts = {"epoch_transitions_only": True, "restore_best": True, "worsening_val": True}
    with pytest.raises(KeyError):
        run("fts", REINIT_OPT, tmp_path / "fts", **opts)
    ours, module, trainer = run("ftsc", REINIT_OPT, tmp_path / "ftsc", **opts)
    assert [r["depth"] for r in ours.rows] == [0, 1, 1, 2, 2]
    assert isinstance(trainer.optimizers[0], torch.optim.AdamW) and len(trainer.optimizers[0].param_groups) == 3


def test_resume_with_another_schedule_is_refused(tmp_path: Path) -> None:
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    run("ftsc", LRS, tmp_path / "full", epochs=2, save_every_epoch=True, epoch_transitions_only=True)
    ckpt = sorted((tmp_path / "full" / "ckpt").glob("*.ckpt"))[0]
    other = {**LRS, 1: {**LRS[1], "lr": 0.5}}
    with pytest.raises(MisconfigurationException, match="different fine-tuning schedule"):
        run("ftsc", other, tmp_path / "r", ckpt_path=str(ckpt), epoch_transitions_only=True)


def test_resume_with_unknown_parameters_names_them(tmp_path: Path) -> None:
    """A checkpoint whose optimizer groups name parameters the model lacks (another model's FTS
    checkpoint, say) is refused with the names, not a KeyError."""
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    run("fts", LRS, tmp_path / "fts", epochs=2, save_every_epoch=True, epoch_transitions_only=True)
    ckpt = sorted((tmp_path / "fts" / "fts_ckpt").glob("*.ckpt"))[0]
    state = torch.load(ckpt, weights_only=False)
    fts_state = state["callbacks"]["FinetuningScheduler"]
    fts_state["internal_optimizer_metadata"][0][0]["params"].append("encoder.9.weight")
    torch.save(state, tmp_path / "other.ckpt")
    with pytest.raises(MisconfigurationException, match=r"does not have: encoder\.9\.weight"):
        run("ftsc", LRS, tmp_path / "r", ckpt_path=str(tmp_path / "other.ckpt"), epoch_transitions_only=True)


def test_dsl_schedule_and_step_transitions(tmp_path: Path) -> None:
    """A `.ftsc` file drives training; `until step N` transitions mid-epoch."""
    sched = tmp_path / "s.ftsc"
    sched.write_text('phase 0 { thaw glob "model.4.*" until step 6 }\n'
                     'phase 1 { thaw glob "model.2.*" lr = 0.001 until epoch 3 }\n'
                     'phase 2 { thaw glob "model.0.*" }\n')
    rec, _, trainer = run("ftsc", str(sched), tmp_path, epochs=4)
    # 4 batches per epoch: global step 6 falls inside epoch 1, so phase 1 is already on at epoch 2's start.
    assert [r["depth"] for r in rec.rows] == [0, 0, 1, 2]
    assert [len(r["lrs"]) for r in rec.rows] == [1, 1, 2, 3]


def test_schedule_errors_stop_setup_with_diagnostics(tmp_path: Path) -> None:
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    with pytest.raises(MisconfigurationException, match="FTS202"):
        run("ftsc", {0: {"params": ["model.9.*"]}}, tmp_path, epochs=1, epoch_transitions_only=True)
