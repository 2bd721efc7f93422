"""Record what axolotl and LLaMA-Factory themselves do with the dialect test configs (by hand).

Input: checkouts of the two projects (their source trees; the commits read are noted below),
the configs under tests/data/dialects/<project>/*.yaml (each names its model on its first line,
`# ftsc-test-model: <factory>` from tests/dialect_models.py). Output: one
tests/data/dialects/<project>/<name>.truth.json per config: every parameter name, the trainable
set after the project's own selection code ran on the model (built on the meta device), the
dtypes after the project's casts (LLaMA-Factory), and the FSDP wrap units accelerate's own
policy picks (with the FSDP version and `use_orig_params` it was handed): the modules wrapped,
and the parameters each wrap holds (an inner wrap's parameters are not its parent's), whether
parameters are offloaded to the CPU, and FSDP2's `reshard_after_forward`.

    python tests/record_dialect_truth.py --axolotl ~/src/axolotl --llama-factory ~/src/LLaMA-Factory

What runs is the projects' code, loaded from the given paths (nothing of it is copied here):
- axolotl (read at 067b021): `src/axolotl/utils/freeze.py` (`freeze_layers_except`,
  `freeze_mm_modules`, applied in `train.py`'s order) as a module, with its two logging/
  distributed imports stubbed; the `fsdp_config` validators `check_fsdp_config_kwargs_prefix`
  and `check_fsdp_version_in_fsdp_config` (`src/axolotl/utils/schemas/validation.py`) and
  `setup_fsdp_envs` (`src/axolotl/utils/trainer.py`) taken out of their files by name and run
  on the config dict (the pydantic model around them, which only adds defaults, is not built).
- LLaMA-Factory (read at ff6d4d1): `FinetuningArguments` (`src/llamafactory/hparams/
  finetuning_args.py`, the whole module) built from the config's keys, and `init_adapter`,
  `_setup_full_tuning`, `_setup_freeze_tuning` (`src/llamafactory/model/adapter.py`) taken out
  by name, with `model_utils/visual.py` (its composite-model table, `get_forbidden_modules`)
  loaded whole, its logging import stubbed; DeepSpeed is off. The model is first cast to
  the load dtype LLaMA-Factory's parser picks (`bf16`/`pure_bf16` -> bfloat16, `fp16` ->
  float16). FSDP: the installed transformers `TrainingArguments(fsdp=..., fsdp_config=...)`.
- Wrap units: the installed accelerate's `FullyShardedDataParallelPlugin` (FSDP1:
  `set_auto_wrap_policy`, applied with torch's `_recursive_wrap`; FSDP2: accelerate's own
  `fsdp2_prepare_model` on a stand-in accelerator (no mesh, mixed precision `no`), with torch's
  `fully_shard` replaced by a recorder that marks modules as `FSDPModule`s as torch does; every
  call is recorded, the tail group as one call). `sync_module_states` and
  `cpu_ram_efficient_loading` are forced off: they only matter when loading weights, and
  accelerate refuses them on a CPU.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "dialects"


def model_of(path: Path) -> str:
    """The factory named by a config's first line (`# ftsc-test-model: NAME`)."""
    m = re.match(r"#\s*ftsc-test-model:\s*(\w+)", path.read_text().splitlines()[0])
    if m is None:
        raise SystemExit(f"{path}: first line must be `# ftsc-test-model: <factory>`")
    return m.group(1)


def build(name: str) -> Any:
    import torch

    sys.path.insert(0, str(HERE.parent))
    from tests import dialect_models

    with torch.device("meta"):
        return getattr(dialect_models, name)()


def functions(path: Path, names: list[str], namespace: dict[str, Any]) -> dict[str, Any]:
    """The named top-level functions or class methods of a source file, decorators dropped,
    compiled and executed in `namespace` (which supplies what they refer to)."""
    tree = ast.parse(path.read_text(), str(path))
    found: dict[str, ast.FunctionDef] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in names and node.name not in found:
            node.decorator_list = []
            found[node.name] = node
    missing = set(names) - set(found)
    if missing:
        raise SystemExit(f"{path}: no function {', '.join(sorted(missing))}")
    module = ast.Module(body=[found[n] for n in names], type_ignores=[])
    exec(compile(module, str(path), "exec"), namespace)  # noqa: S102 - the project's own code, by hand
    return {n: namespace[n] for n in names}


def load_module(path: Path, name: str, stubs: dict[str, dict[str, Any]], package: str = "") -> types.ModuleType:
    """A whole source file as module `name` (in `package`, for its relative imports), with the
    modules in `stubs` replaced by namespaces."""
    for mod, attrs in stubs.items():
        sys.modules[mod] = types.SimpleNamespace(**attrs)  # type: ignore[assignment]
    module = types.ModuleType(name)
    module.__file__ = str(path)
    module.__package__ = package
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)  # noqa: S102
    return module


