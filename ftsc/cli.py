"""The `ftsc` command line: check, compile, explain, manifest, init, fmt, convert, rule.

Input: argv. Output: text on stdout/stderr and an exit status: 0 no error-level diagnostics,
1 error-level diagnostics (or warnings under `--strict`), 2 the tool could not do its job.
Never a traceback for user input; internal errors become FTS901 with status 2.
Never imports torch.
"""

from __future__ import annotations

import argparse
import difflib
import gc
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ftsc import __version__
from ftsc.analyze import AnalysisContext, prepare
from ftsc.atomic import atomic_write_bytes, atomic_write_text
from ftsc.check import check_loaded, import_dialect, load_config, merge_config, run_check
from ftsc.config import ConfigError, Settings, load_settings
from ftsc.convert import convert
from ftsc.diagnostics import Diagnostic, Severity
from ftsc.diagnostics.registry import RULES, expand_selection, lookup
from ftsc.diagnostics.render import RENDERERS
from ftsc.fix import fix_file
from ftsc.fmt import encoded_like, format_schedule, with_line_endings
from ftsc.frontend import InputKind, Loaded, ReadError, load_file
from ftsc.model import ModelError, ModelGraph, load_graph, load_manifest, parse_kwargs

EXIT_OK, EXIT_FINDINGS, EXIT_FAILURE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or configuration: exit status 2."""


def _model_args(p: argparse.ArgumentParser, *, strategy: bool = True, cache: bool = False) -> None:
    group = p.add_argument_group("model")
    group.add_argument("--model", metavar="T", help="pkg.module:attr or path/file.py:attr, built on the meta device")
    group.add_argument("--model-kwargs", metavar="JSON", help="constructor/factory arguments for --model")
    group.add_argument("--manifest", metavar="M", help="model manifest JSON (`ftsc manifest`); no torch needed")
    if cache:
        group.add_argument("--no-cache", action="store_true",
                           help="build --model every time: neither read nor write the structure cache (.ftsc_cache)")
    if strategy:
        p.add_argument("--lightning-config", metavar="C", help="LightningCLI config with options and strategy")


def _dialect_arg(p: argparse.ArgumentParser) -> None:
    from ftsc.frontend.dialects import DIALECTS

    p.add_argument("--dialect", choices=("auto", *DIALECTS), default="auto",
                   help="read YAML as this project's fine-tuning config (default auto: by its keys)")


def _strategy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strategy-config", metavar="S",
                   help="accelerate config YAML or transformers fsdp_config JSON (by content), or `hf`: the "
                        "model's own transformers FSDP plan; the strategy for the schedule")
    p.add_argument("--trainable", action="append", default=None, metavar="PATTERN",
                   help="without a schedule FILE: one phase thawing what each PATTERN selects (FTS `params` rule)")


def _inputs(path: str | None, graph: ModelGraph | None, lightning_config: str | None, strategy_config: str | None,
            trainable: Sequence[str] | None) -> tuple[Loaded, Loaded | None, int | None]:
    """The schedule (`path`, or the `--trainable` phase), the config applied to it, and the ranks
    a `--strategy-config` names."""
    from ftsc.frontend.strategy import load_strategy, trainable_schedule

    if strategy_config and lightning_config:
        raise UsageError("give --lightning-config or --strategy-config, not both")
    if trainable and path:
        raise UsageError("--trainable forms the schedule: give it without a schedule FILE")
    if not trainable and not path:
        raise UsageError("give a schedule FILE or --trainable PATTERN")
    world = None
    if strategy_config:
        strat = load_strategy(strategy_config, graph)
        config, world = strat.loaded, strat.world_size
    else:
        config = _load_config(lightning_config)
    if trainable:
        loaded = trainable_schedule(trainable)
        if strategy_config:  # accelerate / the Trainer runs it, not FTS
            loaded.kind = InputKind.DIALECT
        if config is not None and config.schedule is not None:
            loaded = merge_config(loaded, config)
        return loaded, config, world
    assert path is not None
    loaded = _load_schedule(path, config)
    if strategy_config and loaded.dialect is not None:
        raise UsageError(f"{path} is a freeze-dialect config with its own strategy: --strategy-config does not apply")
    return loaded, config, world


def _check_strategy(args: argparse.Namespace, graphs: _Graphs, path: str, seen: list[Diagnostic]) -> list[Diagnostic]:
    """`ftsc check` of one schedule (or the `--trainable` phase) under `--strategy-config`: the
    strategy config's diagnostics once, then the schedule's."""
    if args.fix:
        raise UsageError("--fix edits schedules and LightningCLI configs, not --strategy-config / --trainable inputs")
    graph = graphs.for_file(path)
    loaded, config, _ = _inputs(path or None, graph, args.lightning_config, args.strategy_config, args.trainable)
    head = [d for d in (config.diagnostics if config is not None and args.strategy_config else ()) if d not in seen]
    return head + check_file(loaded, graph)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ftsc", description="Fine-tuning schedule compiler and FSDP alignment checker.")
    p.add_argument("--version", action="version", version=f"ftsc {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="check schedules (.ftsc, FTS YAML, LightningCLI configs)")
    check.add_argument("files", nargs="*", metavar="FILE")
    _model_args(check, cache=True)
    check.add_argument("--format", choices=sorted(RENDERERS), help="output format (default: text)")
    check.add_argument("--select", action="append", default=None, metavar="CODES",
                       help="only these codes/names/prefixes (comma-separated)")
    check.add_argument("--ignore", action="append", default=None, metavar="CODES", help="skip these codes")
    check.add_argument("--strict", action="store_true", default=None, help="warnings also fail (exit 1)")
    check.add_argument("--exit-zero", action="store_true", help="exit 0 even with findings (advisory hooks)")
    check.add_argument("--fix", action="store_true",
                       help="apply fix suggestions (FSDP wrap overrides) to the file configuring FSDP")
    _isolated_arg(check)
    check.add_argument("--skip-unrecognized", action="store_true",
                       help="skip YAML files that are neither a schedule nor a LightningCLI config without "
                            "the one-line note (the pre-commit hook passes it)")
    _strategy_args(check)
    _dialect_arg(check)

    comp = sub.add_parser("compile", help="compile a schedule against a model; print the plan as JSON")
    comp.add_argument("file", metavar="FILE", nargs="?")
    _model_args(comp, cache=True)
    _strategy_args(comp)
    comp.add_argument("--format", choices=("json",), default="json")
    comp.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    _isolated_arg(comp)
    _dialect_arg(comp)

    man = sub.add_parser("manifest", help="write a model's manifest (module tree, parameters, ties)")
    _model_args(man, strategy=False, cache=True)
    _isolated_arg(man)
    man.add_argument("-o", "--output", metavar="M", help="write here instead of stdout")

    init = sub.add_parser("init", help="write a default schedule for a model")
    _model_args(init, cache=True)
    _isolated_arg(init)
    init.add_argument("--style", choices=("fts", "module", "unit"), default=None,
                      help="fts: FinetuningScheduler's default (two parameters per phase); "
                           "module: one module per phase, never split; unit: one FSDP unit / fully_shard "
                           "group per phase (the default with an FSDP strategy from --lightning-config)")
    init.add_argument("--to", choices=("ftsc", "fts-yaml"), default="ftsc", help="output format (default: ftsc)")
    init.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")

    fmt = sub.add_parser("fmt", help="format .ftsc files canonically (comments kept)")
    fmt.add_argument("files", nargs="+", metavar="FILE")
    fmt.add_argument("--check", action="store_true", help="only report files that would change (exit 1)")
    fmt.add_argument("--diff", action="store_true", help="print a diff instead of writing")

    conv = sub.add_parser("convert", help="convert between .ftsc and FTS YAML")
    conv.add_argument("input", metavar="IN", nargs="?")
    conv.add_argument("--to", required=True, choices=("ftsc", "fts-yaml"))
    conv.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    _dialect_arg(conv)
    _model_args(conv, strategy=False, cache=True)
    _strategy_args(conv)

    from ftsc.explain.command import add_parser as add_explain

    add_explain(sub, _model_args)
    _strategy_args(sub.choices["explain"])

    rule = sub.add_parser("rule", help="show the documentation of a diagnostic code")
    rule.add_argument("code", nargs="?", help="code (FTS203) or name (param-in-multiple-phases)")
    rule.add_argument("--all", action="store_true", help="list every rule")
    rule.add_argument("--format", choices=("text", "json"), default="text")
    return p


def _split(items: list[str] | None) -> list[str]:
    return [part.strip() for item in items or [] for part in item.split(",") if part.strip()]


def check_file(loaded: Loaded, graph: ModelGraph | None = None) -> list[Diagnostic]:
    """Front-end diagnostics plus every analysis pass, with suppressions applied (`ftsc.check`)."""
    return check_loaded(loaded, graph)


def _check(loaded: Loaded, graph: ModelGraph | None) -> tuple[list[Diagnostic], AnalysisContext | None]:
    """`check_file`, also returning the prepared context (None when analysis did not run)."""
    result = run_check(loaded, graph)
    return list(result.diagnostics), result.context


class _Graphs:
    """The model for each file: `--model`/`--manifest`, else `[tool.ftsc]`'s mapping; loaded once."""

    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        self.args = args
        self.settings = settings
        self.cache: dict[tuple[str | None, str | None], ModelGraph] = {}

    def for_file(self, path: str) -> ModelGraph | None:
        args = self.args
        if args.model or args.manifest:
            model, manifest, kwargs = args.model, args.manifest, parse_kwargs(args.model_kwargs)
        else:
            if args.model_kwargs:
                raise UsageError("--model-kwargs needs --model")
            model, manifest, kwargs = self.settings.model_for(path)
        if not model and not manifest:
            return None
        key = (model, manifest)
        if key not in self.cache:
            folder = _cache_folder(args, self.settings) if model else None
            self.cache[key] = load_graph(model, manifest, kwargs, cache=folder)
        return self.cache[key]


