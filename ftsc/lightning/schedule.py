"""The schedule a run executes: read, checked against the live module, lowered, and written out.

Input: the callback's `ft_schedule` (a path, a dict in FTS's format, or None for FTS's implicit
schedule), the constructor options as IR settings, the LightningModule and the Trainer's strategy
with `strategy_adapter_cfg`. Output: a `Compiled` run (plan, schedule with sharding, graph,
diagnostics) through `ftsc.check.run_check`, the pipeline of `ftsc check`; and the resolved
schedule in FTS's YAML format where FinetuningScheduler writes its own
(`{log_dir}/{ModuleClass}_ft_schedule.yaml`). Imports torch (the module's parameters) and lightning.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from ftsc import ir
from ftsc.diagnostics import Diagnostic, Severity
from ftsc.lower.runtime import RuntimePlan


@dataclass(frozen=True, slots=True)
class Compiled:
    """A schedule ready to run.

    Attributes:
        plan: the lowered plan.
        schedule: the schedule IR with options and sharding merged (what the strategy layer reads).
        graph: the module's parameter graph.
        diagnostics: what the check reported (errors never: they raise), suppressions applied.
        name: the schedule's name for messages (its path, `<ft_schedule>` or `<implicit>`).
        implicit: True for FTS's implicit schedule (generated from the module).
    """

    plan: RuntimePlan
    schedule: ir.Schedule
    graph: Any
    diagnostics: tuple[Diagnostic, ...]
    name: str
    implicit: bool


def compile_schedule(ft_schedule: str | Path | dict | None, defaults: tuple[ir.Setting, ...], pl_module: Any,
                     strategy: Any, adapter_cfg: dict[str, Any]) -> Compiled:
    """Read, check and lower the schedule for `pl_module` under `strategy`.

    Raises:
        MisconfigurationException: with the rendered diagnostics when the schedule has errors, is
            empty, or cannot be read.
    """
    from ftsc.analyze.resolve import resolve_schedule
    from ftsc.check import merge_config, run_check
    from ftsc.diagnostics.render import render_text
    from ftsc.frontend import InputKind, Loaded, ReadError, load_file, load_text
    from ftsc.generate import default_schedule
    from ftsc.lightning.strategies import strategy_config
    from ftsc.lower.runtime import lower_runtime
    from ftsc.model.build import extract
    from ftsc.model.graph import ModelGraph
    from ftsc.source import SourceFile

    graph = ModelGraph(extract(pl_module))
    config = strategy_config(strategy, adapter_cfg)
    head = list(config.diagnostics) if config is not None else []
    if not ft_schedule:  # FTS's implicit schedule, generated from the module: nothing to check in it
        if not graph.params:
            raise MisconfigurationException("the module has no parameters: there is nothing to schedule")
        loaded = Loaded(SourceFile("<implicit>", ""), InputKind.DSL, default_schedule(graph, "fts"), [])
        if config is not None:
            loaded = merge_config(loaded, config)
        assert loaded.schedule is not None
        given = {s.name for s in loaded.schedule.options.settings}
        schedule = replace(loaded.schedule, options=replace(
            loaded.schedule.options, settings=loaded.schedule.options.settings
            + tuple(d for d in defaults if d.name not in given)))
        plan = lower_runtime(schedule, resolve_schedule(schedule, graph))
        return Compiled(plan, schedule, graph, tuple(head), "<implicit>", True)
    if isinstance(ft_schedule, dict):
        loaded = load_text(SourceFile("<ft_schedule>.yaml", yaml.safe_dump(ft_schedule, sort_keys=False)))
    else:
        try:
            loaded = load_file(str(ft_schedule))
        except ReadError as err:
            raise MisconfigurationException(f"cannot read the fine-tuning schedule: {err}") from None
    result = run_check(loaded, graph, config=config, defaults=defaults)
    diags = head + list(result.diagnostics)
    errors = [d for d in diags if d.severity is Severity.ERROR]
    schedule = result.loaded.schedule
    if errors or schedule is None or result.context is None or result.context.resolution is None:
        raise MisconfigurationException("the fine-tuning schedule does not fit this model:\n"
                                        + render_text(errors or diags))
    plan = lower_runtime(schedule, result.context.resolution)
    if not plan.phases:  # FTS210/FTS502 report it in `ftsc check`; a suppressed one still cannot run
        raise MisconfigurationException(f"the fine-tuning schedule {loaded.source.display_path} has no phases")
    return Compiled(plan, schedule, graph, tuple(diags), loaded.source.display_path, False)


def _reinit_yaml(cfg: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    if not cfg:
        return None
    init = {"class_path": cfg["class_path"], "init_args": dict(cfg.get("init_args") or {})}
    if kind == "optimizer":
        return {"optimizer_init": init}
    return {"lr_scheduler_init": init, **{k: v for k, v in cfg.items() if k not in ("class_path", "init_args")}}


def fts_schedule(compiled: Compiled) -> dict[int, dict[str, Any]]:
    """The resolved schedule in FTS's format: each phase's parameter FQNs, lr and transition epoch
    (FTS's implicit schedule is written as FTS writes it: parameter lists only)."""
    out: dict[int, dict[str, Any]] = {}
    for phase in compiled.plan.phases:
        entry: dict[str, Any] = {"params": list(phase.params)}
        if not compiled.implicit:
            if phase.lr is not None:
                entry["lr"] = phase.lr
            if phase.epoch is not None:
                entry["max_transition_epoch"] = phase.epoch
            for key, cfg, kind in (("new_optimizer", phase.new_optimizer, "optimizer"),
                                   ("new_lr_scheduler", phase.new_lr_scheduler, "lr_scheduler")):
                value = _reinit_yaml(cfg, kind)
                if value:
                    entry[key] = value
        out[phase.index] = entry
    return out


def schedule_path(log_dir: str | Path | None, trainer: Any, pl_module: Any) -> Path:
    """Where FinetuningScheduler writes the schedule: `{log_dir}/{ModuleClass}_ft_schedule.yaml`, with
    `log_dir` the option, else the Trainer's `log_dir`, else its `default_root_dir`."""
    base = log_dir or trainer.log_dir or trainer.default_root_dir
    return Path(base) / f"{type(pl_module).__name__}_ft_schedule.yaml"


def write_schedule(compiled: Compiled, path: Path) -> None:
    """Write the resolved schedule (FTS YAML) to `path`, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(fts_schedule(compiled), sort_keys=True), encoding="utf-8")
