"""FinetuningScheduler: the Lightning callback that executes a compiled schedule, hook by hook.

Input: a schedule (`.ftsc`, FTS YAML, a dict in FTS's format, or none for FTS's implicit
schedule) and FinetuningScheduler's constructor options. Output: training that freezes
everything, thaws phase 0, and at each transition thaws the next phase and adds its parameter
group with the phase lr. Imports torch and lightning (this is the runtime).

- `setup`: compile the schedule against the live module (`schedule.compile_schedule`, the
  pipeline of `ftsc check`; every rank agrees on the verdict), write the resolved schedule
  where FTS writes it, arrange the early-stopping / checkpoint callbacks (`deps`), freeze all
  parameters, thaw phase 0 (or the checkpoint's phase), and let the strategy layer wrap.
- `on_fit_start`: check the sharding, print the plan, give the optimizer exactly phase 0's
  parameters (or the groups a checkpoint was saved with, validated first).
- `on_train_epoch_start` / `on_train_batch_end`: ask `transitions` whether the phase ends, and
  transition (`optim` does the optimizer surgery, `strategies` re-synchronises).
- `state_dict` / `load_state_dict`: the phase, the groups by FQN and the plan's fingerprint
  (`checkpoint`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from ftsc.diagnostics.render import render_concise
from ftsc.lightning import _private, checkpoint, options, transitions
from ftsc.lightning.early_stopping import FTSEarlyStopping
from ftsc.lightning.optim import OptimizerSurgery
from ftsc.lightning.params import logical_params, numel, thaw_through
from ftsc.lightning.report import LOGGER, plan_table, transition_line
from ftsc.lightning.strategies import Sharding, agree, kind_of, sharding_for
from ftsc.lower.runtime import RuntimePlan

log = logging.getLogger(LOGGER)


class FinetuningScheduler(Callback):
    """Gradual unfreezing driven by an ftsc schedule; FinetuningScheduler's options and names.

    Args:
        ft_schedule: path to a `.ftsc` or FTS YAML schedule, a dict in FTS's format, or None for
            FTS's implicit schedule (reverse registration order, two parameters per phase).
        max_depth: deepest phase to run (-1: all).
        base_max_lr: lr of phases >= 1 that give none.
        restore_best: at each transition, load the best checkpoint of the Trainer's checkpoint callback.
        gen_ft_sched_only: write the resolved schedule to `log_dir` and exit (`SystemExit(0)`) at setup.
        epoch_transitions_only: phases end by epoch only (no plateau transitions, no early stopping).
        reinit_optim_cfg, reinit_lr_cfg: schedule-wide optimizer / lr-scheduler re-initialisation.
        strategy_adapter_cfg: FTS's sharding settings (`awp_overrides`, `fsdp_plan`, `fsdp_default_kwargs`).
        custom_strategy_adapters: refused (ftsc has its own strategy layer).
        allow_untested: run under a strategy other than single-device, DDP, FSDP and ModelParallel.
        apply_lambdas_new_pgs: new groups start at `lr * lr_lambda(last_epoch)` of a lambda scheduler.
        logging_level: level of the `lightning.pytorch.ftsc` logger (plan table and transition lines at INFO).
        enforce_phase0_params: rebuild the optimizer so it holds exactly phase 0's parameters.
        frozen_bn_track_running_stats: frozen BatchNorm layers keep updating running stats.
        log_dir: where the resolved schedule is written (default: the Trainer's log_dir).
        log_phase: log the current phase as the metric `finetuning_phase`.
        verify_sharding: at fit start, compare the real FSDP1 units / FSDP2 groups with ftsc's prediction and
            `"error"` (default), `"warn"` or do nothing (`"off"`) on a difference.

    Raises:
        MisconfigurationException: for an option value the runtime refuses (as `ftsc check` refuses it).
    """

    def __init__(self, ft_schedule: str | Path | dict | None = None, max_depth: int = -1,
                 base_max_lr: float = 1e-5, restore_best: bool = True, gen_ft_sched_only: bool = False,
                 epoch_transitions_only: bool = False, reinit_optim_cfg: dict | None = None,
                 reinit_lr_cfg: dict | None = None, strategy_adapter_cfg: dict | None = None,
                 custom_strategy_adapters: dict | None = None, allow_untested: bool = False,
                 apply_lambdas_new_pgs: bool = False, logging_level: int | str = logging.INFO,
                 enforce_phase0_params: bool = True, frozen_bn_track_running_stats: bool = True,
                 log_dir: str | Path | None = None, log_phase: bool = True,
                 verify_sharding: str = "error") -> None:
        super().__init__()
        values = {"max_depth": max_depth, "base_max_lr": base_max_lr, "restore_best": restore_best,
                  "epoch_transitions_only": epoch_transitions_only, "enforce_phase0_params": enforce_phase0_params,
                  "frozen_bn_track_running_stats": frozen_bn_track_running_stats,
                  "apply_lambdas_new_pgs": apply_lambdas_new_pgs, "allow_untested": allow_untested,
                  "gen_ft_sched_only": gen_ft_sched_only, "logging_level": logging_level, "log_dir": log_dir,
                  "custom_strategy_adapters": custom_strategy_adapters, "verify_sharding": verify_sharding,
                  "reinit_optim_cfg": reinit_optim_cfg, "reinit_lr_cfg": reinit_lr_cfg,
                  "strategy_adapter_cfg": strategy_adapter_cfg}
        try:
            options.validate(values)
        except options.OptionError as err:
            raise MisconfigurationException(str(err)) from None
        self.ft_schedule = ft_schedule
        self.options = {k: values[k] for k in options.PLAN_OPTIONS}
        self.allow_untested, self.gen_ft_sched_only, self.log_dir = allow_untested, gen_ft_sched_only, log_dir
        self.reinit_optim_cfg, self.reinit_lr_cfg = reinit_optim_cfg, reinit_lr_cfg
        self.strategy_adapter_cfg = strategy_adapter_cfg or {}
        self.logging_level = options.logging_level(logging_level)
        self.log_phase, self.verify_sharding = log_phase, verify_sharding
        self.plan: RuntimePlan | None = None
        self.curr_depth = 0
        self.diagnostics: tuple[Any, ...] = ()
        self.schedule_file: Path | None = None
        self._compiled: Any = None
        self._sharding: Sharding | None = None
        self._surgery: OptimizerSurgery | None = None
        self._restored: checkpoint.SavedState | None = None
        self._loading_best = False
        self._trainer_ref: tuple[pl.Trainer, pl.LightningModule] | None = None

    # -- state ---------------------------------------------------------------------------------------
    @property
    def max_depth(self) -> int:
        """The deepest phase this run executes."""
        assert self.plan is not None
        return self.plan.last_depth

    @property
    def depth_remaining(self) -> int:
        """Phases left after the current one."""
        return max(self.max_depth - self.curr_depth, 0)

    @property
    def restore_best_requested(self) -> bool:
        """Whether transitions load the best checkpoint (the plan's option once compiled)."""
        return bool((self.plan.options if self.plan else self.options).get("restore_best"))

    def _early_stopping(self, trainer: pl.Trainer) -> list[FTSEarlyStopping]:
        return [c for c in trainer.callbacks if isinstance(c, FTSEarlyStopping)]  # type: ignore[attr-defined]

    def _enter_phase(self, trainer: pl.Trainer) -> None:
        """Give the early-stopping callbacks the current phase's settings and final-phase flag."""
        assert self.plan is not None
        phase = self.plan.phases[self.curr_depth]
        for es in self._early_stopping(trainer):
            es.use_settings(transitions.plateau_config(es.base_settings, phase))
            es.final_phase = self.depth_remaining == 0

    # -- setup ---------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        from ftsc.lightning import deps
        from ftsc.lightning.schedule import compile_schedule, schedule_path, write_schedule

        log.setLevel(self.logging_level)
        self._trainer_ref = (trainer, pl_module)
        problem = None
        try:
            if kind_of(trainer.strategy) is None and not self.allow_untested:
                raise MisconfigurationException(
                    f"ftsc has not been tested with {type(trainer.strategy).__name__}; use a single device, DDP, "
                    "FSDPStrategy or ModelParallelStrategy, or pass allow_untested=True to try it")
            self._compiled = compile_schedule(self.ft_schedule, options.settings(self.options), pl_module,
                                              trainer.strategy, self.strategy_adapter_cfg)
            for phase in self._compiled.plan.phases:  # a per-phase setting the runtime cannot apply
                transitions.plateau_config({}, phase)
        except (MisconfigurationException, ValueError) as err:
            problem = str(err)
        problem = agree(trainer, problem)
        if problem:
            raise MisconfigurationException(problem)
        compiled = self._compiled
        self.plan, self.diagnostics = compiled.plan, compiled.diagnostics
        for d in self.diagnostics:
            rank_zero_warn(f"ftsc: {render_concise([d]).strip()}")
        self.schedule_file = schedule_path(self.log_dir, trainer, pl_module)
        if trainer.is_global_zero:
            write_schedule(compiled, self.schedule_file)
            log.info("ftsc: resolved fine-tuning schedule written to %s", self.schedule_file)
        if self.gen_ft_sched_only:
            trainer.strategy.barrier("ftsc_gen_ft_sched_only")
            raise SystemExit(0)
        self._surgery = OptimizerSurgery(self.plan, self.reinit_optim_cfg, self.reinit_lr_cfg, log)
        deps.arrange(trainer, pl_module, self.plan, stage)
        self.curr_depth = self._restored.depth if self._restored else 0
        if not 0 <= self.curr_depth <= self.plan.last_depth:
            self.curr_depth = 0  # refused with a clear error when the state is applied (on_fit_start)
        thaw_through(pl_module, self.plan, self.curr_depth)
        self._enter_phase(trainer)
        self._sharding = sharding_for(trainer, compiled.schedule, compiled.graph, self.plan, self.verify_sharding)
        self._sharding.setup(trainer, pl_module)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if len(trainer.optimizers) != 1:
            raise MisconfigurationException("ftsc.lightning supports exactly one optimizer")
        assert self._surgery is not None and self._sharding is not None
        self._surgery.remember(trainer)
        verdict = self._sharding.self_check(pl_module)
        if self._restored is not None:
            self._apply_restored(trainer, pl_module)
        elif self._surgery.enforce_phase0(trainer, pl_module):
            log.info("ftsc: the optimizer now holds exactly the %d phase 0 parameters.",
                     len(self.plan.phases[0].params))  # type: ignore[union-attr]
        if trainer.strategy.restore_checkpoint_after_setup:
            self._hook_late_restore(trainer, pl_module)
        if trainer.is_global_zero:
            log.info("%s", self._plan_table(trainer, verdict))

    def _plan_table(self, trainer: pl.Trainer, verdict: str) -> str:
        assert self.plan is not None and self._compiled is not None
        graph = self._compiled.graph
        counts = [(len(p.params), sum(graph.numel(n) for n in p.params)) for p in self.plan.phases]
        es = self._early_stopping(trainer)
        base = es[0].base_settings if es else {}
        return plan_table(self.plan, counts, trainer.optimizers[0].defaults.get("lr"), base.get("monitor"),
                          base.get("patience"), self._compiled.name, verdict)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restored = None  # applied; a later fit without ckpt_path starts afresh

    # -- transitions ---------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert self.plan is not None
        phase = self.plan.phases[self.curr_depth]
        es = self._early_stopping(trainer)
        plateau = phase.plateau and any(e.es_phase_complete for e in es)
        if phase.plateau and self.depth_remaining:  # every rank must agree before parameters change
            plateau = trainer.strategy.reduce_boolean_decision(plateau, all=False)
        info = (es[0].monitor, es[0].patience) if es else None
        t = transitions.at_epoch_start(phase, self.depth_remaining, trainer.current_epoch, trainer.global_step,
                                       plateau, info)
        if t is not None:
            self._transition(trainer, pl_module, t)
        if self.log_phase:
            pl_module.log("finetuning_phase", float(self.curr_depth), on_step=False, on_epoch=True)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        assert self.plan is not None
        t = transitions.at_step(self.plan.phases[self.curr_depth], self.depth_remaining, trainer.current_epoch,
                                trainer.global_step)
        if t is not None:
            self._transition(trainer, pl_module, t)

    def _transition(self, trainer: pl.Trainer, pl_module: pl.LightningModule, t: transitions.Transition) -> None:
        assert self.plan is not None and self._surgery is not None and self._sharding is not None
        self._sharding.before_change(pl_module)
        pre = self._surgery.save_lr_state(trainer)
        old = self.curr_depth
        self.curr_depth += 1
        restored = self._restore_best(trainer, pl_module) if self.plan.options.get("restore_best") else None
        names, lrs = self._surgery.advance(trainer, pl_module, self.curr_depth,
                                           None if restored is None else restored[1], pre)
        self._sharding.after_thaw(trainer)
        if _private.compiled_with_dynamo(pl_module):  # a thawed parameter changes the compiled graphs
            _private.dynamo_reset()
        for es in self._early_stopping(trainer):
            es.es_phase_complete = False
            es.wait_count = 0
        self._enter_phase(trainer)
        if trainer.is_global_zero:
            log.info("%s", transition_line(t, old, self.curr_depth, names, numel(pl_module, names), lrs, restored))

    def _restore_best(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[str, int] | None:
        """Load the best checkpoint's weights, optimizer and scheduler; returns (its path, its phase)."""
        assert self.plan is not None and self._surgery is not None
        path = getattr(trainer.checkpoint_callback, "best_model_path", "") or ""
        if not path:
            log.warning("ftsc: restore_best is set but no best checkpoint exists yet; continuing from the current "
                        "weights.")
            return None
        trainer.strategy.barrier("ftsc_restore_best")
        saved = self._validated(trainer, pl_module, checkpoint.state_in_file(path, self.state_key), f"`{path}`")
        thaw_through(pl_module, self.plan, saved.depth)
        # First the checkpoint's groups, then the load: FSDP strategies load the optimizer state inside
        # `load_checkpoint`, into the optimizer they hold; the others in `load_optimizer_state_dict`.
        self._surgery.rebuild(trainer, pl_module, saved.param_groups, saved.depth)
        self._loading_best = True
        try:
            ckpt = trainer.strategy.load_checkpoint(path)
        finally:
            self._loading_best = False
        trainer.strategy.load_model_state_dict(ckpt)
        trainer.strategy.load_optimizer_state_dict(ckpt)
        for config, sched_state in zip(trainer.lr_scheduler_configs, ckpt.get("lr_schedulers", []), strict=False):
            config.scheduler.load_state_dict(sched_state)
        return Path(path).name, saved.depth

    # -- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.plan is None or self._trainer_ref is None:
            return {}
        trainer, pl_module = self._trainer_ref
        groups = []
        if trainer.optimizers:
            optimizer = trainer.optimizers[0]
            for g, n in zip(optimizer.param_groups, OptimizerSurgery.group_names(pl_module, optimizer), strict=True):
                groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": n})
        return checkpoint.SavedState(self.curr_depth, tuple(groups), self.plan.fingerprint()).to_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            self._restored = checkpoint.parse_state(state_dict)

    def _validated(self, trainer: pl.Trainer, pl_module: pl.LightningModule, state: dict[str, Any] |
                   checkpoint.SavedState, where: str = "the checkpoint") -> checkpoint.SavedState:
        """A checkpoint's state checked against this run on every rank before anything is restored."""
        assert self.plan is not None
        problem = None
        saved = None
        try:
            saved = state if isinstance(state, checkpoint.SavedState) else checkpoint.parse_state(state, where)
            problems = checkpoint.check_against(saved, self.plan, set(logical_params(pl_module)), where)
            problem = "; ".join(problems) or None
        except MisconfigurationException as err:
            problem = str(err)
        problem = agree(trainer, problem)
        if problem:
            raise MisconfigurationException(f"cannot restore the fine-tuning state: {problem}")
        assert saved is not None
        if saved.fingerprint is None:
            rank_zero_warn(f"ftsc: resuming a finetuning-scheduler checkpoint (phase {saved.depth}); it records no "
                           "schedule fingerprint, so ftsc assumes it was trained with this schedule.")
        return saved

    def _apply_restored(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert self._restored is not None and self.plan is not None and self._surgery is not None
        saved = self._validated(trainer, pl_module, self._restored)
        if saved.depth != self.curr_depth:  # load_state_dict ran after setup (strategies that restore late)
            self.curr_depth = saved.depth
            thaw_through(pl_module, self.plan, saved.depth)
        self._surgery.rebuild(trainer, pl_module, saved.param_groups, saved.depth)
        self._surgery.reset_schedulers(trainer)
        self._enter_phase(trainer)

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
                state = checkpoint.state_in_file(checkpoint_path, self.state_key)
                if state:
                    self._restored = checkpoint.parse_state(state, f"`{checkpoint_path}`")
                    self._apply_restored(trainer, pl_module)
            return original(checkpoint_path, *args, **kwargs)

        load_checkpoint.ftsc_original = original  # type: ignore[attr-defined]
        strategy.load_checkpoint = load_checkpoint  # type: ignore[method-assign]
