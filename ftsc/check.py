"""The check pipeline: one schedule file and one model into diagnostics, suppressions applied.

Input: a schedule (a `Loaded` file, a path or text; a freeze-dialect config is read again against
the model by `import_dialect`, whose graph, with the dialect's dtype casts, is the one analysed),
optionally the `Loaded` LightningCLI config
whose options and sharding apply to it (or, for the runtime callback, constructor options as
settings), and a `ModelGraph` (built on the meta device, read from a manifest, or extracted from
a live module by the caller) or None. Output: the diagnostics `ftsc check` prints, with
`# ftsc: ignore[...]` suppressions applied, and the prepared analysis context that `ftsc compile`
and the runtime lower from. `ftsc check`, `ftsc.check_text` and the Lightning callback all call
`run_check`. Never imports torch (the caller builds the graph), never prints.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ftsc import ir
from ftsc.analyze import AnalysisContext, analyze, prepare
from ftsc.diagnostics import Diagnostic, make
from ftsc.frontend import InputKind, Loaded, ReadError, load_file, load_text
from ftsc.model import ModelGraph
from ftsc.source import SourceFile
from ftsc.suppress import apply_suppressions

__all__ = ["CheckResult", "check_file", "check_loaded", "check_text", "import_dialect", "load_config",
           "merge_config", "merge_defaults", "run_check"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a check produced.

    Attributes:
        loaded: the file as checked (config options and defaults merged into its schedule).
        diagnostics: front-end and analysis diagnostics, suppressions applied, in emission order.
        context: the prepared analysis context (None when the file could not be analysed).
    """

    loaded: Loaded
    diagnostics: tuple[Diagnostic, ...]
    context: AnalysisContext | None


def merge_config(loaded: Loaded, config: Loaded) -> Loaded:
    """`loaded` with the options and sharding of a LightningCLI config applied (the config's
    options win over the schedule's; its sharding applies when the schedule has none).

    A config of `epoch_transitions_only` drops the plateau criteria of an FTS YAML schedule, as
    FinetuningScheduler ends phases on plateau only outside that mode.
    """
    if loaded.schedule is None or config.schedule is None:
        return loaded
    sched, cfg = loaded.schedule, config.schedule
    settings = {s.name: s for s in sched.options.settings} | {s.name: s for s in cfg.options.settings}
    options = replace(sched.options, settings=tuple(settings.values()),
                      reinits=sched.options.reinits or cfg.options.reinits)
    merged = replace(sched, options=options, fsdp=sched.fsdp or cfg.fsdp, fsdp2=sched.fsdp2 or cfg.fsdp2)
    if loaded.kind is InputKind.FTS_YAML and cfg.options.get("epoch_transitions_only", False):
        phases = tuple(replace(p, until=tuple(c for c in p.until or () if c.kind is not ir.CriterionKind.PLATEAU))
                       for p in merged.phases)
        merged = replace(merged, phases=phases)
    return replace(loaded, schedule=merged)


def merge_defaults(loaded: Loaded, defaults: tuple[ir.Setting, ...]) -> Loaded:
    """`loaded` with `defaults` added to its options where the schedule sets no value (the runtime
    callback's constructor options: a `.ftsc` `schedule { }` block overrides them)."""
    if loaded.schedule is None or not defaults:
        return loaded
    sched = loaded.schedule
    given = {s.name for s in sched.options.settings}
    extra = tuple(s for s in defaults if s.name not in given)
    options = replace(sched.options, settings=sched.options.settings + extra)
    return replace(loaded, schedule=replace(sched, options=options))


def import_dialect(loaded: Loaded, graph: ModelGraph | None) -> tuple[Loaded, ModelGraph | None]:
    """A freeze-dialect config read against `graph`: its one-phase schedule of exact names, its
    diagnostics, and the model as the dialect leaves it before wrapping (dtype casts applied).
    Anything else, or no model, or a config already read against one, is returned as given."""
    info = loaded.dialect
    if info is None or graph is None or info.with_model:
        return loaded, graph
    from ftsc.frontend import dialects

    imported = dialects.load(info.name, loaded.source, info.root, graph)
    out = replace(loaded, schedule=imported.schedule,
                  diagnostics=list(info.yaml_diagnostics) + imported.diagnostics,
                  dialect=replace(info, with_model=True))
    return out, imported.graph if imported.graph is not None else graph


