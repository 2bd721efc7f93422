"""Accelerate-style FSDP settings (as axolotl and transformers hand them to accelerate) -> IR sharding.

Input: the FSDP keys of a dialect config, already normalized to accelerate's names without the
`fsdp_` prefix (`version`, `auto_wrap_policy`, `transformer_layer_cls_to_wrap`, `min_num_params`,
`use_orig_params`, `reshard_after_forward`, `offload_params`), and the model graph (or None).
Output: an `ir.FSDPConfig` (FSDP1: class or size policy, which `ftsc.shard` predicts) or an
`ir.FSDP2Config` (the modules accelerate's policy selects, bottom-up, each its own `fully_shard`;
the tail one grouped entry),
plus diagnostics. Semantics read from accelerate 16cb6eb (`utils/dataclasses.py`
`set_auto_wrap_policy`, `get_module_class_from_name`; `utils/fsdp_utils.py`
`fsdp2_prepare_auto_wrap_policy`, `fsdp2_prepare_model`). Never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ftsc import ir
from ftsc.diagnostics import Diagnostic, make
from ftsc.model.graph import ModelGraph, within
from ftsc.source import SourceFile, Span

POLICIES = ("TRANSFORMER_BASED_WRAP", "SIZE_BASED_WRAP", "NO_WRAP")


@dataclass(slots=True)
class FSDPKeys:
    """Normalized FSDP settings with the span of each key (for diagnostics)."""

    values: dict[str, Any] = field(default_factory=dict)
    spans: dict[str, Span] = field(default_factory=dict)
    span: Span = field(default_factory=lambda: Span(0, 0))

    def get(self, key: str, default: Any = None) -> Any:
        """The value of `key`, or `default`."""
        return self.values.get(key, default)


def class_names(value: Any) -> list[str] | None:
    """`transformer_layer_cls_to_wrap` as accelerate reads it: a comma-separated string split on
    `,` (no stripping), or a list as given; None when unset.

    Example:
        >>> class_names("LlamaDecoderLayer,Block"), class_names(["A"]), class_names(None)
        (['LlamaDecoderLayer', 'Block'], ['A'], None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value.split(",")
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def find_class(graph: ModelGraph, name: str) -> str | None:
    """The class accelerate's `get_module_class_from_name` returns for `name`: the first module
    (root first, then children depth first) whose class's own name is `name`, as a qualified name."""
    for m in graph.modules:
        cls = graph.module_class(m)
        if cls.rpartition(".")[2] == name:
            return cls
    return None


def _subtree_numel(graph: ModelGraph) -> dict[str, int]:
    """`sum(p.numel() for p in module.parameters())` per module (deduplicated parameters)."""
    out = dict.fromkeys(graph.modules, 0)
    for p in graph.params:
        owner = p.rpartition(".")[0]
        n = graph.numel(p)
        for m in graph.modules:
            if within(owner, m):
                out[m] += n
    return out


def _bottom_up(graph: ModelGraph) -> list[str]:
    """Accelerate's `get_module_children_bottom_up`: a stack walk pushing `named_children()`,
    reversed, root last."""
    children: dict[str, list[str]] = {m: [] for m in graph.modules}
    for m in graph.modules:
        if m:
            parent = m.rpartition(".")[0]
            if parent in children:
                children[parent].append(m)
    order: list[str] = []
    stack = [""]
    while stack:
        cur = stack.pop()
        stack.extend(children.get(cur, ()))
        order.append(cur)
    return order[::-1]


def sharding(keys: FSDPKeys, graph: ModelGraph | None, source: SourceFile,
             diags: list[Diagnostic]) -> tuple[ir.FSDPConfig | None, ir.FSDP2Config | None]:
    """The IR sharding block for normalized FSDP keys (None, None when FSDP is not configured)."""
    version = str(keys.get("version", 1))
    policy = str(keys.get("auto_wrap_policy") or "NO_WRAP").upper()
    span_of = keys.spans.get
    if policy not in POLICIES:
        diags.append(make("FTS102", source, span_of("auto_wrap_policy", keys.span),
                          detail=f"`auto_wrap_policy` must be one of {', '.join(f'`{p}`' for p in POLICIES)}",
                          label="unknown policy"))
        policy = "NO_WRAP"
    qualified: list[str] = []
    if policy == "TRANSFORMER_BASED_WRAP":
        names = class_names(keys.get("transformer_layer_cls_to_wrap"))
        hf = (graph.manifest.extra.get("hf") or {}) if graph is not None else {}
        if names is None:
            names = list(hf.get("no_split_modules") or [])
        for name in names:
            found = find_class(graph, name) if graph is not None else None
            # accelerate: `Could not find the transformer layer class`. FSDP1 keeps the name in the
            # policy, where the sharding analysis reports it (FTS303); FSDP2 reports it here.
            if graph is not None and found is None and version == "2":
                diags.append(make("FTS303", source, span_of("transformer_layer_cls_to_wrap", keys.span), target=name,
                                  label="no such class",
                                  notes=("accelerate raises `Could not find the transformer layer class` at launch",)))
            qualified.append(found or name)
    min_num = keys.get("min_num_params")
    if policy == "SIZE_BASED_WRAP" and not isinstance(min_num, int):
        min_num = 0
    if policy == "SIZE_BASED_WRAP" and min_num <= 0:  # `set_auto_wrap_policy` drops the policy (FSDP1 and 2)
        policy = "NO_WRAP"
    if version == "2":
        return None, _fsdp2(keys, graph, policy, qualified, int(min_num or 0))
    settings: list[ir.Setting] = [ir.Setting(name="use_orig_params", value=ir.scalar(bool(keys.get("use_orig_params"))))]
    if keys.get("offload_params"):
        settings.append(ir.Setting(name="cpu_offload", value=ir.scalar(True)))
    if policy == "TRANSFORMER_BASED_WRAP" and qualified:
        settings.append(ir.Setting(name="auto_wrap_policy", value=ir.from_py(qualified),
                                   span=span_of("transformer_layer_cls_to_wrap", keys.span)))
    elif policy == "SIZE_BASED_WRAP" and min_num and min_num > 0:  # accelerate drops a zero threshold
        settings.append(ir.Setting(name="min_num_params", value=ir.scalar(int(min_num)),
                                   span=span_of("min_num_params", keys.span)))
    return ir.FSDPConfig(settings=tuple(settings), span=keys.span), None


def _fsdp2(keys: FSDPKeys, graph: ModelGraph | None, policy: str, classes: list[str],
           min_num: int) -> ir.FSDP2Config:
    """Accelerate's FSDP2 auto-wrap: every module but the root, bottom-up, that the policy selects
    is `fully_shard`ed; then the root."""
    plan: list[ir.ShardEntry] = []
    kwargs: list[ir.Setting] = []
    if keys.get("reshard_after_forward") is not None:
        kwargs.append(ir.Setting(name="reshard_after_forward", value=ir.scalar(bool(keys.get("reshard_after_forward")))))
    if keys.get("offload_params"):  # accelerate passes `offload_policy=CPUOffloadPolicy()` to every call
        kwargs.append(ir.Setting(name="offload_policy", value=ir.Value(data=(), kind="dict")))
    key = "min_num_params" if policy == "SIZE_BASED_WRAP" else "transformer_layer_cls_to_wrap"
    span = keys.spans.get(key, keys.spans.get("auto_wrap_policy", keys.span))
    if graph is not None and policy != "NO_WRAP":
        numel = _subtree_numel(graph) if policy == "SIZE_BASED_WRAP" else {}
        for m in _bottom_up(graph)[:-1]:
            if policy == "TRANSFORMER_BASED_WRAP":
                hit = any(graph.is_instance(m, c) for c in classes)
            else:
                hit = numel.get(m, 0) > min_num
            if hit:
                plan.append(ir.ShardEntry(selector=ir.Selector(kind=ir.SelectorKind.EXACT, pattern=m, span=span),
                                          kwargs=tuple(kwargs) or None))
    if graph is not None:
        plan.extend(_carve_out(graph, {e.selector.pattern for e in plan}, kwargs))
    settings = (ir.Setting(name="fsdp_default_kwargs", value=ir.Value(data=tuple(kwargs), kind="dict")),) if kwargs else ()
    return ir.FSDP2Config(settings=settings, plan=tuple(plan), span=keys.span)


def _carve_out(graph: ModelGraph, wrapped: set[str], kwargs: list[ir.Setting]) -> list[ir.ShardEntry]:
    """What accelerate's `fsdp2_prepare_model` shards after the policy: the input embedding (when
    not tied to the head), then the tail in ONE list-form call with `reshard_after_forward=False`
    (`[final norm, head]`, or `[final norm, input embedding, head]` when tied: one group holds the
    tied weight), then the root without `reshard_after_forward`. Modules already sharded are
    skipped, as accelerate skips `FSDPModule`s. Model facts from the manifest's `hf` entry
    (absent: root only)."""
    hf = graph.manifest.extra.get("hf") or {}
    tied = bool(hf.get("tied_embeddings"))
    inp, out, norm = hf.get("input_embeddings"), hf.get("output_embeddings"), hf.get("final_norm")
    entries: list[ir.ShardEntry] = []

    def exact(module: str) -> ir.Selector:
        return ir.Selector(kind=ir.SelectorKind.EXACT, pattern=module)

    if not tied and inp and inp not in wrapped:
        entries.append(ir.ShardEntry(selector=exact(inp), kwargs=tuple(kwargs) or None))
    tail_kwargs = [s for s in kwargs if s.name != "reshard_after_forward"]
    tail_kwargs.append(ir.Setting(name="reshard_after_forward", value=ir.scalar(False)))
    tail = [m for m in dict.fromkeys((norm, inp, out) if tied else (norm, out)) if m and m not in wrapped]
    if tail:
        entries.append(ir.ShardEntry(selector=exact(tail[0]), kwargs=tuple(tail_kwargs),
                                     members=tuple(exact(m) for m in tail[1:])))
    if "" not in wrapped:  # torch resolves the root's `reshard_after_forward=None` to False
        entries.append(ir.ShardEntry(selector=exact(""), kwargs=tuple(tail_kwargs)))
    return entries
