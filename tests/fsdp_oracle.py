"""Ground truth for FSDP1 predictions: wrap a real module with torch FSDP on CPU and read it back.

Runs in-process on torch's fake process group (world size 2, rank 0), which builds exactly the
structures 2 real gloo ranks build (see the FSDP semantics reference). Imports torch.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ftsc.shard.fsdp1 import BATCHNORM, FSDP1Spec


def ensure_process_group() -> None:
    """A fake world of 2 ranks, initialised once per test process."""
    if not dist.is_initialized():
        from torch.testing._internal.distributed.fake_pg import FakeStore

        dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=2)


def _resolve_class(path: str) -> type:
    """The class a config's class path names, found as jsonargparse finds it: by importing it."""
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def oracle_policy(model: nn.Module, spec: FSDP1Spec) -> Any:
    """torch's own policies for `spec`, built without ftsc's code: classes imported from their paths,
    overrides looked up as module objects, sizes through torch's size policy."""
    from torch.distributed.fsdp.wrap import (
        CustomPolicy,
        ModuleWrapPolicy,
        _or_policy,
        lambda_auto_wrap_policy,
        size_based_auto_wrap_policy,
    )

    classes = tuple(_resolve_class(c) for c in spec.classes)
    overrides = [model.get_submodule(n) for n in spec.overrides]
    if spec.min_num_params:
        size = functools.partial(size_based_auto_wrap_policy, min_num_params=spec.min_num_params)
        if not overrides:
            return size
        named = functools.partial(lambda_auto_wrap_policy, lambda_fn=lambda m: any(m is o for o in overrides))
        return functools.partial(_or_policy, policies=[size, named])
    if overrides:
        return CustomPolicy(lambda m: isinstance(m, classes) or any(m is o for o in overrides))
    return ModuleWrapPolicy(set(classes)) if classes else None


def real_units(model: nn.Module, spec: FSDP1Spec) -> tuple[dict[str, list[str]], list[str]]:
    """`({unit FQN: FlatParameter contents as primary FQNs}, unsharded params)` after real wrapping."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp import MixedPrecision
    from torch.distributed.fsdp._common_utils import clean_tensor_name

    ensure_process_group()
    primary = {id(p): n for n, p in model.named_parameters()}
    path_to_primary = {n: primary[id(p)] for n, p in model.named_parameters(remove_duplicate=False)}
    kwargs: dict[str, Any] = {"use_orig_params": spec.use_orig_params, "device_id": torch.device("cpu")}
    if spec.mixed_precision:
        kwargs["mixed_precision"] = MixedPrecision()
    if spec.ignored:
        kwargs["ignored_modules"] = [model.get_submodule(n) for n in spec.ignored]
    policy = oracle_policy(model, spec)  # independent of ftsc: a class-matching bug must show here
    if spec.manual:  # FSDP(m, policy) per recorded wrap() call, in call order; the root stays unwrapped
        for path in spec.manual:
            parent, _, local = path.rpartition(".")
            owner = model.get_submodule(parent)
            setattr(owner, local, FSDP(owner.get_submodule(local), auto_wrap_policy=policy, **kwargs))
        wrapped: nn.Module = model
    elif spec.lightning:
        for name, child in list(model.named_children()):
            setattr(model, name, FSDP(child, auto_wrap_policy=policy, **kwargs))
        wrapped = model
    else:
        wrapped = FSDP(model, auto_wrap_policy=policy, **kwargs)
    units: dict[str, list[str]] = {}
    for name, mod in wrapped.named_modules():
        if not isinstance(mod, FSDP):
            continue
        unit = clean_tensor_name(name)
        fp = mod._flat_param
        params: list[str] = []
        if fp is not None:
            if spec.use_orig_params:
                params = [primary[id(p)] for p in fp._params]
            else:
                params = [path_to_primary[f"{unit}.{fqn}" if unit else fqn] for fqn in fp._fqns]
        units[unit] = params
    owned = {p for ps in units.values() for p in ps}
    return units, [n for n in primary.values() if n not in owned]


__all__ = ["BATCHNORM", "ensure_process_group", "real_units"]


def real_groups(model: nn.Module, plan: list[str], user_calls: list[list[str]] = ()) -> dict[str, Any]:
    """Apply `fully_shard` as FTS does (user calls, then the plan skipping managed modules) on a
    2-rank CPU mesh; return groups (application order, primary param FQNs), plain params, skips
    and the exception of a failing call (if any)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, fully_shard
    from torch.distributed.tensor import DTensor

    ensure_process_group()
    mesh = init_device_mesh("cpu", (2,), mesh_dim_names=("data_parallel",))
    module_name = {id(m): n for n, m in model.named_modules()}
    primary = {id(p): n for n, p in model.named_parameters()}
    path_to_primary = {n: primary[id(p)] for n, p in model.named_parameters(remove_duplicate=False)}
    groups: list[tuple[str, list[nn.Module]]] = []
    skipped: list[str] = []
    error = None
    try:
        for call in user_calls:
            mods = [model.get_submodule(n) for n in call]
            fully_shard(mods if len(mods) > 1 else mods[0], mesh=mesh)
            groups.append((", ".join(call), mods))
        for name in plan:
            mod = model.get_submodule(name)
            if getattr(mod, "_is_fsdp_managed_module", False):
                skipped.append(name)
                continue
            fully_shard(mod, mesh=mesh)
            groups.append((name, [mod]))
    except Exception as err:  # noqa: BLE001 - the prediction says which call fails
        error = f"{type(err).__name__}: {err}"
    out: dict[str, list[str]] = {}
    for name, mods in groups:
        state = mods[0]._get_fsdp_state() if isinstance(mods[0], FSDPModule) else None
        params: list[str] = []
        for pg in (state._fsdp_param_groups if state is not None else []):
            for fp in pg.fsdp_params:
                info = fp._module_info
                owner = module_name[id(info.module)]
                params.append(path_to_primary[f"{owner}.{info.param_name}" if owner else info.param_name])
        out[name] = params
    current = dict(model.named_parameters())
    plain = [n for n in primary.values() if n in current and not isinstance(current[n], DTensor)]
    return {"groups": out, "plain": plain, "skipped": skipped, "error": error}
