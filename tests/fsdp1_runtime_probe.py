"""ftsc's callback under FSDP1 (Lightning FSDPStrategy) on 2 CPU gloo processes, up to fit start.

Usage: python tests/fsdp1_runtime_probe.py OUT_DIR FSDP_BLOCK
(FSDP_BLOCK: the body of the schedule's `fsdp` block, or FTS-CONFIG / FTS-CONFIG-FLAT for the
policy on the strategy, the latter with `use_orig_params=False`)

Lightning refuses FSDPStrategy without a GPU, and torch FSDP1 needs `device_id=cpu` there, so
this uses the CPU shim of fts-anatomy.md Appendix A (it also cannot train FSDP1 on CPU: the run
stops right after ftsc's fit-start self-check). Right after the self-check the probe drives the
callback's own methods without training: the name map, the checkpoint's group names and a
rebuild from them, `no_decay`, and the transition to phase 1. Rank 0 writes OUT_DIR/result.json
with the self-check's verdict, the real units and those observations, every parameter reported
by logical FQN (a FlatParameter as the FQNs it holds, read from the real units).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.distributed.fsdp._flat_param import FlatParameter

from ftsc.lightning import FinetuningScheduler
from ftsc.lightning.fsdp1 import clean, real_units
from ftsc.lightning.params import logical_params
from ftsc.lightning.transitions import Transition
from tests.cpu_fsdp import CPUFSDP
from tests.probe_exit import finish
from tests.runtime_harness import TinyModule, loader


class Checked(Exception):
    """ftsc's self-check passed; stop (FSDP1 cannot train on CPU)."""


def logical(module: torch.nn.Module) -> dict[int, list[str]]:
    """`{id(registered parameter): logical FQNs}`, a FlatParameter's from the real units (not ftsc's map)."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    units = real_units(module, {})
    flat = {id(m._flat_param): units[clean(n)] for n, m in module.named_modules()
            if isinstance(m, FSDP) and m._flat_param is not None}
    return {id(p): flat.get(id(p), [clean(n)]) for n, p in module.named_parameters()}


def groups(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[list[list[str]]]:
    """The optimizer's groups, each parameter object as its logical FQNs (sorted)."""
    names = logical(module)
    return [[sorted(names[id(p)]) for p in g["params"]] for g in optimizer.param_groups]


@contextmanager
def warnings_of(logger: str) -> Iterator[list[logging.LogRecord]]:
    """The warnings `logger` emits inside the block."""
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = seen.append  # type: ignore[method-assign]
    logging.getLogger(logger).addHandler(handler)
    try:
        yield seen
    finally:
        logging.getLogger(logger).removeHandler(handler)


