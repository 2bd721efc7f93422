"""Run a phase-transitioning fit with Lightning DDP on 2 CPU (gloo) processes and record every rank's
weights at each epoch start. Usage: python tests/ddp_probe.py {ftsc|fts} OUT_DIR

Lightning's DDP launcher re-runs this script for rank 1; each rank writes OUT_DIR/rank{r}_epoch{e}.pt.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning.pytorch as pl
import torch

from tests.runtime_harness import TinyModule, loader

SCHEDULE = {0: {"params": ["model.4.*"], "max_transition_epoch": 1},
            1: {"params": ["model.2.*"], "lr": 1e-2, "max_transition_epoch": 2},
            2: {"params": ["model.0.*"], "lr": 1e-2, "max_transition_epoch": 4}}


class Snapshot(pl.Callback):
    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        torch.save(state, self.out / f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.pt")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.on_train_epoch_start(trainer, pl_module)


def main() -> None:
    kind, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    if kind == "fts":
        from finetuning_scheduler import FinetuningScheduler
    else:
        from ftsc.lightning import FinetuningScheduler
    torch.manual_seed(0)
    callbacks = [FinetuningScheduler(ft_schedule=SCHEDULE, restore_best=False, epoch_transitions_only=True),
                 Snapshot(out)]
    if kind == "fts":
        from finetuning_scheduler import FTSCheckpoint

        callbacks.append(FTSCheckpoint(dirpath=str(out / "ckpt"), monitor="val_loss", save_top_k=1))
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=4, callbacks=callbacks,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=kind == "fts", num_sanity_val_steps=0, default_root_dir=str(out))
    trainer.fit(TinyModule(lr=5e-2), loader(0, n=128), loader(1))


if __name__ == "__main__":
    os.environ.setdefault("PL_DISABLE_FORK", "1")
    main()