def _isolated_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--isolated", action="store_true", help="ignore configuration files ([tool.ftsc])")


def _cache_folder(args: argparse.Namespace, settings: Settings | None = None) -> Path | None:
    """The `--model` structure cache folder (`[tool.ftsc] cache-dir`, else `.ftsc_cache` at the
    project root); None with `--no-cache`."""
    if args.no_cache:
        return None
    from ftsc.model.cache import default_folder

    return default_folder((settings or load_settings(isolated=getattr(args, "isolated", False))).cache_dir)


def _load_config(path: str | None) -> Loaded | None:
    return load_config(path) if path else None


def _load_schedule(path: str, config: Loaded | None, dialect: str | None = None) -> Loaded:
    loaded = load_file(path, dialect)
    if config is not None and config.schedule is not None and loaded.schedule is not None:
        loaded = merge_config(loaded, config)
    return loaded


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    files = args.files or ([""] if args.trainable else settings.files)
    if not files:
        raise UsageError("no files to check (give FILE arguments or `files` in [tool.ftsc])")
    select_items = _split(args.select) or settings.select
    ignore_items = _split(args.ignore) or settings.ignore
    selected, bad1 = expand_selection(select_items)
    ignored, bad2 = expand_selection(ignore_items)
    if bad1 or bad2:
        raise UsageError(f"unknown code(s) in --select/--ignore: {', '.join(bad1 + bad2)}")
    fmt_name = args.format or settings.format
    if fmt_name not in RENDERERS:
        raise UsageError(f"unknown format `{fmt_name}` in [tool.ftsc]; expected one of: {', '.join(RENDERERS)}")
    strict = settings.strict if args.strict is None else args.strict
    config = _load_config(args.lightning_config)
    graphs = _Graphs(args, settings)
    all_diags: list[Diagnostic] = list(config.diagnostics) if config else []
    for path in files:
        if args.strategy_config or args.trainable:
            all_diags.extend(_check_strategy(args, graphs, path, all_diags))
            continue
        loaded = _load_schedule(path, config, args.dialect)
        if loaded.unrecognized is not None:
            if not args.skip_unrecognized:
                sys.stderr.write(f"ftsc: note: skipped {path}: not an FTS schedule or LightningCLI config "
                                 f"({loaded.unrecognized})\n")
            continue
        graph = graphs.for_file(path)
        if args.fix and loaded.dialect is not None:
            sys.stderr.write(f"ftsc: note: --fix does not edit {path}: {loaded.dialect.name} configs are checked, "
                             "not rewritten\n")
        elif args.fix and graph is not None and loaded.schedule is not None \
                and fix_file(loaded, graph, config, sys.stderr.write):
            config = _load_config(args.lightning_config)
            loaded = _load_schedule(path, config)
        all_diags.extend(check_file(loaded, graph))
    if selected:
        all_diags = [d for d in all_diags if d.code in selected]
    all_diags = [d for d in all_diags if d.code not in ignored]
    all_diags.sort(key=Diagnostic.sort_key)
    sys.stdout.write(RENDERERS[fmt_name](all_diags))
    failing = {Severity.ERROR} | ({Severity.WARNING} if strict else set())
    if args.exit_zero:
        return EXIT_OK
    return EXIT_FINDINGS if any(d.severity in failing for d in all_diags) else EXIT_OK


