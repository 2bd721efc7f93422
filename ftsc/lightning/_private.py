"""Every private Lightning / torch name the runtime uses, in one place, each with the reason.

Input: nothing (a table) and the objects the accessors act on. Output: the private classes,
functions and attributes themselves, reached only through the accessors below, so that a
Lightning or torch upgrade that moves one breaks here (and in tests/test_runtime_private.py)
rather than somewhere in the middle of a run. Imports torch and lightning lazily, per accessor.
Never patches anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Private:
    """One private name: `module` imported, then `attr` (dotted) looked up on it."""

    module: str
    attr: str
    why: str
    in_source: bool = False  # an attribute the module sets on other objects: looked up in its source


PRIVATE: tuple[Private, ...] = (
    Private("lightning.pytorch.callbacks.early_stopping", "EarlyStopping._evaluate_stopping_criteria",
            "FTSEarlyStopping turns 'patience ran out' into 'the phase is complete' before the last phase"),
    Private("lightning.pytorch.callbacks.model_checkpoint", "ModelCheckpoint._update_best_and_save",
            "FTSCheckpoint records the phase of the best checkpoint when a top-k save changes it"),
    Private("lightning.pytorch.strategies.ddp", "DDPStrategy._setup_model",
            "after a thaw, DDP is wrapped again so its reducer covers the newly trainable parameters"),
    Private("lightning.pytorch.strategies.ddp", "DDPStrategy._register_ddp_hooks",
            "the user's DDP communication hooks are registered again on the new wrapper"),
    Private("lightning.fabric.utilities.load", "_METADATA_FILENAME",
            "the file of a sharded checkpoint directory that holds the callback states"),
    Private("lightning.fabric.strategies.fsdp", "_get_full_state_dict_context",
            "FSDP1 with use_orig_params=False saves the full optimizer state keyed by parameter name"),
    Private("torch.nn.modules.batchnorm", "_BatchNorm",
            "the base class of every BatchNorm layer (frozen_bn_track_running_stats)"),
    Private("torch.optim.lr_scheduler", "LRScheduler._initial_step",
            "after enforcing phase 0's parameters, the lr scheduler restarts as if just built"),
    Private("torch.distributed.fsdp.wrap", "ModuleWrapPolicy._module_classes",
            "the classes an FSDPStrategy's ModuleWrapPolicy wraps, to predict its units"),
    Private("torch.distributed.fsdp.wrap", "_ConfigAutoWrap",
            "the policy FSDP's `wrap()` applies inside Lightning's configure_model context"),
    Private("torch.distributed.fsdp.wrap", "_or_policy",
            "a size-based policy combined with ftsc's wrap overrides (what FTS builds too)"),
    Private("torch.distributed.fsdp._flat_param", "FlatParameter",
            "with use_orig_params=False a FlatParameter stands for the parameters it flattens"),
    Private("torch.distributed.fsdp._flat_param", "FlatParameter._fqns",
            "the names of the parameters a FlatParameter holds"),
    Private("torch.distributed._composable", "checkpoint",
            "FSDP2 plans' `act_ckpt = \"composable\"` (activation checkpointing without a wrapper)"),
    Private("torch.distributed.algorithms._checkpoint.checkpoint_wrapper", "checkpoint_wrapper",
            "FSDP2 plans' wrapper-style activation checkpointing"),
    Private("torch.distributed.algorithms._checkpoint.checkpoint_wrapper", "offload_wrapper",
            "FSDP2 plans' activation offloading"),
    Private("lightning.pytorch.core.module", "LightningModule._compiler_ctx",
            "how Lightning records that the module passed to fit was `torch.compile`d (and by which compiler)"),
    Private("lightning.pytorch.strategies.fsdp", "FSDPStrategy._state_dict_type",
            "whether an FSDPStrategy saves full or sharded checkpoints"),
    Private("lightning.pytorch.core.optimizer", "LightningOptimizer._optimizer",
            "the torch optimizer a LightningOptimizer wraps"),
    Private("torch.distributed.fsdp", "FullyShardedDataParallel._flat_param",
            "the FlatParameter of an FSDP1 unit (sharding self-check)"),
    Private("torch.distributed.fsdp", "FSDPModule._get_fsdp_state",
            "an FSDP2 module's state, which holds its parameter groups (sharding self-check)"),
    Private("torch.distributed.fsdp._fully_shard._fsdp_state", "FSDPState._fsdp_param_groups",
            "the parameter groups one fully_shard call manages (sharding self-check)"),
    Private("lightning.pytorch.callbacks.early_stopping", "EarlyStopping._check_on_train_epoch_end",
            "a plain EarlyStopping replaced by FTSEarlyStopping keeps when it checks"),
    Private("lightning.pytorch.callbacks.model_checkpoint", "ModelCheckpoint._save_on_train_epoch_end",
            "FTSCheckpoint saves after validation unless told otherwise (FTS's default)"),
    Private("torch.distributed.fsdp._fully_shard._fully_shard", "_is_fsdp_managed_module",
            "a module a fully_shard call already manages is left out of the plan", in_source=True),
    Private("torch._dynamo", "reset",
            "a compiled model's graphs are dropped at each transition (a thawed parameter changes them)"),
)


def lookup(entry: Private) -> Any:
    """The object an entry names.

    Raises:
        ImportError / AttributeError: when the pinned version no longer has it.
    """
    obj: Any = importlib.import_module(entry.module)
    if entry.in_source:
        import inspect

        if entry.attr not in inspect.getsource(obj):
            raise AttributeError(f"{entry.module} no longer mentions {entry.attr}")
        return True
    for part in entry.attr.split("."):
        if isinstance(obj, type) and part in getattr(obj, "__slots__", ()):
            obj = getattr(obj, part)
            continue
        if isinstance(obj, type) and part not in dir(obj) and part in getattr(obj, "__annotations__", {}):
            obj = obj.__annotations__[part]  # an instance attribute declared on the class
            continue
        if isinstance(obj, type) and part not in dir(obj) and obj.__name__ in _SAMPLES:
            obj = getattr(_SAMPLES[obj.__name__](obj), part)  # an instance attribute set by the constructor
            continue
        obj = getattr(obj, part)
    return obj


def _module_wrap_policy_sample(cls: type) -> Any:
    import torch

    return cls({torch.nn.Linear})


def _lightning_optimizer_sample(cls: type) -> Any:
    import torch

    return cls(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0))


_SAMPLES: dict[str, Callable[[type], Any]] = {"ModuleWrapPolicy": _module_wrap_policy_sample,
                                               "LightningModule": lambda cls: cls(), "FSDPStrategy": lambda cls: cls(),
                                               "FSDPState": lambda cls: cls(),
                                               "LightningOptimizer": _lightning_optimizer_sample,
                                               "EarlyStopping": lambda cls: cls(monitor="val_loss"),
                                               "ModelCheckpoint": lambda cls: cls()}


def _get(module: str, attr: str) -> Any:
    entry = next(e for e in PRIVATE if e.module == module and e.attr == attr)
    return lookup(entry)


# -- accessors: the only places the runtime touches a private name ------------------------------------

def evaluate_stopping_criteria(es: Any, current: Any) -> tuple[bool, str | None]:
    """Lightning's own early-stopping verdict for `current` (the superclass method)."""
    method: Callable[..., tuple[bool, str | None]] = _get("lightning.pytorch.callbacks.early_stopping",
                                                          "EarlyStopping._evaluate_stopping_criteria")
    return method(es, current)


