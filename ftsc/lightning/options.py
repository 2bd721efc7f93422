"""The callback's constructor options: validated as `ftsc check` validates a schedule's options.

Input: FinetuningScheduler's keyword arguments. Output: the option settings (IR, the defaults
the schedule's `schedule { }` block overrides) or a `MisconfigurationException` naming each bad
value and what to use instead; the logging level as a number. Never imports torch.
"""

from __future__ import annotations

import logging
from typing import Any

from ftsc import ir, schema
from ftsc.diagnostics import Severity

# Options the plan carries (fingerprinted, overridable by the schedule's `schedule { }` block).
PLAN_OPTIONS = ("max_depth", "base_max_lr", "restore_best", "epoch_transitions_only", "enforce_phase0_params",
                "frozen_bn_track_running_stats", "apply_lambdas_new_pgs")
VERIFY_SHARDING = ("error", "warn", "off")


class OptionError(ValueError):
    """A constructor option with a value the runtime refuses."""


def _problems(values: dict[str, Any]) -> list[str]:
    settings = tuple(ir.Setting(name=k, value=ir.from_py(v)) for k, v in values.items())
    validator = schema.Validator(None, unknown_severity=Severity.ERROR)
    validator.settings(settings, schema.OPTIONS)
    return [d.message for d in validator.diagnostics or () if d.severity is Severity.ERROR]


def settings(values: dict[str, Any]) -> tuple[ir.Setting, ...]:
    """The plan options among `values` as IR settings (None values left out)."""
    return tuple(ir.Setting(name=k, value=ir.from_py(values[k])) for k in PLAN_OPTIONS if values.get(k) is not None)


def validate(values: dict[str, Any]) -> None:
    """Check constructor options.

    Raises:
        OptionError: listing every bad value, e.g. `base_max_lr` must be finite.

    Example:
        >>> validate({"max_depth": -1, "base_max_lr": 1e-5})
        >>> try:
        ...     validate({"max_depth": -5, "base_max_lr": float("nan")})
        ... except OptionError as err:
        ...     print(err)
        invalid FinetuningScheduler option: `max_depth` must be at least -1; `base_max_lr` must be finite
    """
    checked = {k: v for k, v in values.items() if k in schema.OPTIONS.keys and k != "custom_strategy_adapters"}
    if checked.get("log_dir") is not None:  # a str or a pathlib.Path
        checked["log_dir"] = str(checked["log_dir"])
    problems = _problems(checked)
    if isinstance(values.get("logging_level"), str):
        try:
            logging_level(values["logging_level"])
        except OptionError:
            problems.append(f"`logging_level` {values['logging_level']!r} is not a logging level name "
                            "(DEBUG, INFO, WARNING, ERROR, CRITICAL)")
    if values.get("custom_strategy_adapters"):
        problems.append("`custom_strategy_adapters` is not supported: ftsc runs single-device, DDP, FSDPStrategy and "
                        "ModelParallelStrategy training through its own strategy layer; leave it out (and use "
                        "`allow_untested=True` to try another strategy)")
    if values.get("verify_sharding", "error") not in VERIFY_SHARDING:
        problems.append(f"`verify_sharding` must be one of {', '.join(VERIFY_SHARDING)}, "
                        f"not {values.get('verify_sharding')!r}")
    for key in ("reinit_optim_cfg", "reinit_lr_cfg", "strategy_adapter_cfg"):
        if values.get(key) is not None and not isinstance(values[key], dict):
            problems.append(f"`{key}` must be a mapping, not {type(values[key]).__name__}")
        elif values.get(key) and key in _REINIT:
            problems.extend(_reinit_problems(key, values[key]))
    if problems:
        raise OptionError("invalid FinetuningScheduler option: " + "; ".join(problems))


_REINIT = {"reinit_optim_cfg": ("optimizer_init", ()),
           "reinit_lr_cfg": ("lr_scheduler_init", ("pl_lrs_cfg", "use_current_optimizer_pg_lrs"))}


def _reinit_problems(key: str, cfg: dict[str, Any]) -> list[str]:
    """FTS's shape of a schedule-wide re-initialisation: `{<init key>: {class_path, init_args}, ...}`."""
    init_key, extra = _REINIT[key]
    problems = [f"`{key}` has no `{k}` key; it accepts {', '.join(f'`{a}`' for a in (init_key, *extra))}"
                for k in sorted(set(cfg) - {init_key, *extra})]
    init = cfg.get(init_key)
    if not isinstance(init, dict) or not isinstance(init.get("class_path"), str) or not init["class_path"]:
        problems.append(f"`{key}` needs `{init_key}: {{class_path: ..., init_args: {{...}}}}`")
    elif not isinstance(init.get("init_args", {}), dict):
        problems.append(f"`{key}.{init_key}.init_args` must be a mapping")
    return problems


def logging_level(value: int | str) -> int:
    """A logging level given as a number or a name (`"INFO"`, `"warning"`).

    Example:
        >>> logging_level("warning"), logging_level(10)
        (30, 10)
    """
    if isinstance(value, str):
        level = logging.getLevelName(value.upper())
        if not isinstance(level, int):
            raise OptionError(f"invalid FinetuningScheduler option: `logging_level` {value!r} is not a logging level "
                              "name (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
        return level
    return int(value)
