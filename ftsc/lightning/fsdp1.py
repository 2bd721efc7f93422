"""Apply the compiled FSDP1 wrap plan under Lightning's FSDPStrategy, and check the result.

Input: the FSDP1 spec ftsc predicted from (policy classes or size, overrides, ignored modules),
the LightningModule. Output: inside Lightning's `configure_model` context, every direct child
of the LightningModule wrapped as an FSDP root with a policy that adds the overrides (what FTS
builds and what `ftsc.shard.fsdp1` predicts; Lightning then leaves the root unwrapped); at fit
start, the real FlatParameters compared with the prediction; and the logical FQNs behind each
registered parameter (several per FlatParameter with `use_orig_params=False`). Imports torch.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch

from ftsc.lightning import _private
from ftsc.shard.fsdp1 import BATCHNORM, FSDP1Spec, class_matches

log = logging.getLogger(__name__)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def build_policy(pl_module: torch.nn.Module, spec: FSDP1Spec) -> Any:
    """The torch auto-wrap policy for `spec` (class targets by qualified name, overrides by module)."""
    from torch.distributed.fsdp.wrap import (
        CustomPolicy,
        ModuleWrapPolicy,
        lambda_auto_wrap_policy,
        size_based_auto_wrap_policy,
    )

    _or_policy = _private.or_policy()

    override_ids = {id(pl_module.get_submodule(n)) for n in spec.overrides}
    classes = tuple({cls for m in pl_module.modules() for cls in type(m).__mro__
                     if any(class_matches(w, _qualname(cls)) for w in spec.classes)})
    if spec.min_num_params:
        size = functools.partial(size_based_auto_wrap_policy, min_num_params=spec.min_num_params)
        if not override_ids:
            return size
        names = functools.partial(lambda_auto_wrap_policy, lambda_fn=lambda m: id(m) in override_ids)
        return functools.partial(_or_policy, policies=[size, names])
    if override_ids:
        return CustomPolicy(lambda m: isinstance(m, classes) or id(m) in override_ids)
    return ModuleWrapPolicy(set(classes)) if classes else None


def wrap_configure_model(pl_module: torch.nn.Module, spec: FSDP1Spec) -> None:
    """After the user's `configure_model`: unless the user wrapped modules themselves, wrap each
    direct child as an FSDP root with the compiled policy."""
    original = pl_module.configure_model

    # Not `functools.wraps`: Lightning calls `configure_model` only when it counts as overridden, and it
    # follows `__wrapped__`; ours must count even when the LightningModule has none of its own.
    def configure_model() -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp.wrap import wrap

        _ConfigAutoWrap = _private.config_auto_wrap()

        original()
        if any(isinstance(m, FSDP) for m in pl_module.modules()):
            return  # manual wrapping (ftsc predicted it from the recorded wrap() calls)
        saved = _ConfigAutoWrap.kwargs.get("auto_wrap_policy")
        _ConfigAutoWrap.kwargs["auto_wrap_policy"] = build_policy(pl_module, spec)
        try:
            for name, child in list(pl_module.named_children()):
                setattr(pl_module, name, wrap(child))
        finally:
            _ConfigAutoWrap.kwargs["auto_wrap_policy"] = saved

    object.__setattr__(pl_module, "configure_model", configure_model)


def clean(name: str) -> str:
    """A parameter/module name without FSDP and activation-checkpointing wrapper segments."""
    return name.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "") \
        .removesuffix("._fsdp_wrapped_module").removesuffix("._checkpoint_wrapped_module")


def flat_fqns(unit: str, flat_param: Any) -> list[str]:
    """The logical FQNs of the original parameters a FlatParameter of unit `unit` (cleaned) holds."""
    return [clean(f"{unit}.{f}" if unit else f) for f in _private.flat_param_fqns(flat_param)]


def is_flat_param(param: torch.Tensor) -> bool:
    """Whether `param` is an FSDP1 FlatParameter registered in place of original parameters."""
    cls = _private.flat_parameter_class()
    return cls is not None and isinstance(param, cls)


def logical_names(name: str, param: torch.Tensor) -> list[str]:
    """The logical FQNs a registered parameter stands for: its own name without wrapper segments,
    or, for a FlatParameter (FSDP1 with `use_orig_params=False`), those of every parameter it holds."""
    if is_flat_param(param):  # registered as `<unit>._fsdp_wrapped_module._flat_param`
        return flat_fqns(clean(name.rpartition(".")[0]), param)
    return [clean(name)]


def real_units(pl_module: torch.nn.Module, aliases: dict[str, str]) -> dict[str, list[str]]:
    """`{unit FQN: FlatParameter contents (primary FQNs)}` of the wrapped LightningModule."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    out: dict[str, list[str]] = {}
    for name, mod in pl_module.named_modules():
        if not isinstance(mod, FSDP):
            continue
        unit = clean(name)
        fp = _private.fsdp1_flat_param(mod)
        out[unit] = [] if fp is None else [aliases.get(f, f) for f in flat_fqns(unit, fp)]
    return out


def save_optimizer_state_by_name(strategy: Any) -> None:
    """Make a FSDPStrategy with full state dicts save the optimizer state keyed by parameter name.

    Lightning re-keys the gathered optimizer state by parameter index, which torch cannot compute for
    FlatParameters (use_orig_params=False: "Each parameter should only map to one parameter name"),
    so every checkpoint save fails. torch's own full optimizer state is keyed by logical names, and
    Lightning's loader takes those as they are (it re-keys index-keyed states only).
    """
    if _private.state_dict_type(strategy) != "full":
        return  # sharded checkpoints are not re-keyed
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    def optimizer_state(optimizer: Any) -> dict[str, Any]:
        optimizer = _private.unwrap_optimizer(optimizer)  # a LightningOptimizer wraps the real one
        with _private.full_state_dict_context(strategy.model, strategy.world_size):
            return FSDP.optim_state_dict(strategy.model, optimizer)

    strategy.optimizer_state = optimizer_state


def spec_matches_strategy(spec: FSDP1Spec, strategy: Any) -> list[str]:
    """Settings of the Trainer's FSDPStrategy that contradict the compiled spec."""
    problems = []
    orig = strategy.kwargs.get("use_orig_params", True)
    if orig != spec.use_orig_params:
        problems.append(f"the strategy has use_orig_params={orig}, the schedule {spec.use_orig_params}")
    return problems


__all__ = ["BATCHNORM", "build_policy", "clean", "flat_fqns", "is_flat_param", "logical_names", "real_units",
           "save_optimizer_state_by_name", "spec_matches_strategy", "wrap_configure_model"]
