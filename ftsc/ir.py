"""The typed intermediate representation of a fine-tuning schedule.

Input: built by `ftsc.build_ir` (from the DSL) and `ftsc.frontend.fts_yaml` (from FTS YAML).
Output: frozen, slotted dataclasses; spans are excluded from equality so that the same
schedule read from two files, or reformatted, compares equal. Nodes refer to model objects
by FQN string only. Never imports torch.

Vocabulary: a *phase* is one step of gradual unfreezing (FTS's "depth"); a *selector* picks
parameters (or, in sharding blocks, modules) by name; a *unit* is one FSDP wrapping
(FSDP1 FlatParameter owner, or one `fully_shard` call).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from enum import StrEnum
from typing import Any, TypeAlias

from ftsc.source import NO_SPAN, Span


class SelectorKind(StrEnum):
    """How a selector's pattern matches an FQN.

    `exact`: the FQN itself. `regex`: Python regex, must match the whole FQN. `glob`: `*` within
    one dotted segment, `**` across segments, must match the whole FQN. `fts`:
    FinetuningScheduler's rule, the exact FQN if it exists, else a regex matched at the start
    only (`re.match`).
    """

    EXACT = "exact"
    REGEX = "regex"
    GLOB = "glob"
    FTS = "fts"


class ReinitTarget(StrEnum):
    """What a reinit directive rebuilds at a phase transition."""

    OPTIMIZER = "optimizer"
    LR_SCHEDULER = "lr_scheduler"


class CriterionKind(StrEnum):
    """What ends a phase: an epoch index, a global step, or a monitored-metric plateau."""

    EPOCH = "epoch"
    STEP = "step"
    PLATEAU = "plateau"


class LrPreset(StrEnum):
    """Whose layer-wise lr decay convention a decay form follows (docs/lr-decay.md has the formulas)."""

    BEIT = "beit"
    ELECTRA = "electra"
    TIMM = "timm"
    FASTAI = "fastai"


Scalar: TypeAlias = None | bool | int | float | str


@dataclass(frozen=True, slots=True, kw_only=True)
class Value:
    """A literal: a scalar, a list of values, or a mapping of settings."""

    data: Scalar | tuple[Value, ...] | tuple[Setting, ...]
    kind: str  # "scalar" | "list" | "dict"
    span: Span = field(default=NO_SPAN, compare=False)

    def py(self) -> Any:
        """The plain Python value (lists and dicts rebuilt)."""
        if self.kind == "list":
            return [v.py() for v in self.data]  # type: ignore[union-attr]
        if self.kind == "dict":
            return {s.name: s.value.py() for s in self.data}  # type: ignore[union-attr]
        return self.data


@dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    """`name = value`."""

    name: str
    value: Value
    span: Span = field(default=NO_SPAN, compare=False)
    name_span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    """A parameter or module pattern with its matching rule."""

    kind: SelectorKind
    pattern: str
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Criterion:
    """One way a phase can end. `value` is the epoch or step; `args` the plateau overrides."""

    kind: CriterionKind
    value: int | None = None
    args: tuple[Setting, ...] | None = None
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reinit:
    """Rebuild the optimizer or lr scheduler at a transition (FTS `new_optimizer` / `new_lr_scheduler`).

    `init_args` is None when the class is given without arguments at all (FTS distinguishes
    a missing `init_args` from an empty one). `settings` holds the lr-scheduler directive's
    other keys: `pl_lrs_cfg`, `init_pg_lrs`, `use_current_optimizer_pg_lrs`.
    """

    target: ReinitTarget
    class_path: str
    init_args: tuple[Setting, ...] | None = None
    settings: tuple[Setting, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)

    def setting(self, name: str) -> Setting | None:
        """The named setting, if present."""
        return _find(self.settings, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class LrDecay:
    """Layer-wise lr decay: `lr TOP decay D [preset] per LAYERS { embeddings ... norm ... }`.

    `lr` is the top (undecayed) lr; `decay` the factor per layer, None for fastai's `slice`
    forms, where `start` is `slice(start, stop)`'s start (None for `slice(stop)`). `layers` is
    an exact (module prefix) or glob selector whose pattern holds one `{i}`, the layer index.
    `embeddings` and `norm` place those parameters as the preset's project places them.
    """

    lr: float
    decay: float | None = None
    start: float | None = None
    preset: LrPreset = LrPreset.BEIT
    layers: Selector
    embeddings: tuple[Selector, ...] = ()
    norm: tuple[Selector, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)

    @property
    def is_slice(self) -> bool:
        """True for fastai's `lr slice(...)` spelling."""
        return self.decay is None