class _Log:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


class Cfg(dict):
    """Attribute access with None for missing keys (axolotl's `DictDefault`, as far as
    `setup_fsdp_envs` uses it)."""

    def __getattr__(self, key: str) -> Any:
        value = self.get(key)
        return Cfg(value) if isinstance(value, dict) else value


def units(model: Any, plugin_args: dict[str, Any] | None, env: dict[str, str] | None) -> dict[str, Any] | None:
    """accelerate's wrap units for the model (None without FSDP)."""
    if plugin_args is None and env is None:
        return None
    from accelerate.utils import FullyShardedDataParallelPlugin

    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("FSDP_")]:
            del os.environ[key]
        os.environ.update(env or {})
        os.environ["FSDP_SYNC_MODULE_STATES"] = "false"
        os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = "false"
        args = dict(plugin_args or {}, sync_module_states=False, cpu_ram_efficient_loading=False)
        plugin = FullyShardedDataParallelPlugin(**args)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    names = {id(m): n for n, m in model.named_modules()}
    param_names = {id(p): n for n, p in model.named_parameters()}
    claimed: set[str] = set()
    groups: list[list[str]] = []

    def claim(group: list[Any]) -> None:
        """The parameters a wrap takes: those under its modules that no earlier (inner) wrap took."""
        taken = [param_names[id(p)] for m in group for p in m.parameters() if param_names[id(p)] not in claimed]
        claimed.update(taken)
        if taken:
            groups.append(sorted(set(taken), key=list(param_names.values()).index))

    wrapped: list[str] = []
    calls: list[dict[str, Any]] = []
    if plugin.fsdp_version == 2:
        import torch
        from accelerate.utils.fsdp_utils import fsdp2_prepare_model
        from torch.distributed import fsdp

        def fully_shard(module: Any, **kwargs: Any) -> Any:
            """Records the call and marks the modules as `FSDPModule`s, as torch does."""
            group = module if isinstance(module, list) else [module]
            calls.append({"modules": [names[id(m)] for m in group],
                          "reshard_after_forward": kwargs.get("reshard_after_forward"),
                          "offload": type(kwargs.get("offload_policy")).__name__ == "CPUOffloadPolicy"})
            claim(group)
            for m in group:
                cls = m.__class__
                m.__class__ = type(f"FSDP{cls.__name__}", (fsdp.FSDPModule, cls), {})
            return module

        accelerator = types.SimpleNamespace(state=types.SimpleNamespace(fsdp_plugin=plugin), torch_device_mesh=None,
                                            mixed_precision="no", parallelism_config=None, is_main_process=True,
                                            device=torch.device("meta"))
        real = fsdp.fully_shard
        fsdp.fully_shard = fully_shard
        try:
            fsdp2_prepare_model(accelerator, model)
        finally:
            fsdp.fully_shard = real
            for m in model.modules():  # undo the marking (the trainable set is read afterwards)
                if isinstance(m, fsdp.FSDPModule):
                    m.__class__ = m.__class__.__mro__[2]
        wrapped = [n for call in calls for n in call["modules"] if n]
    else:
        from torch.distributed.fsdp.wrap import _recursive_wrap

        plugin.set_auto_wrap_policy(model)
        if plugin.auto_wrap_policy is not None:
            def record(module: Any, **_: Any) -> Any:
                wrapped.append(names[id(module)])
                claim([module])
                return module

            _recursive_wrap(model, plugin.auto_wrap_policy, record, ignored_modules=set(), ignored_params=set(),
                            only_wrap_children=True)
        claim([model])  # the root FSDP unit takes the rest
    offload = plugin.cpu_offload
    out = {"version": int(plugin.fsdp_version), "use_orig_params": bool(plugin.use_orig_params), "units": wrapped,
           "groups": groups,
           "offload": bool(getattr(offload, "offload_params", False)) or type(offload).__name__ == "CPUOffloadPolicy"}
    if plugin.fsdp_version == 2:
        out["reshard_after_forward"] = bool(plugin.reshard_after_forward)
    if calls:
        out["fully_shard_calls"] = calls
    return out