def _write(text: str, output: str | None) -> None:
    if output and output not in ("-", "/dev/stdout"):
        try:
            atomic_write_text(output, text)
        except OSError as err:
            raise UsageError(f"cannot write {output}: {err.strerror or err}; the file was left unchanged") from None
    else:
        sys.stdout.write(text)


def _cmd_compile(args: argparse.Namespace, settings: Settings) -> int:
    from ftsc.diagnostics.render import to_json_obj
    from ftsc.lower import lower

    config = _load_config(args.lightning_config)
    graph = _Graphs(args, settings).for_file(args.file or "")
    if graph is None:
        raise UsageError("compile needs a model: give --model TARGET or --manifest FILE "
                         "(or map the schedule to a manifest in [tool.ftsc])")
    if args.strategy_config or args.trainable:
        loaded, config, _ = _inputs(args.file, graph, args.lightning_config, args.strategy_config, args.trainable)
    elif not args.file:
        raise UsageError("compile needs a schedule FILE (or --trainable PATTERN)")
    else:
        loaded, graph = import_dialect(_load_schedule(args.file, config, args.dialect), graph)
    file_diags, ctx = _check(loaded, graph)
    diags = (list(config.diagnostics) if config else []) + file_diags
    diags.sort(key=Diagnostic.sort_key)
    if loaded.schedule is None:
        doc: dict[str, object] = {"version": 1, "phases": [], "unscheduled": list(graph.params),
                                  "aliases": dict(graph.aliases),
                                  "sharding": {"kind": "none", "units": [], "unsharded": []},
                                  "diagnostics": [to_json_obj(d) for d in diags]}
    else:
        ctx = ctx or prepare(loaded.schedule, AnalysisContext(loaded.source, loaded.kind, graph))
        assert ctx.resolution is not None
        plan = lower(loaded.schedule, ctx.resolution, graph, ctx.fsdp1, ctx.fsdp2)
        doc = plan.to_json([to_json_obj(d) for d in diags])
    _write(json.dumps(doc, indent=2) + "\n", args.output)
    return EXIT_FINDINGS if any(d.severity is Severity.ERROR for d in diags) else EXIT_OK


