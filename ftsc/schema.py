"""The vocabulary of settings: which keys each block accepts and what values they take.

Input: IR `Setting`s from either front end. Output: canonical settings (ordered as the schema
lists them, values normalized, e.g. FTS's numeric-string lrs become floats) and FTS102/FTS103
diagnostics. Shared by the DSL and the FTS YAML front ends so both accept the same things.
Never imports torch.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ftsc import ir
from ftsc.diagnostics import Diagnostic, Severity, make
from ftsc.source import SourceFile

# A checker returns (canonical python value, problem text or None).
Checker = Callable[[Any], tuple[Any, str | None]]


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def boolean(v: Any) -> tuple[Any, str | None]:
    return (v, None) if isinstance(v, bool) else (v, "must be `true` or `false`")


def integer(lo: int | None = None, hi: int | None = None) -> Checker:
    def check(v: Any) -> tuple[Any, str | None]:
        if isinstance(v, bool) or not isinstance(v, int):
            return v, "must be an integer"
        if lo is not None and v < lo:
            return v, f"must be at least {lo}"
        if hi is not None and v > hi:
            return v, f"must be at most {hi}"
        return v, None
    return check


def number(*, positive: bool = False, nonneg: bool = False, numeric_strings: bool = False) -> Checker:
    def check(v: Any) -> tuple[Any, str | None]:
        if numeric_strings and isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                return v, "must be a number"
        if not _is_num(v):
            return v, "must be a number"
        if not math.isfinite(v):
            return v, "must be finite"
        if positive and v <= 0:
            return v, "must be a positive number"
        if nonneg and v < 0:
            return v, "must not be negative"
        return float(v) if isinstance(v, int) and positive and numeric_strings else v, None
    return check


def string(v: Any) -> tuple[Any, str | None]:
    return (v, None) if isinstance(v, str) else (v, "must be a string")


def optional(inner: Checker) -> Checker:
    def check(v: Any) -> tuple[Any, str | None]:
        return (v, None) if v is None else inner(v)
    return check


def choice(*options: Any) -> Checker:
    def check(v: Any) -> tuple[Any, str | None]:
        if v in options and not isinstance(v, bool):
            return v, None
        listed = ", ".join(f"`{o}`" for o in options)
        return v, f"must be one of {listed}"
    return check


def any_of(*checkers: Checker, text: str) -> Checker:
    def check(v: Any) -> tuple[Any, str | None]:
        for c in checkers:
            out, problem = c(v)
            if problem is None:
                return out, None
        return v, text
    return check


def class_paths(v: Any) -> tuple[Any, str | None]:
    items = v if isinstance(v, list) else [v]
    if all(isinstance(i, str) and i for i in items):
        return items, None
    return v, "must be a class path or a list of class paths"


def list_of(inner: Checker) -> Checker:
    def check(v: Any) -> tuple[Any, str | None]:
        if not isinstance(v, list):
            return v, "must be a list"
        out = []
        for i, item in enumerate(v):
            canon, problem = inner(item)
            if problem:
                return v, f"item {i} ({item!r}) {problem}"
            out.append(canon)
        return out, None
    return check


def anything(v: Any) -> tuple[Any, str | None]:
    return v, None


@dataclass(frozen=True, slots=True)
class Block:
    """The keys a block (or a dict-valued setting) accepts, in canonical order."""

    name: str
    keys: dict[str, Checker | Block]
    open: bool = False  # accepts any key (e.g. a class's init_args)


EARLY_STOPPING = Block("early stopping criteria", {
    "monitor": string,
    "min_delta": number(),
    "patience": integer(0),
    "mode": choice("min", "max"),
    "verbose": boolean,
    "strict": boolean,
    "check_finite": boolean,
    "stopping_threshold": optional(number()),
    "divergence_threshold": optional(number()),
    "check_on_train_epoch_end": optional(boolean),
    "log_rank_zero_only": boolean,
})

CHECKPOINT = Block("checkpoint", {
    "monitor": optional(string),
    "mode": choice("min", "max"),
    "save_top_k": integer(-1),
    "save_last": optional(boolean),
    "verbose": boolean,
    "dirpath": optional(string),
    "filename": optional(string),
    "every_n_epochs": optional(integer(0)),
    "every_n_train_steps": optional(integer(0)),
    "save_weights_only": boolean,
    "save_on_train_epoch_end": optional(boolean),
    "auto_insert_metric_name": boolean,
    "enable_version_counter": boolean,
})

OPTIONS = Block("schedule option", {
    "max_depth": integer(-1),
    "base_max_lr": number(positive=True),
    "restore_best": boolean,
    "epoch_transitions_only": boolean,
    "enforce_phase0_params": boolean,
    "frozen_bn_track_running_stats": boolean,
    "apply_lambdas_new_pgs": boolean,
    "allow_untested": boolean,
    "max_epochs": optional(integer(-1)),
    "early_stopping": EARLY_STOPPING,
    "checkpoint": CHECKPOINT,
    "gen_ft_sched_only": boolean,
    "logging_level": any_of(integer(0), string, text="must be a logging level (a number or a name)"),
    "log_dir": optional(string),
    "custom_strategy_adapters": Block("custom strategy adapters", {}, open=True),
})

PHASE = Block("phase setting", {
    "lr": number(positive=True),
})

PL_LRS_CFG = Block("`pl_lrs_cfg` key", {
    "name": optional(string),
    "interval": choice("epoch", "step"),
    "frequency": integer(1),
    "reduce_on_plateau": boolean,
    "monitor": optional(string),
    "strict": boolean,
})

LR_SCHEDULER_REINIT = Block("lr-scheduler reinit key", {
    "pl_lrs_cfg": PL_LRS_CFG,
    "init_pg_lrs": list_of(number(positive=True, numeric_strings=True)),
    "use_current_optimizer_pg_lrs": boolean,
})

OPTIMIZER_REINIT = Block("optimizer reinit key", {})

INIT_ARGS = Block("init_args", {}, open=True)

_DTYPE = choice("float32", "float16", "bfloat16", "float64", "torch.float32", "torch.float16",
                "torch.bfloat16", "torch.float64", "fp32", "fp16", "bf16")

MIXED_PRECISION = Block("mixed precision key", {
    "param_dtype": optional(_DTYPE),
    "reduce_dtype": optional(_DTYPE),
    "buffer_dtype": optional(_DTYPE),
    "keep_low_precision_grads": boolean,
    "cast_forward_inputs": boolean,
    "cast_root_forward_inputs": boolean,
})

_PRECISIONS = ("32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true",
               "64-true", "64", "transformer-engine", "transformer-engine-float16")


def _PRECISION(v: Any) -> tuple[Any, str | None]:
    # Lightning accepts the integers 16, 32 and 64 as well as strings.
    if isinstance(v, int) and not isinstance(v, bool) and str(v) in _PRECISIONS:
        return str(v), None
    return choice(*_PRECISIONS)(v)

FSDP = Block("fsdp setting", {
    "auto_wrap_policy": class_paths,
    "min_num_params": integer(1),
    "use_orig_params": boolean,
    "cpu_offload": boolean,
    "activation_checkpointing_policy": class_paths,
    "mixed_precision": MIXED_PRECISION,
    "precision": _PRECISION,
    "sharding_strategy": choice("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD",
                                "_HYBRID_SHARD_ZERO2"),
    "state_dict_type": choice("full", "sharded"),
    "backward_prefetch": optional(choice("BACKWARD_PRE", "BACKWARD_POST")),
    "forward_prefetch": boolean,
    "limit_all_gathers": boolean,
    "sync_module_states": boolean,
})

MP_POLICY = Block("`mp_policy` key", {
    "param_dtype": optional(_DTYPE),
    "reduce_dtype": optional(_DTYPE),
    "output_dtype": optional(_DTYPE),
    "cast_forward_inputs": boolean,
})

OFFLOAD_POLICY = Block("offload policy key", {"pin_memory": boolean})

AC_MODES = ("composable", "wrapped", "wrapped_offload")


def _act_ckpt(v: Any) -> tuple[Any, str | None]:
    if isinstance(v, str):
        return v, (f"`act_ckpt` must be a list such as `[{v}]`, not a bare string "
                   "(FinetuningScheduler splits a bare string into characters and crashes)")
    if not isinstance(v, list) or not 1 <= len(v) <= 2:
        return v, "`act_ckpt` must be `[mode]` or `[mode, {kwargs}]`"
    if v[0] not in AC_MODES:
        return v, f"unknown `act_ckpt` mode `{v[0]}`; expected one of {', '.join(AC_MODES)}"
    if len(v) == 2 and not isinstance(v[1], dict):
        return v, "the second item of `act_ckpt` must be a mapping of keyword arguments"
    return v, None


FULLY_SHARD = Block("`fully_shard` keyword", {
    "reshard_after_forward": any_of(boolean, integer(1), text="must be `true`, `false` or a positive integer"),
    "mp_policy": MP_POLICY,
    "offload_policy": OFFLOAD_POLICY,
    "act_ckpt": _act_ckpt,
    "cpu_offload_policy": OFFLOAD_POLICY,
})

FSDP2 = Block("fsdp2 setting", {
    "data_parallel_size": any_of(integer(1), choice("auto"), text="must be a positive integer or `auto`"),
    "tensor_parallel_size": any_of(integer(1), choice("auto"), text="must be a positive integer or `auto`"),
    "fsdp_default_kwargs": FULLY_SHARD,
    "precision": _PRECISION,
})


def did_you_mean(close: list[str]) -> str | None:
    """The 'did you mean' help text for some close names (None for none)."""
    return "did you mean " + ", ".join(f"`{c}`" for c in close) + "?" if close else None


def suggest(name: str, candidates: list[str], n: int = 1) -> str | None:
    """A 'did you mean' help text naming up to `n` candidates close to `name`, if any is."""
    return did_you_mean(difflib.get_close_matches(name, candidates, n=n, cutoff=0.6))


@dataclass(slots=True)
class Validator:
    """Validates settings against a `Block`, collecting diagnostics.

    `unknown_severity` is ERROR for the DSL and WARNING for FTS YAML (FTS ignores unknown keys).
    """

    file: SourceFile | None
    unknown_severity: Severity = Severity.ERROR
    diagnostics: list[Diagnostic] | None = None

    def __post_init__(self) -> None:
        if self.diagnostics is None:
            self.diagnostics = []

    def report(self, diag: Diagnostic) -> None:
        assert self.diagnostics is not None
        self.diagnostics.append(diag)

    def settings(self, settings: tuple[ir.Setting, ...], block: Block,
                 where: str | None = None) -> tuple[ir.Setting, ...]:
        """Check settings; return the valid ones in canonical order (unknown keys dropped)."""
        seen: dict[str, ir.Setting] = {}
        for s in settings:
            if s.name in seen:
                self.report(make("FTS104", self.file, s.name_span, key=s.name,
                                 label="written again here",
                                 help="keep one of the two"))
                continue
            seen[s.name] = s
        order = list(block.keys)
        out: list[ir.Setting] = []
        for s in seen.values():
            if s.name not in block.keys and not block.open:
                code = "FTS406" if block is FULLY_SHARD else "FTS103"
                kw: dict[str, Any] = (
                    {"detail": f"unknown `fully_shard` keyword `{s.name}`"} if code == "FTS406"
                    else {"where": where or block.name, "key": s.name}
                )
                self.report(make(code, self.file, s.name_span, label="not recognized",
                                 help=suggest(s.name, order) or
                                 (f"expected one of: {', '.join(order)}" if order else None),
                                 severity=self.unknown_severity if code == "FTS103" else None, **kw))
                continue
            value = self.value(s, block.keys.get(s.name, anything))
            if value is not None:
                out.append(replace(s, value=value))
        if not block.open:
            out.sort(key=lambda s: order.index(s.name))
        return tuple(out)

    def value(self, s: ir.Setting, spec: Checker | Block) -> ir.Value | None:
        if isinstance(spec, Block):
            if s.value.kind != "dict":
                self.report(make("FTS102", self.file, s.value.span,
                                 detail=f"`{s.name}` must be a mapping", label="not a mapping"))
                return None
            inner = self.settings(s.value.data, spec, where=spec.name)  # type: ignore[arg-type]
            return replace(s.value, data=inner)
        canon, problem = spec(s.value.py())
        if problem is not None:
            code = "FTS406" if s.name in ("act_ckpt",) else "FTS102"
            self.report(make(code, self.file, s.value.span, detail=f"`{s.name}` {problem}",
                             label="invalid value"))
            return None
        if canon == s.value.py() and type(canon) is type(s.value.py()):
            return s.value
        return ir.from_py(canon, s.value.span)