def update_best_and_save(ckpt: Any, current: Any, trainer: Any, monitor_candidates: dict[str, Any]) -> None:
    """Lightning's top-k save (the superclass method)."""
    method = _get("lightning.pytorch.callbacks.model_checkpoint", "ModelCheckpoint._update_best_and_save")
    method(ckpt, current, trainer, monitor_candidates)


def ddp_rewrap(strategy: Any, module: Any) -> Any:
    """Wrap `module` in DDP again the way the strategy did, hooks included; returns the wrapper."""
    setup_model = _get("lightning.pytorch.strategies.ddp", "DDPStrategy._setup_model")
    register = _get("lightning.pytorch.strategies.ddp", "DDPStrategy._register_ddp_hooks")
    strategy.model = None  # drop the old reducer (and its autograd hooks) before wrapping again
    strategy.model = setup_model(strategy, module)
    register(strategy)
    return strategy.model


def metadata_filename() -> str:
    """The name of a sharded checkpoint directory's metadata file."""
    return str(_get("lightning.fabric.utilities.load", "_METADATA_FILENAME"))


def full_state_dict_context(module: Any, world_size: int) -> Any:
    """Lightning's FSDP1 full-state-dict context manager."""
    return _get("lightning.fabric.strategies.fsdp", "_get_full_state_dict_context")(module, world_size=world_size)


def batchnorm_base() -> type:
    """torch's BatchNorm base class."""
    return _get("torch.nn.modules.batchnorm", "_BatchNorm")  # type: ignore[no-any-return]


def restart_lr_scheduler(sched: Any) -> None:
    """Put an lr scheduler back to the state its constructor left (epoch 0, initial lrs applied)."""
    _get("torch.optim.lr_scheduler", "LRScheduler._initial_step")  # present (checked), then called bound
    if hasattr(sched, "last_epoch") and hasattr(sched, "_initial_step"):
        sched.last_epoch = -1
        sched._initial_step()


