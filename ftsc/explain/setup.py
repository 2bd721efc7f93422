"""How the schedule trains: strategy, world size, precision, optimizer, offload, from the inputs.

Input: an `ir.Schedule` (its `fsdp`/`fsdp2` block, merged with a LightningCLI config's strategy),
the raw LightningCLI config (precision, devices, the optimizer it names) and the CLI flags.
Output: `Setup` for the memory arithmetic and per-group offload / compute settings.
Never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ftsc import ir
from ftsc.explain.memory import Setup

_DTYPES = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16",
           "bf16": "bfloat16", "bfloat16": "bfloat16", "float64": "float64"}
# Lightning precision -> (storage dtype of floating tensors, compute dtype)
_PRECISION = {"16-true": ("float16", "float16"), "bf16-true": ("bfloat16", "bfloat16"),
              "16-mixed": (None, "float16"), "16": (None, "float16"),
              "bf16-mixed": (None, "bfloat16"), "bf16": (None, "bfloat16"),
              "64-true": ("float64", "float64"), "64": ("float64", "float64")}
_OPTIMIZERS = {"adamw": "adamw", "adam": "adam", "sgd": "sgd"}


def dtype_name(value: Any) -> str | None:
    """`torch.bfloat16`, `bf16`, ... as a manifest dtype name (None when unset or unknown)."""
    if value is None:
        return None
    return _DTYPES.get(str(value).removeprefix("torch."))


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigFacts:
    """What a LightningCLI config says beyond the strategy: precision, devices, optimizer."""

    precision: str | None = None
    world_size: int | None = None
    devices: int | None = None  # per node
    optimizer: str | None = None
    ddp: bool = False  # `trainer.strategy` names DDP (Lightning wraps in DDP even on one device)


def read_config_facts(path: str | None) -> ConfigFacts:
    """Precision, `devices x num_nodes` and the optimizer named by a LightningCLI config.

    The optimizer is the top-level `optimizer` (or the model's `optimizer` init argument) as a
    class path or name: AdamW, Adam, SGD (`momentum > 0`: sgd-momentum). Unreadable configs
    give no facts (the front end reports them).
    """
    if not path:
        return ConfigFacts()
    import yaml

    from ftsc.source import ReadLimitError, read_regular

    try:
        text = read_regular(path).decode("utf-8-sig")  # regular files only, within the size limit
        doc = yaml.load(text, Loader=yaml.SafeLoader)
    # PyYAML's safe constructors raise plain Python errors for values their tag cannot read (`!!bool abc`).
    except (OSError, UnicodeDecodeError, ReadLimitError, yaml.YAMLError, ValueError, TypeError, KeyError,
            IndexError, AttributeError, OverflowError, RecursionError):
        return ConfigFacts()
    if not isinstance(doc, dict):
        return ConfigFacts()
    trainer = doc.get("trainer") if isinstance(doc.get("trainer"), dict) else {}
    precision = trainer.get("precision")
    devices, nodes = trainer.get("devices"), trainer.get("num_nodes", 1)
    world = devices * nodes if type(devices) is int and type(nodes) is int and devices > 0 and nodes > 0 else None
    model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
    init_args = model.get("init_args") if isinstance(model.get("init_args"), dict) else {}
    opt = doc.get("optimizer", init_args.get("optimizer"))
    return ConfigFacts(precision=None if precision is None else str(precision), world_size=world,
                       devices=devices if type(devices) is int and devices > 0 else None,
                       optimizer=_optimizer_name(opt), ddp=_names_ddp(trainer.get("strategy")))


def _names_ddp(strategy: Any) -> bool:
    """`ddp`, `ddp_find_unused_parameters_true`, ... or a `DDPStrategy` class path."""
    if isinstance(strategy, dict):
        strategy = strategy.get("class_path")
    if not isinstance(strategy, str):
        return False
    name = strategy.rsplit(".", 1)[-1].lower()
    return name.startswith("ddp") or name == "ddpstrategy"


def _optimizer_name(node: Any) -> str | None:
    args: Mapping[str, Any] = {}
    if isinstance(node, dict):
        args = node.get("init_args") if isinstance(node.get("init_args"), dict) else {}
        node = node.get("class_path")
    if not isinstance(node, str):
        return None
    name = _OPTIMIZERS.get(node.rpartition(".")[2].lower())
    if name == "sgd" and float(args.get("momentum", 0) or 0) > 0:
        return "sgd-momentum"
    return name


def _setting(settings: tuple[ir.Setting, ...] | None, name: str) -> Any:
    for s in settings or ():
        if s.name == name:
            return s.value.py()
    return None


def schedule_setup(schedule: ir.Schedule, *, world_size: int | None, optimizer: str | None,
                   facts: ConfigFacts) -> Setup:
    """The `Setup` for a schedule's sharding block and the CLI / config facts.

    FSDP1: `sharding_strategy` (`NO_SHARD` keeps whole FlatParameters; `HYBRID_SHARD` shards
    within a node: `trainer.devices` ranks); `precision` (Lightning's plugin: `*-mixed` casts floating buffers to the low dtype,
    `*-true` also stores parameters in it) and an explicit `mixed_precision` (wins over the
    plugin's); FSDP2 and unsharded: only `*-true` changes what is stored.
    """
    fsdp, fsdp2 = schedule.fsdp, schedule.fsdp2
    settings = fsdp.settings if fsdp else fsdp2.settings if fsdp2 else ()
    precision = _setting(settings, "precision")
    precision = str(precision) if precision is not None else facts.precision
    store, compute = _PRECISION.get(precision or "", (None, "float32"))
    if world_size is None:
        dp = _setting(fsdp2.settings, "data_parallel_size") if fsdp2 else None
        world_size = dp if type(dp) is int else facts.world_size or 1
    kind = "fsdp" if fsdp else "fsdp2" if fsdp2 else ("ddp" if world_size > 1 or facts.ddp else "single")
    buffer_dtype = grad_dtype = param_dtype = shard_size = None
    use_orig = True
    if fsdp is not None:
        strategy = _setting(fsdp.settings, "sharding_strategy")
        if strategy == "NO_SHARD":
            shard_size = 1
        elif strategy in ("HYBRID_SHARD", "_HYBRID_SHARD_ZERO2"):  # sharded within a node, replicated across
            shard_size = min(facts.devices or world_size, world_size)
        orig = _setting(fsdp.settings, "use_orig_params")
        use_orig = True if orig is None else bool(orig)
        if precision in _PRECISION:  # Lightning's FSDPPrecision: param, reduce and buffer dtype alike
            buffer_dtype = param_dtype = compute
        mp = _setting(fsdp.settings, "mixed_precision")
        if isinstance(mp, dict):
            param_dtype = dtype_name(mp.get("param_dtype"))
            buffer_dtype = dtype_name(mp.get("buffer_dtype"))
            compute = param_dtype or compute
            if mp.get("keep_low_precision_grads") and param_dtype:
                grad_dtype = param_dtype
    if fsdp2 is not None:  # the default mp_policy's param_dtype is what forward computes in
        mp_policy = fsdp2_kwargs(schedule, None).get("mp_policy")
        if isinstance(mp_policy, dict) and dtype_name(mp_policy.get("param_dtype")):
            compute = dtype_name(mp_policy.get("param_dtype")) or compute
    return Setup(kind=kind, world_size=world_size, shard_size=shard_size, optimizer=optimizer or facts.optimizer or "adamw",
                 use_orig_params=use_orig, store_dtype=store, buffer_dtype=buffer_dtype, grad_dtype=grad_dtype,
                 param_dtype=param_dtype,
                 compute_dtype=compute)


def fsdp2_kwargs(schedule: ir.Schedule, entry: ir.ShardEntry | None) -> dict[str, Any]:
    """The `fully_shard` keyword arguments of a plan entry: `fsdp_default_kwargs`, then its own."""
    config = schedule.fsdp2
    kwargs: dict[str, Any] = {}
    default = _setting(config.settings if config else (), "fsdp_default_kwargs")
    if isinstance(default, dict):
        kwargs.update(default)
    if entry is not None and entry.kwargs:
        kwargs.update({s.name: s.value.py() for s in entry.kwargs})
    return kwargs


def fsdp2_offloads(kwargs: Mapping[str, Any]) -> bool:
    """True when `fully_shard` gets a `CPUOffloadPolicy` (`offload_policy` / `cpu_offload_policy`)."""
    return any(kwargs.get(k) not in (None, False) for k in ("offload_policy", "cpu_offload_policy"))


def fsdp1_offloads(schedule: ir.Schedule) -> bool:
    """True when FSDP1 offloads parameters to the host (`cpu_offload`)."""
    return bool(schedule.fsdp and _setting(schedule.fsdp.settings, "cpu_offload"))


def uses_act_ckpt(schedule: ir.Schedule, kwargs: Mapping[str, Any] | None = None) -> bool:
    """True when activation checkpointing applies (FSDP1 policy, FSDP2 `act_ckpt` alias)."""
    if schedule.fsdp is not None and _setting(schedule.fsdp.settings, "activation_checkpointing_policy"):
        return True
    return bool(kwargs and kwargs.get("act_ckpt"))
