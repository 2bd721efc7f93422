"""Apply a compiled FSDP2 plan under Lightning's ModelParallelStrategy, and check the result.

Input: the schedule's `fsdp2` block resolved against the LightningModule (`ftsc.shard`), the
strategy's device mesh. Output: `fully_shard` applied after the user's own `configure_model`
(entries whose module is already managed are skipped, as FTS does), with `act_ckpt`,
`mp_policy` and `offload_policy`/`cpu_offload_policy` translated to torch objects; and, at fit
start, the real groups compared with ftsc's prediction. Imports torch.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ftsc.lightning import _private

log = logging.getLogger(__name__)


def _dtype(value: Any) -> Any:
    if value is None or isinstance(value, torch.dtype):
        return value
    name = str(value).removeprefix("torch.")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(name) or getattr(torch, name)


def fully_shard_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """`(fully_shard keyword arguments, act_ckpt spec)` from plan kwargs (FTS aliases resolved)."""
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy

    out = dict(kwargs)
    act_ckpt = out.pop("act_ckpt", None)
    if "mp_policy" in out and isinstance(out["mp_policy"], dict):
        mp = dict(out["mp_policy"])
        for key in ("param_dtype", "reduce_dtype", "output_dtype"):
            if key in mp:
                mp[key] = _dtype(mp[key])
        out["mp_policy"] = MixedPrecisionPolicy(**mp)
    offload = out.pop("cpu_offload_policy", None)
    if offload is not None:
        out["offload_policy"] = CPUOffloadPolicy(**(offload if isinstance(offload, dict) else {}))
    elif isinstance(out.get("offload_policy"), dict):
        out["offload_policy"] = CPUOffloadPolicy(**out["offload_policy"])
    return out, act_ckpt


def _apply_act_ckpt(root: torch.nn.Module, name: str, spec: Any) -> torch.nn.Module:
    """Activation checkpointing on `root.get_submodule(name)`: `[mode]` or `[mode, {kwargs}]`."""
    mode, cfg = (spec[0], spec[1] if len(spec) > 1 else {}) if isinstance(spec, (list, tuple)) else (spec, {})
    module = root.get_submodule(name)
    if mode == "composable":
        _private.composable_checkpoint()(module, **cfg)
        return module
    checkpoint_wrapper, offload_wrapper = _private.checkpoint_wrappers()
    wrapped = offload_wrapper(module) if mode == "wrapped_offload" else checkpoint_wrapper(module, **cfg)
    parent, _, local = name.rpartition(".")
    setattr(root.get_submodule(parent), local, wrapped)
    return wrapped


def apply_plan(pl_module: torch.nn.Module, plan: list[tuple[str, dict[str, Any]]], mesh: Any) -> list[str]:
    """`fully_shard` each planned module in order, skipping managed ones; returns the sharded names."""
    from torch.distributed.fsdp import fully_shard

    done: list[str] = []
    for name, kwargs in plan:
        module = pl_module.get_submodule(name)
        if _private.fsdp2_managed(module):
            log.warning("ftsc: `%s` is already managed by a fully_shard group; plan entry skipped", name or "<root>")
            continue
        fs_kwargs, act_ckpt = fully_shard_kwargs(kwargs)
        if act_ckpt:
            module = _apply_act_ckpt(pl_module, name, act_ckpt)
        fully_shard(module, mesh=mesh, **fs_kwargs)
        done.append(name)
    return done


def real_groups(pl_module: torch.nn.Module) -> dict[str, list[str]]:
    """`{group name: primary parameter FQNs}` of the fully_shard states on the module (list-form
    calls named `"a, b"` as ftsc names them)."""
    from torch.distributed.fsdp import FSDPModule

    primary = {id(p): n for n, p in pl_module.named_parameters()}
    owners: dict[int, list[str]] = {}
    states: dict[int, Any] = {}
    for name, mod in pl_module.named_modules():
        if isinstance(mod, FSDPModule):
            state, groups = _private.fsdp2_state_and_groups(mod)
            owners.setdefault(id(state), []).append(name.replace("._checkpoint_wrapped_module", ""))
            states[id(state)] = groups
    out: dict[str, list[str]] = {}
    for key, groups in states.items():
        params: list[str] = []
        for group in groups:
            for fp in group.fsdp_params:
                params.append(primary.get(id(fp.sharded_param), "?"))
        out[", ".join(owners[key])] = params
    return out


def wrap_configure_model(pl_module: torch.nn.Module, plan: list[tuple[str, dict[str, Any]]],
                         mesh_getter: Any, record: list[list[str]]) -> None:
    """Run the user's `configure_model`, recording their `fully_shard` calls, then apply the plan."""
    original = pl_module.configure_model

    # Not `functools.wraps`: ModelParallelStrategy insists on an overridden `configure_model` and Lightning's
    # check follows `__wrapped__`; one that applies the plan is an override.
    def configure_model() -> None:
        from torch.distributed.fsdp import fully_shard

        from ftsc.model.build import replacing_fully_shard

        names = {id(m): n for n, m in pl_module.named_modules()}

        def recording(module: Any, *args: Any, **kwargs: Any) -> Any:
            mods = list(module) if isinstance(module, (list, tuple)) else [module]
            record.append([names.get(id(m), "?") for m in mods])
            return fully_shard(module, *args, **kwargs)

        with replacing_fully_shard(pl_module, recording):
            original()
        apply_plan(pl_module, plan, mesh_getter())

    object.__setattr__(pl_module, "configure_model", configure_model)
