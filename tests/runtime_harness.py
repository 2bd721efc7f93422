"""Shared pieces for runtime tests: a tiny LightningModule, synthetic data, a trajectory recorder,
and a runner for ftsc's callback or FinetuningScheduler (FTS) on the same model, data and seed."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*GPU available.*")


class TinyModule(pl.LightningModule):
    """A 3-Linear regressor; `scheduler` picks the lr scheduler."""

    def __init__(self, scheduler: str = "step", with_bn: bool = False, lr: float = 1e-2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1)]
        if with_bn:
            layers.insert(1, nn.BatchNorm1d(8))
        self.model = nn.Sequential(*layers)
        self.scheduler = scheduler
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        if self.scheduler == "lambda":
            sched: Any = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.9 ** e)
        else:
            sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.7)
        return {"optimizer": opt, "lr_scheduler": sched}


def loader(seed: int = 0, n: int = 64, sign: float = 1.0) -> torch.utils.data.DataLoader:
    """Synthetic regression data; `sign=-1` gives a validation set that training makes worse, so the
    best checkpoint lies in the past (what `restore_best` tests need)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = sign * torch.sin(x).sum(1, keepdim=True)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


class Recorder(pl.Callback):
    """Per epoch: the phase, trainable parameters, param-group lrs (at epoch start) and val loss."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        depth = next((c.curr_depth for c in trainer.callbacks if hasattr(c, "curr_depth")), None)
        self.rows.append({"epoch": trainer.current_epoch, "depth": depth,
                          "trainable": sorted(n for n, p in pl_module.named_parameters() if p.requires_grad),
                          "lrs": [g["lr"] for g in trainer.optimizers[0].param_groups]})

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.rows and not trainer.sanity_checking:
            self.rows[-1]["val_loss"] = float(trainer.callback_metrics["val_loss"])


def run(kind: str, schedule: dict | str | None, tmp: Path, *, epochs: int = 5, es: dict | None = None,
        module_kwargs: dict | None = None, ckpt_path: str | None = None, save_every_epoch: bool = False,
        worsening_val: bool = False, ckpt_via_trainer: bool = False, best_dir: Path | None = None,
        **options: Any) -> tuple[Recorder, pl.LightningModule, pl.Trainer]:
    """Fit `TinyModule` with ftsc's callback (`kind="ftsc"`) or FTS's (`"fts"`); same seed and data."""
    if kind == "fts":
        from finetuning_scheduler import FinetuningScheduler, FTSCheckpoint, FTSEarlyStopping
    else:
        from ftsc.lightning import FinetuningScheduler, FTSEarlyStopping
    torch.manual_seed(0)
    module = TinyModule(**(module_kwargs or {}))
    rec = Recorder()
    options.setdefault("restore_best", False)
    callbacks: list[pl.Callback] = [FinetuningScheduler(ft_schedule=schedule, **options), rec]
    if es is not None:
        callbacks.insert(1, FTSEarlyStopping(**es))
    if kind == "fts":  # FTS insists on its checkpoint callback (it matters only with restore_best)
        callbacks.append(FTSCheckpoint(dirpath=str(tmp / "fts_ckpt"), monitor="val_loss",
                                       save_top_k=-1 if save_every_epoch else 1, filename="{epoch}"))
    elif options["restore_best"]:  # keeps every file: a resumed run must still find the best of its epoch
        callbacks.append(pl.callbacks.ModelCheckpoint(dirpath=str(best_dir or tmp / "best"), monitor="val_loss",
                                                      save_top_k=-1, filename="best-{epoch}"))
    if kind == "ftsc" and save_every_epoch:
        callbacks.append(pl.callbacks.ModelCheckpoint(dirpath=str(tmp / "ckpt"), save_top_k=-1, every_n_epochs=1,
                                                      filename="{epoch}"))
    trainer = pl.Trainer(max_epochs=epochs, callbacks=callbacks, logger=False, default_root_dir=str(tmp),
                         enable_checkpointing=kind == "fts" or save_every_epoch or options["restore_best"],
                         enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, deterministic=True)
    val = loader(1, sign=-1.0 if worsening_val else 1.0)
    if ckpt_via_trainer:  # the other way to resume: set trainer.ckpt_path, then fit without ckpt_path
        trainer.ckpt_path = ckpt_path
        trainer.fit(module, loader(0), val)
    else:
        trainer.fit(module, loader(0), val, ckpt_path=ckpt_path)
    return rec, module, trainer
