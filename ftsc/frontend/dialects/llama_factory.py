"""LLaMA-Factory `finetuning_type: freeze` / `full` configs -> a one-phase schedule, dtype casts
and (from the Trainer `fsdp` / `fsdp_config` keys) the FSDP wrap plan.

Input: the root `YNode` of a LLaMA-Factory training YAML and the model graph (or None: the
trainable layers depend on the model's layer count, so nothing is selected without a model).
Output: an `Imported` whose graph carries the load dtype (`bf16` / `fp16`) and the float32 upcast
of trainable parameters. Semantics read from LLaMA-Factory ff6d4d1
(`src/llamafactory/model/adapter.py` `init_adapter`, `_setup_freeze_tuning`,
`_setup_full_tuning`; `hparams/finetuning_args.py`) and transformers 5.24.0
(`TrainingArguments._process_fsdp_args`); see docs/dialects/llama-factory.md. Never imports torch.
"""

from __future__ import annotations

import re
from typing import Any

from ftsc import ir
from ftsc.diagnostics import Diagnostic, Severity, make
from ftsc.frontend.dialects.common import FLOATING, Imported, exact_phase, key_span, with_dtypes
from ftsc.frontend.dialects.wrap import FSDPKeys, sharding
from ftsc.frontend.yaml_nodes import YNode
from ftsc.model.graph import ModelGraph
from ftsc.source import SourceFile, Span

NAME = "llama-factory"
_MARKERS = frozenset({"finetuning_type", "freeze_trainable_layers", "freeze_trainable_modules",
                      "freeze_extra_modules"})
_LAYER_KEYS = ("num_hidden_layers", "num_layers", "n_layer")
# Multimodal models whose parts LLaMA-Factory freezes by name (its `COMPOSITE_MODELS`, read at
# ff6d4d1): `model_type` -> the name substrings of each part. Others get a warning.
COMPOSITE: dict[str, dict[str, tuple[str, ...]]] = {
    "llava": {"projector": ("multi_modal_projector",), "vision": ("vision_tower",),
              "language": ("language_model", "lm_head")},
}


def detect(root: YNode) -> bool:
    """A LLaMA-Factory config: `finetuning_type` or a `freeze_*` key of the freeze method."""
    keys = root.value if isinstance(root.value, dict) else {}
    return bool(_MARKERS & set(keys))


def split_arg(value: Any) -> list[str] | None:
    """LLaMA-Factory's comma lists: a string split on `,` with each item stripped; a list as given.

    Example:
        >>> split_arg("mlp, self_attn"), split_arg(["all"]), split_arg(None)
        (['mlp', 'self_attn'], ['all'], None)
    """
    if isinstance(value, str):
        return [item.strip() for item in value.split(",")]
    if isinstance(value, list):
        return [str(v) for v in value]
    return None


def _get(root: YNode, key: str, default: Any = None) -> Any:
    node = root.get(key)
    return default if node is None else node.py()


def layer_count(graph: ModelGraph) -> int | None:
    """`num_hidden_layers` / `num_layers` / `n_layer` of `config.text_config` if the config has
    one, else of `config` (the first that is set and non-zero), from the manifest's `hf` facts."""
    hf = graph.manifest.extra.get("hf") or {}
    counts = hf.get("text_config") if "text_config" in hf else hf.get("config")
    for key in _LAYER_KEYS:
        value = (counts or {}).get(key)
        if value:
            return int(value)
    return None


def trainable_layer_ids(num_layers: int, n: int, llama_pro: bool) -> list[int]:
    """Which layer indices train: last `n` (n > 0), first `-n` (n <= 0), or every
    `num_layers // n`-th ending at the last (LLaMA Pro).

    Example:
        >>> trainable_layer_ids(12, 2, False), trainable_layer_ids(12, -3, False), trainable_layer_ids(12, 4, True)
        ([10, 11], [0, 1, 2], [2, 5, 8, 11])
    """
    if llama_pro:
        stride = num_layers // n
        return list(range(stride - 1, num_layers + stride - 1, stride))
    if n > 0:
        return list(range(max(0, num_layers - n), num_layers))
    return list(range(min(-n, num_layers)))