def record_axolotl(root: Path, config: Path) -> dict[str, Any]:
    import yaml

    cfg = yaml.safe_load(config.read_text())
    src = root / "src" / "axolotl"
    freeze = load_module(src / "utils" / "freeze.py", "axolotl_freeze", {
        "axolotl.utils.distributed": {"is_main_process": lambda: True},
        "axolotl.utils.logging": {"get_logger": lambda name: _Log()},
    })
    validators = functions(src / "utils" / "schemas" / "validation.py",
                           ["check_fsdp_config_kwargs_prefix", "check_fsdp_version_in_fsdp_config"],
                           {"LOG": _Log()})
    for fn in validators.values():
        cfg = fn(None, cfg)
    model = build(model_of(config))
    if cfg.get("unfrozen_parameters"):
        freeze.freeze_layers_except(model, cfg["unfrozen_parameters"])
    if cfg.get("freeze_mm_modules"):
        freeze.freeze_mm_modules(model)
    env: dict[str, str] | None = None
    if cfg.get("fsdp_config"):
        setup = functions(src / "utils" / "trainer.py", ["setup_fsdp_envs"], {"os": os})["setup_fsdp_envs"]
        saved = dict(os.environ)
        try:
            setup(Cfg(cfg))
            env = {k: v for k, v in os.environ.items() if k.startswith("FSDP_") and saved.get(k) != v}
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return {"parameters": [n for n, _ in model.named_parameters()],
            "trainable": [n for n, p in model.named_parameters() if p.requires_grad],
            "fsdp": units(model, None, env)}


def record_llama_factory(root: Path, config: Path) -> dict[str, Any]:
    import torch
    import yaml
    from transformers import TrainingArguments

    cfg = yaml.safe_load(config.read_text())
    src = root / "src" / "llamafactory"
    args_module = load_module(src / "hparams" / "finetuning_args.py", "llamafactory_finetuning_args", {})
    fields = args_module.FinetuningArguments.__dataclass_fields__
    finetuning_args = args_module.FinetuningArguments(**{k: v for k, v in cfg.items() if k in fields})
    log_module = {"logging": types.SimpleNamespace(get_logger=lambda name: _Log())}
    visual = load_module(src / "model" / "model_utils" / "visual.py", "llamafactory.model.model_utils.visual",
                         {"llamafactory": {}, "llamafactory.extras": log_module},
                         package="llamafactory.model.model_utils")
    namespace: dict[str, Any] = {"torch": torch, "re": re, "logger": _Log(),
                                 "COMPOSITE_MODELS": visual.COMPOSITE_MODELS,
                                 "get_forbidden_modules": visual.get_forbidden_modules,
                                 "is_deepspeed_zero3_enabled": lambda: False}
    fns = functions(src / "model" / "adapter.py", ["_setup_full_tuning", "_setup_freeze_tuning", "init_adapter"],
                    namespace)
    model = build(model_of(config))
    if cfg.get("bf16") or cfg.get("pure_bf16"):
        model.to(torch.bfloat16)
    elif cfg.get("fp16"):
        model.to(torch.float16)
    model_args = types.SimpleNamespace(quantization_bit=None, adapter_name_or_path=None)
    model = fns["init_adapter"](model.config, model, model_args, finetuning_args, True)
    plugin_args = None
    if cfg.get("fsdp"):
        targs = TrainingArguments(output_dir=str(DATA / "_unused"), fsdp=cfg["fsdp"],
                                  fsdp_config=cfg.get("fsdp_config"), report_to=[])
        plugin_args = dict(targs.fsdp_plugin_args)
    return {"parameters": [n for n, _ in model.named_parameters()],
            "trainable": [n for n, p in model.named_parameters() if p.requires_grad],
            "dtypes": {n: str(p.dtype).removeprefix("torch.") for n, p in model.named_parameters()},
            "fsdp": units(model, plugin_args, None)}


def _commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=7", "HEAD"], capture_output=True,
                             text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--axolotl", type=Path, help="axolotl source tree (holding src/axolotl)")
    p.add_argument("--llama-factory", type=Path, help="LLaMA-Factory source tree (holding src/llamafactory)")
    p.add_argument("--commit", action="append", default=[], metavar="PROJECT=SHA",
                   help="the commit of a source tree that is not a git checkout")
    p.add_argument("configs", nargs="*", type=Path, help="only these configs (default: all)")
    args = p.parse_args(argv)
    given = dict(item.split("=", 1) for item in args.commit)
    jobs = [("axolotl", args.axolotl, record_axolotl), ("llama-factory", args.llama_factory, record_llama_factory)]
    for project, root, record in jobs:
        if root is None:
            continue
        commit = given.get(project) or _commit(root)
        for config in sorted((DATA / project).glob("*.yaml")):
            if args.configs and config.resolve() not in {c.resolve() for c in args.configs}:
                continue
            truth = {"project": project, "commit": commit, "config": config.name, "model": model_of(config),
                     **record(root, config)}
            out = config.with_suffix(".truth.json")
            out.write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
            print(f"{out.relative_to(HERE.parent)}: {len(truth['trainable'])} of {len(truth['parameters'])} "
                  f"trainable" + (f", {len(truth['fsdp']['units'])} units" if truth.get("fsdp") else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
