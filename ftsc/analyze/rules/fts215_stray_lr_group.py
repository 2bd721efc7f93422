"""FTS215: a layer-wise lr decay leaves biases or norms of a layer at another lr."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ftsc import ir
from ftsc.analyze.context import AnalysisContext
from ftsc.diagnostics import Diagnostic, make
from ftsc.diagnostics.rule import Rule, Severity
from ftsc.layer_lr import INDEX, LrGroup, layer_lrs
from ftsc.lower import graph_matcher
from ftsc.model.graph import parent_of
from ftsc.regexes import glob_to_regex

RULE = Rule(
    code="FTS215", name="stray-lr-group", severity=Severity.WARNING, needs_model=True,
    summary="a layer-wise lr decay leaves biases or norms of a layer at another lr",
    message="{count} bias or norm parameter(s) get another lr than their {where}: {names}",
    doc="""## What it does
Reports, in a phase with a layer-wise lr decay form (`lr ... per ...`), bias and
normalization parameters that end up in another lr group than the layer (or module) they
belong to: a `per` pattern that catches `layers.{i}.*.weight` but not the biases of the same
layers, or an `embeddings` placement that takes the embedding weights but not their
LayerNorm. Those parameters fall to the top lr (the head's), often ten or a hundred times
their layer's.

## Why is this bad?
Layer-wise decay exists to move the lower layers slowly; a layer whose biases and norms move
at the head's lr is not what anyone writes on purpose, and nothing else says so: training runs.

## Example
```ftsc
phase 0 {
    thaw glob "model.layers.**"
    lr 0.001 decay 0.8 beit per glob "model.layers.{i}.weight"
}
```

## Use instead
```ftsc
phase 0 {
    thaw glob "model.layers.**"
    lr 0.001 decay 0.8 beit per model.layers.{i}
}
```
""",
)

_NORM = re.compile(r"(?i)(norm|^ln(_?\w*)?$)")
_SHOWN = 3


def is_bias_or_norm(name: str) -> bool:
    """A bias, or a parameter of a normalization module (by name: `*norm*`, `ln`, `ln_f`, ...).

    Example:
        >>> [is_bias_or_norm(n) for n in ("a.dense.bias", "a.LayerNorm.weight", "h.ln_f.weight", "a.dense.weight")]
        [True, True, True, False]
    """
    segments = name.split(".")
    return segments[-1] == "bias" or any(_NORM.search(s) for s in segments[:-1])


def _layer_module(sel: ir.Selector) -> re.Pattern[str] | None:
    """Matches the names inside a layer's module: the `per` pattern up to the end of the `{i}` segment."""
    if sel.pattern.count(INDEX) != 1:
        return None
    left, right = sel.pattern.split(INDEX, 1)
    rest = right.split(".", 1)[0]
    conv = glob_to_regex if sel.kind is ir.SelectorKind.GLOB else re.escape
    try:
        return re.compile(conv(left) + r"(\d+)" + conv(rest) + r"\..+")
    except re.error:
        return None


def _strays(decl: ir.LrDecay, groups: tuple[LrGroup, ...], explicit: set[str]) -> dict[str, tuple[float, float]]:
    """`{param: (its lr, the lr of where it belongs)}` for misplaced biases and norms."""
    group_of = {p: g for g in groups for p in g.params}
    layer_lr = {int(lbl.split()[1]): g.lr for g in groups for lbl in g.label.split(" + ") if lbl.startswith("layer ")}
    module = _layer_module(decl.layers)
    siblings: dict[str, list[str]] = {}
    for p in group_of:
        siblings.setdefault(parent_of(p), []).append(p)
    out: dict[str, tuple[float, float]] = {}
    for p, g in group_of.items():
        # Only what fell to the top group by default: explicit placements and layer matches are meant.
        if p in explicit or not is_bias_or_norm(p) or "head" not in g.label.split(" + "):
            continue
        m = module.fullmatch(p) if module else None
        if m is not None and int(m.group(1)) in layer_lr and f"layer {m.group(1)}" not in g.label.split(" + "):
            out[p] = (g.lr, layer_lr[int(m.group(1))])
            continue
        mates = [s for s in siblings[parent_of(p)] if s != p]
        others = [group_of[s] for s in mates if not is_bias_or_norm(s)] or [group_of[s] for s in mates]
        home = next((o for o in others if o is not g), None)
        if home is not None and all(o is home for o in others):
            out[p] = (g.lr, home.lr)
    return out


def check(schedule: ir.Schedule, ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Report decay phases whose groups leave biases or norms of a layer (or module) at another lr."""
    if ctx.graph is None or ctx.resolution is None:
        return
    match = graph_matcher(ctx.graph)
    for phase in schedule.phases:
        decl, resolved = phase.lr_decay, ctx.resolution.phase(phase.index)
        if decl is None or resolved is None:
            continue
        groups = layer_lrs(decl, resolved.params, ctx.graph.params, match)
        explicit = {n for sel in (*decl.embeddings, *decl.norm) for n in match(sel)}
        strays = _strays(decl, groups, explicit)
        if not strays:
            continue
        names = sorted(strays, key=resolved.params.index)
        shown = ", ".join(f"`{n}`" for n in names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more"
                                                                if len(names) > _SHOWN else "")
        first = strays[names[0]]
        yield make("FTS215", ctx.source, decl.layers.span, count=len(names), where="layer's or module's",
                   names=shown, label="leaves biases or norms out",
                   notes=(f"e.g. `{names[0]}` gets {first[0]:.6g}, where it belongs {first[1]:.6g}",),
                   help="name the layer modules in `per` (e.g. `model.layers.{i}`), or place these parameters "
                        "with `embeddings` / `norm`",
                   data={"phase": phase.index,
                         "params": {n: {"lr": strays[n][0], "layer_lr": strays[n][1]} for n in names}})