def _cmd_manifest(args: argparse.Namespace) -> int:
    if args.manifest:
        raise UsageError("`ftsc manifest` builds a manifest from --model; --manifest is its output")
    if not args.model:
        raise UsageError("`ftsc manifest` needs --model TARGET")
    manifest = load_manifest(args.model, None, parse_kwargs(args.model_kwargs), cache=_cache_folder(args))
    _write(manifest.dumps(), args.output)
    if args.output:
        sys.stderr.write(f"wrote {args.output}: {len(manifest.modules)} modules, {len(manifest.parameters)} "
                         f"parameters ({sum(p.numel for p in manifest.parameters):,} elements)\n")
    return EXIT_OK


def _cmd_init(args: argparse.Namespace) -> int:
    from ftsc.generate import default_schedule

    graph = _graph_of(args)
    if not graph.params:
        raise UsageError("the model has no parameters: nothing to schedule")
    config = _load_config(args.lightning_config)
    sharded = config is not None and config.schedule is not None and (
        config.schedule.fsdp is not None or config.schedule.fsdp2 is not None)
    style = args.style or ("unit" if sharded else "fts")
    if style == "unit":
        if not sharded:
            raise UsageError("--style unit needs --lightning-config with an FSDPStrategy or ModelParallelStrategy")
        from ftsc.generate import unit_schedule
        from ftsc.shard import fsdp1_analysis, fsdp2_analysis

        assert config is not None and config.schedule is not None
        one, two = fsdp1_analysis(config.schedule, graph), fsdp2_analysis(config.schedule, graph)
        units = ([(u.name, u.params) for u in one.prediction.units] if one else
                 [(g.modules[0], g.params) for g in two.prediction.groups])
        unsharded = one.prediction.unsharded if one else two.prediction.unsharded
        schedule = unit_schedule(graph, units, unsharded)
    else:
        schedule = default_schedule(graph, style)
    text, _ = convert(schedule, args.to)
    _write(text, args.output)
    return EXIT_OK


