"""FinetuningScheduler's own FSDP2 mixed DTensor/plain check, run for real on CPU with 2 processes.

Usage (from the repository root; Lightning re-launches this script once more for rank 1):

    python tests/fts_fsdp2_probe.py '<json spec>'

The spec (JSON object): `runs`, a list of `{"id", "config", "model"}` -- `config` a LightningCLI-style
YAML (tests/data/fsdp2/*.yaml: `ModelParallelStrategy` init_args, the `FinetuningScheduler` callback's
`ft_schedule`, `max_depth` and `strategy_adapter_cfg` with `fsdp_plan` / `fsdp_default_kwargs`),
`model` a factory in tests/models.py or in this file -- and `out`, where rank 0 writes the verdicts.

What runs, per entry and in one process pair (gloo; the first `Trainer.fit` spawns rank 1, later ones
reuse the process group, so start-up is paid once):
`Trainer(accelerator="cpu", devices=2, strategy=ModelParallelStrategy(data_parallel_size=2,
tensor_parallel_size=1)).fit(model)` with a `FinetuningScheduler` subclass. FTS resolves the plan at
setup (`ModelParallelStrategyAdapter._validate_fsdp_plan`), applies it in `configure_model`
(`_apply_fsdp_plan`: real `fully_shard` on the `data_parallel` mesh), and at `on_fit_start` the
subclass calls FTS's own `strategy_adapter.on_before_fts_fit_start()` -- i.e.
`_validate_fsdp_fts_config()`, which logs (INFO, rank 0) "produce mixed DTensor/Non-DTensor
parameter group(s)" with the non-DTensor parameters of each mixed phase -- and then stops the run.
Nothing of FTS is re-implemented.

Verdict per run (rank 0): `{"id", "info": the INFO text or null, "mixed": {phase: [plain params]}
parsed from that text, "feedback": {phase: [params]} as FTS passed it to
`_provide_mixed_pg_feedback`, "dtensor": {param: bool} after configure_model, "seconds"}`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

_T0 = time.perf_counter()
REPO = Path(__file__).resolve().parent.parent

MIXED = "produce mixed DTensor/Non-DTensor parameter group(s)"


# ---------------------------------------------------------------------------------------------
# Toy model (fts-anatomy.md §4.4 probe: plan {"model.2": {}}, phase 0 = model.3.* + model.2.*)


def toy4_lm() -> Any:
    from torch import nn

    from tests.models import wrap

    return wrap(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 2)))


def _factory(name: str) -> Any:
    from tests import models

    return getattr(models, name, None) or globals()[name]


def parse_info(text: str | None) -> dict[int, list[str]]:
    """`{phase: [non-DTensor params]}` from FTS's INFO summary (`  Phase d:  \\n    {pformat dict}`)."""
    if not text or MIXED not in text:
        return {}
    out: dict[int, list[str]] = {}
    parts = re.split(r"^\s*Phase (\d+):\s*$", text.split("mixed parameter groups:", 1)[1], flags=re.MULTILINE)
    for phase, body in zip(parts[1::2], parts[2::2], strict=True):
        out[int(phase)] = sorted(re.findall(r"'([^']+)':\s*<class", body))
    return out


def _config(path: Path) -> dict[str, Any]:
    import yaml

    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    trainer = cfg["trainer"]
    sargs = (trainer.get("strategy") or {}).get("init_args", {})
    for cb in trainer.get("callbacks", []):
        if cb["class_path"].rsplit(".", 1)[-1] == "FinetuningScheduler":
            args = dict(cb.get("init_args", {}))
            sched = Path(args["ft_schedule"])
            args["ft_schedule"] = str(sched if sched.is_absolute() else path.parent / sched)
            return {"strategy": sargs, "fts": args, "max_epochs": trainer.get("max_epochs", 4)}
    raise ValueError(f"{path}: no FinetuningScheduler callback")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if MIXED in msg:
            self.records.append(msg)


def run_one(run: dict[str, Any], root_dir: str) -> dict[str, Any]:
    import torch
    from finetuning_scheduler import FinetuningScheduler
    from finetuning_scheduler.strategy_adapters import ModelParallelStrategyAdapter
    from lightning.pytorch import Trainer
    from lightning.pytorch.strategies import ModelParallelStrategy
    from torch.distributed.tensor import DTensor

    cfg = _config(Path(run["config"]))
    capture = _Capture()
    import lightning_utilities.core.rank_zero as rank_zero_module

    log = rank_zero_module.log  # rank_zero_info's logger (Lightning points it at lightning.fabric...rank_zero)
    log.setLevel(logging.INFO)
    log.addHandler(capture)
    feedback: dict[int, list[str]] = {}
    original = ModelParallelStrategyAdapter.__dict__["_provide_mixed_pg_feedback"]

    def spy(mixed_param_pgs: dict) -> None:
        feedback.update({int(d): sorted(ps) for d, ps in mixed_param_pgs.items() if ps})
        original.__func__(mixed_param_pgs)

    class Validated(Exception):
        """FTS's FSDP2 validation ran."""

    dtensor: dict[str, bool] = {}

    class StopAfterFSDP2Validation(FinetuningScheduler):
        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            self.strategy_adapter.on_before_fts_fit_start()  # FTS's `_validate_fsdp_fts_config()`
            dtensor.update({n: isinstance(p, DTensor) for n, p in pl_module.named_parameters()})
            raise Validated

    torch.manual_seed(0)
    model = _factory(run["model"])()
    fts = StopAfterFSDP2Validation(**cfg["fts"])
    strategy = ModelParallelStrategy(**{k: cfg["strategy"][k] for k in ("data_parallel_size", "tensor_parallel_size")
                                        if k in cfg["strategy"]})
    trainer = Trainer(accelerator="cpu", devices=2, strategy=strategy, max_epochs=cfg["max_epochs"], callbacks=[fts],
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=root_dir)
    verdict: dict[str, Any] = {"id": run["id"], "rank": trainer.global_rank, "validated": False, "error": None}
    t = time.perf_counter()
    ModelParallelStrategyAdapter._provide_mixed_pg_feedback = staticmethod(spy)
    try:
        trainer.fit(model)
    except Validated:
        verdict["validated"] = True
    except Exception as err:  # noqa: BLE001 - reported to the test
        verdict["error"] = f"{type(err).__name__}: {err}"
    finally:
        ModelParallelStrategyAdapter._provide_mixed_pg_feedback = original
        log.removeHandler(capture)
    info = capture.records[0] if capture.records else None
    verdict.update(info=info, mixed={str(k): v for k, v in parse_info(info).items()},
                   feedback={str(k): v for k, v in feedback.items()}, dtensor=dtensor,
                   seconds=time.perf_counter() - t)
    return verdict


def main(argv: list[str]) -> int:
    import tempfile

    from tests.probe_exit import finish, quiet_lightning

    quiet_lightning()
    spec = json.loads(argv[0])
    root_dir = spec.get("root_dir") or tempfile.gettempdir()
    verdicts = [run_one(r, root_dir) for r in spec["runs"]]
    rank = verdicts[0]["rank"] if verdicts else 0
    finish(rank, {"runs": verdicts, "seconds": time.perf_counter() - _T0}, spec.get("out"))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main(sys.argv[1:]))