@dataclass(frozen=True, slots=True, kw_only=True)
class Phase:
    """One phase: what it thaws, its lr, how it ends, what it reinitializes.

    `until` is None when the source states no transition (FTS default: plateau, or nothing
    under `epoch_transitions_only`); otherwise the criteria, any of which ends the phase.
    `lr_decay`, when given, gives each of the phase's parameters its layer's lr.
    """

    index: int
    name: str | None = None
    selectors: tuple[Selector, ...] = ()
    until: tuple[Criterion, ...] | None = None
    settings: tuple[Setting, ...] = ()
    reinits: tuple[Reinit, ...] = ()
    lr_decay: LrDecay | None = None
    span: Span = field(default=NO_SPAN, compare=False)
    index_span: Span = field(default=NO_SPAN, compare=False)

    def setting(self, name: str) -> Setting | None:
        """The named setting, if present."""
        return _find(self.settings, name)

    @property
    def lr(self) -> float | None:
        """The phase's initial lr, if given."""
        s = self.setting("lr")
        return s.value.data if s and isinstance(s.value.data, (int, float)) else None  # type: ignore[return-value]

    def criterion(self, kind: CriterionKind) -> Criterion | None:
        """The criterion of that kind, if any."""
        return next((c for c in self.until or () if c.kind is kind), None)

    def reinit(self, target: ReinitTarget) -> Reinit | None:
        """The reinit directive for that target, if any."""
        return next((r for r in self.reinits if r.target is target), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """Schedule-wide options (FinetuningScheduler callback options and companions)."""

    settings: tuple[Setting, ...] = ()
    reinits: tuple[Reinit, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)

    def setting(self, name: str) -> Setting | None:
        """The named setting, if present."""
        return _find(self.settings, name)

    def get(self, name: str, default: Any = None) -> Any:
        """The named option's Python value, or `default`."""
        s = self.setting(name)
        return default if s is None else s.value.py()

    def reinit(self, target: ReinitTarget) -> Reinit | None:
        """The schedule-wide (implicit-mode) reinit directive for that target, if any."""
        return next((r for r in self.reinits if r.target is target), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardEntry:
    """One FSDP2 plan entry: modules to `fully_shard`, with keyword arguments. `members` (exact
    module names) make it one list-form call `fully_shard([selected, *members])`: one parameter
    group over all of them (accelerate's `[final norm, head]` tail); no DSL syntax writes them."""

    selector: Selector
    kwargs: tuple[Setting, ...] | None = None
    members: tuple[Selector, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class FSDPConfig:
    """FSDP1 sharding: strategy settings, `wrap` overrides (FTS `awp_overrides`), ignored modules."""

    settings: tuple[Setting, ...] = ()
    wrap: tuple[Selector, ...] = ()
    ignore: tuple[Selector, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)

    def setting(self, name: str) -> Setting | None:
        """The named setting, if present."""
        return _find(self.settings, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class FSDP2Config:
    """FSDP2 sharding: strategy settings and the ordered `fully_shard` plan."""

    settings: tuple[Setting, ...] = ()
    plan: tuple[ShardEntry, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)

    def setting(self, name: str) -> Setting | None:
        """The named setting, if present."""
        return _find(self.settings, name)

    def grouped(self) -> tuple[ShardEntry, ...]:
        """Plan entries with `members` (one list-form `fully_shard` call): no DSL or FTS form."""
        return tuple(e for e in self.plan if e.members)


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """A whole schedule. `phases` is in source order; `phases == ()` means FTS's implicit schedule."""

    options: Options = Options()
    phases: tuple[Phase, ...] = ()
    fsdp: FSDPConfig | None = None
    fsdp2: FSDP2Config | None = None
    span: Span = field(default=NO_SPAN, compare=False)


def _find(settings: tuple[Setting, ...], name: str) -> Setting | None:
    return next((s for s in settings if s.name == name), None)


def walk(node: Any) -> Iterator[Any]:
    """Yield `node` and every IR node below it, depth first."""
    if is_dataclass(node) and not isinstance(node, type):
        yield node
        for f in fields(node):
            yield from walk(getattr(node, f.name))
    elif isinstance(node, tuple):
        for item in node:
            yield from walk(item)


def dump(node: Any) -> Any:
    """Serialize an IR node to plain JSON-able data (spans left out; keys sorted by json.dumps)."""
    if is_dataclass(node) and not isinstance(node, type):
        out: dict[str, Any] = {"node": type(node).__name__}
        for f in fields(node):
            if f.compare:
                out[f.name] = dump(getattr(node, f.name))
        return out
    if isinstance(node, tuple):
        return [dump(item) for item in node]
    if isinstance(node, StrEnum):
        return node.value
    return node


_NODE_TYPES: Mapping[str, type] = {
    cls.__name__: cls
    for cls in (Value, Setting, Selector, Criterion, Reinit, LrDecay, Phase, Options, ShardEntry,
                FSDPConfig, FSDP2Config, Schedule)
}


def load(data: Any) -> Any:
    """Inverse of `dump`: rebuild IR nodes (with empty spans)."""
    if isinstance(data, dict) and "node" in data:
        cls = _NODE_TYPES[data["node"]]
        kwargs = {k: load(v) for k, v in data.items() if k != "node"}
        if cls is Selector:
            kwargs["kind"] = SelectorKind(kwargs["kind"])
        elif cls is Criterion:
            kwargs["kind"] = CriterionKind(kwargs["kind"])
        elif cls is Reinit:
            kwargs["target"] = ReinitTarget(kwargs["target"])
        elif cls is LrDecay:
            kwargs["preset"] = LrPreset(kwargs["preset"])
        return cls(**kwargs)
    if isinstance(data, list):
        return tuple(load(item) for item in data)
    return data


def scalar(value: Scalar, span: Span = NO_SPAN) -> Value:
    """A scalar `Value`."""
    return Value(data=value, kind="scalar", span=span)


def from_py(obj: Any, span: Span = NO_SPAN) -> Value:
    """Build a `Value` from plain Python data (lists, dicts, scalars)."""
    if isinstance(obj, dict):
        return Value(
            data=tuple(Setting(name=str(k), value=from_py(v, span), span=span) for k, v in obj.items()),
            kind="dict", span=span,
        )
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return Value(data=tuple(from_py(v, span) for v in items), kind="list", span=span)
    return scalar(obj, span)