class StopAfterCheck(FinetuningScheduler):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record: dict[str, Any] = {}

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        super().on_fit_start(trainer, pl_module)
        rec, names, optimizer = self.record, logical(pl_module), trainer.optimizers[0]
        rec["trainable"] = sorted(n for p in pl_module.parameters() if p.requires_grad for n in names[id(p)])
        rec["trainable_flat"] = sum(p.requires_grad and isinstance(p, FlatParameter) for p in pl_module.parameters())
        rec["optimizer_is_trainable"] = ({id(p) for g in optimizer.param_groups for p in g["params"]}
                                         == {id(p) for p in pl_module.parameters() if p.requires_grad})
        rec["phase0_groups"] = groups(pl_module, optimizer)
        # the name map: logical FQN -> the object ftsc thaws (a FlatParameter's names share it)
        rec["params"] = {n: sorted(names[id(p)]) for n, p in logical_params(pl_module).items()}
        # checkpoint state: groups by logical FQN, rebuilt into the same objects
        saved = self.state_dict()["param_groups"]
        rec["saved_names"] = [sorted(g["params"]) for g in saved]
        before = [[id(p) for p in g["params"]] for g in optimizer.param_groups]
        self._surgery.rebuild(trainer, pl_module, saved, 0)
        rec["rebuilt_same"] = before == [[id(p) for p in g["params"]] for g in trainer.optimizers[0].param_groups]
        # `no_decay` cannot split a FlatParameter (twice: one warning)
        pl_module.no_decay = ["bias"]
        with warnings_of("lightning.pytorch.ftsc") as seen:
            for _ in range(2):
                split = self._surgery.groups(pl_module, list(logical_params(pl_module).items()))
        rec["no_decay_groups"] = [[sorted(names[id(p)]) for p in g["params"]] for g in split]
        rec["no_decay_warnings"] = sum("no_decay" in r.getMessage() for r in seen)
        pl_module.no_decay = None
        # the transition to phase 1, without training
        self._transition(trainer, pl_module, Transition("epoch", 1, trainer.global_step))
        rec["phase1_trainable"] = sorted(n for p in pl_module.parameters() if p.requires_grad for n in names[id(p)])
        rec["phase1_groups"] = groups(pl_module, trainer.optimizers[0])
        # one optimizer step (zero gradients; SGD keeps a momentum buffer), then the optimizer state as a
        # checkpoint gets it from the strategy (a full state dict by default, gathered to rank 0)
        for p in pl_module.parameters():
            if p.requires_grad:
                p.grad = torch.zeros_like(p)
        trainer.optimizers[0].step()
        try:
            state = trainer.strategy.optimizer_state(trainer.optimizers[0])
            rec["optimizer_state"] = sorted(map(str, state["state"])) if trainer.global_rank == 0 else None
        except RuntimeError as err:
            rec["optimizer_state"] = f"RuntimeError: {err}"
        raise Checked


class Probe(TinyModule):
    def configure_model(self) -> None:
        pass


def main() -> None:
    out, block = Path(sys.argv[1]), sys.argv[2]
    out.mkdir(parents=True, exist_ok=True)
    sched = out / "schedule.ftsc"
    text = ('phase 0 { thaw glob "model.4.*" until epoch 1 }\n'
            'phase 1 { thaw glob "model.2.*" until epoch 2 }\n'
            'phase 2 { thaw glob "model.0.*" }\n')
    strategy_kwargs: dict[str, Any] = {}
    adapter_cfg = None
    if block.startswith("FTS-CONFIG"):  # as FTS users configure it: the policy on the strategy, overrides in the cfg
        strategy_kwargs = {"auto_wrap_policy": {torch.nn.Linear}}
        adapter_cfg = {"awp_overrides": ["model"]}
        if block == "FTS-CONFIG-FLAT":
            strategy_kwargs["use_orig_params"] = False
    else:
        text += f"fsdp {{\n{block}\n}}\n"
        if "use_orig_params = false" in block:
            strategy_kwargs["use_orig_params"] = False
    sched.write_text(text)
    torch.manual_seed(0)
    callback = StopAfterCheck(ft_schedule=str(sched), restore_best=False, epoch_transitions_only=True,
                              strategy_adapter_cfg=adapter_cfg)
    trainer = Trainer(accelerator="cpu", devices=2, strategy=CPUFSDP(process_group_backend="gloo", **strategy_kwargs),
                      max_epochs=3, callbacks=[callback], logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      default_root_dir=str(out))
    # A LightningModule without configure_model (FTS users' usual case: Lightning calls the hook only when
    # it counts as overridden), and one that overrides it (a no-op here)
    module = TinyModule() if block.startswith("FTS-CONFIG") else Probe()
    result: dict[str, Any] = {"checked": False, "error": None}
    try:
        trainer.fit(module, loader(0), loader(1))
    except Checked:
        result["checked"] = True
    except MisconfigurationException as err:
        result["error"] = str(err)
    result["units"] = real_units(module, {})
    analysis = getattr(callback._sharding, "analysis", None)
    result["predicted"] = {u.name: list(u.params) for u in analysis.prediction.units} if analysis else None
    result.update(callback.record)
    finish(trainer.global_rank, result, out / "result.json")  # the fit was interrupted: leave at once


if __name__ == "__main__":
    main()
