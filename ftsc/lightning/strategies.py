"""One strategy interface for the runtime, with single-device, DDP, FSDP1 and FSDP2 implementations.

Input: the Trainer's strategy, FTS's `strategy_adapter_cfg`, the checked schedule, the model
graph and the plan. Output: a `Sharding` that wraps the model along the compiled plan (FSDP1
units, FSDP2 `fully_shard` groups), keeps parameters addressable across a thaw (FSDP2 reshard),
re-synchronises after a thaw (DDP's reducer) and compares the real sharding with ftsc's
prediction (`verify_sharding`). The strategy's sharding settings become IR through the same
front end that reads a LightningCLI config (`strategy_config`). Imports torch and lightning.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from ftsc.frontend import Loaded
from ftsc.lightning import _private
from ftsc.lower.runtime import RuntimePlan

log = logging.getLogger("lightning.pytorch.ftsc")


def _strategy_classes() -> dict[str, type]:
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, ModelParallelStrategy, SingleDeviceStrategy

    return {"fsdp": FSDPStrategy, "fsdp2": ModelParallelStrategy, "ddp": DDPStrategy, "single": SingleDeviceStrategy}


def kind_of(strategy: Any) -> str | None:
    """`"fsdp"`, `"fsdp2"`, `"ddp"`, `"single"`, or None for a strategy ftsc was not built for."""
    if any(n in c.__name__ for c in type(strategy).__mro__ for n in ("DeepSpeed", "XLA")):
        return None
    return next((k for k, cls in _strategy_classes().items() if isinstance(strategy, cls)), None)


def strategy_config(strategy: Any, adapter_cfg: dict[str, Any]) -> Loaded | None:
    """The strategy's sharding settings as a LightningCLI config read by ftsc's front end (the code
    that reads `ftsc check --lightning-config`), or None when it shards nothing ftsc compiles."""
    from ftsc.frontend import load_text
    from ftsc.source import SourceFile

    kind = kind_of(strategy)
    init_args: dict[str, Any] = {}
    if kind == "fsdp":
        classes = _private.wrap_policy_classes(strategy.kwargs.get("auto_wrap_policy"))
        init_args["use_orig_params"] = bool(strategy.kwargs.get("use_orig_params", True))
        if classes:
            init_args["auto_wrap_policy"] = [f"{c.__module__}.{c.__qualname__}" for c in classes]
        class_path = "lightning.pytorch.strategies.FSDPStrategy"
    elif kind == "fsdp2" and adapter_cfg.get("fsdp_plan"):
        class_path = "lightning.pytorch.strategies.ModelParallelStrategy"
    else:
        return None
    doc = {"trainer": {"strategy": {"class_path": class_path, "init_args": init_args},
                       "callbacks": [{"class_path": "ftsc.lightning.FinetuningScheduler",
                                      "init_args": {"strategy_adapter_cfg": dict(adapter_cfg)}}]}}
    text = yaml.safe_dump(doc, sort_keys=False)
    return load_text(SourceFile(f"<{type(strategy).__name__}>.yaml", text))


def agree(trainer: pl.Trainer, problem: str | None) -> str | None:
    """Every rank's verdict made one: the problem of the lowest rank that has one (None: all fine).

    Each rank calls this at the same point; under a process group the verdicts are exchanged, so
    every rank raises the same error instead of one raising and the others waiting on a dead peer.
    """
    dist = torch.distributed
    if trainer.world_size <= 1 or not dist.is_available() or not dist.is_initialized():
        return problem
    gathered: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, problem)
    return next((f"on rank {r}: {p}" for r, p in enumerate(gathered) if p), None)


class Sharding:
    """The runtime's view of a strategy; this base does nothing (single device, plain DDP wrappers)."""

    kind = "none"

    def __init__(self, schedule: Any, graph: Any, plan: RuntimePlan, verify: str) -> None:
        self.schedule, self.graph, self.plan, self.verify = schedule, graph, plan, verify

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """At setup, before the strategy wraps the model."""

    def before_change(self, pl_module: pl.LightningModule) -> None:
        """Before parameters are thawed or added to the optimizer."""

    def after_thaw(self, trainer: pl.Trainer) -> None:
        """After a transition thawed parameters."""

    def self_check(self, pl_module: pl.LightningModule) -> str:
        """At fit start: compare the real sharding with the prediction; returns the verdict in words.

        Raises:
            MisconfigurationException: on a difference with `verify_sharding="error"`.
        """
        return "no sharding"

    def _report(self, what: str, predicted: dict[str, list[str]], real: dict[str, list[str]]) -> str:
        from ftsc.shard import compare_units

        problems = compare_units(predicted, real)
        if not problems:
            return f"the {len(predicted)} {what} match the prediction"
        text = f"the {what} differ from ftsc's prediction:\n  " + "\n  ".join(problems)
        if self.verify == "error":
            raise MisconfigurationException(text)
        log.warning("ftsc: %s", text)
        return f"the {what} differ from the prediction ({len(problems)} difference{'s' * (len(problems) != 1)})"


