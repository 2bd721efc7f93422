"""The CPU shim for Lightning's FSDPStrategy (fts-anatomy.md Appendix A), shared by the probes.

Lightning refuses FSDPStrategy without a GPU (its check is `type(strategy) is FSDPStrategy`), and
torch FSDP1 needs an explicit `device_id` on CPU; this subclass passes `device_id=cpu` when
wrapping and keeps `strategy_name = "fsdp"` so FTS still picks its FSDP adapter.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch
from lightning.pytorch.strategies import FSDPStrategy


class CPUFSDP(FSDPStrategy):
    strategy_name = "fsdp"

    @contextmanager
    def model_sharded_context(self) -> Any:
        from torch.distributed.fsdp.fully_sharded_data_parallel import FullyShardedDataParallel
        from torch.distributed.fsdp.wrap import enable_wrap

        with enable_wrap(wrapper_cls=FullyShardedDataParallel, cpu_offload=self.cpu_offload,
                         mixed_precision=self.mixed_precision_config, sharding_strategy=self.sharding_strategy,
                         device_id=torch.device("cpu"), **self.kwargs):
            yield

    def _setup_model(self, model: Any) -> Any:
        from torch.distributed.fsdp import FullyShardedDataParallel

        if not any(isinstance(m, FullyShardedDataParallel) for m in model.modules()):
            model = FullyShardedDataParallel(module=model, cpu_offload=self.cpu_offload,
                                             mixed_precision=self.mixed_precision_config,
                                             sharding_strategy=self.sharding_strategy,
                                             device_id=torch.device("cpu"), **self.kwargs)
        return model
