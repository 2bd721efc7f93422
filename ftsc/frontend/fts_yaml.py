"""FTS YAML schedules -> IR, with FinetuningScheduler's semantics.

Input: a YAML schedule as FTS 2.14 reads it (a mapping phase key -> phase dict with `params`,
`max_transition_epoch`, `lr`, `new_optimizer`, `new_lr_scheduler`). Output: an `ir.Schedule`
whose selectors are `fts`-kind (exact FQN first, else `re.match`) and diagnostics. Keys are
converted with `int()` like FTS (with an FTS107 note); unknown keys are FTS103 *warnings* because
FTS silently ignores them. Never imports torch.
"""

from __future__ import annotations

from typing import Any

from ftsc import ir, schema
from ftsc.diagnostics import Diagnostic, Severity, make
from ftsc.frontend.yaml_nodes import YNode
from ftsc.regexes import compile_problem
from ftsc.source import SourceFile, Span

PHASE_KEYS = ("params", "max_transition_epoch", "lr", "new_optimizer", "new_lr_scheduler")


def to_value(node: YNode) -> ir.Value:
    """A YAML node as an IR value, keeping spans."""
    if isinstance(node.value, dict):
        return ir.Value(data=tuple(
            ir.Setting(name=str(k), value=to_value(v), span=node.key_nodes[k].span.cover(v.span),
                       name_span=node.key_nodes[k].span)
            for k, v in node.value.items()), kind="dict", span=node.span)
    if isinstance(node.value, list):
        return ir.Value(data=tuple(to_value(v) for v in node.value), kind="list", span=node.span)
    value = node.value
    if not isinstance(value, (type(None), bool, int, float, str)):
        value = str(value)  # dates, bytes: FTS would see them as opaque values
    return ir.scalar(value, node.span)


def to_settings(node: YNode) -> tuple[ir.Setting, ...]:
    """A mapping node as IR settings."""
    value = to_value(node)
    return value.data if value.kind == "dict" else ()  # type: ignore[return-value]


class _Builder:
    def __init__(self, source: SourceFile, epoch_transitions_only: bool) -> None:
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        self.validator = schema.Validator(source, unknown_severity=Severity.WARNING,
                                          diagnostics=self.diagnostics)
        self.epoch_only = epoch_transitions_only

    def report(self, code: str, span: Span, **kw: Any) -> None:
        self.diagnostics.append(make(code, self.source, span, **kw))

    def schedule(self, root: YNode | None) -> ir.Schedule:
        if root is None or not isinstance(root.value, dict):
            span = root.span if root is not None else Span(0, 0)
            self.report("FTS102", span, detail="an FTS schedule must be a mapping of phase numbers to phases",
                        label="not a mapping")
            return ir.Schedule(span=Span(0, len(self.source.text)))
        phases: list[ir.Phase] = []
        for key, node in root.value.items():
            key_node = root.key_nodes[key]
            index = self.phase_key(key, key_node)
            if index is None:
                continue
            phases.append(self.phase(index, node, key_node.span))
        return ir.Schedule(phases=tuple(phases), span=Span(0, len(self.source.text)))

    def phase_key(self, key: Any, node: YNode) -> int | None:
        if isinstance(key, int) and not isinstance(key, bool):
            return key
        try:
            converted = int(key)
        except (ValueError, TypeError, OverflowError):
            self.report("FTS102", node.span, detail=f"phase key `{key}` is not convertible to an integer",
                        label="not a phase number", help="number the phases 0, 1, 2, ...")
            return None
        self.report("FTS107", node.span,
                    detail=f"phase key `{key!r}` is not an integer; FinetuningScheduler reads it as {converted}",
                    label="converted", help=f"write `{converted}:`")
        return converted

    def phase(self, index: int, node: YNode, key_span: Span) -> ir.Phase:
        span = key_span.cover(node.span)
        if node.value is None:
            return ir.Phase(index=index, until=self.until(None, index), span=span, index_span=key_span)
        if not isinstance(node.value, dict):
            self.report("FTS102", node.span, detail=f"phase {index} must be a mapping with a `params` list",
                        label="not a mapping")
            return ir.Phase(index=index, span=span, index_span=key_span)
        for key in node.value:
            if key not in PHASE_KEYS:
                self.report("FTS103", node.key_nodes[key].span, where="phase key", key=key,
                            severity=Severity.WARNING, label="ignored by FinetuningScheduler",
                            help=schema.suggest(str(key), list(PHASE_KEYS)))
        selectors = self.params(node.get("params"), index)
        settings: list[ir.Setting] = []
        lr = node.get("lr")
        if lr is not None:
            settings.append(ir.Setting(name="lr", value=to_value(lr), span=node.key_nodes["lr"].span.cover(lr.span),
                                       name_span=node.key_nodes["lr"].span))
        canon = self.validator.settings(tuple(settings), _YAML_PHASE)
        reinits = [r for r in (self.reinit(node, "new_optimizer", index),
                               self.reinit(node, "new_lr_scheduler", index)) if r is not None]
        return ir.Phase(index=index, selectors=selectors, until=self.until(node.get("max_transition_epoch"), index),
                        settings=canon, reinits=tuple(reinits), span=span, index_span=key_span)

    def params(self, node: YNode | None, index: int) -> tuple[ir.Selector, ...]:
        if node is None or node.value is None:
            return ()
        if not isinstance(node.value, list):
            self.report("FTS102", node.span, detail=f"`params` of phase {index} must be a list of names or patterns",
                        label="not a list", help="write each name or pattern as a `- ` list item")
            return ()
        out = []
        for item in node.value:
            if not isinstance(item.value, str) or not item.value:
                self.report("FTS102", item.span, detail="a `params` entry must be a non-empty string",
                            label="not a string")
                continue
            problem = compile_problem(item.value)
            if problem:
                self.report("FTS101", item.span, detail=problem, label="does not compile")
            out.append(ir.Selector(kind=ir.SelectorKind.FTS, pattern=item.value, span=item.span))
        return tuple(out)

    def until(self, node: YNode | None, index: int) -> tuple[ir.Criterion, ...]:
        criteria: list[ir.Criterion] = []
        if node is not None:
            v = node.value
            if isinstance(v, bool) or not isinstance(v, int):
                self.report("FTS102", node.span, detail="`max_transition_epoch` must be an integer",
                            label="not an integer")
            elif v >= 0:
                criteria.append(ir.Criterion(kind=ir.CriterionKind.EPOCH, value=v, span=node.span))
        if not self.epoch_only:
            criteria.append(ir.Criterion(kind=ir.CriterionKind.PLATEAU))
        return tuple(criteria)

    def reinit(self, phase: YNode, key: str, index: int) -> ir.Reinit | None:
        node = phase.get(key)
        if node is None:
            return None
        return reinit_from_yaml(node, key, self, f"phase {index}")


