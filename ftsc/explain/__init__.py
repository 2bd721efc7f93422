"""`ftsc explain`: phases x sharding units, what trains, and what each phase costs per rank.

Input: a schedule (`.ftsc`, FTS YAML or LightningCLI config), a model (`--model` or
`--manifest`), the strategy (from the file or `--lightning-config`) and the explain flags.
Output: SPEC §5.3's report (`build_report` returns the JSON dict), rendered as text, Markdown,
JSON (or HTML by `ftsc.explain.html` when present). Never imports torch with `--manifest`.

Stages: `setup` (strategy, precision, optimizer) -> `report` (groups, cells, memory per phase
from `memory`'s exact arithmetic, `activations`' estimate) -> `render`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftsc.analyze import AnalysisContext, prepare
from ftsc.diagnostics import Diagnostic, make
from ftsc.explain.memory import Group, Memory, Setup, phase_memory
from ftsc.explain.report import Explanation, explain
from ftsc.explain.setup import ConfigFacts, read_config_facts, schedule_setup
from ftsc.frontend import Loaded
from ftsc.model.graph import ModelGraph

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)\s*$", re.IGNORECASE)
_FACTOR = {"": 1, "b": 1, "k": 2**10, "kib": 2**10, "kb": 10**3, "m": 2**20, "mib": 2**20, "mb": 10**6,
           "g": 2**30, "gib": 2**30, "gb": 10**9, "t": 2**40, "tib": 2**40, "tb": 10**12}


def parse_size(text: str) -> int:
    """`80GiB`, `80GB`, `512M`, `1e9`-free plain bytes: a size in bytes (K/M/G/T are binary).

    Raises:
        ValueError: naming the value and the accepted forms.

    Example:
        >>> parse_size("80GiB"), parse_size("1.5 GB"), parse_size("512M")
        (85899345920, 1500000000, 536870912)
    """
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"invalid size {text!r}; expected a number with an optional unit such as 80GiB, 80GB or 512M")
    return int(float(m.group(1)) * _FACTOR[m.group(2).lower()])


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """The explain flags."""

    world_size: int | None = None
    optimizer: str | None = None
    batch: int | None = None
    seq: int | None = None
    max_memory: int | None = None


def over_budget(ex: Explanation, budget: int, source: Any = None) -> list[Diagnostic]:
    """FTS601 for every phase whose busiest-rank bytes exceed `budget`, naming what costs most."""
    from ftsc.explain.render import human_bytes

    out = []
    for ph in ex.phases:
        need = ph.peak if ph.peak is not None else ph.memory.device.model_states
        if need <= budget:
            continue
        m = ph.memory.device
        parts = {"optimizer state": m.optimizer, "gradients": m.grads, "parameters": m.params, "buffers": m.buffers}
        if ph.activations:
            parts["activations (estimate)"] = ph.activations
        if ph.peak is not None:
            transient = ph.peak - m.model_states - (ph.activations or 0)
            parts["all-gathers, unsharded gradients and the loss's backward (estimate)"] = transient
        top = sorted(parts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        units = sorted(((_unit_bytes(ex, g, ph.trainable), g.name or "<root>") for g in ex.groups),
                       key=lambda u: (-u[0], u[1]))[:3]
        notes = ("largest contributors: " + ", ".join(f"{k} {human_bytes(v)}" for k, v in top),
                 "largest units: " + ", ".join(f"`{n}` {human_bytes(b)}" for b, n in units if b),
                 (f"what counts: {'the estimated peak' if ph.peak is not None else 'model states (exact)'} "
                  f"on the busiest rank (rank {ph.memory.rank})"))
        out.append(make("FTS601", source, None, phase=ph.index, need=human_bytes(need), budget=human_bytes(budget),
                        notes=notes, help="shard over more ranks (--world-size), thaw fewer parameters in this "
                        "phase, offload to the CPU, or use an optimizer with less state",
                        data={"phase": ph.index, "bytes": need, "budget": budget}))
    return out


def _unit_bytes(ex: Explanation, group: Group, trainable: frozenset[str]) -> int:
    return phase_memory(ex.graph, ex.setup, [group], trainable, Memory()).device.model_states


def explain_loaded(loaded: Loaded, graph: ModelGraph, *, options: Options, facts: ConfigFacts,
                   diagnostics: Sequence[Diagnostic] = (), ctx: AnalysisContext | None = None,
                   ) -> tuple[Explanation, list[Diagnostic]]:
    """Explain a loaded schedule against a model graph; returns the explanation and its
    diagnostics (the check's, then FTS601 for phases over `options.max_memory`)."""
    schedule = loaded.schedule
    if schedule is None:
        raise ValueError(f"{loaded.source.display_path}: no schedule to explain (it did not parse)")
    ctx = ctx or prepare(schedule, AnalysisContext(loaded.source, loaded.kind, graph))
    setup = schedule_setup(schedule, world_size=options.world_size, optimizer=options.optimizer, facts=facts)
    ex = explain(schedule, ctx, setup, batch=options.batch, seq=options.seq)
    diags = list(diagnostics)
    if options.max_memory is not None:
        diags.extend(over_budget(ex, options.max_memory, loaded.source))
    return ex, diags


def build_report(path: str, *, model: str | None = None, manifest: str | None = None,
                 model_kwargs: dict[str, Any] | None = None, lightning_config: str | None = None,
                 world_size: int | None = None, optimizer: str | None = None, batch: int | None = None,
                 seq: int | None = None, max_memory: str | int | None = None) -> dict[str, Any]:
    """The SPEC §5.3 report for a schedule file, as `ftsc explain --format json` prints it.

    Args:
        path: the schedule (`.ftsc`, FTS YAML or LightningCLI config).
        model: `--model` target (built on the meta device; imports torch).
        manifest: `--manifest` file (no torch).
        model_kwargs: `--model-kwargs`.
        lightning_config: `--lightning-config` (strategy, precision, devices, optimizer).
        world_size: ranks (default: the config's, else 1).
        optimizer: `adamw`, `adam`, `sgd` or `sgd-momentum` (default: the config's, else adamw).
        batch: micro-batch per rank (activation estimate).
        seq: sequence length (activation estimate).
        max_memory: budget per rank (`80GiB` or bytes); phases over it get FTS601.

    Returns:
        The JSON-ready dict: version, world_size, optimizer, units, phases, diagnostics.

    Raises:
        ValueError: bad arguments or a schedule that cannot be explained (the CLI exits 2).
    """
    from ftsc.explain.command import explain_document

    budget = parse_size(max_memory) if isinstance(max_memory, str) else max_memory
    doc, _ = explain_document(path, model=model, manifest=manifest, model_kwargs=model_kwargs,
                              lightning_config=lightning_config,
                              options=Options(world_size=world_size, optimizer=optimizer, batch=batch, seq=seq,
                                              max_memory=budget))
    return doc


__all__ = ["Explanation", "Options", "Setup", "build_report", "explain", "explain_loaded", "over_budget",
           "parse_size", "read_config_facts"]
