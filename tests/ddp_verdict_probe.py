"""A 2-process DDP fit (gloo, CPU) whose schedule fits the model on rank 0 only: every rank must stop
at setup with the same clear error. Usage: python tests/ddp_verdict_probe.py OUT_DIR

Lightning's DDP launcher re-runs this script for rank 1; each rank writes OUT_DIR/rank{r}.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning.pytorch as pl
import torch

from tests.probe_exit import quiet_lightning
from tests.runtime_harness import TinyModule, loader

GOOD = {0: {"params": ["model.4.*"], "max_transition_epoch": 1},
        1: {"params": ["model.[02].*"], "max_transition_epoch": 2}}
BAD = {0: {"params": ["model.4.*"], "max_transition_epoch": 1},
       1: {"params": ["model.9.*"], "max_transition_epoch": 2}}


def main() -> None:
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    from ftsc.lightning import FinetuningScheduler

    quiet_lightning()
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.manual_seed(0)
    callback = FinetuningScheduler(ft_schedule=BAD if rank == 1 else GOOD, restore_best=False,
                                   epoch_transitions_only=True)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, callbacks=[callback],
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, num_sanity_val_steps=0, default_root_dir=str(out))
    result: dict[str, object] = {"error": None, "type": None}
    try:
        trainer.fit(TinyModule(), loader(0, n=64), loader(1))
    except Exception as err:  # noqa: BLE001 - the probe reports whatever each rank raised
        result = {"error": str(err), "type": type(err).__name__,
                  "misconfiguration": isinstance(err, MisconfigurationException)}
    (out / f"rank{rank}.json").write_text(json.dumps(result), encoding="utf-8")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    os.environ.setdefault("PL_DISABLE_FORK", "1")
    main()
