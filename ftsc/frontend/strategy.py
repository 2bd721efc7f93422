"""Strategy sources other than LightningCLI configs, and a schedule from `--trainable` patterns.

Input: `--strategy-config` (an accelerate config YAML, a transformers `fsdp_config` JSON, told
apart by content, or `hf`: the model's own transformers FSDP plan) with the model graph; or
`--trainable` patterns. Output: a `Loaded` config whose schedule carries only the sharding block
(merged into a schedule as a `--lightning-config` is), with the ranks the config names; or a
one-phase `Loaded` schedule. Never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ftsc import ir
from ftsc.frontend import InputKind, Loaded, ReadError, read_source
from ftsc.frontend.dialects import accelerate, hf_plan, transformers_fsdp
from ftsc.frontend.yaml_nodes import load_yaml
from ftsc.model.graph import ModelGraph
from ftsc.source import SourceFile, Span

HF = "hf"


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    """A strategy config read against a model: `loaded` (sharding only), its dialect and ranks."""

    loaded: Loaded
    dialect: str
    world_size: int | None


def load_strategy(spec: str, graph: ModelGraph | None) -> StrategyConfig:
    """Read `--strategy-config SPEC`.

    Raises:
        ReadError: when the file cannot be read or is neither dialect; `hf` without a model.
    """
    if spec == HF:
        if graph is None:
            raise ReadError("--strategy-config hf reads the model's FSDP plan: give --model or --manifest")
        source = SourceFile("<hf fsdp_plan>", "")
        got = hf_plan.read(source, graph)
        return StrategyConfig(_as_loaded(source, got, Span(0, 0)), HF, None)
    source = read_source(spec)
    root, diags = load_yaml(source)
    if root is None or not isinstance(root.value, dict):
        if diags:
            return StrategyConfig(Loaded(source, InputKind.LIGHTNING_CONFIG, None, diags), "", None)
        raise ReadError(f"{spec}: not an accelerate config or a transformers fsdp_config (not a mapping)")
    for module in (accelerate, transformers_fsdp):
        if module.detect(root):
            got = module.read(source, root, graph)
            loaded = _as_loaded(source, got, root.span)
            loaded.diagnostics[:0] = diags
            return StrategyConfig(loaded, module.NAME, got.world_size)
    raise ReadError(f"{spec}: not an accelerate config (`distributed_type`, `fsdp_config`) or a transformers "
                    "fsdp_config JSON (`version`, `auto_wrap_policy`, `transformer_layer_cls_to_wrap`, ...)")


def _as_loaded(source: SourceFile, got: accelerate.StrategySource, span: Span) -> Loaded:
    schedule = ir.Schedule(phases=(), fsdp=got.fsdp, fsdp2=got.fsdp2, span=span)
    return Loaded(source, InputKind.LIGHTNING_CONFIG, schedule, list(got.diagnostics))


def trainable_schedule(patterns: Sequence[str]) -> Loaded:
    """A one-phase schedule thawing what each pattern selects as an FTS YAML `params` entry does
    (the exact name if the model has it, else `re.match`); every other parameter stays frozen.

    Example:
        >>> s = trainable_schedule(["lm_head.*", "model.norm.weight"]).schedule
        >>> [(x.kind.value, x.pattern) for x in s.phases[0].selectors]
        [('fts', 'lm_head.*'), ('fts', 'model.norm.weight')]
    """
    text = "".join(f"--trainable {p}\n" for p in patterns)
    source = SourceFile("<--trainable>", text)
    selectors, offset = [], 0
    for p in patterns:
        start = offset + len("--trainable ")
        selectors.append(ir.Selector(kind=ir.SelectorKind.FTS, pattern=p, span=Span(start, start + len(p))))
        offset += len(f"--trainable {p}\n")
    phase = ir.Phase(index=0, selectors=tuple(selectors), span=Span(0, len(text)))
    return Loaded(source, InputKind.FTS_YAML, ir.Schedule(phases=(phase,), span=Span(0, len(text))), [])
