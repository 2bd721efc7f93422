"""A LightningCLI fine-tuning run driven by an ftsc schedule, on CPU, with a bundled tiny model.

    python examples/lightning_cli/train.py fit --config examples/lightning_cli/config.yaml

The config is written as for FinetuningScheduler, with the callbacks' class paths changed to
`ftsc.lightning.*` (see docs/runtime.md). Data is synthetic; nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LightningCLI
from torch import nn


class TinyRegressor(pl.LightningModule):
    """`backbone` (two blocks) and `head`: a model small enough for a CPU demo."""

    def __init__(self, hidden: int = 32, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y), sync_dist=True)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.8)}


class SyntheticData(pl.LightningDataModule):
    """y = sum(sin(x)) with a little noise; fixed seeds."""

    def __init__(self, n: int = 512, batch_size: int = 32) -> None:
        super().__init__()
        self.n, self.batch_size = n, batch_size

    def _loader(self, seed: int) -> torch.utils.data.DataLoader:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(self.n, 8, generator=g)
        y = torch.sin(x).sum(1, keepdim=True) + 0.05 * torch.randn(self.n, 1, generator=g)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=self.batch_size)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader(0)

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader(1)


def main() -> None:
    LightningCLI(TinyRegressor, SyntheticData, seed_everything_default=0)


if __name__ == "__main__":
    main()