def reinit_from_yaml(node: YNode, key: str, builder: Any, where: str) -> ir.Reinit | None:
    """Build a `Reinit` from an FTS `new_optimizer`/`new_lr_scheduler` (or implicit `reinit_*_cfg`) mapping."""
    optimizer = key in ("new_optimizer", "reinit_optim_cfg")
    target = ir.ReinitTarget.OPTIMIZER if optimizer else ir.ReinitTarget.LR_SCHEDULER
    init_key = "optimizer_init" if optimizer else "lr_scheduler_init"
    if not isinstance(node.value, dict):
        builder.report("FTS102", node.span, detail=f"`{key}` must be a mapping", label="not a mapping")
        return None
    init = node.get(init_key)
    if init is None or not isinstance(init.value, dict):
        builder.report("FTS102", node.span, label=f"no `{init_key}`",
                       detail=f"`{key}` of {where} needs an `{init_key}` mapping with a `class_path`")
        return None
    class_path = init.get("class_path")
    if class_path is None or not isinstance(class_path.value, str) or not class_path.value:
        builder.report("FTS102", init.span, label="no `class_path`",
                       detail=f"`{init_key}` of {where} needs a `class_path` string")
        return None
    for extra in init.value:
        if extra not in ("class_path", "init_args"):
            builder.report("FTS103", init.key_nodes[extra].span, where=f"`{init_key}` key", key=extra,
                           severity=Severity.WARNING, label="ignored")
    init_args_node = init.get("init_args")
    init_args: tuple[ir.Setting, ...] | None = None
    if init_args_node is not None:
        if init_args_node.value is None:
            init_args = ()
        elif not isinstance(init_args_node.value, dict):
            builder.report("FTS102", init_args_node.span, detail="`init_args` must be a mapping",
                           label="not a mapping")
        else:
            init_args = to_settings(init_args_node)
    extra_settings = tuple(s for s in to_settings(node) if s.name != init_key)
    block = schema.OPTIMIZER_REINIT if optimizer else schema.LR_SCHEDULER_REINIT
    settings = builder.validator.settings(extra_settings, block, where=f"`{key}` key")
    return ir.Reinit(target=target, class_path=class_path.value, init_args=init_args, settings=settings,
                     span=node.span)


_YAML_PHASE = schema.Block("phase key", {
    "lr": schema.number(positive=True, numeric_strings=True),
})


def schedule_from_yaml(root: YNode | None, source: SourceFile, *,
                       epoch_transitions_only: bool = False) -> tuple[ir.Schedule, list[Diagnostic]]:
    """Build the IR of an FTS YAML schedule.

    Args:
        root: the loaded YAML document.
        source: the file, for diagnostics.
        epoch_transitions_only: FTS's callback option; without it, every phase also ends on plateau.

    Returns:
        The schedule and the diagnostics found while building it.
    """
    builder = _Builder(source, epoch_transitions_only)
    return builder.schedule(root), builder.diagnostics


