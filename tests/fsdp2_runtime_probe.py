"""Fit with ftsc's callback under Lightning's ModelParallelStrategy (FSDP2) on 2 CPU gloo processes.

Usage: python tests/fsdp2_runtime_probe.py OUT_DIR [PLAN]
PLAN is `aligned` (every Linear and the root), `mixed` (no root), `fts-cfg` (the aligned plan
written as FTS users write it), `ddp` (the same schedule under plain DDP: the numerical reference) or
`aligned-nosync` (the aligned plan with gradient synchronisation switched off: a deliberately broken
run that the replica test must tell apart). Each rank writes OUT_DIR/rank{r}.json: per epoch the
phase, param-group lrs and whether each trainable parameter is a DTensor, and at the end each
parameter's local data on that rank (a DTensor's local shard, not a re-assembled tensor).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import ModelParallelStrategy

from tests.runtime_harness import TinyModule, loader

PLANS = {
    "aligned": '    shard model.0\n    shard model.2\n    shard model.4\n    shard ""\n',
    "mixed": "    shard model.2\n",
    # as FTS users configure it: a YAML schedule, the plan in strategy_adapter_cfg.fsdp_plan
    "fts-cfg": None,
    "ddp": "",
    "aligned-nosync": '    shard model.0\n    shard model.2\n    shard model.4\n    shard ""\n',
}


class Probe(TinyModule):
    def configure_model(self) -> None:  # ModelParallelStrategy requires one; the plan is applied after it
        pass


class Record(pl.Callback):
    def __init__(self, out: Path) -> None:
        self.out, self.rows = out, []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from torch.distributed.fsdp import FSDPModule
        from torch.distributed.tensor import DTensor

        for module in pl_module.modules():  # look at the sharded parameters, as the optimizer holds them
            if isinstance(module, FSDPModule):
                module.reshard()
        fts = next(c for c in trainer.callbacks if hasattr(c, "curr_depth"))
        self.rows.append({"epoch": trainer.current_epoch, "depth": fts.curr_depth,
                          "lrs": [g["lr"] for g in trainer.optimizers[0].param_groups],
                          "dtensor": {n: isinstance(p, DTensor) for n, p in pl_module.named_parameters()
                                      if p.requires_grad}})

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from torch.distributed.tensor import DTensor

        local = {n: (p.to_local() if isinstance(p, DTensor) else p).detach().double().tolist()
                 for n, p in pl_module.named_parameters()}
        sharded = {n: isinstance(p, DTensor) for n, p in pl_module.named_parameters()}
        (self.out / f"rank{trainer.global_rank}.json").write_text(
            json.dumps({"rows": self.rows, "local": local, "sharded": sharded}))


class NoGradientSync(pl.Callback):
    """Breaks FSDP2 on purpose: each rank keeps its own gradient shard (no reduce-scatter average)."""

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        from torch.distributed.fsdp import FSDPModule

        for module in pl_module.modules():
            if isinstance(module, FSDPModule):
                module.set_requires_gradient_sync(False, recurse=False)


def main() -> None:
    from ftsc.lightning import FinetuningScheduler

    out = Path(sys.argv[1])
    mode = sys.argv[2] if len(sys.argv) > 2 else "aligned"
    plan = PLANS[mode]
    out.mkdir(parents=True, exist_ok=True)
    adapter_cfg = None
    if plan is None:
        sched = out / "schedule.yaml"
        sched.write_text("0:\n  params: [model.4.*]\n  max_transition_epoch: 1\n"
                         "1:\n  params: [model.2.*]\n  lr: 0.01\n  max_transition_epoch: 2\n"
                         "2:\n  params: [model.0.*]\n  lr: 0.01\n  max_transition_epoch: 3\n")
        adapter_cfg = {"fsdp_plan": {"model.0": {}, "model.2": {}, "model.4": {}, "": {}},
                       "fsdp_default_kwargs": {"reshard_after_forward": True}}
    else:
        sched = out / "schedule.ftsc"
        sched.write_text('phase 0 { thaw glob "model.4.*" until epoch 1 }\n'
                         'phase 1 { thaw glob "model.2.*" lr = 0.01 until epoch 2 }\n'
                         'phase 2 { thaw glob "model.0.*" lr = 0.01 }\n'
                         + (f"fsdp2 {{\n{plan}}}\n" if plan else ""))
    torch.manual_seed(0)
    strategy = "ddp" if mode == "ddp" else ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1)
    extra = [NoGradientSync()] if mode == "aligned-nosync" else []
    trainer = pl.Trainer(accelerator="cpu", devices=2, max_epochs=3, logger=False, enable_progress_bar=False,
                         strategy=strategy,
                         enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
                         callbacks=[FinetuningScheduler(ft_schedule=str(sched), restore_best=False,
                                                        epoch_transitions_only=True,
                                                        strategy_adapter_cfg=adapter_cfg), Record(out), *extra],
                         default_root_dir=str(out))
    trainer.fit(Probe(), loader(0, n=128), loader(1))


if __name__ == "__main__":
    main()