def module_names(names: tuple[str, ...]) -> tuple[set[str], set[str]]:
    """(hidden, non-hidden) module names as LLaMA-Factory discovers them from parameter names."""
    hidden: set[str] = set()
    other: set[str] = set()
    for name in names:
        if ".0." in name:
            hidden.add(name.split(".0.")[-1].split(".")[0])
        elif ".1." in name:
            hidden.add(name.split(".1.")[-1].split(".")[0])
        if re.search(r"\.\d+\.", name) is None and name.count(".") >= 1:
            other.add(name.split(".")[-2])
    return hidden, other


def _fsdp_keys(root: YNode) -> FSDPKeys | None:
    """The Trainer's `fsdp` / `fsdp_config` as transformers 5.24 reads them (prefix `fsdp_`
    dropped, version 2, `TRANSFORMER_BASED_WRAP` and `use_orig_params` true by default, a size
    policy only above 0; the words of a string `fsdp`: `offload`, and for FSDP2 `full_shard` /
    `shard_grad_op` as `reshard_after_forward` true / false)."""
    fsdp = root.get("fsdp")
    if fsdp is None or not fsdp.value:
        return None
    cfg = root.get("fsdp_config")
    keys = FSDPKeys(span=fsdp.span)
    if cfg is not None and isinstance(cfg.value, dict):
        for key, value in cfg.value.items():
            name = str(key).removeprefix("fsdp_")
            keys.values[name] = value.py()
            keys.spans[name] = cfg.key_nodes[key].span
    keys.values.setdefault("version", 2)
    # the legacy `fsdp: "full_shard auto_wrap offload"` form, translated as transformers does
    legacy = fsdp.value.split() if isinstance(fsdp.value, str) else \
        [str(v) for v in fsdp.value] if isinstance(fsdp.value, list) else []
    for item in legacy:
        if item == "offload":
            keys.values.setdefault("cpu_offload", True)
        elif str(keys.values["version"]) == "2" and item in ("full_shard", "shard_grad_op"):
            keys.values.setdefault("reshard_after_forward", item == "full_shard")
    if isinstance(keys.values.get("reshard_after_forward"), str) and str(keys.values["version"]) == "2":
        keys.values["reshard_after_forward"] = keys.values["reshard_after_forward"].lower() == "true"
    keys.values["use_orig_params"] = str(keys.values.get("use_orig_params", "true")).lower() == "true"
    keys.values.setdefault("auto_wrap_policy", "TRANSFORMER_BASED_WRAP")
    keys.values["offload_params"] = keys.values.get("cpu_offload", False)
    if isinstance(keys.values.get("transformer_layer_cls_to_wrap"), list):
        keys.values["transformer_layer_cls_to_wrap"] = ",".join(map(str, keys.values["transformer_layer_cls_to_wrap"]))
    if keys.values.get("auto_wrap_policy") == "SIZE_BASED_WRAP" and not (keys.values.get("min_num_params") or 0) > 0:
        keys.values["auto_wrap_policy"] = "NO_WRAP"
    if str(keys.values["version"]) == "2":
        keys.values.setdefault("reshard_after_forward", True)
    return keys