def _cmd_fmt(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for path in args.files:
        if not path.endswith(".ftsc"):
            raise UsageError(f"{path}: `ftsc fmt` formats .ftsc files; use `ftsc convert --to ftsc` for YAML")
        loaded = load_file(path)
        errors = [d for d in loaded.diagnostics if d.severity is Severity.ERROR and d.code in ("FTS001", "FTS104")]
        if loaded.schedule is None or errors:
            sys.stderr.write(RENDERERS["text"](loaded.diagnostics or errors))
            status = EXIT_FINDINGS
            continue
        dropped = [d for d in loaded.diagnostics if d.severity is Severity.ERROR]
        if dropped:
            # Invalid settings are left out of the IR; formatting would delete them.
            sys.stderr.write(RENDERERS["text"](dropped))
            sys.stderr.write(f"{path}: not formatted: fix the errors above first\n")
            status = EXIT_FINDINGS
            continue
        new = with_line_endings(format_schedule(loaded.schedule, loaded.comments, loaded.source), loaded.source)
        old = loaded.source.text
        if new == old:
            continue
        if args.check or args.diff:
            if args.diff:
                sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                           f"{path} (original)", f"{path} (formatted)"))
            else:
                sys.stdout.write(f"would reformat {path}\n")
            status = EXIT_FINDINGS
        else:
            try:
                atomic_write_bytes(path, encoded_like(new, loaded.source))
            except OSError as err:
                raise UsageError(f"cannot write {path}: {err.strerror or err}; the file was left unchanged") from None
            sys.stdout.write(f"reformatted {path}\n")
    return status


