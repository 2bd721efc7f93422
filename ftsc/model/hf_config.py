"""Build a transformers model from its `config.json` alone, on the meta device.

Input: a `--model` target that is a folder holding `config.json` (a downloaded checkpoint, a
`save_pretrained` folder), a path to such a JSON file, or `hf:ORG/NAME`, a model whose config is
in the local Hugging Face cache (`HF_HUB_CACHE`), and `--model-kwargs`. Output: the
module, built from the class the config's `architectures` names, in the dtype the config names
(`dtype`, or `torch_dtype` as transformers < 5 wrote it), which is what `from_pretrained` loads
by default since transformers 5. Weights are never read, nothing is downloaded
(`local_files_only`), and no code from the checkpoint runs: a config that needs
`trust_remote_code` (`auto_map`) is refused with the way out (a factory target).

`--model-kwargs` keys: `dtype` (a torch dtype name, overriding the config's), `architecture` (a
transformers class name, for configs without `architectures`), and any attribute the config
already has (`{"num_hidden_layers": 2}`), set before building. Never imports torch or
transformers at module level: `config_target` is pure path logic.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.json"
HUB_PREFIX = "hf:"
MAX_REPEATS = 10_000  # layers or experts; published models have a few hundred at most
_OWN_KEYS = ("dtype", "architecture")


class ConfigTargetError(Exception):
    """The config target cannot be built (the caller turns it into a `ModelLoadError`)."""


def config_target(target: str) -> str | None:
    """What transformers should read the config from: the `config.json` a target names (a folder
    holding one, or a `.json` file), or the model id after `hf:`; None for other targets.

    Example:
        >>> config_target("pkg.module:build") is None
        True
        >>> config_target("hf:meta-llama/Llama-3.2-1B")
        'meta-llama/Llama-3.2-1B'
    """
    if target.startswith(HUB_PREFIX) and "/" in target and not Path(target).exists():
        return target.removeprefix(HUB_PREFIX)
    if target.rpartition(":")[1] and not Path(target).exists():
        return None  # `pkg.mod:attr` / `file.py:attr` (a path with a colon that exists is a path)
    path = Path(target)
    if path.is_dir() and (path / CONFIG_NAME).is_file():
        return str(path / CONFIG_NAME)
    if path.suffix == ".json" and path.is_file():
        return str(path)
    return None


def _dtype(value: Any, torch: Any, where: str) -> Any:
    """The torch dtype a config or kwarg names; None for absent or "auto" (the default dtype)."""
    if value is None or value == "auto":
        return None
    if isinstance(value, torch.dtype):
        return value
    name = str(value).removeprefix("torch.")
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ConfigTargetError(f"{where} `{value}` is not a torch dtype (float32, bfloat16, float16, ...)")
    return dtype


def _load_config(source: str, overrides: Mapping[str, Any]) -> Any:
    from transformers import AutoConfig

    try:
        with contextlib.redirect_stdout(sys.stderr):
            config = AutoConfig.from_pretrained(source, local_files_only=True, trust_remote_code=False)
    except Exception as err:  # noqa: BLE001 - transformers raises ValueError, OSError, KeyError, ...
        text = str(err).strip().splitlines()
        if isinstance(err, OSError) and not Path(source).exists():
            raise ConfigTargetError(f"`{source}` is not in the local Hugging Face cache, and ftsc never downloads: "
                                    f"fetch its config first (`hf download {source} config.json`), or give a "
                                    "folder holding config.json") from None
        if "trust_remote_code" in str(err):
            raise ConfigTargetError("the config needs `trust_remote_code` (its model code ships with the "
                                    "checkpoint); ftsc does not run it: point --model at a factory that builds "
                                    "the model (`file.py:build`)") from None
        raise ConfigTargetError(f"transformers cannot read it: {type(err).__name__}: "
                                f"{text[0] if text else ''}") from None
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise ConfigTargetError(f"--model-kwargs `{key}`: the {type(config).__name__} has no such attribute "
                                    f"(keys: `dtype`, `architecture`, or an attribute of the config)")
        setattr(config, key, value)
    _refuse_implausible_repeats(config.to_dict())
    return config


def _refuse_implausible_repeats(values: Mapping[str, Any], where: str = "") -> None:
    """A layer or expert count above `MAX_REPEATS` would take minutes to build even on meta: refused.

    Example:
        >>> _refuse_implausible_repeats({"num_hidden_layers": 32, "text_config": {"num_local_experts": 8}})
    """
    for key, value in values.items():
        if isinstance(value, Mapping):
            _refuse_implausible_repeats(value, f"{where}{key}.")
        elif (isinstance(value, int) and not isinstance(value, bool) and value > MAX_REPEATS
              and ("layer" in key or "expert" in key)):
            raise ConfigTargetError(f"`{where}{key}` = {value} is implausible (more than {MAX_REPEATS:,}); ftsc "
                                    "does not build it: correct the config, or point --model at a factory")


def _model_class(config: Any, kwargs: Mapping[str, Any]) -> Any:
    import transformers

    if getattr(config, "auto_map", None):
        raise ConfigTargetError("the config maps its classes to code shipped with the checkpoint (`auto_map`); "
                                "ftsc does not run it: point --model at a factory that builds the model "
                                "(`file.py:build`)")
    names = [kwargs["architecture"]] if "architecture" in kwargs else list(getattr(config, "architectures", None) or [])
    if not names:
        raise ConfigTargetError("the config names no `architectures`; say which class to build with "
                                "--model-kwargs '{\"architecture\": \"LlamaForCausalLM\"}'")
    name = str(names[0])
    cls = getattr(transformers, name, None)
    if not isinstance(cls, type) or not hasattr(cls, "_from_config"):
        raise ConfigTargetError(f"transformers {transformers.__version__} has no model class `{name}`")
    return cls


def build_from_config(source: str, kwargs: Mapping[str, Any]) -> Any:
    """The model `source` (a `config.json` path or a cached model id) describes, built on the meta device.

    Raises:
        ConfigTargetError: transformers missing, an unreadable config, an unknown class or dtype,
            a config that needs code from the checkpoint, or a constructor that fails on meta.
    """
    try:
        import torch
        import transformers
    except ImportError:
        raise ConfigTargetError("a config.json target needs torch and transformers installed") from None
    overrides = {k: v for k, v in kwargs.items() if k not in _OWN_KEYS}
    config = _load_config(source, overrides)
    cls = _model_class(config, kwargs)
    if "dtype" in kwargs:
        dtype = _dtype(kwargs["dtype"], torch, "--model-kwargs `dtype`")
    else:
        dtype = _dtype(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None), torch,
                       "the config's `dtype`")
    # transformers 5 takes `dtype`; 4.x took `torch_dtype`.
    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    try:
        with contextlib.redirect_stdout(sys.stderr), torch.device("meta"):
            return cls._from_config(config, **{key: dtype} if dtype is not None else {})
    except Exception as err:  # noqa: BLE001 - model constructors raise anything
        text = str(err).strip().splitlines()
        raise ConfigTargetError(f"building `{cls.__name__}` on the meta device failed: {type(err).__name__}: "
                                f"{text[0] if text else ''}") from None