def wrap_policy_classes(policy: Any) -> tuple[type, ...]:
    """The classes a `ModuleWrapPolicy` (or a plain class collection) wraps; () for other policies."""
    if isinstance(policy, (set, frozenset, list, tuple)):
        return tuple(policy)
    _get("torch.distributed.fsdp.wrap", "ModuleWrapPolicy._module_classes")
    return tuple(getattr(policy, "_module_classes", ()) or ())


def config_auto_wrap() -> Any:
    """FSDP's `_ConfigAutoWrap` (its `kwargs` hold the policy `wrap()` applies)."""
    return _get("torch.distributed.fsdp.wrap", "_ConfigAutoWrap")


def or_policy() -> Any:
    """FSDP's policy combinator."""
    return _get("torch.distributed.fsdp.wrap", "_or_policy")


def flat_parameter_class() -> type | None:
    """FSDP1's FlatParameter class (None when torch.distributed is unavailable)."""
    try:
        return _get("torch.distributed.fsdp._flat_param", "FlatParameter")  # type: ignore[no-any-return]
    except ImportError:  # pragma: no cover - torch built without distributed
        return None


def flat_param_fqns(flat_param: Any) -> list[str]:
    """The names (relative to its FSDP unit) of the parameters a FlatParameter holds."""
    return list(flat_param._fqns)


def composable_checkpoint() -> Any:
    """torch's composable activation checkpointing."""
    return _get("torch.distributed._composable", "checkpoint")


def checkpoint_wrappers() -> tuple[Any, Any]:
    """torch's `checkpoint_wrapper` and `offload_wrapper`."""
    module = "torch.distributed.algorithms._checkpoint.checkpoint_wrapper"
    return _get(module, "checkpoint_wrapper"), _get(module, "offload_wrapper")


def state_dict_type(strategy: Any) -> str:
    """`"full"` or `"sharded"`: how an FSDPStrategy saves checkpoints."""
    _get("lightning.pytorch.strategies.fsdp", "FSDPStrategy._state_dict_type")
    return str(getattr(strategy, "_state_dict_type", "full"))


def unwrap_optimizer(optimizer: Any) -> Any:
    """The torch optimizer behind a LightningOptimizer (the optimizer itself otherwise)."""
    _get("lightning.pytorch.core.optimizer", "LightningOptimizer._optimizer")
    return getattr(optimizer, "_optimizer", optimizer)


def fsdp1_flat_param(unit: Any) -> Any:
    """An FSDP1 unit's FlatParameter (None for a unit that holds none)."""
    _get("torch.distributed.fsdp", "FullyShardedDataParallel._flat_param")
    return unit._flat_param


def fsdp2_state_and_groups(module: Any) -> tuple[Any, list[Any]]:
    """An FSDP2 module's state object and the parameter groups it manages."""
    _get("torch.distributed.fsdp", "FSDPModule._get_fsdp_state")
    _get("torch.distributed.fsdp._fully_shard._fsdp_state", "FSDPState._fsdp_param_groups")
    state = module._get_fsdp_state()
    return state, list(state._fsdp_param_groups)


def es_check_on_train_epoch_end(es: Any) -> bool | None:
    """When an EarlyStopping checks: after the training epoch (True), after validation (False), or
    decided at setup (None)."""
    _get("lightning.pytorch.callbacks.early_stopping", "EarlyStopping._check_on_train_epoch_end")
    return es._check_on_train_epoch_end  # type: ignore[no-any-return]


def checkpoint_saves_on_train_epoch_end(ckpt: Any, value: bool | None = None) -> bool | None:
    """A ModelCheckpoint's `save_on_train_epoch_end` (set to `value` when given)."""
    _get("lightning.pytorch.callbacks.model_checkpoint", "ModelCheckpoint._save_on_train_epoch_end")
    if value is not None:
        ckpt._save_on_train_epoch_end = value
    return ckpt._save_on_train_epoch_end  # type: ignore[no-any-return]


def fsdp2_managed(module: Any) -> bool:
    """Whether a fully_shard call already manages `module`."""
    _get("torch.distributed.fsdp._fully_shard._fully_shard", "_is_fsdp_managed_module")
    return bool(getattr(module, "_is_fsdp_managed_module", False))


def compiled_with_dynamo(pl_module: Any) -> bool:
    """True when the LightningModule given to fit was compiled with `torch.compile` (dynamo)."""
    _get("lightning.pytorch.core.module", "LightningModule._compiler_ctx")
    ctx = getattr(pl_module, "_compiler_ctx", None)
    return bool(ctx) and ctx.get("compiler") == "dynamo"


def dynamo_reset() -> None:
    """Drop every graph dynamo compiled (what FTS does at each transition)."""
    _get("torch._dynamo", "reset")()
