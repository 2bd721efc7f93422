"""The Lightning callbacks that execute a compiled schedule.

Input: a schedule (`.ftsc`, FTS YAML, a dict in FTS's format, or none for FTS's implicit
schedule) and FinetuningScheduler's constructor options. Output: training that freezes
everything, thaws phase 0, and at each transition thaws the next phase and adds its parameter
group with the phase lr. Imports torch and lightning (this is the runtime).

Hook by hook:
- `setup`: compile the schedule against `pl_module.named_parameters()` (the same resolution
  and checks as `ftsc check`; errors stop the run with the rendered diagnostics), freeze all
  parameters, thaw phase 0 (before any FSDP wrapping).
- `on_fit_start`: make the optimizer hold exactly phase 0's parameters (FTS's
  `enforce_phase0_params`), or, when resuming, give it the parameter groups the checkpoint
  was saved with so that Lightning can load the optimizer state into them.
- `on_train_epoch_start`: log the phase (`finetuning_phase`) and transition when the phase's
  epoch is reached or FTSEarlyStopping reported a plateau (one phase per epoch start);
  `on_train_batch_end`: step transitions.
- `state_dict`/`load_state_dict`: the phase, the parameter groups by FQN and the schedule's
  fingerprint; resuming with a different schedule is an error, not a silent divergence.

Parameters are addressed by logical FQN (`_params`); under FSDP1 with `use_orig_params=False`
each FQN maps to the FlatParameter holding it, which is thawed and optimized as a whole.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.callbacks import Callback, EarlyStopping
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from ftsc.lower.runtime import RuntimePlan

log = logging.getLogger(__name__)

STATE_VERSION = 1


def _unique(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Each parameter object once, in first-seen order (a FlatParameter stands for several names)."""
    return list({id(p): p for p in params}.values())


