"""The sharding stage: what FSDP1 / FSDP2 will build for a model, predicted statically.

Input: an `ir.Schedule`'s sharding block and a `ModelGraph`. Output: the resolved spec, the
predicted units, and the problems found while resolving (names matching nothing).
Never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ftsc import ir
from ftsc.analyze.resolve import match_modules
from ftsc.model.graph import ModelGraph
from ftsc.shard.fsdp1 import CONTAINERS, FSDP1Spec, Prediction, class_matches, is_lightning_module, predict
from ftsc.shard.fsdp2 import Prediction2, predict2

LOW_PRECISION = ("16-mixed", "bf16-mixed", "16-true", "bf16-true", "16", "bf16")


@dataclass(frozen=True, slots=True, kw_only=True)
class Unmatched:
    """A policy class, override or ignored-module selector that names nothing in the model."""

    what: str  # "class" | "wrap" | "ignore"
    text: str
    span: ir.Span | None


@dataclass(frozen=True, slots=True, kw_only=True)
class FSDP1Analysis:
    """The FSDP1 spec for this model, its prediction, and what did not resolve."""

    spec: FSDP1Spec
    prediction: Prediction
    unmatched: tuple[Unmatched, ...] = ()
    wrap_selectors: dict[str, ir.Selector] = field(default_factory=dict)  # override module -> selector


def _classes(config: ir.FSDPConfig, key: str) -> tuple[list[str], ir.Setting | None]:
    setting = config.setting(key)
    if setting is None or setting.value.data is None:
        return [], setting
    value = setting.value.py()
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items], setting


def fsdp1_analysis(schedule: ir.Schedule, graph: ModelGraph) -> FSDP1Analysis | None:
    """Resolve the `fsdp` block against `graph` and predict the units (None without a block)."""
    config = schedule.fsdp
    if config is None:
        return None
    unmatched: list[Unmatched] = []
    classes, class_setting = _classes(config, "auto_wrap_policy")
    all_classes = {q for m in graph.modules for q in graph.mro(m)}
    for c in classes:
        if not any(class_matches(c, q) for q in all_classes):
            unmatched.append(Unmatched(what="class", text=c, span=class_setting.span if class_setting else None))
    overrides: dict[str, ir.Selector] = {}
    for sel in config.wrap:
        hits = _modules(sel, graph)
        if not hits:
            unmatched.append(Unmatched(what="wrap", text=sel.pattern, span=sel.span))
        for h in hits:
            overrides.setdefault(h, sel)
    ignored: list[str] = []
    for sel in config.ignore:
        hits = _modules(sel, graph)
        if not hits:
            unmatched.append(Unmatched(what="ignore", text=sel.pattern, span=sel.span))
        ignored.extend(hits)
    min_num = config.setting("min_num_params")
    orig = config.setting("use_orig_params")
    precision = config.setting("precision")
    lightning = is_lightning_module(graph)
    mixed = lightning or config.setting("mixed_precision") is not None or (
        precision is not None and str(precision.value.py()) in LOW_PRECISION)
    manual = graph.manual_wraps if lightning else ()
    spec = FSDP1Spec(classes=tuple(classes), min_num_params=int(min_num.value.py()) if min_num else None,
                     overrides=() if manual else tuple(overrides), manual=manual, ignored=tuple(dict.fromkeys(ignored)),
                     use_orig_params=bool(orig.value.py()) if orig is not None else True,
                     mixed_precision=mixed, lightning=lightning)
    return FSDP1Analysis(spec=spec, prediction=predict(graph, spec), unmatched=tuple(unmatched),
                         wrap_selectors=overrides)


@dataclass(frozen=True, slots=True, kw_only=True)
class FSDP2Analysis:
    """The resolved FSDP2 plan (FTS `fsdp_plan` semantics), its prediction, and what did not resolve."""

    plan: tuple[str, ...]  # module FQNs in application order (a grouped entry: its first module)
    entry_of: dict[str, ir.ShardEntry]  # module -> the (last) plan entry that selected it
    prediction: Prediction2
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)  # plan module -> the others of its call
    unmatched: tuple[ir.ShardEntry, ...] = ()
    containers: tuple[tuple[ir.ShardEntry, str], ...] = ()  # (entry, ModuleList/ModuleDict FQN) pruned


def fsdp2_analysis(schedule: ir.Schedule, graph: ModelGraph) -> FSDP2Analysis | None:
    """Resolve the `fsdp2` plan as FTS does and predict the `fully_shard` groups (None without a block).

    Exact module names beat regexes; regexes `re.match` module names in `named_modules()` order;
    a module's position is fixed by the first entry that selects it, its kwargs by the last;
    ModuleList/ModuleDict targets are pruned. The model's own `fully_shard` calls (recorded in
    `configure_model`) run first. A grouped entry (`members`) is one list-form call at the
    position of its first module; a member another entry placed already stays there.

    Example:
        >>> g = ModelGraph.from_names(["emb.w", "layer.w", "norm.w", "head.w"])
        >>> tail = ir.ShardEntry(selector=ir.Selector(kind=ir.SelectorKind.EXACT, pattern="norm"),
        ...                      members=(ir.Selector(kind=ir.SelectorKind.EXACT, pattern="head"),))
        >>> root = ir.ShardEntry(selector=ir.Selector(kind=ir.SelectorKind.EXACT, pattern=""))
        >>> a = fsdp2_analysis(ir.Schedule(fsdp2=ir.FSDP2Config(plan=(tail, root))), g)
        >>> a.plan, a.members, [(x.name, x.params) for x in a.prediction.groups]
        (('norm', ''), {'norm': ('head',)}, [('norm, head', ('norm.w', 'head.w')), ('', ('emb.w', 'layer.w'))])
    """
    config = schedule.fsdp2
    if config is None:
        return None
    order: dict[str, None] = {}
    entry_of: dict[str, ir.ShardEntry] = {}
    unmatched: list[ir.ShardEntry] = []
    containers: list[tuple[ir.ShardEntry, str]] = []
    members: dict[str, tuple[str, ...]] = {}
    for entry in config.plan:
        hits = _modules(entry.selector, graph)
        if not hits:
            unmatched.append(entry)
        for m in hits:
            if any(graph.is_instance(m, c) for c in CONTAINERS):
                containers.append((entry, m))
                continue
            if entry.members and m in order:  # already placed: the group is not formed there
                continue
            order.setdefault(m, None)
            entry_of[m] = entry
            if entry.members:
                members[m] = _members(entry, m, order, graph, unmatched)
                entry_of.update(dict.fromkeys(members[m], entry))
    plan = tuple(order)
    return FSDP2Analysis(plan=plan, entry_of=entry_of,
                         prediction=predict2(graph, plan, graph.user_fully_shard, members),
                         unmatched=tuple(unmatched), containers=tuple(containers), members=members)


def _members(entry: ir.ShardEntry, first: str, order: dict[str, None], graph: ModelGraph,
             unmatched: list[ir.ShardEntry]) -> tuple[str, ...]:
    """The further modules of a grouped entry whose first module is `first`: each member's
    modules not placed by an earlier entry (a member naming nothing is reported as an entry)."""
    out: dict[str, None] = {}
    for sel in entry.members:
        hits = _modules(sel, graph)
        if not hits:
            unmatched.append(ir.ShardEntry(selector=sel, kwargs=entry.kwargs, span=entry.span))
        for m in hits:
            if m != first and m not in order:
                out.setdefault(m, None)
    return tuple(out)


def compare_units(predicted: dict[str, list[str]], real: dict[str, list[str]]) -> list[str]:
    """Differences between predicted and real FSDP units or fully_shard groups (`{name: params}`),
    in words; empty when they are identical (the runtime's fit-start self-check)."""
    problems = []
    for name in sorted(set(predicted) | set(real)):
        if name not in real:
            problems.append(f"predicted group `{name or '<root>'}` was not built")
        elif name not in predicted:
            problems.append(f"unpredicted group `{name or '<root>'}` with {len(real[name])} parameters")
        elif sorted(predicted[name]) != sorted(real[name]):
            missing = sorted(set(predicted[name]) - set(real[name]))
            extra = sorted(set(real[name]) - set(predicted[name]))
            problems.append(f"group `{name or '<root>'}` differs: missing {missing[:5]}, unexpected {extra[:5]}")
    return problems


def _modules(sel: ir.Selector, graph: ModelGraph) -> list[str]:
    try:
        return match_modules(sel, graph)
    except Exception:  # noqa: BLE001 - invalid patterns are reported by FTS101
        return []


__all__ = [
    "FSDP1Analysis",
    "FSDP1Spec",
    "FSDP2Analysis",
    "Prediction",
    "Prediction2",
    "Unmatched",
    "compare_units",
    "fsdp1_analysis",
    "fsdp2_analysis",
    "predict",
    "predict2",
]
