"""Emit an FTS YAML schedule from the IR (`ftsc convert --to fts-yaml`).

Input: an `ir.Schedule`. Output: YAML text FinetuningScheduler reads with the same meaning,
plus FTS501 diagnostics for what FTS YAML cannot express. Options, implicit-mode reinits and
sharding settings live outside an FTS schedule file (callback and strategy arguments); they are
written as commented `init_args` and `trainer` blocks at the top. Never imports torch.
"""

from __future__ import annotations

from typing import Any

import yaml

from ftsc import ir
from ftsc.diagnostics import Diagnostic, make
from ftsc.regexes import fullmatch_as_fts, glob_to_regex
from ftsc.source import SourceFile


def fts_pattern(sel: ir.Selector) -> str:
    """The FTS (`exact name, else re.match`) pattern with the selector's meaning."""
    match sel.kind:
        case ir.SelectorKind.FTS | ir.SelectorKind.EXACT:
            # An exact FQN that exists is found by FTS's exact-name lookup first.
            return sel.pattern
        case ir.SelectorKind.REGEX:
            return fullmatch_as_fts(sel.pattern)
        case ir.SelectorKind.GLOB:
            return fullmatch_as_fts(glob_to_regex(sel.pattern))
        case _:
            raise ValueError(f"Invalid selector kind: {sel.kind}.")


def _reinit(r: ir.Reinit) -> dict[str, Any]:
    init: dict[str, Any] = {"class_path": r.class_path}
    if r.init_args is not None:
        init["init_args"] = {s.name: s.value.py() for s in r.init_args}
    key = "optimizer_init" if r.target is ir.ReinitTarget.OPTIMIZER else "lr_scheduler_init"
    return {key: init, **{s.name: s.value.py() for s in r.settings}}


def to_fts_yaml(schedule: ir.Schedule, source: SourceFile | None = None) -> tuple[str, list[Diagnostic]]:
    """Render the schedule as FTS YAML; diagnostics say what could not be expressed."""
    diags: list[Diagnostic] = []
    epoch_only = bool(schedule.options.get("epoch_transitions_only", False))
    doc: dict[int, dict[str, Any]] = {}
    for phase in schedule.phases:
        body: dict[str, Any] = {"params": [fts_pattern(s) for s in phase.selectors]}
        epoch = phase.criterion(ir.CriterionKind.EPOCH)
        if epoch is not None:
            body["max_transition_epoch"] = epoch.value
        for c in phase.until or ():
            if c.kind is ir.CriterionKind.STEP:
                diags.append(make("FTS501", source, c.span, label="no FTS equivalent",
                                  detail="step transitions cannot be expressed in FTS YAML"))
            elif c.kind is ir.CriterionKind.PLATEAU and c.args:
                diags.append(make("FTS501", source, c.span, label="per-phase criteria",
                                  detail="per-phase plateau criteria cannot be expressed in FTS YAML; FTS uses "
                                         "one FTSEarlyStopping configuration for every phase",
                                  help="move the criteria to `early_stopping` in the `schedule` block"))
        has_plateau = phase.until is None or phase.criterion(ir.CriterionKind.PLATEAU) is not None
        if not epoch_only and not has_plateau:
            diags.append(make("FTS501", source, phase.until[0].span if phase.until else phase.index_span,
                              label="no plateau transition",
                              detail=f"phase {phase.index} does not end on plateau, but without "
                                     "`epoch_transitions_only` every FTS phase does",
                              help="add `or plateau`, or set `epoch_transitions_only = true`"))
        for s in phase.settings:
            body[s.name] = s.value.py()
        if phase.lr_decay is not None:
            diags.append(_lr_decay_refused(phase, source))
        for r in phase.reinits:
            body["new_optimizer" if r.target is ir.ReinitTarget.OPTIMIZER else "new_lr_scheduler"] = _reinit(r)
        doc[phase.index] = body
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True) if doc else "{}\n"
    header = _options_comment(schedule)
    return header + text, diags


