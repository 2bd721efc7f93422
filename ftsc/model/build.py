"""Build a user's model on the meta device and extract its manifest.

Input: a target (`pkg.module:attr`, `path/to/file.py:attr`, or a transformers `config.json` /
checkpoint folder, built by `ftsc.model.hf_config`) and constructor kwargs.
Output: the built module and its `Manifest`. This is the only analysis module that imports
torch (lazily, inside functions); it imports user code only because `--model` names it.
Every failure (import, constructor arguments, code that needs real tensor storage) becomes
a `ModelLoadError` with a one-paragraph explanation, never a traceback.

For a LightningModule, `configure_model()` also runs on the meta device, as Lightning runs it
before wrapping; parameter names are relative to the target (what `named_parameters()` of the
LightningModule reports, which is what FinetuningScheduler resolves schedules against).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ftsc.model.hf_config import ConfigTargetError, build_from_config, config_target
from ftsc.model.manifest import BufferEntry, Manifest, ManifestError, ModuleEntry, ParamEntry, from_json

LIGHTNING_MODULES = ("lightning.pytorch.core.module.LightningModule", "pytorch_lightning.core.module.LightningModule")


class ModelLoadError(Exception):
    """The model target could not be imported or built (exit status 2)."""


def _where(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    user = [f for f in frames if "site-packages" not in f.filename and "/ftsc/" not in f.filename.replace("\\", "/")]
    frame = (user or frames or [None])[-1]
    return f" (at {frame.filename}:{frame.lineno})" if frame else ""


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def split_target(target: str) -> tuple[str, str]:
    """`("pkg.mod" or "path/file.py", "attr.path")`.

    Raises:
        ModelLoadError: when `target` has no `:attr` part.
    """
    module, sep, attr = target.rpartition(":")
    if not sep or not module or not attr:
        raise ModelLoadError(f"--model `{target}`: expected `pkg.module:attr`, `path/to/file.py:attr`, or a "
                             "transformers `config.json` (or a folder holding one)")
    return module, attr


def import_target(target: str) -> Any:
    """The object a target names (imported, not yet built)."""
    module_part, attr = split_target(target)
    is_file = module_part.endswith(".py") or "/" in module_part or "\\" in module_part
    try:
        with contextlib.redirect_stdout(sys.stderr):
            if is_file:
                path = Path(module_part)
                if not path.is_file():
                    raise ModelLoadError(f"--model `{target}`: no such file `{module_part}`")
                folder = str(path.resolve().parent)
                if folder not in sys.path:
                    sys.path.insert(0, folder)
                # Import under the file's own name, as the training script would, so class qualified
                # names match what configs write (`my_model.Block`); avoid shadowing a loaded module.
                name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else \
                    f"_ftsc_model_{path.stem}"
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise ModelLoadError(f"--model `{target}`: `{module_part}` is not a Python file")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                if "" not in sys.path and str(Path.cwd()) not in sys.path:
                    sys.path.insert(0, str(Path.cwd()))
                module = importlib.import_module(module_part)
    except ModelLoadError:
        raise
    except BaseException as err:  # user code may raise anything, even SystemExit
        if isinstance(err, KeyboardInterrupt):
            raise
        raise ModelLoadError(f"--model `{target}`: importing `{module_part}` failed: {_describe(err)}{_where(err)}") \
            from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelLoadError(f"--model `{target}`: `{module_part}` has no attribute `{attr}`")
        obj = getattr(obj, part)
    return obj


def _is_lightning(obj: Any) -> bool:
    return any(f"{c.__module__}.{c.__qualname__}" in LIGHTNING_MODULES for c in type(obj).__mro__)


def build(target: str, kwargs: Mapping[str, Any] | None = None) -> Any:
    """Import and build the target's module on the meta device (configure_model included).

    Raises:
        ModelLoadError: with the reason.
    """
    try:
        import torch
    except ImportError:
        raise ModelLoadError("--model needs torch (`pip install torch`); without it, use --manifest") from None
    kwargs = dict(kwargs or {})
    config = config_target(target)
    if config is not None:
        try:
            return build_from_config(config, kwargs)
        except ConfigTargetError as err:
            raise ModelLoadError(f"--model `{target}`: {err}") from None
    obj = import_target(target)
    if isinstance(obj, torch.nn.Module):
        if kwargs:
            raise ModelLoadError(f"--model `{target}` is a module instance; --model-kwargs apply to classes "
                                 "and factories only")
        module = obj
    elif callable(obj):
        what = "class" if inspect.isclass(obj) else "factory"
        if inspect.isclass(obj) and not issubclass(obj, torch.nn.Module):
            raise ModelLoadError(f"--model `{target}`: `{obj.__qualname__}` is not an nn.Module or LightningModule")
        try:
            inspect.signature(obj).bind(**kwargs)
        except TypeError as err:
            raise ModelLoadError(
                f"--model `{target}`: the {what} cannot be called with "
                f"{'these --model-kwargs' if kwargs else 'no arguments'}: {err}. Pass its arguments as JSON with "
                "--model-kwargs, or point --model at a factory function that needs none") from None
        except ValueError:  # no signature (builtins): just try the call
            pass
        try:
            with contextlib.redirect_stdout(sys.stderr), torch.device("meta"):
                module = obj(**kwargs)
        except BaseException as err:
            if isinstance(err, KeyboardInterrupt):
                raise
            raise ModelLoadError(
                f"--model `{target}`: building the model on the meta device failed: {_describe(err)}{_where(err)}. "
                "ftsc builds models without weights; a constructor that reads tensor values, loads a checkpoint "
                "or downloads files cannot run there (write a factory that builds the architecture only, "
                "or give a manifest)") from None
        if not isinstance(module, torch.nn.Module):
            raise ModelLoadError(f"--model `{target}`: the {what} returned {type(module).__name__}, "
                                 "not an nn.Module or LightningModule")
    else:
        raise ModelLoadError(f"--model `{target}` is a {type(obj).__name__}, not an nn.Module class, factory "
                             "or instance")
    if _is_lightning(module) and callable(getattr(module, "configure_model", None)):
        try:
            with (contextlib.redirect_stdout(sys.stderr), torch.device("meta"), _recording_wraps(module),
                  _recording_fully_shard(module)):
                module.configure_model()
        except BaseException as err:
            if isinstance(err, KeyboardInterrupt):
                raise
            raise ModelLoadError(f"--model `{target}`: configure_model() failed on the meta device: "
                                 f"{_describe(err)}{_where(err)}") from None
    return module


@contextlib.contextmanager
def _recording_wraps(module: Any) -> Any:
    """Record `torch.distributed.fsdp.wrap.wrap()` calls made in `configure_model` (manual FSDP1
    wrapping, as Lightning's FSDP guide shows) without wrapping anything.

    Lightning runs `configure_model` inside `enable_wrap(wrapper_cls=FSDP, ...)`; here the
    wrapper class only notes the module and returns it unchanged. The calls are stored on the
    module as `_ftsc_wrap_calls` (module objects, call order) for `extract`.
    """
    try:
        from torch.distributed.fsdp.wrap import enable_wrap
    except ImportError:  # pragma: no cover - torch without distributed
        yield
        return
    calls: list[Any] = []

    def record(inner: Any, **_: Any) -> Any:
        calls.append(inner)
        return inner

    with enable_wrap(wrapper_cls=record):
        yield
    object.__setattr__(module, "_ftsc_wrap_calls", calls)


class _StubMesh:
    """Stands in for Lightning's `device_mesh` while `configure_model` runs on meta (no process group)."""

    mesh_dim_names = ("data_parallel", "tensor_parallel")
    ndim = 1

    def __getitem__(self, _: Any) -> _StubMesh:
        return self

    def size(self, *_: Any) -> int:
        return 1

    def get_group(self, *_: Any) -> None:
        return None


_FULLY_SHARD_HOMES = ("torch.distributed.fsdp", "torch.distributed._composable.fsdp",
                      "torch.distributed.fsdp._fully_shard", "torch.distributed.fsdp._fully_shard._fully_shard")


@contextlib.contextmanager
def replacing_fully_shard(module: Any, replacement: Any) -> Any:
    """Make every `fully_shard` that `module.configure_model` can reach call `replacement`.

    Users import the function before ftsc can intervene, so besides torch's public paths the
    names bound to it in the globals of the LightningModule's own module are patched too.
    Everything is restored on exit.
    """
    import importlib

    patched: list[tuple[Any, str, Any]] = []
    for home in _FULLY_SHARD_HOMES:
        try:
            mod = importlib.import_module(home)
        except Exception:  # noqa: BLE001 - older/newer torch layouts
            continue
        if hasattr(mod, "fully_shard"):
            patched.append((vars(mod), "fully_shard", mod.fully_shard))
    originals = {id(orig) for _, _, orig in patched}
    user_globals = getattr(type(module).configure_model, "__globals__", {})
    patched += [(user_globals, key, value) for key, value in list(user_globals.items()) if id(value) in originals]
    try:
        for namespace, name, _ in patched:
            namespace[name] = replacement
        yield
    finally:
        for namespace, name, orig in patched:
            namespace[name] = orig


@contextlib.contextmanager
def _recording_fully_shard(module: Any) -> Any:
    """Record FSDP2 `fully_shard` calls made in `configure_model` without sharding anything.

    Calls are stored on the module as `_ftsc_fully_shard_calls` (lists of module objects); a stub
    device mesh stands in for Lightning's while there is no process group.
    """
    calls: list[list[Any]] = []

    def record(target: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(list(target) if isinstance(target, (list, tuple)) else [target])
        return target

    old_mesh = vars(module).get("_device_mesh")
    try:
        if getattr(module, "_device_mesh", None) is None:
            object.__setattr__(module, "_device_mesh", _StubMesh())
        with replacing_fully_shard(module, record):
            yield
    finally:
        object.__setattr__(module, "_device_mesh", old_mesh)
        object.__setattr__(module, "_ftsc_fully_shard_calls", calls)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def extract(module: Any, target: str | None = None) -> Manifest:
    """The manifest of a built module (names relative to it)."""
    classes: dict[str, tuple[str, ...]] = {}
    modules: list[ModuleEntry] = []
    module_aliases: dict[int, list[str]] = {}
    primary_module: dict[int, str] = {}
    for name, m in module.named_modules(remove_duplicate=False):
        key = id(m)
        if key in primary_module:
            module_aliases[key].append(name)
            continue
        primary_module[key] = name
        module_aliases[key] = []
        cls = type(m)
        qn = _qualname(cls)
        if qn not in classes:
            classes[qn] = tuple(_qualname(b) for b in cls.__mro__[1:] if b is not object)
    for name, m in module.named_modules():
        modules.append(ModuleEntry(name=name, cls=_qualname(type(m)), aliases=tuple(module_aliases[id(m)])))
    param_aliases: dict[int, list[str]] = {}
    primary_param: dict[int, str] = {}
    for name, p in module.named_parameters():
        primary_param[id(p)] = name
        param_aliases[id(p)] = []
    for name, p in module.named_parameters(remove_duplicate=False):
        if primary_param.get(id(p)) != name:
            param_aliases[id(p)].append(name)
    params = [ParamEntry(name=name, shape=tuple(int(s) for s in p.shape), dtype=str(p.dtype).removeprefix("torch."),
                         requires_grad=bool(p.requires_grad), aliases=tuple(param_aliases[id(p)]))
              for name, p in module.named_parameters()]
    buffers: list[BufferEntry] = []
    owners = dict(module.named_modules())
    for name, b in module.named_buffers():
        owner, _, local = name.rpartition(".")
        persistent = local not in getattr(owners.get(owner), "_non_persistent_buffers_set", ())
        buffers.append(BufferEntry(name=name, shape=tuple(int(s) for s in b.shape),
                                   dtype=str(b.dtype).removeprefix("torch."), persistent=persistent))
    names = {id(m): n for n, m in module.named_modules()}
    calls = tuple({"kind": "fsdp_wrap", "module": names[id(m)]}
                  for m in getattr(module, "_ftsc_wrap_calls", ()) if id(m) in names)
    calls += tuple({"kind": "fully_shard", "modules": [names[id(m)] for m in group]}
                   for group in getattr(module, "_ftsc_fully_shard_calls", ())
                   if group and all(id(m) in names for m in group))
    hf = hf_facts(module)
    return Manifest(target=target, classes=classes, modules=tuple(modules), parameters=tuple(params),
                    buffers=tuple(buffers), calls=calls, extra={"hf": hf} if hf else {})


_LAYER_COUNT_KEYS = ("num_hidden_layers", "num_layers", "n_layer")


def hf_facts(module: Any) -> dict[str, Any]:
    """What freeze dialects read from a transformers model besides its names (manifest key `hf`):
    `_no_split_modules`, `config.model_type`, and the layer-count keys of `config` and of
    `config.text_config` (plain JSON values only). Empty for a module without `config`."""
    config = getattr(module, "config", None)
    if config is None:
        return {}

    def counts(cfg: Any) -> dict[str, int]:
        return {k: v for k in _LAYER_COUNT_KEYS
                if isinstance(v := getattr(cfg, k, None), int) and not isinstance(v, bool)}

    no_split = getattr(module, "_no_split_modules", None)
    model_type = getattr(config, "model_type", None)
    out: dict[str, Any] = {
        "no_split_modules": (sorted(map(str, no_split)) if isinstance(no_split, set) else [str(c) for c in no_split])
        if isinstance(no_split, list | tuple | set) else None,
        "model_type": model_type if isinstance(model_type, str) else None,
        "config": counts(config),
    }
    if hasattr(config, "text_config"):
        out["text_config"] = counts(config.text_config)
    out.update(_embedding_facts(module))
    plan = getattr(module, "fsdp_plan", None)  # transformers >= 5: class `_fsdp_plan` + config `base_model_fsdp_plan`
    if isinstance(plan, dict) and plan and all(isinstance(k, str) and isinstance(v, str) for k, v in plan.items()):
        out["fsdp_plan"] = dict(plan)
    return out


def _embedding_facts(module: Any) -> dict[str, Any]:
    """The modules accelerate's FSDP2 preparation carves out (read from accelerate 16cb6eb
    `fsdp2_prepare_model`, `_find_final_norm`): input and output embeddings by name, whether
    their weights are one tensor, and the last direct child of the base model whose class name
    contains `Norm`; None where absent."""
    names = {id(m): n for n, m in module.named_modules()}

    def call(attr: str) -> Any:
        try:
            return getattr(module, attr, lambda: None)()
        except Exception:  # noqa: BLE001 - a model without embeddings may raise NotImplementedError
            return None

    inp, outp = call("get_input_embeddings"), call("get_output_embeddings")
    w_in, w_out = getattr(inp, "weight", None), getattr(outp, "weight", None)
    prefix = getattr(module, "base_model_prefix", "")
    base = getattr(module, prefix, None) if prefix else module
    norm = None
    if base is not None and hasattr(base, "named_children"):
        for _, child in base.named_children():
            if "Norm" in type(child).__name__:
                norm = child
    return {"input_embeddings": names.get(id(inp)) if inp is not None else None,
            "output_embeddings": names.get(id(outp)) if outp is not None else None,
            "tied_embeddings": w_in is not None and w_in is w_out,
            "final_norm": names.get(id(norm)) if norm is not None else None}


def check_structure(module: Any, target: str) -> None:
    """Refuse modules whose structure cannot be read: `__init__` without `super().__init__()`,
    and lazy modules (`nn.LazyLinear`), whose parameters have no shape before a forward pass.

    Raises:
        ModelLoadError: naming the problem and the way out.
    """
    import torch

    for m in [module, *getattr(module, "__dict__", {}).get("_modules", {}).values()]:
        if isinstance(m, torch.nn.Module) and "_modules" not in m.__dict__:
            raise ModelLoadError(f"--model `{target}`: `{type(m).__qualname__}.__init__` does not call "
                                 "`super().__init__()`, so the module has no submodules or parameters to read")
    lazy = sorted({type(m).__qualname__ for m in module.modules()
                   if isinstance(m, torch.nn.modules.lazy.LazyModuleMixin)})
    if lazy:
        raise ModelLoadError(f"--model `{target}`: lazy modules ({', '.join(f'`{n}`' for n in lazy)}) have no "
                             "parameter shapes until their first forward pass; build the model with explicit sizes "
                             "(`nn.Linear(in, out)`), or write a manifest from a model that has run a forward pass")


def manifest_for(target: str, kwargs: Mapping[str, Any] | None = None) -> Manifest:
    """Build `target` on the meta device and return its manifest.

    Raises:
        ModelLoadError: when it cannot be built, or its structure cannot be read (user code in
            `named_parameters`/`named_modules` overrides may raise anything).
    """
    module = build(target, kwargs)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            check_structure(module, target)
            manifest = extract(module, target)
        # What overrides of named_parameters() & co. report must form a manifest a file could hold.
        from_json(manifest.to_json())
        return manifest
    except ManifestError as err:
        raise ModelLoadError(f"--model `{target}`: the modules and parameters the model reports do not form a "
                             f"valid structure: {err}") from None
    except ModelLoadError:
        raise
    except BaseException as err:  # user overrides of named_parameters() & co. may raise anything
        if isinstance(err, KeyboardInterrupt):
            raise
        raise ModelLoadError(f"--model `{target}`: reading the model's modules and parameters failed: "
                             f"{_describe(err)}{_where(err)}") from None