class DDPSharding(Sharding):
    """DDP: after a thaw, wrap again so the reducer all-reduces the newly trainable parameters.

    DDP decides once, when it wraps the model, which parameters' gradients it all-reduces: those
    that require grad then. Parameters thawed later would train unsynchronized and the replicas
    would drift apart (what happens under FTS). Re-wrapping also broadcasts rank 0's module state,
    which the replicas already share.
    """

    kind = "ddp"

    def after_thaw(self, trainer: pl.Trainer) -> None:
        from torch.nn.parallel import DistributedDataParallel

        strategy = trainer.strategy
        if isinstance(strategy.model, DistributedDataParallel):
            _private.ddp_rewrap(strategy, strategy.model.module)

    def self_check(self, pl_module: pl.LightningModule) -> str:
        return "DDP: replicas re-synchronised after each thaw"


class FSDP1Sharding(Sharding):
    """FSDPStrategy: wrap along the compiled plan in configure_model, then check the FlatParameters."""

    kind = "fsdp"
    analysis: Any = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from ftsc.lightning.fsdp1 import save_optimizer_state_by_name, spec_matches_strategy, wrap_configure_model
        from ftsc.shard import fsdp1_analysis

        analysis = fsdp1_analysis(self.schedule, self.graph)
        assert analysis is not None
        problems = spec_matches_strategy(analysis.spec, trainer.strategy)
        if problems:
            raise MisconfigurationException("the FSDP strategy contradicts the schedule's fsdp block: "
                                            + "; ".join(problems))
        if not analysis.spec.use_orig_params:  # FTS301, for an implicit schedule (explicit ones were checked)
            from ftsc.fix.search import mixed_units

            phase_of = {n: d for d, phase in enumerate(self.plan.phases) for n in phase.params}
            mixed = [u.name or "<root>" for u in mixed_units(analysis.prediction, phase_of.get)]
            if mixed:
                raise MisconfigurationException(
                    "with use_orig_params=False a FlatParameter is thawed whole, but these FSDP units hold "
                    "parameters of several phases (or never-thawed ones): " + ", ".join(mixed)
                    + "; `ftsc check` gives the `awp_overrides` that fix it (FTS301)")
            save_optimizer_state_by_name(trainer.strategy)
        self.analysis = analysis
        wrap_configure_model(pl_module, analysis.spec)

    def self_check(self, pl_module: pl.LightningModule) -> str:
        if self.analysis is None or self.verify == "off":
            return "FSDP units not checked (verify_sharding='off')"
        from ftsc.lightning.fsdp1 import real_units

        predicted = {u.name: list(u.params) for u in self.analysis.prediction.units}
        return self._report("FSDP units", predicted, real_units(pl_module, dict(self.graph.aliases)))


class FSDP2Sharding(Sharding):
    """ModelParallelStrategy: apply the schedule's `fsdp2` plan after the user's configure_model."""

    kind = "fsdp2"
    plan2: list[tuple[str, dict[str, Any]]] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user_calls: list[list[str]] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from ftsc.lightning.fsdp2 import wrap_configure_model
        from ftsc.shard import fsdp2_analysis

        analysis = fsdp2_analysis(self.schedule, self.graph)
        assert analysis is not None
        grouped = [(m, rest) for m, rest in analysis.members.items() if rest]
        if grouped:  # only dialect imports make them, and those are checked, never run
            m, rest = grouped[0]
            names = ", ".join(n or '""' for n in (m, *rest))
            raise MisconfigurationException(
                f"the fsdp2 plan shards [{names}] in one list-form fully_shard call; ftsc's runtime applies one "
                "module per plan entry and does not apply grouped entries")
        defaults_setting = self.schedule.fsdp2.setting("fsdp_default_kwargs")
        defaults = dict(defaults_setting.value.py()) if defaults_setting else {}
        self.plan2 = [(m, {**defaults, **{s.name: s.value.py() for s in analysis.entry_of[m].kwargs or ()}})
                      for m in analysis.plan]
        strategy = trainer.strategy
        wrap_configure_model(pl_module, self.plan2, lambda: strategy.device_mesh["data_parallel"], self.user_calls)

    def before_change(self, pl_module: pl.LightningModule) -> None:
        """Register the sharded DTensor parameters again: an FSDP2 root keeps its unsharded plain
        tensors registered after forward (it does not reshard there), and thawing or adding those to
        the optimizer would act on the wrong tensors."""
        from torch.distributed.fsdp import FSDPModule

        for module in pl_module.modules():
            if isinstance(module, FSDPModule):
                module.reshard()

    def self_check(self, pl_module: pl.LightningModule) -> str:
        if self.plan2 is None or self.verify == "off":
            return "fully_shard groups not checked (verify_sharding='off')"
        from ftsc.lightning.fsdp2 import real_groups
        from ftsc.shard.fsdp2 import predict2

        predicted = predict2(self.graph, [m for m, _ in self.plan2], self.user_calls)
        return self._report("fully_shard groups", {g.name: list(g.params) for g in predicted.groups},
                            real_groups(pl_module))


def sharding_for(trainer: pl.Trainer, schedule: Any, graph: Any, plan: RuntimePlan, verify: str) -> Sharding:
    """The `Sharding` for the Trainer's strategy and the schedule's sharding block."""
    kind = kind_of(trainer.strategy)
    cls: type[Sharding] = Sharding
    if kind == "fsdp" and schedule.fsdp is not None:
        cls = FSDP1Sharding
    elif kind == "fsdp2" and schedule.fsdp2 is not None:
        cls = FSDP2Sharding
    elif kind == "ddp":
        cls = DDPSharding
    return cls(schedule, graph, plan, verify)
