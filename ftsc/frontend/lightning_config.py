"""LightningCLI configs as FTS users write them -> schedule options, sharding and schedule.

Input: a LightningCLI YAML config. Output: the scheduler callback's options
(`FinetuningScheduler` init_args, `FTSEarlyStopping`, `FTSCheckpoint`, `trainer.max_epochs`),
the strategy as an IR sharding block (`FSDPStrategy` -> `fsdp`, `ModelParallelStrategy` ->
`fsdp2`, with `strategy_adapter_cfg`), and the `ft_schedule` it names (FTS YAML, a mapping, or
a `.ftsc` file; a `.ftsc` file's own settings and sharding blocks win, as at run time). Class
names are kept as strings; nothing is imported. Never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from ftsc import ir, schema
from ftsc.diagnostics import Diagnostic, Severity, make
from ftsc.frontend.fts_yaml import reinit_from_yaml, schedule_from_yaml, to_value
from ftsc.frontend.referenced import open_referenced
from ftsc.frontend.yaml_nodes import YNode, load_yaml
from ftsc.source import SourceFile, Span

_OPTION_NAMES = tuple(k for k in schema.OPTIONS.keys if k not in ("early_stopping", "checkpoint", "max_epochs"))
_FTS_CALLBACK_ARGS = frozenset({*_OPTION_NAMES, "ft_schedule", "reinit_optim_cfg", "reinit_lr_cfg",
                                "strategy_adapter_cfg"})
_FSDP_PASSTHROUGH = ("use_orig_params", "sharding_strategy", "state_dict_type", "limit_all_gathers",
                     "sync_module_states", "forward_prefetch", "backward_prefetch")


@dataclass(slots=True)
class _Cfg:
    source: SourceFile
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def report(self, code: str, span: Span, **kw: Any) -> None:
        self.diagnostics.append(make(code, self.source, span, **kw))

    @property
    def validator(self) -> schema.Validator:
        return schema.Validator(self.source, unknown_severity=Severity.WARNING, diagnostics=self.diagnostics)


def _class_name(node: YNode | None) -> str:
    if node is None:
        return ""
    if isinstance(node.value, str):
        return node.value
    cp = node.get("class_path")
    return cp.value if cp is not None and isinstance(cp.value, str) else ""


def _callbacks(trainer: YNode) -> list[YNode]:
    out: list[YNode] = []
    for key in ("callbacks", "callbacks+"):
        node = trainer.get(key)
        if node is not None:
            out.extend(node.value if isinstance(node.value, list) else [node])
    return out


def _init_args(node: YNode) -> YNode | None:
    args = node.get("init_args")
    return args if args is not None and isinstance(args.value, dict) else None


def _setting(name: str, node: YNode, key_span: Span | None = None) -> ir.Setting:
    return ir.Setting(name=name, value=to_value(node), span=node.span, name_span=key_span or node.span)


def _class_list(node: YNode) -> YNode | None:
    """A wrap-policy value as a list of class paths: a class set/list, or a ModuleWrapPolicy."""
    if isinstance(node.value, list):
        return node
    if isinstance(node.value, dict) and "ModuleWrapPolicy" in _class_name(node):
        args = _init_args(node)
        classes = args.get("module_classes") if args else None
        return classes if classes is not None and isinstance(classes.value, list) else None
    return None


def load_lightning_config(source: SourceFile, root: YNode) -> tuple[ir.Schedule, list[Diagnostic], list[SourceFile]]:
    """Read a LightningCLI config into a schedule IR (options, sharding and phases if found).

    Returns:
        The schedule, diagnostics (in this file and in the schedule file it names), and the
        schedule file read, if any.
    """
    cfg = _Cfg(source)
    trainer = root.get("trainer") or root.get("trainer+")
    if trainer is None or not isinstance(trainer.value, dict):
        return ir.Schedule(), cfg.diagnostics, []
    options: list[ir.Setting] = []
    reinits: list[ir.Reinit] = []
    sharding_cfg: YNode | None = None
    schedule_node: YNode | None = None
    for cb in _callbacks(trainer):
        name = _class_name(cb).rsplit(".", 1)[-1]
        args = _init_args(cb)
        if name in ("FinetuningScheduler", "FtscCallback", "ScheduleCallback"):
            if args is None:
                continue
            for key, value in args.value.items():
                kspan = args.key_nodes[key].span
                if key in _OPTION_NAMES:
                    options.append(_setting(key, value, kspan))
                elif key == "ft_schedule":
                    schedule_node = value
                elif key in ("reinit_optim_cfg", "reinit_lr_cfg") and value.value is not None:
                    r = reinit_from_yaml(value, key, cfg, "the schedule-wide config")
                    if r is not None:
                        reinits.append(r)
                elif key == "strategy_adapter_cfg":
                    sharding_cfg = value
                else:
                    cfg.report("FTS103", kspan, where="FinetuningScheduler argument", key=key,
                               severity=Severity.WARNING, label="not an FTS argument",
                               help=schema.suggest(str(key), sorted(_FTS_CALLBACK_ARGS)))
        elif name in ("FTSEarlyStopping", "EarlyStopping") and args is not None:
            options.append(_setting("early_stopping", args))
        elif name in ("FTSCheckpoint", "ModelCheckpoint") and args is not None:
            options.append(_setting("checkpoint", args))
    max_epochs = trainer.get("max_epochs")
    if max_epochs is not None:
        options.append(_setting("max_epochs", max_epochs, trainer.key_nodes["max_epochs"].span))
    canon_options = cfg.validator.settings(tuple(options), _CONFIG_OPTIONS)
    epoch_only = any(s.name == "epoch_transitions_only" and s.value.data is True for s in canon_options)

    schedule = ir.Schedule()
    files: list[SourceFile] = []
    if schedule_node is not None and schedule_node.value:
        schedule, files = _schedule(cfg, schedule_node, epoch_only)
    fsdp, fsdp2 = _strategy(cfg, trainer, sharding_cfg)
    # A `.ftsc` schedule's own `schedule { }` settings and sharding blocks win over the callback's
    # arguments and the strategy, as at run time (FTS YAML schedules carry neither).
    own = schedule.options
    settings = {s.name: s for s in canon_options} | {s.name: s for s in own.settings}
    schedule = replace(schedule, options=ir.Options(settings=tuple(settings.values()),
                                                    reinits=own.reinits or tuple(reinits)),
                       fsdp=schedule.fsdp or fsdp, fsdp2=schedule.fsdp2 or fsdp2)
    return schedule, cfg.diagnostics, files


# Early-stopping/checkpoint callbacks accept more arguments than schedule checks use.
_CONFIG_OPTIONS = schema.Block("option", {
    **schema.OPTIONS.keys,
    "early_stopping": schema.Block("early stopping", schema.EARLY_STOPPING.keys, open=True),
    "checkpoint": schema.Block("checkpoint", schema.CHECKPOINT.keys, open=True),
})


def _schedule(cfg: _Cfg, node: YNode, epoch_only: bool) -> tuple[ir.Schedule, list[SourceFile]]:
    if isinstance(node.value, dict):
        schedule, diags = schedule_from_yaml(node, cfg.source, epoch_transitions_only=epoch_only)
        cfg.diagnostics.extend(diags)
        return schedule, []
    if not isinstance(node.value, str):
        cfg.report("FTS102", node.span, detail="`ft_schedule` must be a file path or a mapping", label="here")
        return ir.Schedule(), []
    found = open_referenced(cfg.source, node.value)
    if found.missing:
        cfg.report("FTS105", node.span, path=node.value, outcome="was not found", label="not found",
                   notes=("FinetuningScheduler resolves this path relative to the directory training is "
                          "launched from; schedule checks were skipped",),
                   help="run `ftsc check` from that directory, or check the schedule file directly")
        return ir.Schedule(), []
    if found.source is None:
        cfg.report("FTS105", node.span, path=node.value, outcome="was not read", label=found.label,
                   notes=("schedule checks were skipped",), help=found.help or None)
        return ir.Schedule(), []
    sched_source = found.source
    path = Path(sched_source.path)
    if path.suffix.lower() == ".ftsc":
        return _dsl_schedule(cfg, sched_source), [sched_source]
    root, diags = load_yaml(sched_source)
    cfg.diagnostics.extend(diags)
    if root is None and diags:
        return ir.Schedule(), [sched_source]
    schedule, diags = schedule_from_yaml(root, sched_source, epoch_transitions_only=epoch_only)
    cfg.diagnostics.extend(diags)
    return schedule, [sched_source]


def _dsl_schedule(cfg: _Cfg, source: SourceFile) -> ir.Schedule:
    """A `.ftsc` file named by `ft_schedule`, read by the DSL front end; every span names the file."""
    from ftsc.build_ir import build_ir  # lark is imported only for DSL input
    from ftsc.parse import parse

    result = parse(source)
    cfg.diagnostics.extend(result.diagnostics)
    if result.tree is None:
        return ir.Schedule()
    schedule, diags = build_ir(result.tree, source)
    cfg.diagnostics.extend(diags)
    return _in_file(schedule, source)


def _in_file(node: Any, source: SourceFile) -> Any:
    """`node` with every span that names no file pointed at `source` (IR nodes and tuples of them)."""
    if isinstance(node, Span):
        return node if node.file is not None else Span(node.start, node.end, source)
    if isinstance(node, tuple):
        return tuple(_in_file(item, source) for item in node)
    if is_dataclass(node) and not isinstance(node, type):
        changes = {f.name: _in_file(getattr(node, f.name), source) for f in fields(node)}
        return replace(node, **changes)
    return node


def _strategy(cfg: _Cfg, trainer: YNode, adapter: YNode | None) -> tuple[ir.FSDPConfig | None, ir.FSDP2Config | None]:
    strategy = trainer.get("strategy")
    kind = _class_name(strategy).rsplit(".", 1)[-1].lower() if strategy is not None else ""
    args = _init_args(strategy) if strategy is not None and isinstance(strategy.value, dict) else None
    if not kind and args is not None and {"data_parallel_size", "tensor_parallel_size"} & set(args.value):
        kind = "modelparallelstrategy"
    adapter_args = adapter if adapter is not None and isinstance(adapter.value, dict) else None
    precision = trainer.get("precision")
    if kind in ("fsdpstrategy", "fsdp", "fsdp_cpu_offload"):
        return _fsdp(cfg, args, adapter_args, precision, cpu_offload=kind == "fsdp_cpu_offload"), None
    if kind in ("modelparallelstrategy",):
        return None, _fsdp2(cfg, args, adapter_args, precision)
    return None, None


def _fsdp(cfg: _Cfg, args: YNode | None, adapter: YNode | None, precision: YNode | None,
          cpu_offload: bool) -> ir.FSDPConfig:
    settings: list[ir.Setting] = []
    # Lightning's FSDPStrategy defaults use_orig_params to True; the IR states it explicitly.
    settings.append(ir.Setting(name="use_orig_params", value=ir.scalar(True)))
    if cpu_offload:
        settings.append(ir.Setting(name="cpu_offload", value=ir.scalar(True)))
    if precision is not None:
        settings.append(_setting("precision", precision))
    for key, value in (args.value.items() if args else ()):
        kspan = args.key_nodes[key].span  # type: ignore[union-attr]
        if key in ("auto_wrap_policy", "activation_checkpointing_policy"):
            classes = _class_list(value)
            if classes is None:
                cfg.report("FTS103", value.span, where=f"`{key}` form", key=_class_name(value) or "callable",
                           severity=Severity.WARNING, label="not analyzable",
                           help="use a class set (`!!set`) or a `ModuleWrapPolicy` with `module_classes`")
                continue
            settings.append(_setting(key, classes, kspan))
        elif key == "cpu_offload":
            offload = value.value if isinstance(value.value, bool) else bool(
                (_init_args(value) or YNode({}, value.span)).py().get("offload_params", False))
            settings.append(ir.Setting(name="cpu_offload", value=ir.scalar(offload, value.span), span=value.span,
                                       name_span=kspan))
        elif key == "mixed_precision" and isinstance(value.value, dict):
            mp = _init_args(value) or value
            settings.append(_setting("mixed_precision", mp, kspan))
        elif key in _FSDP_PASSTHROUGH:
            settings = [s for s in settings if s.name != key]
            settings.append(_setting(key, value, kspan))
    wrap: list[ir.Selector] = []
    ignore: list[ir.Selector] = []
    for key, value in (adapter.value.items() if adapter else ()):
        if key == "awp_overrides" and isinstance(value.value, list):
            wrap.extend(ir.Selector(kind=ir.SelectorKind.FTS, pattern=str(v.value), span=v.span)
                        for v in value.value if isinstance(v.value, str))
        elif key not in ("fsdp_plan", "fsdp_default_kwargs"):
            cfg.report("FTS103", adapter.key_nodes[key].span, where="FSDP adapter option", key=key,
                       severity=Severity.WARNING, label="ignored", help="the FSDP adapter accepts `awp_overrides`")
    canon = cfg.validator.settings(tuple(settings), schema.FSDP)
    return ir.FSDPConfig(settings=canon, wrap=tuple(wrap), ignore=tuple(ignore), span=args.span if args else Span(0, 0))


def _fsdp2(cfg: _Cfg, args: YNode | None, adapter: YNode | None, precision: YNode | None) -> ir.FSDP2Config:
    settings: list[ir.Setting] = []
    if precision is not None:
        settings.append(_setting("precision", precision))
    for key in ("data_parallel_size", "tensor_parallel_size"):
        node = args.get(key) if args else None
        if node is not None:
            settings.append(_setting(key, node, args.key_nodes[key].span))  # type: ignore[union-attr]
    plan: list[ir.ShardEntry] = []
    for key, value in (adapter.value.items() if adapter else ()):
        kspan = adapter.key_nodes[key].span  # type: ignore[union-attr]
        if key == "fsdp_default_kwargs" and isinstance(value.value, dict):
            settings.append(_setting(key, value, kspan))
        elif key == "fsdp_plan" and isinstance(value.value, dict):
            for plan_key, kwargs in value.value.items():
                kn = value.key_nodes[plan_key]
                sel = ir.Selector(kind=ir.SelectorKind.FTS, pattern=str(plan_key), span=kn.span)
                kw = None
                if isinstance(kwargs.value, dict) and kwargs.value:
                    kw = cfg.validator.settings(to_value(kwargs).data, schema.FULLY_SHARD)  # type: ignore[arg-type]
                plan.append(ir.ShardEntry(selector=sel, kwargs=kw, span=kn.span.cover(kwargs.span)))
        elif key != "awp_overrides":
            cfg.report("FTS103", kspan, where="model-parallel adapter option", key=key,
                       severity=Severity.WARNING, label="ignored",
                       help="the model-parallel adapter accepts `fsdp_plan` and `fsdp_default_kwargs`")
    canon = cfg.validator.settings(tuple(settings), schema.FSDP2)
    return ir.FSDP2Config(settings=canon, plan=tuple(plan), span=args.span if args else Span(0, 0))