def run_check(loaded: Loaded, graph: ModelGraph | None = None, *, config: Loaded | None = None,
              defaults: tuple[ir.Setting, ...] = ()) -> CheckResult:
    """Check one schedule file: front-end diagnostics plus every analysis pass, suppressions applied.

    Args:
        loaded: the schedule file, read by `ftsc.frontend` (a dialect config is read again
            against `graph`; the result's `context.graph` is the model as the dialect leaves it).
        graph: the model to resolve selectors against; None checks the schedule alone.
        config: a LightningCLI config whose options and sharding apply (its own diagnostics are
            not included: a config shared by several files is reported once, by the caller).
        defaults: option settings used where neither the schedule nor the config sets a value.

    Returns:
        The merged file, its diagnostics and the prepared analysis context.
    """
    loaded, graph = import_dialect(loaded, graph)
    if config is not None:
        loaded = merge_config(loaded, config)
    loaded = merge_defaults(loaded, defaults)
    diags = list(loaded.diagnostics)
    ctx = None
    if loaded.schedule is not None and not any(d.code == "FTS001" for d in diags):
        try:
            ctx = prepare(loaded.schedule, AnalysisContext(loaded.source, loaded.kind, graph))
            diags.extend(analyze(loaded.schedule, ctx))
        except Exception as err:  # noqa: BLE001 - a bug must surface as FTS901, never a traceback
            diags.append(make("FTS901", loaded.source, None, detail=f"{type(err).__name__}: {err}",
                              help="please report this with the input file"))
    for source in [loaded.source, *loaded.related]:
        diags = apply_suppressions(source, diags)
    return CheckResult(loaded, tuple(diags), ctx)


def check_loaded(loaded: Loaded, graph: ModelGraph | None = None, *,
                 config: Loaded | None = None) -> list[Diagnostic]:
    """The diagnostics of `run_check` for a file already read."""
    return list(run_check(loaded, graph, config=config).diagnostics)


def load_config(path: str) -> Loaded:
    """Read a LightningCLI config.

    Raises:
        ReadError: when the file cannot be read or is a schedule rather than a config.
    """
    config = load_file(path)
    if config.kind is not InputKind.LIGHTNING_CONFIG and config.schedule is not None:
        raise ReadError(f"{path}: not a LightningCLI config (no `trainer` section)")
    return config


def check_file(path: str, graph: ModelGraph | None = None, *,
               lightning_config: str | Loaded | None = None) -> list[Diagnostic]:
    """Check a schedule file (`.ftsc`, FTS YAML or LightningCLI config) as `ftsc check` does.

    Args:
        path: the schedule file.
        graph: the model (`ftsc.model.load_graph`, or `ftsc.model.build.extract` of a live module).
        lightning_config: a LightningCLI config path (or one already read) applied to the schedule;
            its own diagnostics come first.

    Raises:
        ReadError: when a file cannot be read.
    """
    config = load_config(lightning_config) if isinstance(lightning_config, str) else lightning_config
    head = list(config.diagnostics) if config is not None else []
    return head + check_loaded(load_file(path), graph, config=config)


def check_text(text: str, path: str = "<input>.ftsc", graph: ModelGraph | None = None, *,
               lightning_config: str | Loaded | None = None) -> list[Diagnostic]:
    """Check schedule text; `path` names it in diagnostics and picks the front end by extension.

    Example:
        >>> [d.code for d in check_text("phase 1 { thaw a }")]
        ['FTS201']
    """
    config = load_config(lightning_config) if isinstance(lightning_config, str) else lightning_config
    head = list(config.diagnostics) if config is not None else []
    return head + check_loaded(load_text(SourceFile(path, text)), graph, config=config)
