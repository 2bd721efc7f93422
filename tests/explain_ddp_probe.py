"""Real DDP model-state bytes per phase (gloo, 1 process): the oracle of test_explain_memory's DDP test.

Prints one JSON list: per phase, the bytes of the distinct parameter, gradient and AdamW state
storages plus the reducer's gradient buckets (`bucket_sizes` of DDP's logging data), after the
second backward. Run as `python -m tests.explain_ddp_probe PORT`.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import torch
import torch.distributed as dist
from torch import nn

from tests.test_explain_memory import PHASE_SETS, Tiny, _storage_bytes


def main() -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1])
    dist.init_process_group("gloo", rank=0, world_size=1)
    out = []
    for prefixes in PHASE_SETS:
        torch.manual_seed(0)
        model = Tiny()
        for n, p in model.named_parameters():
            p.requires_grad_(any(n.startswith(x) for x in prefixes))
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
        ids = torch.randint(0, 13, (2, 5))
        for step in range(2):
            ddp(ids).sum().backward()
            if step == 0:
                opt.step()
                opt.zero_grad()
        params = list(model.parameters())
        buckets = sum(int(b) for b in str(ddp._get_ddp_logging_data()["bucket_sizes"]).split(",") if b)
        state = [v for s in opt.state.values() for k, v in s.items() if k != "step"]
        out.append({"params": _storage_bytes(params), "grads": _storage_bytes([p.grad for p in params]) + buckets,
                    "optimizer": _storage_bytes(state), "buffers": _storage_bytes(list(model.buffers()))})
    dist.destroy_process_group()
    print(json.dumps(out))


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main()