def load(source: SourceFile, root: YNode, graph: ModelGraph | None) -> Imported:
    """Import a LLaMA-Factory config (see the module docstring)."""
    diags: list[Diagnostic] = []
    method = _get(root, "finetuning_type", "lora")
    if method not in ("freeze", "full"):
        diags.append(make("FTS102", source, key_span(root, "finetuning_type"), label="not imported",
                          detail=f"`finetuning_type: {method}` is not a freeze method; ftsc imports `freeze` and `full`",
                          severity=Severity.WARNING))
    keys = _fsdp_keys(root)
    fsdp = fsdp2 = None
    if keys is not None:
        fsdp, fsdp2 = sharding(keys, graph, source, diags)
    if graph is None or method not in ("freeze", "full"):
        return Imported(ir.Schedule(fsdp=fsdp, fsdp2=fsdp2, span=root.span), diags, graph)
    names = graph.params
    hf = graph.manifest.extra.get("hf") or {}
    composite = COMPOSITE.get(str(hf.get("model_type")))
    if "text_config" in hf and composite is None:
        diags.append(make("FTS102", source, key_span(root, "finetuning_type"), severity=Severity.WARNING,
                          label="vision parts not modelled",
                          detail=f"multimodal model `{hf.get('model_type')}`: ftsc models LLaMA-Factory's vision tower "
                                 "and projector rules (`freeze_vision_tower`, `freeze_multi_modal_projector`) for "
                                 + ", ".join(f"`{t}`" for t in COMPOSITE) + " only"))
    forbidden = forbidden_modules(root, composite)
    spans: dict[str, Span] = {}
    if method == "full":
        trainable = [n for n in names if not any(f in n for f in forbidden)]
    else:
        selected = _freeze_selection(source, root, graph, diags, composite, forbidden)
        if selected is None:
            return Imported(ir.Schedule(fsdp=fsdp, fsdp2=fsdp2, span=root.span), diags, graph)
        trainable, spans = selected
    dtypes = _dtypes(root, graph, set(trainable))
    phase = exact_phase(trainable, key_span(root, "finetuning_type"), spans)
    return Imported(ir.Schedule(phases=(phase,), fsdp=fsdp, fsdp2=fsdp2, span=root.span), diags,
                    with_dtypes(graph, dtypes))



def forbidden_modules(root: YNode, composite: dict[str, tuple[str, ...]] | None) -> set[str]:
    """Substrings that keep a parameter of a multimodal model frozen (LLaMA-Factory's
    `get_forbidden_modules`): the vision tower unless `freeze_vision_tower: false`, the projector
    unless `freeze_multi_modal_projector: false`, the language model with `freeze_language_model`."""
    if composite is None:
        return set()
    out: set[str] = set()
    for key, default, part in (("freeze_vision_tower", True, "vision"), ("freeze_multi_modal_projector", True,
                                                                         "projector"),
                               ("freeze_language_model", False, "language")):
        if _get(root, key, default):
            out.update(composite[part])
    return out


def _freeze_selection(source: SourceFile, root: YNode, graph: ModelGraph, diags: list[Diagnostic],
                      composite: dict[str, tuple[str, ...]] | None = None, forbidden: set[str] | None = None,
                      ) -> tuple[list[str], dict[str, Span]] | None:
    names = graph.params
    num_layers = layer_count(graph)
    span = key_span(root, "freeze_trainable_layers")
    if not num_layers:
        diags.append(make("FTS102", source, key_span(root, "finetuning_type"), label="no layer count",
                          detail="the model has no `num_hidden_layers`, `num_layers` or `n_layer` in its config "
                                 "(LLaMA-Factory: `Current model does not support freeze tuning`)",
                          help="check it with `--model` pointing at the transformers model (a manifest "
                               "written by `ftsc manifest` keeps the config facts)"))
        return None
    n = _get(root, "freeze_trainable_layers", 2)
    llama_pro = bool(_get(root, "use_llama_pro", False))
    if not isinstance(n, int) or isinstance(n, bool) or (llama_pro and (n == 0 or num_layers % n != 0)):
        diags.append(make("FTS102", source, span, label="invalid",
                          detail="`freeze_trainable_layers` must be an integer"
                                 + (f" dividing the {num_layers} layers (`use_llama_pro`)" if llama_pro else "")))
        return None
    ids = trainable_layer_ids(num_layers, n, llama_pro)
    hidden, other = module_names(names)
    mods_span = key_span(root, "freeze_trainable_modules")
    patterns: list[tuple[str, Span, str]] = []  # (substring, span, intended-kind)
    for module in split_arg(_get(root, "freeze_trainable_modules", "all")) or []:
        if module != "all" and module not in hidden:
            diags.append(make("FTS102", source, mods_span, label="not a layer module",
                              detail=f"module `{module}` is not found; choose from "
                                     + ", ".join(f"`{h}`" for h in sorted(hidden))))
            return None
        for idx in ids:
            patterns.append((f".{idx}.{module if module != 'all' else ''}", mods_span, "layer"))
    extra_span = key_span(root, "freeze_extra_modules")
    for module in split_arg(_get(root, "freeze_extra_modules")) or []:
        if module not in other:
            diags.append(make("FTS102", source, extra_span, label="not a non-layer module",
                              detail=f"module `{module}` is not found; choose from "
                                     + ", ".join(f"`{h}`" for h in sorted(other))))
            return None
        patterns.append((module, extra_span, "extra"))
    if composite is not None and not _get(root, "freeze_multi_modal_projector", True):
        span = key_span(root, "freeze_multi_modal_projector")
        patterns.extend((key, span, "extra") for key in composite["projector"])
    forbidden = forbidden or set()
    allowed = tuple(n for n in names if not any(f in n for f in forbidden))
    trainable = [name for name in allowed if any(p in name for p, _, _ in patterns)]
    _surprises(source, patterns, allowed, diags, composite)
    return trainable, {name: next(s for p, s, _ in patterns if p in name) for name in trainable}