def _lr_decay_refused(phase: ir.Phase, source: SourceFile | None) -> Diagnostic:
    """FTS501 for a layer-wise decay form: FTS gives a phase one lr (the one or two groups it adds
    all get the phase's `lr`; `init_pg_lrs` sets one lr per existing group, i.e. per phase)."""
    return make("FTS501", source, phase.lr_decay.span if phase.lr_decay else phase.index_span,
                label="several lrs in one phase",
                detail=f"phase {phase.index}'s layer-wise lrs cannot be expressed in FTS YAML: FTS adds a phase's "
                       "parameters as one parameter group (two with `no_decay`) at the phase's single `lr`",
                notes=(("`init_pg_lrs` sets one lr per existing group, and FTS makes one group per phase; "
                        "one phase per layer would thaw the layers at different epochs"),),
                help="run the schedule with `ftsc.lightning.FinetuningScheduler`, or give the phase one "
                     "`lr = X` to convert it")


def _options_comment(schedule: ir.Schedule) -> str:
    """Callback / strategy arguments that belong outside the schedule file, as YAML comments."""
    init_args: dict[str, Any] = {s.name: s.value.py() for s in schedule.options.settings
                                 if s.name not in ("early_stopping", "checkpoint", "max_epochs")}
    for r in schedule.options.reinits:
        init_args["reinit_optim_cfg" if r.target is ir.ReinitTarget.OPTIMIZER else "reinit_lr_cfg"] = _reinit(r)
    adapter: dict[str, Any] = {}
    if schedule.fsdp is not None and schedule.fsdp.wrap:
        adapter["awp_overrides"] = [fts_pattern(s) for s in schedule.fsdp.wrap]
    if schedule.fsdp2 is not None:
        defaults = schedule.fsdp2.setting("fsdp_default_kwargs")
        if defaults is not None:
            adapter["fsdp_default_kwargs"] = defaults.value.py()
        if schedule.fsdp2.grouped():  # `convert` refuses these first (FTS501)
            raise ValueError("a grouped `fsdp2` plan entry (one list-form fully_shard call) has no FTS form")
        if schedule.fsdp2.plan:
            adapter["fsdp_plan"] = {fts_pattern(e.selector): {s.name: s.value.py() for s in e.kwargs or ()}
                                    for e in schedule.fsdp2.plan}
    if adapter:
        init_args["strategy_adapter_cfg"] = adapter
    extra: dict[str, Any] = {}
    for key in ("early_stopping", "checkpoint"):
        if schedule.options.setting(key) is not None:
            extra[key] = schedule.options.get(key)
    trainer = _trainer(schedule)
    if not init_args and not extra and not trainer:
        return ""
    lines = ["Converted by ftsc. FinetuningScheduler reads only the phases below; pass these",
             "options as the callback's init_args in your LightningCLI config:"]
    if init_args:
        lines += yaml.safe_dump({"init_args": init_args}, sort_keys=False).splitlines()
    if extra:
        lines.append("FTSEarlyStopping / FTSCheckpoint settings:")
        lines += yaml.safe_dump(extra, sort_keys=False).splitlines()
    if trainer:
        lines.append("Trainer settings (the config's `trainer:`):")
        lines += yaml.safe_dump({"trainer": trainer}, sort_keys=False).splitlines()
    if schedule.fsdp is not None and schedule.fsdp.ignore:
        lines.append("`fsdp` `ignore` (FSDPStrategy's ignored_modules) takes module objects: pass them in code.")
    return "".join(f"# {ln}\n" for ln in lines)


_STRATEGY_PATHS = {"fsdp": "lightning.pytorch.strategies.FSDPStrategy",
                   "fsdp2": "lightning.pytorch.strategies.ModelParallelStrategy"}


def _trainer(schedule: ir.Schedule) -> dict[str, Any]:
    """`max_epochs`, `precision` and the strategy (FSDP settings; `ignore` has no config form)."""
    out: dict[str, Any] = {}
    if schedule.options.setting("max_epochs") is not None:
        out["max_epochs"] = schedule.options.get("max_epochs")
    block = schedule.fsdp or schedule.fsdp2
    if block is None:
        return out
    settings = {s.name: s.value.py() for s in block.settings}
    if "precision" in settings:
        out["precision"] = settings.pop("precision")
    settings.pop("fsdp_default_kwargs", None)  # written under strategy_adapter_cfg
    kind = "fsdp" if schedule.fsdp is not None else "fsdp2"
    strategy: dict[str, Any] = {"class_path": _STRATEGY_PATHS[kind]}
    if settings:
        strategy["init_args"] = settings
    out["strategy"] = strategy
    return out
