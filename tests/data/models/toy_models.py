"""Toy models used as `--model tests/data/models/toy_models.py:NAME` targets in CLI tests."""

import lightning.pytorch as pl
import torch
from torch import nn


class Net(nn.Module):
    """Numbered layers (so `layers.1` catches `layers.10`), a shared module and a tied weight."""

    def __init__(self, n: int = 12) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(n))
        self.head = nn.Linear(4, 2)
        self.norm = nn.BatchNorm1d(4)
        self.shared = self.layers[0]
        self.tied = nn.Linear(4, 4, bias=False)
        self.tied.weight = self.layers[1].weight


def make_net() -> nn.Module:
    """A factory."""
    return Net(n=3)


INSTANCE = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))


class NeedsArgs(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Linear(hidden, hidden)


class ReadsValues(nn.Module):
    """Reads a tensor value in its constructor: impossible on the meta device."""

    def __init__(self) -> None:
        super().__init__()
        scale = torch.ones(1)
        self.fc = nn.Linear(int(scale.item()) + 1, 2)


class NotAModule:
    pass


def returns_int() -> int:
    return 3


class Lit(pl.LightningModule):
    """Builds its model in configure_model, as FSDP users do."""

    def __init__(self) -> None:
        super().__init__()
        self.model: nn.Module | None = None

    def configure_model(self) -> None:
        if self.model is None:
            self.model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))


class Noisy(nn.Module):
    """Prints while it is built; `ftsc manifest` output must stay valid JSON."""

    def __init__(self) -> None:
        super().__init__()
        print("building Noisy")
        self.fc = nn.Linear(2, 2)


class ManualWrap(pl.LightningModule):
    """Wraps two blocks itself with FSDP1 `wrap()` in configure_model (Lightning's FSDP guide)."""

    def __init__(self) -> None:
        super().__init__()
        self.model: nn.Module | None = None

    def configure_model(self) -> None:
        from torch.distributed.fsdp.wrap import wrap

        if self.model is not None:
            return
        self.model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)), nn.Linear(4, 2))
        self.model[1] = wrap(self.model[1])
        self.model[2] = wrap(self.model[2])


class SelfSharded(pl.LightningModule):
    """Shards its own blocks with FSDP2 in configure_model, as Lightning's FSDP2 guide does."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)), nn.Linear(4, 2))

    def configure_model(self) -> None:
        from torch.distributed.fsdp import fully_shard

        fully_shard(self.model[1], mesh=self.device_mesh["data_parallel"])
        fully_shard([self.model[0], self.model[2]], mesh=self.device_mesh["data_parallel"])
