"""FinetuningScheduler's own FSDP1 validation, run for real on CPU with 2 processes (the FTS oracle).

Usage (from the repository root; Lightning re-launches this script once more for rank 1):

    python tests/fts_fsdp_probe.py '<json spec>'

The spec (JSON object):
- `config`: a LightningCLI-style YAML config (tests/data/fsdp/*.yaml) whose `trainer.strategy`
  (`FSDPStrategy` with `use_orig_params` and a `ModuleWrapPolicy` class set) and
  `FinetuningScheduler` callback (`ft_schedule`, `max_depth`, `strategy_adapter_cfg`) are used; or
  instead of `config`: `schedule` (an FTS YAML path), `use_orig_params`, optional `classes`,
  `min_num_params` (size_based_auto_wrap_policy) and `awp_overrides`;
- `model`: a factory name in tests/models.py or in this file (`toy4_lm`, `toy4b_lm`);
- `out`: where rank 0 writes its verdict as JSON.

What runs: `Trainer(accelerator="cpu", devices=2, strategy=CPUFSDP(...)).fit(model)` with a
`FinetuningScheduler` subclass. Lightning spawns the second rank (gloo), FTS wraps the model
(`FSDPStrategyAdapter._fts_auto_wrap`: every direct child of the LightningModule, with the policy
composed with `awp_overrides`), Lightning builds the optimizer, and at `on_fit_start` the
subclass calls FTS's own `strategy_adapter.on_before_fts_fit_start()` — which runs
`_validate_fsdp_fts_config()` on every rank, all-gathers the feedback and raises
`MisconfigurationException(*errors)` — and then stops the run. Nothing of FTS is re-implemented.

`CPUFSDP` is the shim of fts-anatomy.md Appendix A: Lightning refuses `FSDPStrategy` off-GPU and
torch FSDP1 needs an explicit `device_id` on CPU; the subclass passes `device_id=cpu` and keeps
`strategy_name = "fsdp"` so FTS picks its FSDP adapter.

Verdict written by rank 0: `{"errors": [message, ...], "validated": bool, "seconds": float}`
where `seconds` is the time from process start to the verdict.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

_T0 = time.perf_counter()
REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------
# Toy models of fts-anatomy.md §3.9 (also usable as `--model tests/fts_fsdp_probe.py:toy4_lm`)


def toy4() -> Any:
    """`Sequential(Linear(32, 32) x 3, Linear(32, 2))`, the FTS tests' toy model."""
    from torch import nn

    return nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 32), nn.Linear(32, 32), nn.Linear(32, 2))


def toy4b() -> Any:
    """`Sequential(Linear(32, 32) x 2, Linear(32, 2), Linear(2, 2))`: with a 67-element size policy the
    last two layers fall to the root unit together."""
    from torch import nn

    return nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 32), nn.Linear(32, 2), nn.Linear(2, 2))


def toy4_lm() -> Any:
    from tests.models import wrap

    return wrap(toy4())


def toy4b_lm() -> Any:
    from tests.models import wrap

    return wrap(toy4b())


# ---------------------------------------------------------------------------------------------
# Spec -> FSDP strategy arguments and FTS callback arguments


def _import(path: str) -> Any:
    import importlib

    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def spec_from_config(config_path: Path) -> dict[str, Any]:
    """The strategy and FTS callback arguments a LightningCLI config states (only what this probe uses)."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_constructor("tag:yaml.org,2002:set", lambda loader, node: list(loader.construct_mapping(node)))
    cfg = yaml.load(config_path.read_text(encoding="utf-8"), Loader=_Loader)
    trainer = cfg["trainer"]
    sargs = trainer["strategy"].get("init_args", {})
    out: dict[str, Any] = {"use_orig_params": sargs.get("use_orig_params", True),
                           "precision": trainer.get("precision", "32-true")}
    awp = sargs.get("auto_wrap_policy")
    if isinstance(awp, dict):
        out["classes"] = list(awp["init_args"]["module_classes"])
    elif isinstance(awp, list):
        out["classes"] = awp
    for cb in trainer.get("callbacks", []):
        if cb["class_path"].rsplit(".", 1)[-1] == "FinetuningScheduler":
            args = cb.get("init_args", {})
            sched = Path(args["ft_schedule"])
            out["schedule"] = str(sched if sched.is_absolute() else config_path.parent / sched)
            out["max_depth"] = args.get("max_depth", -1)
            out["awp_overrides"] = (args.get("strategy_adapter_cfg") or {}).get("awp_overrides")
    return out


def _policy(spec: dict[str, Any]) -> Any:
    import functools

    from torch.distributed.fsdp.wrap import ModuleWrapPolicy, size_based_auto_wrap_policy

    if spec.get("min_num_params"):
        return functools.partial(size_based_auto_wrap_policy, min_num_params=spec["min_num_params"])
    if spec.get("classes"):
        return ModuleWrapPolicy({_import(c) for c in spec["classes"]})
    return None


def _factory(name: str) -> Any:
    from tests import models

    return getattr(models, name, None) or globals()[name]


# ---------------------------------------------------------------------------------------------
# The run


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import torch
    from finetuning_scheduler import FinetuningScheduler
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch import Trainer

    from tests.cpu_fsdp import CPUFSDP

    class Validated(Exception):
        """FTS's FSDP validation returned without raising."""

    class StopAfterFSDPValidation(FinetuningScheduler):
        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            self.strategy_adapter.on_before_fts_fit_start()  # FTS's FSDP1 validation (all ranks)
            raise Validated

    import tempfile

    torch.manual_seed(0)
    model = _factory(spec["model"])()
    adapter_cfg = {"awp_overrides": spec["awp_overrides"]} if spec.get("awp_overrides") else {}
    fts = StopAfterFSDPValidation(ft_schedule=spec["schedule"], max_depth=spec.get("max_depth", -1),
                                  strategy_adapter_cfg=adapter_cfg or None)
    strategy = CPUFSDP(auto_wrap_policy=_policy(spec), use_orig_params=spec["use_orig_params"],
                       process_group_backend="gloo")
    trainer = Trainer(accelerator="cpu", devices=2, strategy=strategy, precision=spec.get("precision", "32-true"),
                      max_epochs=spec.get("max_epochs", 3), callbacks=[fts], logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, default_root_dir=spec.get("root_dir") or tempfile.gettempdir())
    verdict: dict[str, Any] = {"errors": [], "validated": False, "rank": trainer.global_rank}
    try:
        trainer.fit(model)
    except Validated:
        verdict["validated"] = True
    except MisconfigurationException as err:
        inner = [a for a in err.args if isinstance(a, BaseException)]
        verdict["errors"] = [str(e) for e in inner] if inner else [str(err)]
    verdict["seconds"] = time.perf_counter() - _T0
    return verdict


def main(argv: list[str]) -> int:
    from tests.probe_exit import finish, quiet_lightning

    quiet_lightning()
    spec = json.loads(argv[0])
    if "config" in spec:
        spec = {**spec_from_config(Path(spec["config"])), **{k: v for k, v in spec.items() if k != "config"}}
    verdict = run(spec)
    finish(verdict["rank"], verdict, spec.get("out"))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main(sys.argv[1:]))
