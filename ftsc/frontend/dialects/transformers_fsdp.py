"""transformers `TrainingArguments.fsdp_config` JSON -> the IR sharding block.

Input: the root `YNode` of an `fsdp_config` JSON (or of a JSON holding `fsdp_config`) and the
model graph (or None). Output: a `StrategySource`. Semantics read from transformers 5.24
`training_args.py` `_process_fsdp_args` (what the `Trainer` hands accelerate's
`FullyShardedDataParallelPlugin`): a leading `fsdp_` is dropped from every key; `version`
defaults to 2; `auto_wrap_policy` defaults to TRANSFORMER_BASED_WRAP and must be spelled exactly;
`transformer_layer_cls_to_wrap` (a string is one class) is joined with `,` and split again by
accelerate; unset, accelerate uses the model's `_no_split_modules`; `min_num_params` defaults to
0 (no wrapping); `cpu_offload`; FSDP2 `reshard_after_forward` (default true); FSDP1
`use_orig_params` (default true). The plugin's FSDP1 sharding strategy is FULL_SHARD (it reads
`FSDP_SHARDING_STRATEGY`, unset, before `reshard_after_forward`). Never imports torch.
"""

from __future__ import annotations

from ftsc.diagnostics import make
from ftsc.frontend.dialects.accelerate import StrategySource, str_to_bool
from ftsc.frontend.dialects.wrap import POLICIES, FSDPKeys, sharding
from ftsc.frontend.yaml_nodes import YNode
from ftsc.model.graph import ModelGraph
from ftsc.source import SourceFile

NAME = "transformers"
_KEYS = frozenset({"version", "auto_wrap_policy", "transformer_layer_cls_to_wrap", "min_num_params", "cpu_offload",
                   "reshard_after_forward", "use_orig_params", "backward_prefetch", "forward_prefetch",
                   "state_dict_type", "cpu_ram_efficient_loading", "activation_checkpointing", "sync_module_states",
                   "limit_all_gathers", "xla", "xla_fsdp_v2", "xla_fsdp_grad_ckpt", "xla_fsdp_settings"})


def _config(root: YNode) -> YNode | None:
    node = root.get("fsdp_config") if isinstance(root.value, dict) else None
    return node if node is not None and isinstance(node.value, dict) else root


def detect(root: YNode) -> bool:
    """An `fsdp_config` mapping (keys known to `_process_fsdp_args`, with or without `fsdp_`), or
    a mapping holding one under `fsdp_config`.

    Example:
        >>> from ftsc.frontend.yaml_nodes import load_yaml
        >>> def read(text): return detect(load_yaml(SourceFile("c.json", text))[0])
        >>> read('{"fsdp_version": 2}'), read('{"fsdp_config": {"min_num_params": 10}}'), read('{"lr": 1}')
        (True, True, False)
    """
    cfg = _config(root)
    if cfg is None or not isinstance(cfg.value, dict) or not cfg.value:
        return False
    return any(str(k).removeprefix("fsdp_") in _KEYS for k in cfg.value)


def read(source: SourceFile, root: YNode, graph: ModelGraph | None) -> StrategySource:
    """Read an `fsdp_config` (see the module docstring)."""
    out = StrategySource()
    diags = out.diagnostics
    cfg = _config(root)
    assert cfg is not None
    keys = FSDPKeys(span=cfg.span)
    values = {}
    for key, node in cfg.value.items():
        name = str(key)
        name = name.removeprefix("fsdp_")
        values[name] = node.py()
        keys.spans[name] = cfg.key_nodes[key].span
    span_of = keys.spans.get
    try:
        version = int(values.get("version", 2))
    except (TypeError, ValueError):
        version = 0
    if version not in (1, 2):
        diags.append(make("FTS102", source, span_of("version", cfg.span), label="unknown FSDP version",
                          detail=f"`version: {values.get('version')}`: the Trainer knows FSDP versions 1 and 2"))
        version = 2
    keys.values["version"] = str(version)
    policy = values.get("auto_wrap_policy", POLICIES[0])
    if policy not in POLICIES:  # `_process_fsdp_args` compares exactly (no upper-casing)
        diags.append(make("FTS102", source, span_of("auto_wrap_policy", cfg.span), label="unknown policy",
                          detail=f"`auto_wrap_policy` must be one of {', '.join(f'`{p}`' for p in POLICIES)} "
                                 "(spelled exactly)"))
        policy = "NO_WRAP"
    keys.values["auto_wrap_policy"] = policy
    cls = values.get("transformer_layer_cls_to_wrap")
    if cls is not None:
        names = [cls] if isinstance(cls, str) else [str(c) for c in cls] if isinstance(cls, list) else [str(cls)]
        keys.values["transformer_layer_cls_to_wrap"] = ",".join(names)
    min_num = values.get("min_num_params", 0)
    if type(min_num) is not int:
        if policy == "SIZE_BASED_WRAP" and isinstance(min_num, float) and min_num > 0:
            diags.append(make("FTS102", source, span_of("min_num_params", cfg.span), label="not an integer",
                              detail=f"`min_num_params: {min_num}`: accelerate's plugin refuses a non-integer "
                                     "(`min_num_params` must be an integer)"))
        min_num = 0
    keys.values["min_num_params"] = min_num
    keys.values["offload_params"] = bool(values.get("cpu_offload", False))

    def flag(name: str, default: str) -> bool:
        text = str(values.get(name, default)).lower()
        value = str_to_bool(text)
        if value is None:
            diags.append(make("FTS102", source, span_of(name, cfg.span), label="not a boolean",
                              detail=f"`{name}: {values.get(name)}` is not a boolean the Trainer reads"))
            return str_to_bool(default) == 1
        return value == 1

    if version == 2:
        keys.values["reshard_after_forward"] = flag("reshard_after_forward", "true")
    else:
        keys.values["use_orig_params"] = flag("use_orig_params", "true")
    out.fsdp, out.fsdp2 = sharding(keys, graph, source, diags)
    return out