def _cmd_convert(args: argparse.Namespace) -> int:
    if args.output and args.input and _same_file(args.input, args.output):
        raise UsageError(f"`-o {args.output}` is the input file; converting in place would replace it "
                         "(and drop its comments): write to another file")
    if args.model_kwargs and not args.model:
        raise UsageError("--model-kwargs needs --model")
    name = args.input or "the --trainable schedule"
    graph = _graph_of(args) if args.model or args.manifest else None
    if args.strategy_config or args.trainable:
        loaded = _strategy_input(args, graph)
    elif not args.input:
        raise UsageError("convert needs IN (or --trainable PATTERN)")
    else:
        loaded = load_file(args.input, args.dialect)
        if graph is not None:
            if loaded.dialect is None:
                raise UsageError("convert reads --model/--manifest only for a freeze-dialect config (axolotl, "
                                 "LLaMA-Factory), whose trainable set depends on the model")
            loaded, _ = import_dialect(loaded, graph)
    if loaded.unrecognized is not None:
        raise UsageError(f"{name}: not converted: not an FTS schedule or LightningCLI config "
                         f"({loaded.unrecognized})")
    errors = [d for d in loaded.diagnostics if d.severity is Severity.ERROR]
    if loaded.schedule is None or errors:
        sys.stderr.write(RENDERERS["text"](loaded.diagnostics))
        sys.stderr.write(f"{name}: not converted: fix the errors above first\n")
        return EXIT_FINDINGS
    if loaded.kind is InputKind.LIGHTNING_CONFIG and any(d.code == "FTS105" for d in loaded.diagnostics):
        sys.stderr.write(RENDERERS["text"]([d for d in loaded.diagnostics if d.code == "FTS105"]))
        sys.stderr.write(f"{name}: not converted: the schedule it names was not found or not read\n")
        return EXIT_FAILURE
    if loaded.kind is InputKind.LIGHTNING_CONFIG and not loaded.schedule.phases:
        # A `.ftsc` file without phases is no implicit schedule: it would fail at setup.
        raise UsageError(f"{name}: not converted: the config names no `ft_schedule`, so FinetuningScheduler "
                         "generates the phases from the model; `ftsc init --model TARGET --style fts` writes them")
    if loaded.dialect is not None and not loaded.schedule.phases:
        if loaded.dialect.with_model:
            raise UsageError(f"{name}: not converted: ftsc reads no trainable set from this "
                             f"{loaded.dialect.name} config (`ftsc check` says why)")
        raise UsageError(f"{name}: not converted: which parameters this {loaded.dialect.name} config trains "
                         "depends on the model; give --model TARGET or --manifest FILE")
    text, diags = convert(loaded.schedule, args.to, source=loaded.source, comments=loaded.comments)
    if diags:
        sys.stderr.write(RENDERERS["text"](diags))
        if any(d.severity is Severity.ERROR for d in diags):
            sys.stderr.write(f"{name}: not converted: {'the DSL' if args.to == 'ftsc' else 'FTS YAML'} "
                             "cannot express the above\n")
            return EXIT_FINDINGS
    _write(text, args.output)
    return EXIT_OK


def _graph_of(args: argparse.Namespace) -> ModelGraph:
    """The `--model` (through the structure cache) or `--manifest` graph of a one-model command."""
    return load_graph(args.model, args.manifest, parse_kwargs(args.model_kwargs),
                      cache=_cache_folder(args) if args.model else None)


def _strategy_input(args: argparse.Namespace, graph: ModelGraph | None) -> Loaded:
    """`convert`'s schedule (IN or the `--trainable` phase) under `--strategy-config`: to `.ftsc` only,
    whose `fsdp`/`fsdp2` block holds the strategy (FTS YAML has no place for one)."""
    if args.strategy_config and args.to == "fts-yaml":
        raise UsageError("an FTS YAML schedule holds no strategy, so --strategy-config would be dropped: convert "
                         "--to ftsc (the strategy becomes its fsdp/fsdp2 block)")
    loaded, config, _ = _inputs(args.input, graph, None, args.strategy_config, args.trainable)
    errors = [d for d in (config.diagnostics if config is not None else ()) if d.severity is Severity.ERROR]
    if errors:
        sys.stderr.write(RENDERERS["text"](errors))
        raise UsageError(f"{args.strategy_config}: not converted: fix the errors above first")
    return loaded


