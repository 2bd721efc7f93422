"""FSDP1 prediction: which FlatParameter every parameter lands in, without a process group.

Input: a `ModelGraph` and an `FSDP1Spec` (policy classes or size threshold, override and
ignored module FQNs, `use_orig_params`, mixed precision, how the root is wrapped).
Output: a `Prediction`: units in wrap order (post-order, each unit's root last), each with
its FlatParameter's primary FQNs; parameters in no unit; per-registration executing units
for tie checks. Never imports torch.

The rules (torch 2.13, `torch/distributed/fsdp`; verified differentially in tests):
- `FSDP(root, auto_wrap_policy=P)` wraps policy targets bottom-up, then the root. A unit
  takes the parameters of its subtree that are not ignored and not already taken.
- `_Policy` objects (`ModuleWrapPolicy`, FTS's name-driven overrides): targets are found
  once over the deduplicated module tree; a shared module is wrapped at its first path.
- Callable policies (size-based): `_recursive_wrap` walks `named_children()` without a
  visited set, so a shared module is visited (and wrapped again, empty) under each parent.
- "Already taken": with `use_orig_params=True` the parameter object is marked, so a tied
  parameter belongs to the first unit that reaches it. With `False` only registrations inside
  the wrapped subtree disappear: an alias registered elsewhere is flattened again.
- Mixed precision with a policy: every BatchNorm is its own unit.
- Lightning flow (LightningModule target, what ftsc's runtime and FTS build): every direct
  child of the LightningModule is wrapped as its own FSDP root; the LightningModule itself is
  never wrapped, so parameters registered directly on it are in no unit.
- Manual wrapping (`wrap(m)` calls in `configure_model`, recorded while building on meta):
  each call is `FSDP(m, auto_wrap_policy=P)` in call order; Lightning then leaves the root
  unwrapped (parameters outside every wrapped module are in no unit) and FTS drops
  `awp_overrides`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ftsc.model.graph import ModelGraph, parent_of, within
from ftsc.shard.objects import ModuleObjects

BATCHNORM = "torch.nn.modules.batchnorm._BatchNorm"
CONTAINERS = ("torch.nn.modules.container.ModuleList", "torch.nn.modules.container.ModuleDict")
FORCE_LEAF = ("torch.nn.modules.activation.MultiheadAttention",)
LIGHTNING_MODULES = ("lightning.pytorch.core.module.LightningModule", "pytorch_lightning.core.module.LightningModule")


@dataclass(frozen=True, slots=True, kw_only=True)
class FSDP1Spec:
    """What FSDP1 is asked to do, with class paths and module selectors already resolved."""

    classes: tuple[str, ...] = ()  # ModuleWrapPolicy classes (qualified names as written)
    min_num_params: int | None = None  # size_based_auto_wrap_policy threshold
    overrides: tuple[str, ...] = ()  # module FQNs wrapped in their own unit (FTS awp_overrides)
    ignored: tuple[str, ...] = ()  # ignored_modules FQNs
    use_orig_params: bool = True
    mixed_precision: bool = False  # Lightning always passes a MixedPrecision config
    lightning: bool = False  # wrap each direct child of the root (LightningModule flow)
    manual: tuple[str, ...] = ()  # modules the model wraps itself in configure_model (call order)
    world_size: int = 2  # only size-based revisits of shared modules depend on it (rank 0 is predicted)

    @property
    def has_policy(self) -> bool:
        """True when some auto-wrap policy (classes, size, overrides) applies."""
        return bool(self.classes or self.min_num_params or self.overrides)


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    """An FSDP instance: the module it wraps (FQN, `""` for the root) and its FlatParameter."""

    name: str
    params: tuple[str, ...]
    root: bool = False  # a root FSDP instance (the target's root, or a child under Lightning)


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction:
    """Every FSDP unit in wrap order and where each parameter lands."""

    units: tuple[Unit, ...]
    unsharded: tuple[str, ...]  # parameters in no FlatParameter (ignored, or on a LightningModule)
    owners: dict[str, tuple[str, ...]] = field(default_factory=dict)  # param -> units holding it
    executing: dict[str, dict[str, str | None]] = field(default_factory=dict)  # param -> path -> unit
    notes: tuple[str, ...] = ()

    def unit(self, name: str) -> Unit | None:
        """The unit wrapping module `name`."""
        return next((u for u in self.units if u.name == name), None)


def class_matches(written: str, qualname: str) -> bool:
    """True if a class path as users write it names `qualname`, directly or through a re-export.

    Example:
        >>> class_matches("torch.nn.Linear", "torch.nn.modules.linear.Linear")
        True
        >>> class_matches("torch.nn.Linear", "torch.nn.modules.linear.LinearX")
        False
    """
    if written == qualname:
        return True
    pkg, _, name = written.rpartition(".")
    return bool(pkg) and qualname.rpartition(".")[2] == name and qualname.startswith(pkg + ".")


class _Wrapper:
    """Builds units for one FSDP root, tracking what is already flattened."""

    def __init__(self, tree: ModuleObjects, spec: FSDP1Spec, ignored_mods: set[str], ignored_params: set[str],
                 taken: set[str], consumed: set[tuple[str, str]]) -> None:
        self.tree, self.spec = tree, spec
        self.ignored_mods, self.ignored_params = ignored_mods, ignored_params
        self.taken, self.consumed = taken, consumed  # params (orig=True) / (module, param) registrations (False)
        self.units: list[Unit] = []
        self.flat_local: dict[str, int] = {}  # unit module obj -> its FlatParameter's local numel (False)
        self.rank0_view: dict[str, int] = {}  # param -> numel of rank 0's shard view of it (True)

    def make_unit(self, name: str, obj: str, *, root: bool = False) -> None:
        managed: dict[str, None] = {}
        mods = self.tree.subtree(obj)
        regs, ignored, orig = self.tree.regs, self.ignored_params, self.spec.use_orig_params
        taken, consumed = self.taken, self.consumed
        for m in mods:
            for p in regs[m]:
                if p in ignored or p in managed:
                    continue
                if orig:
                    if p in taken:
                        continue
                elif (m, p) in consumed:
                    continue
                managed[p] = None
        taken.update(managed)
        if self.spec.min_num_params:  # only a size policy reads the layouts (`numel_live`)
            self._layout(obj, list(managed))
        if not self.spec.use_orig_params:
            self.consumed.update((m, p) for m in mods for p in self.tree.regs[m] if p in managed)
        self.units.append(Unit(name=name, params=tuple(managed), root=root))

    def _layout(self, obj: str, params: list[str]) -> None:
        """Sharded sizes torch leaves behind, seen when a size policy revisits a shared module."""
        ws, graph = max(self.spec.world_size, 1), self.tree.graph
        numels = graph.numels
        if not self.spec.use_orig_params:
            total = sum(map(numels.__getitem__, params))
            if total:
                self.flat_local[obj] = -(-total // ws)
            return
        entries = graph.param_entries
        offsets, sizes, total = [], [], 0
        for p in params:  # use_orig_params=True aligns each parameter to 16 bytes
            align = _ALIGN.get(entries[p].dtype, 4)
            total += -total % align
            offsets.append(total)
            size = numels[p]
            sizes.append(size)
            total += size
        shard = -(-(total + -total % ws) // ws)
        view = self.rank0_view
        for p, start, size in zip(params, offsets, sizes, strict=True):
            view[p] = max(0, min(start + size, shard) - start) if start < shard else 0

    def live_sums(self, root: str) -> dict[str, int]:
        """`numel_live` of every module under `root`, in one bottom-up pass. Only valid while no
        module is shared and no parameter tied: then subtrees are disjoint, a unit built in one
        subtree changes no other, and each module's value is its own part plus its children's."""
        out: dict[str, int] = {}
        graph, regs, children = self.tree.graph, self.tree.regs, self.tree.children
        for m in self.tree.post_order([root]):
            total = self.flat_local.get(m, 0)
            for p in regs[m]:
                if p in self.ignored_params:
                    continue
                if self.spec.use_orig_params:
                    total += self.rank0_view[p] if p in self.taken else graph.numel(p)
                elif (m, p) not in self.consumed:
                    total += graph.numel(p)
            out[m] = total + sum(out[child] for _, child in children[m])
        return out

    def numel_live(self, obj: str) -> int:
        """`sum(p.numel() for p in module.parameters())` as torch sees it at this point (rank 0)."""
        total = 0
        seen: set[str] = set()
        for m in self.tree.subtree(obj):
            total += self.flat_local.get(m, 0)
            for p in self.tree.regs[m]:
                if p in seen or p in self.ignored_params:
                    continue
                seen.add(p)
                if self.spec.use_orig_params:
                    total += self.rank0_view[p] if p in self.taken else self.tree.graph.numel(p)
                elif (m, p) not in self.consumed:
                    total += self.tree.graph.numel(p)
        return total


_ITEMSIZE = {"float64": 8, "int64": 8, "complex64": 8, "float16": 2, "bfloat16": 2, "int16": 2,
             "int8": 1, "uint8": 1, "bool": 1}
_ALIGN = {dtype: max(16 // size, 1) for dtype, size in _ITEMSIZE.items()}  # elements per 16 bytes; else 4


def _module_policy_targets(tree: ModuleObjects, spec: FSDP1Spec, root: str, ignored: set[str]) -> set[str]:
    targets = set()
    for m in tree.subtree(root):
        if m in ignored or m == root:
            continue
        if (tree.is_a(m, spec.classes) or m in spec.overrides
                or (spec.mixed_precision and tree.is_a(m, (BATCHNORM,)))):
            targets.add(m)
    return targets


def _wrap_root(w: _Wrapper, name: str, obj: str) -> None:
    """`FSDP(obj, auto_wrap_policy=...)`, its units appended to `w.units`."""
    tree, spec = w.tree, w.spec
    if spec.has_policy and not spec.min_num_params:
        targets = _module_policy_targets(tree, spec, obj, w.ignored_mods)
        paths = {o: p for p, o in _first_paths(tree, obj, name)}
        for m in tree.post_order([obj]):
            if m in targets:
                w.make_unit(paths[m], m)
    elif spec.has_policy:
        _recursive_wrap(w, obj, name, only_children=True)
    w.make_unit(name, obj, root=True)


def _first_paths(tree: ModuleObjects, root: str, root_path: str) -> Iterator[tuple[str, str]]:
    """(path, module obj) for each module under `root`, at the path of its first visit."""
    seen = {root}
    yield root_path, root
    stack = [(root_path, iter(tree.children[root]))]  # an explicit stack: any depth, no recursion
    while stack:
        path, children = stack[-1]
        for child_path, child in children:
            if child not in seen:
                seen.add(child)
                local = child_path.rpartition(".")[2]
                sub = f"{path}.{local}" if path else local
                yield sub, child
                stack.append((sub, iter(tree.children[child])))
                break
        else:
            stack.pop()


@dataclass(slots=True)
class _Visit:
    """One module being visited by `_recursive_wrap` (a frame of its explicit stack)."""

    obj: str
    path: str
    only_children: bool
    nonwrapped: int  # parameters under the module when the visit started, as torch counts them
    children: Iterator[tuple[str, str]]
    total: int = 0  # parameters wrapped by the children visited so far
    seen: set[str] = field(default_factory=set)


def _recursive_wrap(w: _Wrapper, obj: str, path: str, *, only_children: bool) -> int:
    """torch's `_recursive_wrap` with size-based (and name-override) policies: the same visits
    in the same order, on an explicit stack (a module tree thousands of levels deep is fine)."""
    tree, spec = w.tree, w.spec
    # Without shared modules or ties, a module's count when it is entered is its count now (every
    # unit built before then lies in another subtree): computed for all at once, not per module.
    live = w.live_sums(obj) if not (tree.graph.module_aliases or tree.shared) else None

    def enter(obj: str, path: str, only_children: bool) -> _Visit | None:
        nonwrapped = live[obj] if live is not None else w.numel_live(obj)
        if tree.is_a(obj, FORCE_LEAF) and not (spec.overrides or spec.mixed_precision or spec.classes):
            return None  # a forced leaf: not entered, wraps nothing
        return _Visit(obj, path, only_children, nonwrapped, iter(tree.children[obj]))

    def leave(v: _Visit) -> int:
        if v.only_children:
            return v.total
        remaining = v.nonwrapped - v.total
        by_size = (spec.min_num_params is not None and remaining >= spec.min_num_params
                   and not tree.is_a(v.obj, CONTAINERS))
        by_class = bool(spec.classes) and tree.is_a(v.obj, spec.classes)
        if (by_size or by_class or v.obj in spec.overrides
                or (spec.mixed_precision and tree.is_a(v.obj, (BATCHNORM,)))):
            w.make_unit(v.path, v.obj)
            return v.nonwrapped
        return v.total

    first = enter(obj, path, only_children)
    if first is None:
        return 0
    stack = [first]
    while True:
        v = stack[-1]
        for child_path, child in v.children:
            if child in w.ignored_mods or child in v.seen:  # named_children() yields each object once
                continue
            v.seen.add(child)
            local = child_path.rpartition(".")[2]
            sub = enter(child, f"{v.path}.{local}" if v.path else local, False)
            if sub is not None:
                stack.append(sub)
                break
        else:
            stack.pop()
            wrapped = leave(v)
            if not stack:
                return wrapped
            stack[-1].total += wrapped


def predict(graph: ModelGraph, spec: FSDP1Spec) -> Prediction:
    """Predict the FSDP units and FlatParameters torch builds for `spec`.

    Example:
        >>> g = ModelGraph.from_names(["layers.0.w", "layers.1.w", "head.w"])
        >>> p = predict(g, FSDP1Spec(overrides=("layers.0", "head")))
        >>> [(u.name, u.params) for u in p.units]
        [('layers.0', ('layers.0.w',)), ('head', ('head.w',)), ('', ('layers.1.w',))]
    """
    tree = ModuleObjects(graph)
    ignored_mods: set[str] = set()
    for m in spec.ignored:
        obj = graph.module_aliases.get(m, m)
        if obj in tree.children:
            ignored_mods.update(tree.subtree(obj))
    ignored_params = {p for m in ignored_mods for p in tree.regs[m]}
    w = _Wrapper(tree, spec, ignored_mods, ignored_params, set(), set())
    notes: list[str] = []
    if spec.manual:
        for path in spec.manual:
            obj = graph.module_aliases.get(path, path)
            if obj in tree.children and obj not in ignored_mods:
                _wrap_root(w, path, obj)
    elif spec.lightning:
        roots: dict[str, str] = {}
        for child_path, child in tree.children[""]:
            if child not in ignored_mods:
                roots.setdefault(child, child_path)
        for child, child_path in roots.items():
            _wrap_root(w, child_path, child)
    else:
        _wrap_root(w, "", "")
    units = tuple(w.units)
    owners: dict[str, tuple[str, ...]] = {}  # first-insertion order, as units list their parameters
    multi: set[str] = set()  # parameters in several units
    for u in units:
        one = (u.name,)
        again = {p: owners[p] + one for p in owners.keys() & u.params}
        owners.update(dict.fromkeys(u.params, one))
        if again:
            owners.update(again)
            multi.update(again)
    unsharded = tuple(p for p in graph.params if p not in owners)
    unit_names = sorted({u.name for u in units}, key=len, reverse=True)
    executing: dict[str, dict[str, str | None]] = {}
    candidates = multi.union(tree.shared)  # registered twice, or in two units
    for p in (p for p in tree.reg_paths if p in candidates) if candidates else ():
        executing[p] = {path: _innermost(parent_of(path), unit_names) for path, _ in tree.reg_paths[p]}
    if spec.min_num_params and spec.use_orig_params and tree.shared:
        notes.append("size-based wrapping of a model with shared parameters under use_orig_params=True depends "
                     "on each rank's shard sizes; the prediction assumes the parameters are whole")
    return Prediction(units=units, unsharded=unsharded, owners=owners,
                      executing=executing, notes=tuple(notes))


def _innermost(module_path: str, unit_names: Sequence[str]) -> str | None:
    for name in unit_names:  # longest first
        if within(module_path, name):
            return name
    return None


def is_lightning_module(graph: ModelGraph) -> bool:
    """True if the model's root is a LightningModule."""
    return any(q in LIGHTNING_MODULES for q in graph.mro(""))
