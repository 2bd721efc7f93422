"""ftsc's callback under FSDP1 (Lightning FSDPStrategy) on 2 CPU gloo processes, up to fit start.

Usage: python tests/fsdp1_runtime_probe.py OUT_DIR FSDP_BLOCK

Lightning refuses FSDPStrategy without a GPU, and torch FSDP1 needs `device_id=cpu` there, so
this uses the CPU shim of fts-anatomy.md Appendix A (it also cannot train FSDP1 on CPU: the run
stops right after ftsc's fit-start self-check). Rank 0 writes OUT_DIR/result.json with the
self-check's verdict and the real units.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from lightning.pytorch import Trainer  # noqa: E402
from lightning.pytorch.utilities.exceptions import MisconfigurationException  # noqa: E402

from ftsc.lightning import FinetuningScheduler  # noqa: E402
from ftsc.lightning.fsdp1 import real_units  # noqa: E402
from tests.cpu_fsdp import CPUFSDP  # noqa: E402
from tests.runtime_harness import TinyModule, loader  # noqa: E402


class Checked(Exception):
    """ftsc's self-check passed; stop (FSDP1 cannot train on CPU)."""


class StopAfterCheck(FinetuningScheduler):
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        super().on_fit_start(trainer, pl_module)
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
    if block == "FTS-CONFIG":  # as FTS users configure it: the policy on the strategy, overrides in the adapter cfg
        strategy_kwargs = {"auto_wrap_policy": {torch.nn.Linear}}
        adapter_cfg = {"awp_overrides": ["model"]}
    else:
        text += f"fsdp {{\n{block}\n}}\n"
    sched.write_text(text)
    torch.manual_seed(0)
    callback = StopAfterCheck(ft_schedule=str(sched), restore_best=False, epoch_transitions_only=True,
                              strategy_adapter_cfg=adapter_cfg)
    trainer = Trainer(accelerator="cpu", devices=2, strategy=CPUFSDP(process_group_backend="gloo", **strategy_kwargs),
                      max_epochs=3, callbacks=[callback], logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      default_root_dir=str(out))
    module = Probe()
    result: dict[str, Any] = {"checked": False, "error": None}
    try:
        trainer.fit(module, loader(0), loader(1))
    except Checked:
        result["checked"] = True
    except MisconfigurationException as err:
        result["error"] = str(err)
    result["units"] = real_units(module, {})
    result["predicted"] = {u.name: list(u.params) for u in callback._fsdp1.prediction.units} \
        if callback._fsdp1 else None
    result["trainable"] = sorted(n.replace("_fsdp_wrapped_module.", "") for n, p in module.named_parameters()
                                 if p.requires_grad)
    if trainer.global_rank == 0:
        (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