def _cmd_rule(args: argparse.Namespace) -> int:
    if args.all or not args.code:
        rules = list(RULES.values())
        if args.format == "json":
            sys.stdout.write(json.dumps([{"code": r.code, "name": r.name, "severity": r.severity.value,
                                          "needs_model": r.needs_model, "summary": r.summary} for r in rules],
                                        indent=2) + "\n")
        else:
            # MODEL `yes`: the rule runs only when the model's names are known (--model/--manifest).
            sys.stdout.write(f"{'CODE':<7} {'NAME':<30} {'SEVERITY':<8} {'MODEL':<5} SUMMARY\n")
            sys.stdout.writelines(f"{r.code:<7} {r.name:<30} {r.severity.value:<8} "
                                  f"{'yes' if r.needs_model else '-':<5} {r.summary}\n" for r in rules)
        return EXIT_OK
    rule = lookup(args.code)
    if rule is None:
        raise UsageError(f"unknown rule `{args.code}`; `ftsc rule --all` lists them")
    if args.format == "json":
        sys.stdout.write(json.dumps({"code": rule.code, "name": rule.name, "severity": rule.severity.value,
                                     "needs_model": rule.needs_model, "summary": rule.summary,
                                     "explanation": rule.doc}, indent=2) + "\n")
    else:
        needs = ", needs a model" if rule.needs_model else ""
        sys.stdout.write(f"# {rule.code} ({rule.name}) [{rule.severity.value}{needs}]\n\n{rule.summary}.\n\n"
                         f"{rule.doc}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return EXIT_FAILURE
    # A run builds many small long-lived objects (a 100k-parameter manifest is ~10^6) and frees
    # them at exit: the cyclic collector would only rescan them, so it is paused for the command.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _dispatch(args)
    finally:
        if collecting:
            gc.enable()


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if getattr(args, "dialect", "auto") != "auto" and (getattr(args, "strategy_config", None)
                                                           or getattr(args, "trainable", None)):
            raise UsageError("--dialect reads FILE as that project's config; it does not combine with "
                             "--strategy-config or --trainable")
        if args.command == "check":
            return _cmd_check(args, load_settings(isolated=args.isolated))
        if args.command == "compile":
            return _cmd_compile(args, load_settings(isolated=args.isolated))
        if args.command == "manifest":
            return _cmd_manifest(args)
        if args.command == "init":
            return _cmd_init(args)
        if args.command == "fmt":
            return _cmd_fmt(args)
        if args.command == "convert":
            return _cmd_convert(args)
        if args.command == "explain":
            from ftsc.explain.command import run as run_explain

            return run_explain(args, load_settings(isolated=args.isolated))
        return _cmd_rule(args)
    except (UsageError, ConfigError, ReadError, ModelError) as err:
        sys.stderr.write(f"ftsc: error: {err}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `ftsc check ... | head`: the reader left, nothing to report
        return EXIT_OK
    except OSError as err:  # the system refused (stdout on a full device): not a bug in ftsc
        return _os_failure(err)
    except Exception as err:  # noqa: BLE001 - never a traceback: report as FTS901
        sys.stderr.write(f"error[FTS901]: internal error: {type(err).__name__}: {err}\n"
                         "This is a bug in ftsc; please report it with the input.\n")
        return EXIT_FAILURE


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _os_failure(err: OSError) -> int:
    """`ftsc: error:` for an operating-system failure; stdout is pointed at the null device so
    that the interpreter's final flush of what could not be written fails no more."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass
    where = f" ({err.filename})" if err.filename else " (writing the output)"
    sys.stderr.write(f"ftsc: error: {(err.strerror or str(err)).lower()}{where}\n")
    return EXIT_FAILURE


def run() -> None:
    """Console-script entry point: the command, then stdout flushed (a full device is an error)."""
    status = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    except OSError as err:
        status = _os_failure(err)
    if "torch" in sys.modules:
        # `--model` imported torch and the model's libraries: leave without interpreter teardown,
        # which only unloads them (0.6-3 s on 2 cores, benchmarks/README.md). Output is flushed.
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os._exit(status)
    sys.exit(status)
