"""The `ftsc explain` command: load the inputs as `check` does, explain, render.

Input: parsed CLI arguments (or `build_report`'s keywords). Output: the report on stdout (text,
md, json or html) and an exit status per SPEC §5: 1 when an error-level diagnostic exists
(FTS601 included), 2 when the inputs cannot be explained. Never imports torch with `--manifest`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Mapping
from typing import Any

from ftsc.diagnostics import Diagnostic, Severity
from ftsc.explain import Options, explain_loaded, parse_size
from ftsc.explain.report import Explanation
from ftsc.explain.setup import ConfigFacts, read_config_facts

FORMATS = ("text", "md", "json", "html")


class ExplainError(ValueError):
    """The inputs cannot be explained (exit status 2)."""


def explain_document(path: str, *, model: str | None, manifest: str | None, model_kwargs: Mapping[str, Any] | None,
                     lightning_config: str | None, options: Options, graph: Any = None, dialect: str | None = None,
                     strategy_config: str | None = None, trainable: Any = None,
                     ) -> tuple[dict[str, Any], tuple[Explanation | None, list[Diagnostic]]]:
    """SPEC §5.3's dict for `path`, and the explanation (None when the schedule did not parse)
    with the diagnostics (the check's, the config's, FTS601)."""
    from ftsc.check import import_dialect
    from ftsc.cli import UsageError, _check, _load_config, _load_schedule
    from ftsc.diagnostics.render import to_json_obj
    from ftsc.model import load_graph

    try:
        config = _load_config(lightning_config)
    except UsageError as err:
        raise ExplainError(str(err)) from None
    if graph is None:
        if not model and not manifest:
            raise ExplainError("explain needs a model: give --model TARGET or --manifest FILE")
        graph = load_graph(model, manifest, model_kwargs)
    world = None
    if strategy_config or trainable:  # `--strategy-config` / `--trainable` (ftsc.frontend.strategy)
        from ftsc.cli import _inputs

        try:
            loaded, config, world = _inputs(path or None, graph, lightning_config, strategy_config, trainable)
        except UsageError as err:
            raise ExplainError(str(err)) from None
    else:
        loaded, graph = import_dialect(_load_schedule(path, config, dialect), graph)
    file_diags, ctx = _check(loaded, graph)
    diags = (list(config.diagnostics) if config else []) + file_diags
    ex = None
    if loaded.schedule is not None and ctx is not None and ctx.resolution is not None:
        if strategy_config:  # the ranks an accelerate config names (`num_processes`)
            facts = ConfigFacts(world_size=world)
        else:
            facts = read_config_facts(lightning_config or (path if loaded.kind.value == "lightning-config" else None))
        ex, diags = explain_loaded(loaded, graph, options=options, facts=facts, diagnostics=diags, ctx=ctx)
    diags.sort(key=Diagnostic.sort_key)
    json_diags = [to_json_obj(d) for d in diags]
    if ex is None:
        doc: dict[str, Any] = {"version": 1, "world_size": options.world_size or 1,
                               "optimizer": options.optimizer or "adamw", "units": [], "phases": [],
                               "diagnostics": json_diags}
    else:
        doc = ex.to_json(json_diags)
    return doc, (ex, diags)


def add_parser(sub: Any, model_args: Any) -> None:
    """The `explain` subcommand's arguments (SPEC §5.3)."""
    p = sub.add_parser("explain", help="phases x FSDP units: what trains and the memory per rank of each phase")
    p.add_argument("file", metavar="FILE", nargs="?")
    model_args(p, cache=True)
    from ftsc.cli import _dialect_arg, _isolated_arg

    _dialect_arg(p)
    _isolated_arg(p)
    p.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    p.add_argument("--world-size", type=int, metavar="N", help="ranks (default: from the config, else 1)")
    p.add_argument("--optimizer", choices=("adamw", "adam", "sgd", "sgd-momentum"),
                   help="optimizer whose state to count (default: the LightningCLI config's, else adamw)")
    p.add_argument("--batch", type=int, metavar="B", help="micro-batch size per rank (activation estimate)")
    p.add_argument("--seq", type=int, metavar="S", help="sequence length (activation estimate)")
    p.add_argument("--max-memory", metavar="SIZE", help="budget per rank, e.g. 80GiB: phases over it are FTS601 errors")
    p.add_argument("--all", action="store_true", help="one row per unit (do not fold repeated layers)")
    p.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")


def run(args: argparse.Namespace, settings: Any) -> int:
    """Run `ftsc explain`; returns the exit status."""
    import json

    from ftsc.cli import UsageError, _Graphs, _write
    from ftsc.diagnostics.render import RENDERERS
    from ftsc.explain.render import render_md, render_text

    for flag in ("world_size", "batch", "seq"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be a positive integer, got {value}")
    if (args.batch is None) != (args.seq is None):
        raise UsageError("give both --batch and --seq for the activation estimate, or neither")
    try:
        budget = parse_size(args.max_memory) if args.max_memory is not None else None
    except ValueError as err:
        raise UsageError(f"--max-memory: {err}") from None
    html = None
    if args.format == "html":
        if importlib.util.find_spec("ftsc.explain.html") is None:
            raise UsageError("--format html is not available in this build of ftsc (ftsc.explain.html is missing)")
        from ftsc.explain import html
    graph = _Graphs(args, settings).for_file(args.file or "")
    if graph is None:
        raise UsageError("explain needs a model: give --model TARGET or --manifest FILE "
                         "(or map the schedule to a manifest in [tool.ftsc])")
    options = Options(world_size=args.world_size, optimizer=args.optimizer, batch=args.batch, seq=args.seq,
                      max_memory=budget)
    try:
        doc, (ex, diags) = explain_document(args.file, model=None, manifest=None, model_kwargs=None,
                                            lightning_config=args.lightning_config, options=options, graph=graph,
                                            dialect=args.dialect, strategy_config=args.strategy_config,
                                            trainable=args.trainable)
    except ExplainError as err:
        raise UsageError(str(err)) from None
    title = f"{args.file or '--trainable'}: "
    if args.format == "json":
        text = json.dumps(doc, indent=2) + "\n"
    elif args.format == "html":
        text = html.render(doc)
    elif ex is None:
        text = ""
    else:
        text = (render_md if args.format == "md" else render_text)(ex, all_rows=args.all, title=title)
    _write(text, args.output)
    if args.format != "json" and diags:
        shown = [d for d in diags if d.severity is not Severity.INFO]
        if shown:
            sys.stderr.write(RENDERERS["text"](shown))
    return 1 if any(d.severity is Severity.ERROR for d in diags) else 0
