"""accelerate config YAML (`accelerate launch --config_file`) -> the IR sharding block and world size.

Input: the root `YNode` of an accelerate config and the model graph (or None). Output: a
`StrategySource` (FSDP1 or FSDP2 block, `num_processes`, diagnostics). Semantics read from
accelerate 16cb6eb (1.16): `commands/launch.py` `_validate_launch_command` copies `fsdp_config`
into launcher arguments (only for `compute_environment: LOCAL_MACHINE`; a key without the `fsdp`
prefix gains `fsdp_`), `utils/launch.py` `prepare_multi_gpu_env` turns them into `FSDP_*`
environment variables with `str(value)` (launcher defaults: version 1, `use_orig_params` true,
`min_num_params` 1e8, `sharding_strategy` FULL_SHARD, `reshard_after_forward` true), and
`utils/dataclasses.py` `FullyShardedDataParallelPlugin` reads them back. Never imports torch.

Example:
    >>> str_to_bool("True"), str_to_bool("off"), str_to_bool("maybe")
    (1, 0, None)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ftsc import ir
from ftsc.diagnostics import Diagnostic, make
from ftsc.frontend.dialects.wrap import FSDPKeys, sharding
from ftsc.frontend.yaml_nodes import YNode
from ftsc.model.graph import ModelGraph
from ftsc.source import SourceFile, Span

NAME = "accelerate"
SHARDING_STRATEGIES = ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD", "HYBRID_SHARD_ZERO2")
_TRUE, _FALSE = ("y", "yes", "t", "true", "on", "1"), ("n", "no", "f", "false", "off", "0")


@dataclass(slots=True)
class StrategySource:
    """A strategy read from another project's config: the sharding block, ranks, diagnostics."""

    fsdp: ir.FSDPConfig | None = None
    fsdp2: ir.FSDP2Config | None = None
    world_size: int | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)


def str_to_bool(text: str) -> int | None:
    """accelerate's `str_to_bool` on a lower-cased string: 1, 0, or None where it raises."""
    text = text.lower()
    return 1 if text in _TRUE else 0 if text in _FALSE else None


def detect(root: YNode) -> bool:
    """An accelerate config: `distributed_type` plus `compute_environment` or `fsdp_config`."""
    keys = root.value if isinstance(root.value, dict) else {}
    return "distributed_type" in keys and ("compute_environment" in keys or "fsdp_config" in keys)


def read(source: SourceFile, root: YNode, graph: ModelGraph | None) -> StrategySource:
    """Read an accelerate config (see the module docstring)."""
    out = StrategySource()
    diags = out.diagnostics
    procs = root.get("num_processes")
    if procs is not None and type(procs.value) is int and procs.value > 0:
        out.world_size = procs.value
    dist = root.get("distributed_type")
    if dist is None or str(dist.value).upper() != "FSDP":
        return out
    env = root.get("compute_environment")
    local = env is None or str(env.value).upper() == "LOCAL_MACHINE"
    cfg = root.get("fsdp_config")
    given: dict[str, tuple[Any, Span]] = {}
    if local and cfg is not None and isinstance(cfg.value, dict):
        for key, node in cfg.value.items():
            name = str(key)
            if not name.startswith("fsdp"):
                name = "fsdp_" + name
            given[name] = (node.py(), cfg.key_nodes[key].span)
    keys = FSDPKeys(span=cfg.span if cfg is not None else root.span)
    keys.spans.update((name.removeprefix("fsdp_"), span) for name, (_, span) in given.items())
    span_of = keys.spans

    def env_of(name: str, default: str | None) -> str | None:
        # What `prepare_multi_gpu_env` writes for a YAML value: `str(value)` (a list stays its repr).
        return str(given[name][0]) if name in given and given[name][0] is not None else default

    def flag(name: str, default: str) -> bool:
        text = env_of(f"fsdp_{name}", default) or default
        value = str_to_bool(text)
        if value is None:
            diags.append(make("FTS102", source, span_of.get(name, keys.span), label="not a boolean",
                              detail=f"`fsdp_{name}: {text}` is not a boolean accelerate reads "
                                     "(`true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`)"))
            return str_to_bool(default) == 1
        return value == 1

    version_text = env_of("fsdp_version", "1") or "1"
    if version_text not in ("1", "2"):
        diags.append(make("FTS102", source, span_of.get("version", keys.span), label="unknown FSDP version",
                          detail=f"`fsdp_version: {version_text}`: accelerate knows FSDP versions 1 and 2"))
        version_text = "1"
    keys.values["version"] = version_text
    policy = env_of("fsdp_auto_wrap_policy", None)
    if policy is not None:
        keys.values["auto_wrap_policy"] = policy
    cls = env_of("fsdp_transformer_layer_cls_to_wrap", None)
    if cls is not None:
        keys.values["transformer_layer_cls_to_wrap"] = cls
    min_text = env_of("fsdp_min_num_params", str(10**8)) or str(10**8)
    try:
        keys.values["min_num_params"] = int(min_text)
    except ValueError:
        diags.append(make("FTS102", source, span_of.get("min_num_params", keys.span), label="not an integer",
                          detail=f"`fsdp_min_num_params: {min_text}`: accelerate reads it with `int()`"))
        keys.values["min_num_params"] = 0
    keys.values["offload_params"] = flag("offload_params", "false")
    if version_text == "2":
        keys.values["reshard_after_forward"] = flag("reshard_after_forward", "true")
    else:
        keys.values["use_orig_params"] = flag("use_orig_params", "true")
    out.fsdp, out.fsdp2 = sharding(keys, graph, source, diags)
    if out.fsdp is not None:
        out.fsdp = _with_strategy(out.fsdp, env_of("fsdp_sharding_strategy", "FULL_SHARD") or "FULL_SHARD",
                                  span_of.get("sharding_strategy", keys.span), source, diags)
    return out


def _with_strategy(fsdp: ir.FSDPConfig, text: str, span: Span, source: SourceFile,
                   diags: list[Diagnostic]) -> ir.FSDPConfig:
    """FSDP1's sharding strategy: the launcher always sets `FSDP_SHARDING_STRATEGY` (FULL_SHARD by
    default), so the plugin never falls back to `reshard_after_forward`. A name or its 1-based number."""
    name = SHARDING_STRATEGIES[int(text) - 1] if text.isdigit() and 1 <= int(text) <= 5 else text.upper()
    if name not in SHARDING_STRATEGIES:
        diags.append(make("FTS102", source, span, label="unknown sharding strategy",
                          detail=f"`fsdp_sharding_strategy: {text}` must be one of {', '.join(SHARDING_STRATEGIES)}"))
        return fsdp
    if name == "FULL_SHARD":
        return fsdp
    setting = ir.Setting(name="sharding_strategy", value=ir.scalar(name), span=span)
    return ir.FSDPConfig(settings=fsdp.settings + (setting,), wrap=fsdp.wrap, ignore=fsdp.ignore, span=fsdp.span)