class FTSEarlyStopping(EarlyStopping):
    """EarlyStopping that ends a *phase* on plateau, and training only in the last phase.

    Same arguments as Lightning's `EarlyStopping`. When patience runs out before the last
    phase, `es_phase_complete` is set (the scheduler transitions at the next epoch start) and
    the wait count restarts; the best score is kept across phases, as FinetuningScheduler does.
    Non-finite metrics and thresholds stop training in any phase.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("monitor", "val_loss")
        kwargs.setdefault("check_on_train_epoch_end", False)
        super().__init__(*args, **kwargs)
        self.es_phase_complete = False
        self.final_phase = False

    def _evaluate_stopping_criteria(self, current: torch.Tensor) -> tuple[bool, str | None]:
        should_stop, reason = super()._evaluate_stopping_criteria(current)
        if should_stop and not self.final_phase and self.wait_count >= self.patience and torch.isfinite(current):
            self.es_phase_complete = True
            self.wait_count = 0
            return False, f"Monitored metric {self.monitor} plateaued: the phase ends at the next epoch."
        return should_stop, reason

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "es_phase_complete": self.es_phase_complete, "final_phase": self.final_phase}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.es_phase_complete = bool(state_dict.get("es_phase_complete", False))
        self.final_phase = bool(state_dict.get("final_phase", False))


class FinetuningScheduler(Callback):
    """Gradual unfreezing driven by an ftsc schedule; FinetuningScheduler's options and names.

    Args:
        ft_schedule: path to a `.ftsc` or FTS YAML schedule, a dict in FTS's format, or None for
            FTS's implicit schedule (reverse registration order, two parameters per phase).
        max_depth: deepest phase to run (-1: all).
        base_max_lr: lr of phases >= 1 that give none.
        restore_best, reinit_optim_cfg, reinit_lr_cfg: accepted for FTS compatibility; this
            version raises a clear error when they would change the run (see docs/runtime.md).
        epoch_transitions_only: phases end by epoch only (no plateau transitions).
        enforce_phase0_params: rebuild the optimizer so it holds exactly phase 0's parameters.
        frozen_bn_track_running_stats: frozen BatchNorm layers keep updating running stats.
        apply_lambdas_new_pgs: new groups start at `lr * lr_lambda(last_epoch)` of a lambda scheduler.
        log_phase: log the current phase as the metric `finetuning_phase`.
        verify_sharding: at fit start, compare the real FSDP1 units / FSDP2 groups with ftsc's prediction and
            `"error"` (default), `"warn"` or do nothing (`"off"`) on a difference.
        Other FTS options (`gen_ft_sched_only`, `strategy_adapter_cfg`, `custom_strategy_adapters`,
        `allow_untested`, `logging_level`, `log_dir`) are accepted with FTS's meaning where it applies.
    """

    def __init__(self, ft_schedule: str | Path | dict | None = None, max_depth: int = -1,
                 base_max_lr: float = 1e-5, restore_best: bool = True, gen_ft_sched_only: bool = False,
                 epoch_transitions_only: bool = False, reinit_optim_cfg: dict | None = None,
                 reinit_lr_cfg: dict | None = None, strategy_adapter_cfg: dict | None = None,
                 custom_strategy_adapters: dict | None = None, allow_untested: bool = False,
                 apply_lambdas_new_pgs: bool = False, logging_level: int = logging.INFO,
                 enforce_phase0_params: bool = True, frozen_bn_track_running_stats: bool = True,
                 log_dir: str | Path | None = None, log_phase: bool = True,
                 verify_sharding: str = "error") -> None:
        super().__init__()
        self.ft_schedule = ft_schedule
        self.options: dict[str, Any] = {
            "max_depth": max_depth, "base_max_lr": base_max_lr, "restore_best": restore_best,
            "epoch_transitions_only": epoch_transitions_only, "enforce_phase0_params": enforce_phase0_params,
            "frozen_bn_track_running_stats": frozen_bn_track_running_stats,
            "apply_lambdas_new_pgs": apply_lambdas_new_pgs, "allow_untested": allow_untested,
        }
        self.reinit_optim_cfg, self.reinit_lr_cfg = reinit_optim_cfg, reinit_lr_cfg
        self.strategy_adapter_cfg = strategy_adapter_cfg or {}
        self.gen_ft_sched_only, self.log_dir, self.log_phase = gen_ft_sched_only, log_dir, log_phase
        self.custom_strategy_adapters, self.logging_level = custom_strategy_adapters, logging_level
        if verify_sharding not in ("error", "warn", "off"):
            raise ValueError(f"verify_sharding must be 'error', 'warn' or 'off', not {verify_sharding!r}")
        self.verify_sharding = verify_sharding
        self.plan: RuntimePlan | None = None
        self.curr_depth = 0
        self._fsdp2_plan: list[tuple[str, dict[str, Any]]] | None = None
        self._user_shard_calls: list[list[str]] = []
        self._restored: dict[str, Any] | None = None
        self._loading_best = False

    # -- schedule --------------------------------------------------------------------------------
    @property
    def max_depth(self) -> int:
        """The deepest phase this run executes."""
        assert self.plan is not None
        return self.plan.last_depth

    @property
    def depth_remaining(self) -> int:
        """Phases left after the current one."""
        return max(self.max_depth - self.curr_depth, 0)

    def _load_schedule(self, pl_module: pl.LightningModule) -> RuntimePlan:
        """Check the schedule against the live module through `ftsc.check.run_check` (the pipeline
        of `ftsc check`: suppressions applied), stop on errors, warn on warnings, lower the rest."""
        from lightning.pytorch.utilities.rank_zero import rank_zero_warn

        from ftsc import ir
        from ftsc.analyze.resolve import resolve_schedule
        from ftsc.check import run_check
        from ftsc.diagnostics import Severity
        from ftsc.diagnostics.render import render_concise, render_text
        from ftsc.frontend import load_file, load_text
        from ftsc.generate import default_schedule
        from ftsc.lower.runtime import lower_runtime
        from ftsc.model.build import extract
        from ftsc.model.graph import ModelGraph
        from ftsc.source import SourceFile

        graph = ModelGraph(extract(pl_module))
        # Constructor options are the defaults; a `.ftsc` file's `schedule { }` block overrides them.
        defaults = tuple(ir.Setting(name=k, value=ir.from_py(v)) for k, v in self.options.items()
                         if k != "allow_untested")
        if not self.ft_schedule:
            schedule = default_schedule(graph, "fts")
            given = {s.name for s in schedule.options.settings}
            schedule = replace(schedule, options=replace(
                schedule.options, settings=schedule.options.settings + tuple(d for d in defaults
                                                                             if d.name not in given)))
            resolution = resolve_schedule(schedule, graph)  # FTS's implicit schedule: nothing to check
            self.diagnostics: tuple[Any, ...] = ()
        else:
            if isinstance(self.ft_schedule, dict):
                text = yaml.safe_dump(self.ft_schedule, sort_keys=False)
                loaded = load_text(SourceFile("<ft_schedule>.yaml", text))
            else:
                loaded = load_file(str(self.ft_schedule))
            result = run_check(loaded, graph, defaults=defaults)
            self.diagnostics = result.diagnostics
            errors = [d for d in result.diagnostics if d.severity is Severity.ERROR]
            if errors or result.loaded.schedule is None or result.context is None:
                raise MisconfigurationException("the fine-tuning schedule does not fit this model:\n"
                                                + render_text(errors or list(result.diagnostics)))
            for d in result.diagnostics:
                if d.severity is Severity.WARNING:
                    rank_zero_warn(f"ftsc: {render_concise([d]).strip()}")
            schedule = result.loaded.schedule
            resolution = result.context.resolution
        assert resolution is not None and schedule is not None
        plan = lower_runtime(schedule, resolution)
        self._schedule, self._graph = schedule, graph
        return plan

    # -- parameters and optimizer ----------------------------------------------------------------
    def _params(self, pl_module: pl.LightningModule) -> dict[str, torch.nn.Parameter]:
        """`{logical FQN: the parameter object to thaw and optimize}`: the parameter itself (wrapper
        segments dropped from its name), or, under FSDP1 with use_orig_params=False, the FlatParameter
        holding it (one object for several names; the original attributes are no parameters any more)."""
        from ftsc.lightning.fsdp1 import logical_names

        return {n: p for name, p in pl_module.named_parameters() for n in logical_names(name, p)}

    def _thaw(self, pl_module: pl.LightningModule, depth: int) -> list[str]:
        assert self.plan is not None
        params = self._params(pl_module)
        names = [n for n in self.plan.phases[depth].params if n in params]
        for n in names:
            params[n].requires_grad_(True)
        self._bn_tracking(pl_module)
        return names

    def _thaw_through(self, pl_module: pl.LightningModule, depth: int) -> None:
        """Freeze every parameter, then thaw phases 0 to `depth`."""
        for p in pl_module.parameters():
            p.requires_grad_(False)
        for d in range(depth + 1):
            self._thaw(pl_module, d)

    def _bn_tracking(self, pl_module: pl.LightningModule) -> None:
        from ftsc.lightning.fsdp1 import clean

        keep = bool(self.plan and self.plan.options.get("frozen_bn_track_running_stats", True))
        owned: dict[str, list[torch.nn.Parameter]] = {}  # by module; a FlatParameter's frozenness is its own
        for n, p in self._params(pl_module).items():
            owned.setdefault(n.rpartition(".")[0], []).append(p)
        for name, m in pl_module.named_modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                own = owned.get(clean(name), [])
                m.track_running_stats = keep or any(p.requires_grad for p in own) or not own

    def _group_names(self, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer) -> list[list[str]]:
        """Each group's logical FQNs (all those of a FlatParameter), from which `_rebuild_optimizer` rebuilds it."""
        names: dict[int, list[str]] = {}
        for n, p in self._params(pl_module).items():
            names.setdefault(id(p), []).append(n)
        return [[n for p in g["params"] for n in names.get(id(p), [])] for g in optimizer.param_groups]

    def _reset_schedulers(self, trainer: pl.Trainer) -> None:
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            groups = sched.optimizer.param_groups
            if hasattr(sched, "base_lrs"):
                sched.base_lrs = [g.get("initial_lr", g["lr"]) for g in groups]
            if hasattr(sched, "lr_lambdas"):
                sched.lr_lambdas = (list(sched.lr_lambdas) + [sched.lr_lambdas[-1]] * len(groups))[: len(groups)]
            if hasattr(sched, "min_lrs"):
                sched.min_lrs = (list(sched.min_lrs) + [sched.min_lrs[0]] * len(groups))[: len(groups)]

    def _enforce_phase0(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizer = trainer.optimizers[0]
        names = list(self.plan.phases[0].params)  # type: ignore[union-attr]
        params = self._params(pl_module)
        current = [p for g in optimizer.param_groups for p in g["params"]]
        if {id(p) for p in current} == {id(params[n]) for n in names} and all(p.requires_grad for p in current):
            return
        if not self.plan.options.get("enforce_phase0_params", True):  # type: ignore[union-attr]
            log.warning("The optimizer does not hold exactly the phase 0 parameters (enforce_phase0_params=False).")
            return
        lr = optimizer.defaults["lr"]
        optimizer.param_groups.clear()
        optimizer.state.clear()
        for group in self._groups(pl_module, [(n, params[n]) for n in names], lr=lr, initial_lr=lr):
            optimizer.add_param_group(group)
        self._reset_schedulers(trainer)
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if hasattr(sched, "last_epoch") and hasattr(sched, "_initial_step"):
                sched.last_epoch = -1
                sched._initial_step()
        log.info("ftsc: the optimizer now holds exactly the %d phase 0 parameters.", len(names))

    def _groups(self, pl_module: pl.LightningModule, params: list[tuple[str, torch.nn.Parameter]],
                **extra: Any) -> list[dict[str, Any]]:
        """One group, or two when the LightningModule lists `no_decay` name fragments (FTS's convention:
        the second group holds the matching parameters with `weight_decay = 0`). A FlatParameter, one object
        for several names, is listed once and cannot be split by name: there `no_decay` is ignored, with one
        warning (as FTS does)."""
        from ftsc.lightning.fsdp1 import is_flat_param

        no_decay = getattr(pl_module, "no_decay", None)
        if no_decay and any(is_flat_param(p) for _, p in params):
            if not self._no_decay_warned:
                log.warning("ftsc: `no_decay` (%s) is ignored: FSDP with use_orig_params=False flattens parameters "
                            "into FlatParameters, which cannot be split by name.", no_decay)
                self._no_decay_warned = True
            no_decay = None
        if not no_decay:
            return [{"params": _unique(p for _, p in params), **extra}]
        return [{"params": [p for n, p in params if not any(nd in n for nd in no_decay)], **extra},
                {"params": [p for n, p in params if any(nd in n for nd in no_decay)], "weight_decay": 0.0, **extra}]

    _no_decay_warned = False

    def _add_group(self, trainer: pl.Trainer, pl_module: pl.LightningModule, names: list[str], lr: float) -> None:
        optimizer = trainer.optimizers[0]
        params = self._params(pl_module)
        present = {id(p) for g in optimizer.param_groups for p in g["params"]}
        new = [(n, params[n]) for n in names if id(params[n]) not in present and params[n].requires_grad]
        if not new:
            log.warning("ftsc: phase %d thaws no new parameters; no parameter group added.", self.curr_depth)
            return
        start_lr = lr
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if self.plan and self.plan.options.get("apply_lambdas_new_pgs") and getattr(sched, "lr_lambdas", None):
                start_lr = lr * sched.lr_lambdas[-1](sched.last_epoch)
        groups = self._groups(pl_module, new, lr=start_lr, initial_lr=start_lr)
        for group in groups:
            optimizer.add_param_group(group)
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.min_lrs.extend([sched.min_lrs[0]] * len(groups))
                continue
            if hasattr(sched, "base_lrs"):
                sched.base_lrs.extend([lr] * len(groups))
            if getattr(sched, "lr_lambdas", None):
                sched.lr_lambdas.extend([sched.lr_lambdas[-1]] * max(len(sched.base_lrs) - len(sched.lr_lambdas), 0))

    # -- hooks -----------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._trainer_ref = (trainer, pl_module)
        self.plan = self._load_schedule(pl_module)
        self.curr_depth = self._restored["depth"] if self._restored else 0
        self._thaw_through(pl_module, self.curr_depth)
        for es in self._early_stopping(trainer):
            es.final_phase = self.depth_remaining == 0
        self._sharding_from_strategy(trainer)
        self._setup_fsdp2(trainer, pl_module)
        self._setup_fsdp1(trainer, pl_module)

    def _sharding_from_strategy(self, trainer: pl.Trainer) -> None:
        """FTS users configure sharding on the strategy and in `strategy_adapter_cfg`; when the
        schedule has no sharding block, build it from there (the same IR `ftsc check` reads from
        a LightningCLI config)."""
        from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy

        from ftsc import ir

        schedule, cfg = self._schedule, self.strategy_adapter_cfg
        if isinstance(trainer.strategy, FSDPStrategy) and schedule.fsdp is None:
            policy = trainer.strategy.kwargs.get("auto_wrap_policy")
            classes = getattr(policy, "_module_classes", policy if isinstance(policy, (set, list, tuple)) else ())
            names = [f"{c.__module__}.{c.__qualname__}" for c in classes]
            settings = [ir.Setting(name="use_orig_params",
                                   value=ir.from_py(bool(trainer.strategy.kwargs.get("use_orig_params", True))))]
            if names:
                settings.append(ir.Setting(name="auto_wrap_policy", value=ir.from_py(names)))
            wrap = tuple(ir.Selector(kind=ir.SelectorKind.FTS, pattern=str(p)) for p in cfg.get("awp_overrides") or ())
            self._schedule = replace(schedule, fsdp=ir.FSDPConfig(settings=tuple(settings), wrap=wrap))
        elif isinstance(trainer.strategy, ModelParallelStrategy) and schedule.fsdp2 is None and cfg.get("fsdp_plan"):
            plan = tuple(ir.ShardEntry(selector=ir.Selector(kind=ir.SelectorKind.FTS, pattern=str(k)),
                                       kwargs=tuple(ir.Setting(name=n, value=ir.from_py(v))
                                                    for n, v in (kw or {}).items()) or None)
                         for k, kw in cfg["fsdp_plan"].items())
            defaults = cfg.get("fsdp_default_kwargs") or {}
            settings = (ir.Setting(name="fsdp_default_kwargs", value=ir.from_py(dict(defaults))),) if defaults else ()
            self._schedule = replace(schedule, fsdp2=ir.FSDP2Config(settings=settings, plan=plan))

    def _setup_fsdp1(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Under FSDPStrategy, wrap along the compiled plan in configure_model (the schedule's `fsdp`
        block, or FTS's `strategy_adapter_cfg.awp_overrides` on the strategy's own policy)."""
        from lightning.pytorch.strategies import FSDPStrategy

        schedule = self._schedule
        if schedule is None or schedule.fsdp is None or not isinstance(trainer.strategy, FSDPStrategy):
            return
        from ftsc.lightning.fsdp1 import spec_matches_strategy, wrap_configure_model
        from ftsc.shard import fsdp1_analysis

        analysis = fsdp1_analysis(schedule, self._graph)
        assert analysis is not None
        problems = spec_matches_strategy(analysis.spec, trainer.strategy)
        if problems:
            raise MisconfigurationException("the FSDP strategy contradicts the schedule's fsdp block: "
                                            + "; ".join(problems))
        if not analysis.spec.use_orig_params:  # FTS301, for a plan built from the strategy (not analyzed)
            from ftsc.fix.search import mixed_units

            phase_of = {n: d for d, phase in enumerate(self.plan.phases) for n in phase.params}  # type: ignore[union-attr]
            mixed = [u.name or "<root>" for u in mixed_units(analysis.prediction, phase_of.get)]
            if mixed:
                raise MisconfigurationException(
                    "with use_orig_params=False a FlatParameter is thawed whole, but these FSDP units hold "
                    "parameters of several phases (or never-thawed ones): " + ", ".join(mixed)
                    + "; `ftsc check` gives the `awp_overrides` that fix it (FTS301)")
        if not analysis.spec.use_orig_params:
            from ftsc.lightning.fsdp1 import save_optimizer_state_by_name

            save_optimizer_state_by_name(trainer.strategy)
        self._fsdp1 = analysis
        wrap_configure_model(pl_module, analysis.spec)

    def _verify_fsdp1(self, pl_module: pl.LightningModule) -> None:
        """Compare the real FlatParameters with the prediction (`verify_sharding`)."""
        if self._fsdp1 is None or self.verify_sharding == "off":
            return
        from ftsc.lightning.fsdp1 import real_units

        predicted = {u.name: list(u.params) for u in self._fsdp1.prediction.units}
        self._report_sharding("FSDP units", predicted, real_units(pl_module, dict(self._graph.aliases)))

    def _report_sharding(self, what: str, predicted: dict[str, list[str]], real: dict[str, list[str]]) -> None:
        """Stop the run (or warn, per `verify_sharding`) when the real units/groups differ from the prediction."""
        from ftsc.shard import compare_units

        problems = compare_units(predicted, real)
        if not problems:
            log.info("ftsc: the %d %s match the prediction", len(predicted), what)
            return
        text = f"the {what} differ from ftsc's prediction:\n  " + "\n  ".join(problems)
        if self.verify_sharding == "error":
            raise MisconfigurationException(text)
        log.warning("ftsc: %s", text)

    _fsdp1: Any = None

    def _setup_fsdp2(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Under ModelParallelStrategy, apply the schedule's `fsdp2` plan after the user's configure_model."""
        from lightning.pytorch.strategies import ModelParallelStrategy

        schedule = self._schedule
        if schedule is None or schedule.fsdp2 is None or not isinstance(trainer.strategy, ModelParallelStrategy):
            return
        from ftsc.lightning.fsdp2 import wrap_configure_model
        from ftsc.shard import fsdp2_analysis

        analysis = fsdp2_analysis(schedule, self._graph)
        assert analysis is not None
        defaults_setting = schedule.fsdp2.setting("fsdp_default_kwargs")
        defaults = dict(defaults_setting.value.py()) if defaults_setting else {}
        plan = [(m, {**defaults, **{s.name: s.value.py() for s in analysis.entry_of[m].kwargs or ()}})
                for m in analysis.plan]
        self._fsdp2_plan = plan
        strategy = trainer.strategy
        wrap_configure_model(pl_module, plan, lambda: strategy.device_mesh["data_parallel"], self._user_shard_calls)

    def _verify_fsdp2(self, pl_module: pl.LightningModule) -> None:
        """Compare the real fully_shard groups with the prediction (`verify_sharding`)."""
        if self._fsdp2_plan is None or self.verify_sharding == "off":
            return
        from ftsc.lightning.fsdp2 import real_groups
        from ftsc.shard.fsdp2 import predict2

        predicted = predict2(self._graph, [m for m, _ in self._fsdp2_plan], self._user_shard_calls)
        self._report_sharding("fully_shard groups", {g.name: list(g.params) for g in predicted.groups},
                              real_groups(pl_module))

    _schedule: Any = None
    _graph: Any = None
    _base_optimizer: torch.optim.Optimizer | None = None
    _base_schedulers: list[Any] | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if len(trainer.optimizers) != 1:
            raise MisconfigurationException("ftsc.lightning supports exactly one optimizer")
        self._base_optimizer = trainer.optimizers[0]
        self._base_schedulers = list(trainer.lr_scheduler_configs)
        self._verify_fsdp2(pl_module)
        self._verify_fsdp1(pl_module)
        if self._restored is not None:
            self._apply_restored_groups(trainer, pl_module)
        else:
            self._enforce_phase0(trainer, pl_module)
        if trainer.strategy.restore_checkpoint_after_setup:
            self._hook_late_restore(trainer, pl_module)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restored = None  # applied; a later fit without ckpt_path starts afresh

    def _hook_late_restore(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """FSDP strategies (FSDP1 and ModelParallelStrategy) load a checkpoint only after `on_fit_start`, the
        optimizer state inside their `load_checkpoint` and the callbacks' state after that. Read this callback's
        state from the checkpoint just before that load and give the optimizer the groups it was saved with, so
        the optimizer state lands in the right groups and the run resumes in the checkpoint's phase."""
        from lightning.pytorch.trainer.states import TrainerFn

        strategy = trainer.strategy
        original = getattr(strategy.load_checkpoint, "ftsc_original", strategy.load_checkpoint)

        def load_checkpoint(checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:
            if not self._loading_best and trainer.state.fn == TrainerFn.FITTING:
                state = self._checkpoint_state(checkpoint_path)
                if state:
                    self.load_state_dict(state)
                    self._apply_restored_groups(trainer, pl_module)
            return original(checkpoint_path, *args, **kwargs)

        load_checkpoint.ftsc_original = original  # type: ignore[attr-defined]
        strategy.load_checkpoint = load_checkpoint  # type: ignore[method-assign]

    def _checkpoint_state(self, path: Any) -> dict[str, Any]:
        """This callback's state in a checkpoint file or sharded checkpoint directory, without its tensors."""
        from lightning.fabric.utilities.load import _METADATA_FILENAME

        path = Path(path)
        if path.is_dir():  # sharded: everything but the model and optimizer shards is in the metadata file
            ckpt = torch.load(path / _METADATA_FILENAME, map_location="cpu", weights_only=False)
        else:
            ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        state = ckpt.get("callbacks", {}).get(self.state_key) or {}
        return self._from_fts_state(state) if "fts_metadata" in state else state

    def _early_stopping(self, trainer: pl.Trainer) -> list[FTSEarlyStopping]:
        return [c for c in trainer.callbacks if isinstance(c, FTSEarlyStopping)]  # type: ignore[attr-defined]

    def _should_transition(self, trainer: pl.Trainer) -> bool:
        assert self.plan is not None
        if self.depth_remaining == 0:
            return False
        phase = self.plan.phases[self.curr_depth]
        by_epoch = phase.epoch is not None and 0 <= phase.epoch <= trainer.current_epoch
        plateau = phase.plateau and any(es.es_phase_complete for es in self._early_stopping(trainer))
        if phase.plateau:  # every rank must agree before parameters change
            plateau = trainer.strategy.reduce_boolean_decision(plateau, all=False)
        return by_epoch or plateau

    def _rebuild_optimizer(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           saved_groups: list[dict[str, Any]], depth: int) -> None:
        """Give the optimizer (and scheduler) the classes and groups a checkpoint at `depth` was saved with."""
        params = self._params(pl_module)
        unknown = [n for g in saved_groups for n in g["params"] if n not in params]
        if unknown:
            raise MisconfigurationException(
                f"the checkpoint's optimizer holds parameters this model does not have: {', '.join(unknown[:5])}"
                + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""))
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": _unique(params[n] for n in g["params"])}
                  for g in saved_groups]
        # The optimizer / scheduler in the checkpoint are those of the last re-initialisation up to this
        # phase, not the ones configure_optimizers built: rebuild those classes before Lightning loads
        # their state (FTS fails here with `KeyError: 'momentum'` after an optimizer reinit).
        opt_cfg = next((c for d in range(depth, 0, -1) if (c := self._reinit_cfg(d, "optimizer"))), None)
        if opt_cfg:
            optimizer = self._install_optimizer(trainer, opt_cfg, groups)
        else:  # the optimizer configure_optimizers built (a later reinit may have replaced it since)
            optimizer = self._base_optimizer or trainer.optimizers[0]
            optimizer.param_groups.clear()
            optimizer.state.clear()
            for group in groups:
                optimizer.add_param_group(group)
            if trainer.optimizers[0] is not optimizer:
                trainer.strategy.optimizers = [optimizer]
        lrs_cfg = next((c for d in range(depth, 0, -1) if (c := self._reinit_cfg(d, "lr_scheduler"))), None)
        if lrs_cfg:
            self._reinit_lr_scheduler(trainer, {k: v for k, v in lrs_cfg.items() if k != "init_pg_lrs"})
        elif self._base_schedulers is not None:
            trainer.strategy.lr_scheduler_configs = list(self._base_schedulers)
        for config in trainer.lr_scheduler_configs:
            config.scheduler.optimizer = optimizer
        self._reset_schedulers(trainer)

    def _restore_best(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> int | None:
        """Load the best checkpoint's weights, optimizer and scheduler; returns its phase (None: nothing to load)."""
        path = getattr(trainer.checkpoint_callback, "best_model_path", "") or ""
        if not path:
            log.warning("ftsc: restore_best is set but no best checkpoint exists yet; continuing from the current "
                        "weights.")
            return None
        trainer.strategy.barrier("ftsc_restore_best")
        state = self._checkpoint_state(path)
        if not state:
            raise MisconfigurationException(f"restore_best: {path} holds no ftsc schedule state")
        best = int(state["depth"])
        self._thaw_through(pl_module, best)
        # First the checkpoint's groups, then the load: FSDP strategies load the optimizer state inside
        # `load_checkpoint`, into the optimizer they hold; the others in `load_optimizer_state_dict`.
        self._rebuild_optimizer(trainer, pl_module, state["param_groups"], best)
        self._loading_best = True
        try:
            ckpt = trainer.strategy.load_checkpoint(path)
        finally:
            self._loading_best = False
        trainer.strategy.load_model_state_dict(ckpt)
        trainer.strategy.load_optimizer_state_dict(ckpt)
        for config, sched_state in zip(trainer.lr_scheduler_configs, ckpt.get("lr_schedulers", []), strict=False):
            config.scheduler.load_state_dict(sched_state)
        return best

    # -- re-initialisation (FTS `new_optimizer` / `new_lr_scheduler`) ---------------------------------
    def _reinit_cfg(self, depth: int, kind: str) -> dict[str, Any] | None:
        """The optimizer / lr-scheduler reinit directive in force at `depth` (implicit configs win, as in FTS)."""
        assert self.plan is not None
        if depth == 0:
            return None
        if kind == "optimizer":
            implicit = self.reinit_optim_cfg and self.reinit_optim_cfg.get("optimizer_init")
            return dict(implicit) if implicit else self.plan.phases[depth].new_optimizer
        implicit = self.reinit_lr_cfg
        if implicit:
            init = implicit.get("lr_scheduler_init", {})
            return {"class_path": init.get("class_path"), "init_args": dict(init.get("init_args", {})),
                    **{k: v for k, v in implicit.items() if k != "lr_scheduler_init"}}
        return self.plan.phases[depth].new_lr_scheduler

    @staticmethod
    def _import_class(class_path: str) -> type:
        import importlib

        module, _, name = class_path.rpartition(".")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as err:
            raise MisconfigurationException(f"cannot import `{class_path}` for re-initialisation: {err}") from None

    def _reinit_optimizer(self, trainer: pl.Trainer, pl_module: pl.LightningModule, cfg: dict[str, Any],
                          names: list[str]) -> torch.optim.Optimizer:
        params = self._params(pl_module)
        optimizer = self._install_optimizer(trainer, cfg, self._groups(pl_module, [(n, params[n]) for n in names]))
        for group in optimizer.param_groups:
            group["initial_lr"] = group.get("initial_lr", group["lr"])
        return optimizer

    def _install_optimizer(self, trainer: pl.Trainer, cfg: dict[str, Any],
                           groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        """An optimizer of the re-initialisation directive `cfg` over `groups`, now the run's optimizer."""
        optimizer = self._import_class(cfg["class_path"])(groups, **cfg.get("init_args", {}))
        trainer.strategy.optimizers = [optimizer]
        for config in trainer.lr_scheduler_configs:
            config.scheduler.optimizer = optimizer
        return optimizer

    def _reinit_lr_scheduler(self, trainer: pl.Trainer, cfg: dict[str, Any]) -> None:
        from lightning.pytorch.utilities.types import LRSchedulerConfig

        optimizer = trainer.optimizers[0]
        key = "lr" if cfg.get("use_current_optimizer_pg_lrs") else "initial_lr"
        current = [g.get(key, g["lr"]) for g in optimizer.param_groups]
        given = cfg.get("init_pg_lrs")
        for group, lr in zip(optimizer.param_groups, given or current, strict=False):
            group["lr"] = float(lr)
            if given:
                group["initial_lr"] = float(lr)
        cls = self._import_class(cfg["class_path"])
        pl_cfg = dict(cfg.get("pl_lrs_cfg") or {})
        if issubclass(cls, torch.optim.lr_scheduler.ReduceLROnPlateau):
            pl_cfg.setdefault("reduce_on_plateau", True)
            if not pl_cfg.get("monitor"):
                raise MisconfigurationException("a ReduceLROnPlateau re-initialisation needs `pl_lrs_cfg.monitor`")
        trainer.strategy.lr_scheduler_configs = [
            LRSchedulerConfig(scheduler=cls(optimizer=optimizer, **cfg.get("init_args", {})), **pl_cfg)]

    def _save_lr_state(self, trainer: pl.Trainer) -> tuple[dict[str, Any], list[float]]:
        import copy

        state = copy.deepcopy(trainer.lr_scheduler_configs[0].scheduler.state_dict()) \
            if trainer.lr_scheduler_configs else {}
        return state, [g["lr"] for g in trainer.optimizers[0].param_groups]

    def _restore_lr_state(self, trainer: pl.Trainer, state: dict[str, Any], lrs: list[float]) -> None:
        for config in trainer.lr_scheduler_configs:
            config.scheduler.load_state_dict(state)
        for group, lr in zip(trainer.optimizers[0].param_groups, lrs, strict=False):
            group["lr"] = lr

    def _add_phase(self, trainer: pl.Trainer, pl_module: pl.LightningModule, i: int, target: int,
                   pre: tuple[dict[str, Any], list[float]]) -> None:
        """Thaw phase `i` and add its groups; at the target phase first restore the latest lr state (the
        schedule of existing groups continues), and afterwards re-initialise the lr scheduler if asked."""
        assert self.plan is not None
        phase = self.plan.phases[i]
        names = self._thaw(pl_module, i)
        if i == target and target > 0:
            self._restore_lr_state(trainer, *pre)
        lr = float(phase.lr if phase.lr is not None else trainer.optimizers[0].defaults["lr"])
        self._add_group(trainer, pl_module, names, lr)
        cfg = self._reinit_cfg(i, "lr_scheduler") if target > 0 else None
        if cfg:
            self._reinit_lr_scheduler(trainer, cfg)

    @staticmethod
    def _reshard_fsdp2(pl_module: pl.LightningModule) -> None:
        """Register the sharded DTensor parameters again: an FSDP2 root keeps its unsharded plain
        tensors registered after forward (it does not reshard there), and thawing or adding those to
        the optimizer would act on the wrong tensors."""
        try:
            from torch.distributed.fsdp import FSDPModule
        except ImportError:  # pragma: no cover
            return
        for module in pl_module.modules():
            if isinstance(module, FSDPModule):
                module.reshard()

    def _transition(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert self.plan is not None
        self._reshard_fsdp2(pl_module)
        pre = self._save_lr_state(trainer)
        self.curr_depth += 1
        depth = self.curr_depth
        restored = self._restore_best(trainer, pl_module) if self.plan.options.get("restore_best") else None
        # An optimizer reinit in this phase, or in a phase replayed after restoring an older checkpoint
        # (FTS only looks at the new phase and trains on with the restored optimizer class).
        replayed = range(depth if restored is None else restored + 1, depth + 1)
        new_optimizer = next((c for d in reversed(replayed) if (c := self._reinit_cfg(d, "optimizer"))), None)
        if new_optimizer:  # replay every phase into a fresh optimizer
            self._reinit_optimizer(trainer, pl_module, new_optimizer, self._thaw(pl_module, 0))
            for i in range(1, depth + 1):
                self._add_phase(trainer, pl_module, i, depth, pre)
        else:  # the phases after the restored one (only the new phase without restore_best)
            for i in replayed:
                self._add_phase(trainer, pl_module, i, depth, pre)
        self._resync_ddp(trainer)
        for es in self._early_stopping(trainer):
            es.es_phase_complete = False
            es.wait_count = 0
            es.final_phase = self.depth_remaining == 0
        log.info("ftsc: fine-tuning continues in phase %d.", self.curr_depth)

    @staticmethod
    def _resync_ddp(trainer: pl.Trainer) -> None:
        """Rebuild the DDP wrapper so its reducer covers the parameters thawed after wrapping.

        DDP decides once, when it wraps the model, which parameters' gradients it all-reduces:
        those that require grad then. Parameters thawed later would train unsynchronized and the
        replicas would drift apart (what happens under FTS). Re-wrapping also broadcasts rank 0's
        module state, which the replicas already share.
        """
        from lightning.pytorch.strategies import DDPStrategy
        from torch.nn.parallel import DistributedDataParallel

        strategy = trainer.strategy
        if not isinstance(strategy, DDPStrategy) or not isinstance(strategy.model, DistributedDataParallel):
            return
        module = strategy.model.module
        strategy.model = None  # drop the old reducer (and its autograd hooks) before wrapping again
        strategy.model = strategy._setup_model(module)
        strategy._register_ddp_hooks()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._should_transition(trainer):
            self._transition(trainer, pl_module)
        if self.log_phase:
            pl_module.log("finetuning_phase", float(self.curr_depth), on_step=False, on_epoch=True)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        assert self.plan is not None
        phase = self.plan.phases[self.curr_depth]
        if self.depth_remaining and phase.step is not None and trainer.global_step >= phase.step:
            self._transition(trainer, pl_module)

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.plan is None or self._trainer_ref is None:
            return {}
        trainer, pl_module = self._trainer_ref
        groups = []
        if trainer.optimizers:
            optimizer = trainer.optimizers[0]
            names = self._group_names(pl_module, optimizer)
            for g, n in zip(optimizer.param_groups, names, strict=True):
                groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": n})
        return {"version": STATE_VERSION, "fingerprint": self.plan.fingerprint(), "depth": self.curr_depth,
                "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        if "fts_metadata" in state_dict:  # a checkpoint written by finetuning-scheduler (FTS) itself
            state_dict = self._from_fts_state(state_dict)
        if state_dict.get("version") != STATE_VERSION:
            raise MisconfigurationException(f"unsupported ftsc checkpoint state version {state_dict.get('version')}")
        self._restored = state_dict

    @staticmethod
    def _from_fts_state(state: dict[str, Any]) -> dict[str, Any]:
        """FTS's callback state as ftsc's: FTS records the current phase and, per optimizer, the parameter
        groups with parameter names, which is all a resume needs. It records no schedule fingerprint."""
        from ftsc.lightning.fsdp1 import clean

        depth = (state.get("fts_metadata") or {}).get("current_ckpt_depth")
        groups = (state.get("internal_optimizer_metadata") or {}).get(0)
        if depth is None or groups is None:
            raise MisconfigurationException("this finetuning-scheduler checkpoint holds no phase or parameter groups "
                                            "(`fts_metadata.current_ckpt_depth`, `internal_optimizer_metadata`)")
        return {"version": STATE_VERSION, "fingerprint": None, "depth": int(depth),
                "param_groups": [{**g, "params": [clean(n) for n in g["params"]]} for g in groups]}

    _trainer_ref: tuple[pl.Trainer, pl.LightningModule] | None = None

    def _apply_restored_groups(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert self._restored is not None and self.plan is not None
        if self._restored["fingerprint"] is None:
            log.warning("ftsc: resuming a finetuning-scheduler checkpoint (phase %d); it records no schedule "
                        "fingerprint, so ftsc assumes it was trained with this schedule.", self._restored["depth"])
        elif self._restored["fingerprint"] != self.plan.fingerprint():
            raise MisconfigurationException(
                f"this checkpoint was written by a run with a different fine-tuning schedule or options (fingerprint "
                f"{self._restored['fingerprint']}, now {self.plan.fingerprint()}); resume with the schedule it was "
                "trained with, or start a new fit without ckpt_path")
        depth = int(self._restored["depth"])
        if depth != self.curr_depth:  # load_state_dict ran after setup (strategies that restore late)
            self.curr_depth = depth
            self._thaw_through(pl_module, depth)
        self._rebuild_optimizer(trainer, pl_module, self._restored["param_groups"], depth)
        self._reset_schedulers(trainer)
        for es in self._early_stopping(trainer):
            es.final_phase = self.depth_remaining == 0
