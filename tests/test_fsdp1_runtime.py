"""FSDP1 at run time: ftsc's callback wraps along the compiled plan under Lightning's FSDPStrategy
and its fit-start self-check confirms the predicted FlatParameters (2 CPU gloo processes, through
the CPU shim; FSDP1 training itself needs GPUs). With `use_orig_params=False` the callback thaws
and optimizes FlatParameters: the probe then drives its name map, checkpoint group names, `no_decay`
handling and a transition without training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = [pytest.mark.torch, pytest.mark.slow]
torch = pytest.importorskip("torch")

LINEAR_UNITS = {"model.0", "model.2", "model.4", "model"}
FLAT = "    use_orig_params = false\n    auto_wrap_policy = [torch.nn.Linear]"


def objects(*layers: int, flat: bool) -> list[list[str]]:
    """The parameter objects holding these Linear layers, each as its logical FQNs (sorted): one
    FlatParameter per layer with use_orig_params=False, else the weight and the bias."""
    out = []
    for i in layers:
        names = [f"model.{i}.bias", f"model.{i}.weight"]
        out += [names] if flat else [[n] for n in names]
    return sorted(out)


@pytest.mark.parametrize(("block", "units", "flat"), [
    ("    auto_wrap_policy = [torch.nn.Linear]", LINEAR_UNITS, False),
    ("    wrap model.4", {"model.4", "model"}, False),
    ("FTS-CONFIG", LINEAR_UNITS, False),  # policy on the strategy, awp_overrides in the cfg
    (FLAT, LINEAR_UNITS, True),
    ("FTS-CONFIG-FLAT", LINEAR_UNITS, True),  # ... and use_orig_params=False on the strategy
])
def test_fsdp1_wrapping_matches_the_prediction(block: str, units: set[str], flat: bool, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "fsdp1_runtime_probe.py"), str(tmp_path), block],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path / "result.json").read_text())
    assert r["checked"] and r["error"] is None, r
    assert set(r["units"]) == units
    assert {k: sorted(v) for k, v in r["units"].items()} == {k: sorted(v) for k, v in r["predicted"].items()}
    # fit start: exactly phase 0 is trainable (by FlatParameter when flat) and the optimizer holds exactly it
    assert r["trainable"] == ["model.4.bias", "model.4.weight"]
    assert r["trainable_flat"] == (1 if flat else 0)
    assert r["optimizer_is_trainable"]
    assert [sorted(g) for g in r["phase0_groups"]] == [objects(4, flat=flat)]
    # the name map: every logical FQN -> the object holding it
    assert r["params"] == {n: names for names in objects(0, 2, 4, flat=flat) for n in names}
    # checkpoint state names every logical parameter of a group; rebuilding gives the same objects back
    assert r["saved_names"] == [["model.4.bias", "model.4.weight"]]
    assert r["rebuilt_same"]
    # no_decay splits original parameters by name; FlatParameters stay in one group, with one warning
    if flat:
        assert [sorted(g) for g in r["no_decay_groups"]] == [objects(0, 2, 4, flat=True)]
        assert r["no_decay_warnings"] == 1
    else:
        assert r["no_decay_groups"] == [[[f"model.{i}.weight"] for i in (0, 2, 4)],
                                        [[f"model.{i}.bias"] for i in (0, 2, 4)]]
        assert r["no_decay_warnings"] == 0
    # transition to phase 1: model.2 thawed (its FlatParameter when flat) and added once, as a new group
    assert r["phase1_trainable"] == ["model.2.bias", "model.2.weight", "model.4.bias", "model.4.weight"]
    assert [sorted(g) for g in r["phase1_groups"]] == [objects(4, flat=flat), objects(2, flat=flat)]
    # checkpoints hold the optimizer state of the 4 thawed parameters: Lightning re-keys it by parameter
    # index, which torch cannot do for FlatParameters (it raises); then ftsc keeps torch's name keys
    if flat:
        assert r["optimizer_state"] == ["model.2.bias", "model.2.weight", "model.4.bias", "model.4.weight"]
    else:
        assert r["optimizer_state"] == ["2", "3", "4", "5"]


@pytest.mark.parametrize(("orig", "overrides", "error"), [
    (False, ["model.4"], True),  # the root-of-wrap unit `model` flattens model.0 (phase 2) with model.2 (phase 1)
    (True, ["model.4"], False),  # fine with original parameters
    (False, ["model.0", "model.2", "model.4"], False),
])
def test_fts_config_with_flat_parameters_across_phases_is_refused(orig: bool, overrides: list[str],
                                                                   error: bool, tmp_path: Path) -> None:
    """The sharding of an FTS-style config (policy on the strategy, `awp_overrides`) goes through the
    front end `ftsc check --lightning-config` uses, so the check at setup refuses a FlatParameter spanning
    phases with use_orig_params=False (FTS301)."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    from ftsc.lightning import FinetuningScheduler
    from tests.cpu_fsdp import CPUFSDP
    from tests.runtime_harness import TinyModule

    sched = tmp_path / "schedule.ftsc"
    sched.write_text('phase 0 { thaw glob "model.4.*" } phase 1 { thaw glob "model.2.*" } '
                     'phase 2 { thaw glob "model.0.*" }\n')
    callback = FinetuningScheduler(ft_schedule=str(sched), strategy_adapter_cfg={"awp_overrides": overrides})
    trainer = Trainer(accelerator="cpu", devices=2, strategy=CPUFSDP(use_orig_params=orig), logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, default_root_dir=str(tmp_path))
    if error:
        with pytest.raises(MisconfigurationException, match=r"FTS301"):
            callback.setup(trainer, TinyModule(), "fit")
    else:
        callback.setup(trainer, TinyModule(), "fit")
        assert callback._sharding is not None and callback._sharding.analysis is not None


@pytest.mark.parametrize("orig", [False, True])
def test_frozen_batchnorm_follows_the_parameter_object_that_holds_it(orig: bool) -> None:
    """frozen_bn_track_running_stats=False: a frozen BatchNorm stops tracking running stats and resumes
    once thawed, also when its parameters live in a FlatParameter (fake process group, no training)."""
    from types import SimpleNamespace

    from torch import nn
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    from ftsc.lightning.params import bn_tracking, logical_params

    from .fsdp_oracle import ensure_process_group

    ensure_process_group()
    module = nn.Module()
    module.model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    bn = module.model[1]
    module.requires_grad_(False)
    # the Linears in their own units: with use_orig_params=False the BatchNorm's parameters sit in the root's FlatParameter
    module.model = FSDP(module.model, auto_wrap_policy=ModuleWrapPolicy({nn.Linear}), use_orig_params=orig,
                        device_id=torch.device("cpu"))
    plan = SimpleNamespace(options={"frozen_bn_track_running_stats": False})
    bn_tracking(module, plan)  # type: ignore[arg-type]
    assert not bn.track_running_stats
    logical_params(module)["model.1.weight"].requires_grad_(True)
    bn_tracking(module, plan)  # type: ignore[arg-type]
    assert bn.track_running_stats
