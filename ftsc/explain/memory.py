"""Model-state bytes per rank: pure arithmetic over shapes, dtypes and a sharding layout.

Input: a `ModelGraph`, a `Setup` (strategy kind, world size, optimizer, precision, offload) and
the sharding groups (`Group`: FSDP1 FlatParameters, FSDP2 `fully_shard` groups, replicated
parameters). Output: `Memory` per phase for the busiest rank. Never imports torch, never
estimates: the activation estimate lives in `ftsc.explain.activations`.

What torch 2.13 allocates, per rank, once a phase has taken an optimizer step (measured right
after `backward()`; verified differentially in tests/test_explain_memory.py):
- FSDP1 (`FlatParameter`): the local shard, `ceil(F/W)` elements of the unit's dtype, where F
  counts, with `use_orig_params=True`, the 16-byte alignment padding before each parameter and
  the padding of the total to a multiple of W. W = 1 runs NO_SHARD (no sharding). The flat
  gradient shard exists as a whole as soon as any member trains. Optimizer state: with
  `use_orig_params=False` one state per trainable FlatParameter shard; with `True` per original
  parameter, only for the elements that fall in this rank's chunk, so ranks differ.
- FSDP2 (`fully_shard`): per parameter `ceil(d0/W)` rows (dim-0 padding) for the parameter
  and its gradient; optimizer state per rank for its real rows (rank 0 holds the most).
- Replicated parameters (single device, DDP, FSDP parameters in no unit): whole tensors.
- Gradients keep the parameter's dtype (FSDP casts reduced gradients back) unless FSDP1's
  `keep_low_precision_grads`; optimizer states are `zeros_like(param)`. Adam's `step` is a
  host scalar and costs no accelerator memory.
- DDP keeps its reducer's gradient buckets beside `param.grad` (Lightning's default
  `gradient_as_bucket_view=False`): trainable gradients count twice (verified against a gloo
  process's `bucket_sizes`).
- Buffers are never sharded; FSDP1 mixed precision casts floating buffers to `buffer_dtype`
  (BatchNorm units keep theirs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from ftsc.model.graph import ModelGraph

DTYPE_BYTES: Mapping[str, int] = {
    "float64": 8, "double": 8, "int64": 8, "long": 8, "complex64": 8, "complex128": 16,
    "float32": 4, "float": 4, "int32": 4, "int": 4,
    "float16": 2, "half": 2, "bfloat16": 2, "int16": 2, "short": 2,
    "int8": 1, "uint8": 1, "bool": 1, "float8_e4m3fn": 1, "float8_e5m2": 1,
}
FLOATING = frozenset({"float64", "double", "float32", "float", "float16", "half", "bfloat16",
                      "float8_e4m3fn", "float8_e5m2"})
OPTIMIZER_STATES: Mapping[str, int] = {"adamw": 2, "adam": 2, "sgd": 0, "sgd-momentum": 1}
KINDS = ("single", "ddp", "fsdp", "fsdp2")


def itemsize(dtype: str) -> int:
    """Bytes per element of a dtype written as in manifests (`float32`, `bfloat16`, ...).

    Example:
        >>> itemsize("bfloat16"), itemsize("torch.float64")
        (2, 8)
    """
    return DTYPE_BYTES.get(dtype.removeprefix("torch."), 4)


@dataclass(frozen=True, slots=True, kw_only=True)
class Setup:
    """How the model trains: what the memory arithmetic needs to know.

    `kind` is one of `single`, `ddp`, `fsdp` (FSDP1) or `fsdp2`. `shard_size` is how many
    ranks an FSDP1 FlatParameter is split over when that is not the world size (`NO_SHARD`: 1;
    `HYBRID_SHARD`: the devices of one node). `store_dtype` is the dtype
    floating tensors are stored in (Lightning's `*-true` precisions), `buffer_dtype` FSDP1's
    mixed-precision buffer dtype, `grad_dtype` FSDP1's low-precision gradients
    (`keep_low_precision_grads`), `param_dtype` FSDP1's `MixedPrecision.param_dtype` (it sets
    the FlatParameter's alignment), `compute_dtype` the dtype the forward runs in.
    """

    kind: str = "single"
    world_size: int = 1
    shard_size: int | None = None
    optimizer: str = "adamw"
    use_orig_params: bool = True
    store_dtype: str | None = None
    buffer_dtype: str | None = None
    grad_dtype: str | None = None
    param_dtype: str | None = None
    compute_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Invalid strategy kind: {self.kind!r}; expected one of {', '.join(KINDS)}.")
        if self.optimizer not in OPTIMIZER_STATES:
            raise ValueError(f"Invalid optimizer: {self.optimizer!r}; expected one of {', '.join(OPTIMIZER_STATES)}.")
        if self.world_size < 1:
            raise ValueError(f"Invalid world size: {self.world_size}; expected a positive integer.")
        if self.shard_size is not None and not 1 <= self.shard_size <= self.world_size:
            raise ValueError(f"Invalid shard size: {self.shard_size}; expected 1 to the world size.")

    @property
    def flat_ranks(self) -> int:
        """Ranks an FSDP1 FlatParameter is split over."""
        return self.world_size if self.shard_size is None else self.shard_size


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """Parameters sharded together: an FSDP1 unit (`flat`), an FSDP2 group (`dim0`), or the
    parameters of one top-level module that are not sharded (`replica`).

    `offload` (FSDP1 `CPUOffload`, FSDP2 `CPUOffloadPolicy`) keeps its parameters, gradients and
    optimizer state in host memory; `no_buffer_cast` marks FSDP1 units with mixed precision off
    (BatchNorm units).
    """

    name: str
    params: tuple[str, ...]
    layout: str  # "flat" | "dim0" | "replica"
    offload: bool = False
    no_buffer_cast: bool = False


@dataclass(frozen=True, slots=True)
class Memory:
    """Bytes on one rank in each category (SPEC §5.3's `memory` object)."""

    params: int = 0
    buffers: int = 0
    grads: int = 0
    optimizer: int = 0

    @property
    def model_states(self) -> int:
        """`params + buffers + grads + optimizer`."""
        return self.params + self.buffers + self.grads + self.optimizer

    def __add__(self, other: Memory) -> Memory:
        return Memory(self.params + other.params, self.buffers + other.buffers, self.grads + other.grads,
                      self.optimizer + other.optimizer)


@dataclass(frozen=True, slots=True)
class RankMemory:
    """A phase's bytes on the busiest rank: accelerator and host (CPU offload), and which rank."""

    device: Memory
    host: Memory | None
    rank: int


def _dtype(graph: ModelGraph, param: str, setup: Setup) -> str:
    dtype = graph.param_entries[param].dtype
    if setup.store_dtype and dtype in FLOATING:
        return setup.store_dtype
    return dtype


def flat_layout(graph: ModelGraph, params: Sequence[str], setup: Setup) -> tuple[list[tuple[int, int]], int]:
    """Each parameter's `[start, end)` in the FlatParameter, and the local shard numel.

    Example:
        >>> g = ModelGraph.from_names({"a": [3], "b": [5]})
        >>> flat_layout(g, ["a", "b"], Setup(kind="fsdp", world_size=2))
        ([(0, 3), (4, 9)], 5)
        >>> flat_layout(g, ["a", "b"], Setup(kind="fsdp", world_size=2, use_orig_params=False))
        ([(0, 3), (3, 8)], 4)
        >>> flat_layout(g, ["a", "b"], Setup(kind="fsdp", world_size=8, shard_size=1))
        ([(0, 3), (4, 9)], 16)
    """
    ws = setup.flat_ranks
    spans: list[tuple[int, int]] = []
    total = 0
    numels = graph.numels
    align = 1
    if setup.use_orig_params and params:  # each original parameter starts 16-byte aligned (one dtype per unit)
        align = max(16 // itemsize(setup.param_dtype or _dtype(graph, params[0], setup)), 1)
    sizes = list(map(numels.__getitem__, params))
    if align == 1 or all(n % align == 0 for n in sizes):  # no padding: the spans are running sums
        ends = list(accumulate(sizes))
        spans = list(zip([0, *ends[:-1]], ends))
        total = ends[-1] if ends else 0
    else:
        for numel in sizes:
            total += -total % align
            spans.append((total, total + numel))
            total += numel
    # The process group's size: the world, or one node under HYBRID_SHARD. With
    # use_orig_params=True the total is padded to a multiple of it, even under NO_SHARD.
    group = setup.world_size if ws == 1 else ws
    if setup.use_orig_params:
        total += -total % group
    if ws == 1:  # NO_SHARD (or a world of one): FSDP keeps the whole FlatParameter
        return spans, total
    return spans, total // ws if setup.use_orig_params else -(-total // ws)


def _dim0_local(graph: ModelGraph, param: str, ws: int) -> tuple[int, int]:
    """(padded local numel, elements per dim-0 row) of an FSDP2 `Shard(0)` parameter."""
    shape = graph.param_entries[param].shape
    rows = shape[0] if shape else 1
    row = graph.numel(param) // rows if rows else 0
    return -(-rows // ws) * row, row


class RankBytes:
    """Optimizer bytes per rank as range additions, so that any world size costs O(parameters).

    Example:
        >>> r = RankBytes(8)
        >>> r.add(0, 8, 10); r.add(2, 4, 5); r.add(3, 3, 99)
        >>> r.busiest(RankBytes(8))
        (2, 15, 0)
    """

    def __init__(self, ranks: int) -> None:
        self.ranks = ranks
        self.delta: dict[int, int] = {}

    def add(self, first: int, stop: int, value: int) -> None:
        """Add `value` to every rank in `[first, stop)`."""
        stop = min(stop, self.ranks)
        if first >= stop or not value:
            return
        self.delta[first] = self.delta.get(first, 0) + value
        self.delta[stop] = self.delta.get(stop, 0) - value

    def busiest(self, host: RankBytes) -> tuple[int, int, int]:
        """(rank, its bytes here, its bytes in `host`): most bytes here, then in `host`, then lowest rank."""
        points = sorted({0, *self.delta, *host.delta} - {self.ranks})
        best = (0, 0, 0)
        here = there = 0
        for r in points:
            here += self.delta.get(r, 0)
            there += host.delta.get(r, 0)
            if (here, there) > best[1:]:
                best = (r, here, there)
        return best


def _per_rank_flat(graph: ModelGraph, group: Group, trainable: frozenset[str], setup: Setup,
                   opt: RankBytes, cache: dict[int, Any]) -> Memory:
    """An FSDP1 unit's bytes; its optimizer bytes per rank go to `opt`."""
    if not group.params:
        return Memory()
    key = id(group)  # the layout does not depend on the phase: computed once per group
    if key not in cache:
        cache[key] = flat_layout(graph, group.params, setup)
    spans, shard = cache[key]
    dtype = _dtype(graph, group.params[0], setup)
    size = itemsize(dtype)
    if trainable.isdisjoint(group.params):
        return Memory(params=shard * size)
    grads = shard * itemsize(setup.grad_dtype or dtype)
    per = OPTIMIZER_STATES[setup.optimizer] * size
    if per and not setup.use_orig_params:  # the optimizer holds the FlatParameter shard itself
        opt.add(0, opt.ranks, per * shard)
    elif per:  # state for the elements of each trainable parameter in the rank's chunk
        for (start, end), p in zip(spans, group.params, strict=True):
            if end == start or p not in trainable:
                continue
            first, last = start // shard, (end - 1) // shard
            if first == last:
                opt.add(first, first + 1, per * (end - start))
                continue
            opt.add(first, first + 1, per * ((first + 1) * shard - start))
            opt.add(first + 1, last, per * shard)
            opt.add(last, last + 1, per * (end - last * shard))
    return Memory(params=shard * size, grads=grads)


def _dim0_layout(graph: ModelGraph, group: Group, setup: Setup) -> tuple[list[tuple[str, int, int, int, int]], int]:
    """(parameter, bytes per element, padded local numel, elements per dim-0 row, rows) of each
    parameter of an FSDP2 group (or replicated parameters), and their bytes on one rank."""
    ws = setup.world_size if group.layout == "dim0" else 1
    out = []
    total = 0
    for p in group.params:
        size = itemsize(_dtype(graph, p, setup))
        local, row = _dim0_local(graph, p, ws)
        shape = graph.param_entries[p].shape
        out.append((p, size, local, row, shape[0] if shape else 1))
        total += local * size
    return out, total


def _per_rank_dim0(graph: ModelGraph, group: Group, trainable: frozenset[str], setup: Setup,
                   opt: RankBytes, cache: dict[int, Any]) -> Memory:
    """An FSDP2 group's bytes (or replicated parameters when `layout == "replica"`)."""
    ws = setup.world_size if group.layout == "dim0" else 1
    states = OPTIMIZER_STATES[setup.optimizer]
    key = id(group)  # the layout does not depend on the phase: computed once per group
    if key not in cache:
        cache[key] = _dim0_layout(graph, group, setup)
    layout, params = cache[key]
    if trainable.isdisjoint(group.params):
        return Memory(params=params)
    grads = 0
    for p, size, local, row, rows in layout:
        if p not in trainable:
            continue
        grads += local * size
        if not states:
            continue
        if ws == 1:
            opt.add(0, opt.ranks, states * local * size)
            continue
        # Rank r holds rows [r*per, (r+1)*per) of the real rows: full chunks, then a remainder.
        if not rows:
            continue
        per = -(-rows // ws)
        full = rows // per
        opt.add(0, full, states * per * row * size)
        opt.add(full, full + 1, states * (rows - full * per) * row * size)
    return Memory(params=params, grads=grads)


def _ranks(setup: Setup, groups: Iterable[Group]) -> int:
    """How many ranks can differ: FSDP1 `use_orig_params=True` and FSDP2 optimizer state."""
    if setup.kind in ("fsdp", "fsdp2") and any(g.layout != "replica" for g in groups):
        return setup.flat_ranks if setup.kind == "fsdp" else setup.world_size
    return 1


def phase_memory(graph: ModelGraph, setup: Setup, groups: Sequence[Group], trainable: frozenset[str],
                 buffers: Memory, cache: dict[int, Any] | None = None) -> RankMemory:
    """Model-state bytes on the busiest rank while the parameters in `trainable` train.

    Args:
        graph: the model (shapes and dtypes).
        setup: strategy, world size, optimizer, precision.
        groups: how parameters are sharded (every parameter in at least one group).
        trainable: primary FQNs of the parameters that train in this phase.
        buffers: buffer bytes per rank (`buffer_bytes`).
        cache: FlatParameter and dim-0 layouts by group, reused across the phases of one model
            (the caller keeps `groups` alive while it holds the cache).

    Returns:
        The accelerator bytes (and host bytes of offloaded groups) of the busiest rank.

    Example:
        >>> g = ModelGraph.from_names({"a.w": [4, 4], "b.w": [4]})
        >>> groups = [Group(name="", params=("a.w", "b.w"), layout="replica")]
        >>> m = phase_memory(g, Setup(), groups, frozenset({"a.w"}), Memory())
        >>> m.device.params, m.device.grads, m.device.optimizer
        (80, 64, 128)
    """
    n = _ranks(setup, groups)
    cache = {} if cache is None else cache
    device, host = Memory(), Memory()
    dev_opt, host_opt = RankBytes(n), RankBytes(n)
    for g in groups:
        opt = host_opt if g.offload else dev_opt
        if g.layout == "flat":
            part = _per_rank_flat(graph, g, trainable, setup, opt, cache)
        else:
            part = _per_rank_dim0(graph, g, trainable, setup, opt, cache)
        if g.offload:
            host = host + part
        else:
            device = device + part
    # The busiest rank: accelerator bytes first, host bytes to break ties.
    rank, dev_bytes, host_bytes = dev_opt.busiest(host_opt)
    device = device + Memory(optimizer=dev_bytes) + buffers
    if setup.kind == "ddp":  # the reducer's gradient buckets: one more copy (gradient_as_bucket_view=False)
        device = device + Memory(grads=device.grads)
    offloaded = any(g.offload for g in groups)
    return RankMemory(device=device, host=host + Memory(optimizer=host_bytes) if offloaded else None, rank=rank)


def buffer_bytes(graph: ModelGraph, setup: Setup, uncast: Iterable[str] = ()) -> Memory:
    """Buffer bytes per rank: every buffer, whole, in its dtype during training.

    Floating buffers take `store_dtype` (Lightning `*-true`) or FSDP1's `buffer_dtype`, except
    the buffers named in `uncast` (in ignored modules or BatchNorm units, or outside every unit).

    Example:
        >>> from ftsc.model.manifest import BufferEntry
        >>> from dataclasses import replace
        >>> g = ModelGraph.from_names(["w"])
        >>> g = ModelGraph(replace(g.manifest, buffers=(BufferEntry("rope", (8,)),)))
        >>> buffer_bytes(g, Setup(buffer_dtype="bfloat16")).buffers
        16
    """
    skip = set(uncast)
    total = 0
    for b in graph.manifest.buffers:
        dtype = b.dtype
        if dtype in FLOATING:
            if setup.store_dtype:
                dtype = setup.store_dtype
            if setup.buffer_dtype and b.name not in skip:
                dtype = setup.buffer_dtype
        total += math.prod(b.shape) * itemsize(dtype)
    return Memory(buffers=total)