def _intended(sub: str, kind: str, name: str, composite: dict[str, tuple[str, ...]] | None = None) -> bool:
    """What the substring is meant to select: for `.{i}.{module}`, the module `{module}` of layer
    `i` (the first numeric path component); for an extra module, that path component outside layers."""
    parts = name.split(".")
    if kind == "layer" and composite is not None and any(v in parts for v in composite["vision"]):
        return False  # the layer indices count the language model's layers
    if kind == "extra" and composite is not None and sub in composite["projector"]:
        return sub in parts
    if kind == "extra":
        return sub in parts and not any(p.isdigit() for p in parts)
    idx, _, module = sub[1:].partition(".")
    first = next((i for i, p in enumerate(parts) if p.isdigit()), None)
    if first is None or parts[first] != idx:
        return False
    return not module or (first + 1 < len(parts) and parts[first + 1] == module)


def _surprises(source: SourceFile, patterns: list[tuple[str, Span, str]], names: tuple[str, ...],
               diags: list[Diagnostic], composite: dict[str, tuple[str, ...]] | None = None) -> None:
    """FTS205 for each substring that selects parameters it does not name (`norm` in every
    `input_layernorm`, `.1.` inside `experts.1.` of another layer)."""
    for sub, span, kind in patterns:
        extra = [n for n in names if sub in n and not _intended(sub, kind, n, composite)]
        if extra:
            diags.append(make("FTS205", source, span, label="substring match",
                              detail=f"LLaMA-Factory matches `{sub}` as a substring: it also trains `{extra[0]}` "
                                     f"({len(extra)} parameters it does not name)",
                              help="LLaMA-Factory has no anchored form; check the trainable set with `ftsc explain`"))


def _dtypes(root: YNode, graph: ModelGraph, trainable: set[str]) -> dict[str, str]:
    """Load dtype (`bf16` / `fp16`) for floating parameters, then float32 for trainable ones unless
    `pure_bf16` or `use_badam` (LLaMA-Factory's `cast_trainable_params_to_fp32`)."""
    load = "bfloat16" if _get(root, "bf16") or _get(root, "pure_bf16") else "float16" if _get(root, "fp16") else None
    upcast = not (_get(root, "pure_bf16") or _get(root, "use_badam"))
    out: dict[str, str] = {}
    for p in graph.manifest.parameters:
        if p.dtype not in FLOATING:
            continue
        if upcast and p.name in trainable:
            out[p.name] = "float32"
        elif load is not None:
            out[p.name] = load
    return {k: v for k, v in out.items() if graph.param_entries[k].dtype != v}
