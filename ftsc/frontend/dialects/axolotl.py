"""axolotl configs -> a one-phase schedule (the trainable set) plus the FSDP wrap plan.

Input: the root `YNode` of an axolotl YAML config and the model graph (or None). Output: an
`Imported`. Semantics read from axolotl 067b021 (`src/axolotl/utils/freeze.py`,
`src/axolotl/train.py`, `src/axolotl/utils/schemas/fsdp.py`, `.../validation.py`,
`src/axolotl/utils/trainer.py` `setup_fsdp_envs`); see docs/dialects/axolotl.md. Never imports
torch; never runs axolotl.
"""

from __future__ import annotations

import re

from ftsc import ir
from ftsc.backtracking import exponential_backtracking
from ftsc.diagnostics import Diagnostic, Severity, make
from ftsc.frontend.dialects.common import Imported, exact_phase
from ftsc.frontend.dialects.wrap import FSDPKeys, sharding
from ftsc.frontend.yaml_nodes import YNode
from ftsc.matching import UnsupportedPattern
from ftsc.model.graph import ModelGraph
from ftsc.source import SourceFile, Span

NAME = "axolotl"
# Path components `freeze_mm_modules` freezes (any component equal to one of these).
MM_COMPONENTS = frozenset({"vision_tower", "vision_model", "vision_encoder", "embed_vision",
                           "multi_modal_projector", "visual", "audio_tower", "audio_model", "embed_audio"})
_MARKERS = frozenset({"base_model", "unfrozen_parameters", "freeze_mm_modules", "datasets", "micro_batch_size",
                      "gradient_accumulation_steps", "sequence_len", "adapter", "fsdp_version"})
_RANGE = re.compile(r"^(.+)\[([0-9]*)(?::([0-9]*))?\]$")


def detect(root: YNode) -> bool:
    """An axolotl config: `base_model` plus another axolotl key, or `unfrozen_parameters`."""
    keys = root.value if isinstance(root.value, dict) else {}
    if "unfrozen_parameters" in keys:
        return True
    return "base_model" in keys and len(_MARKERS & set(keys)) >= 2


def split_pattern(pattern: str) -> tuple[str, tuple[int, int | None] | None]:
    """axolotl's row-range suffix: `name[a:b]`, `name[a:]`, `name[:b]`, `name[i]` -> (name, range).

    Example:
        >>> split_pattern("^model.embed_tokens.weight$[32000:]"), split_pattern("lm_head[3]")
        (('^model.embed_tokens.weight$', (32000, None)), ('lm_head', (3, 4)))
    """
    m = _RANGE.match(pattern)
    if not m:
        return pattern, None
    base, start, end = m.groups()
    if end is None and start.isdecimal():
        return base, (int(start), int(start) + 1)
    lo = int(start) if start else 0
    hi = int(end) if end else None
    if hi is not None and lo >= hi:
        raise ValueError(f"invalid range in `{pattern}`: the end must be greater than the start")
    return base, (lo, hi)


def rewrite(name_pattern: str) -> str:
    """axolotl's rewriting: every `.` not followed by `+` becomes a literal `\\.`.

    Example:
        >>> rewrite("model.layers.1.self_attn.*")
        'model\\\\.layers\\\\.1\\\\.self_attn\\\\.*'
    """
    return re.sub(r"\.(?!\+)", r"\\.", name_pattern)


def _patterns(node: YNode | None) -> list[YNode]:
    if node is None or node.value is None:
        return []
    if isinstance(node.value, str):
        return [node]
    if isinstance(node.value, list):
        return list(node.value)
    return []


def _fsdp_keys(root: YNode) -> FSDPKeys | None:
    """`fsdp_config` normalized as axolotl's validators do (prefix dropped, version resolved)."""
    cfg = root.get("fsdp_config")
    if cfg is None or not isinstance(cfg.value, dict) or not cfg.value:
        return None
    keys = FSDPKeys(span=cfg.span)
    for key, value in cfg.value.items():
        name = str(key)
        if name.startswith("fsdp_") and name != "fsdp_version":
            name = name.replace("fsdp_", "")  # axolotl replaces every occurrence, not just the prefix
        if name == "fsdp_version":
            name = "version"
        keys.values[name] = value.py()
        keys.spans[name] = cfg.key_nodes[key].span
    top = root.get("fsdp_version")
    if top is not None and top.value:
        keys.values["version"] = top.value
        keys.spans["version"] = root.key_nodes["fsdp_version"].span
    keys.values.setdefault("version", 1)
    return keys


def load(source: SourceFile, root: YNode, graph: ModelGraph | None) -> Imported:
    """Import an axolotl config (see the module docstring)."""
    diags: list[Diagnostic] = []
    node = root.get("unfrozen_parameters")
    compiled: list[tuple[YNode, str, str, tuple[int, int | None] | None]] = []  # node, base, rewritten, rows
    for p in _patterns(node):
        if not isinstance(p.value, str):
            diags.append(make("FTS102", source, p.span, detail="`unfrozen_parameters` entries must be strings",
                              label="not a string"))
            continue
        try:
            base, rows = split_pattern(p.value)
            rx = rewrite(base)
            re.compile(rx)  # compiling never backtracks; matching goes through ftsc.matching (bounded)
        except ValueError as err:
            diags.append(make("FTS102", source, p.span, detail=str(err), label="invalid range"))
            continue
        except re.error as err:
            diags.append(make("FTS101", source, p.span, detail=str(err), label="invalid regex"))
            continue
        compiled.append((p, base, rx, rows))
        if exponential_backtracking(rx):
            diags.append(make("FTS106", source, p.span, detail=f"`{p.value}` can make Python's `re` backtrack for "
                              "exponential time (axolotl matches it with `re.match`)",
                              label="nested or overlapping repetition",
                              help="repeat each piece only once, so that every part of a name matches one way"))
    mm = root.get("freeze_mm_modules")
    freeze_mm = bool(mm is not None and mm.value)
    keys = _fsdp_keys(root)
    fsdp = fsdp2 = None
    if keys is not None:
        fsdp, fsdp2 = sharding(keys, graph, source, diags)
    if graph is None:
        selectors = tuple(ir.Selector(kind=ir.SelectorKind.REGEX, pattern=f"(?:{rx}).*", span=p.span)
                          for p, _, rx, _ in compiled)
        phases = (ir.Phase(index=0, selectors=selectors, span=node.span if node else root.span),) \
            if compiled and not freeze_mm else ()
        return Imported(ir.Schedule(phases=phases, fsdp=fsdp, fsdp2=fsdp2, span=root.span), diags, None)
    names = graph.params
    span_of: dict[str, Span] = {}  # each trainable name -> the first entry that unfreezes it
    for p, base, rx, rows in compiled:
        try:
            hits = graph.index.match(rx)
        except UnsupportedPattern as err:
            diags.append(make("FTS101", source, p.span, detail=str(err), label="not matched in bounded time"))
            continue
        for n in hits:
            span_of.setdefault(n, p.span)
        if not hits:
            diags.append(make("FTS202", source, p.span, pattern=p.value, severity=Severity.WARNING,
                              label="unfreezes nothing"))
        _surprise(source, p, base, hits, graph, diags)
        if rows is not None:
            for n in hits:
                _check_rows(source, p, n, rows, graph, diags)
    if compiled or (node is not None and node.value):
        trainable = set(span_of)
    else:
        trainable = {n for n in names if graph.param_entries[n].requires_grad}
    if freeze_mm:
        trainable = {n for n in trainable if not MM_COMPONENTS & set(n.split("."))}
    span = node.span if node is not None else (mm.span if mm is not None else root.span)
    spans = {n: span_of[n] for n in trainable if n in span_of}
    phase = exact_phase([n for n in names if n in trainable], span, spans)
    return Imported(ir.Schedule(phases=(phase,), fsdp=fsdp, fsdp2=fsdp2, span=root.span), diags, graph)


def _surprise(source: SourceFile, p: YNode, base: str, hits: list[str], graph: ModelGraph,
              diags: list[Diagnostic]) -> None:
    """FTS205 when axolotl's `.` rewriting changes what the pattern selects (`.*` reads as
    "any number of dots"), or an unanchored index catches sibling layers (`layers.1` -> `layers.1x`)."""
    try:
        as_regex = graph.index.match(base)
    except (re.error, UnsupportedPattern):
        return
    if as_regex != hits:
        lost = sorted(set(as_regex) - set(hits))
        detail = (f"axolotl reads `.` as a literal dot: `{p.value}` unfreezes {len(hits)} parameters, "
                  f"not the {len(as_regex)} the regex matches")
        diags.append(make("FTS205", source, p.span, detail=detail, label="`.` rewritten to `\\.`",
                          notes=(f"for example `{lost[0]}` stays frozen",) if lost else (),
                          help="write `.+` or `[^.]*` for a wildcard segment; `.` is always a literal dot"))
        return
    siblings = _index_siblings(base, hits)
    if siblings:
        diags.append(make("FTS205", source, p.span, detail=f"`{p.value}` also unfreezes `{siblings[0]}` "
                          f"({len(siblings)} parameters under other layer indices)", label="unanchored index",
                          help="end the index with `.` (for example `model.layers.1.`: axolotl reads `.` as a "
                               "literal dot)"))


def _index_siblings(base: str, hits: list[str]) -> list[str]:
    """Hits where the pattern's last literal layer index is only a prefix of the name's index."""
    m = re.search(r"\.(\d+)(\$)?$", base.replace("\\.", "."))
    if m is None or m.group(2):
        return []
    literal = base[: m.start()].lstrip("^").replace("\\.", ".") + "." + m.group(1)
    return sorted(h for h in hits if h.startswith(literal) and not h.startswith(literal + "."))


def _check_rows(source: SourceFile, p: YNode, name: str, rows: tuple[int, int | None], graph: ModelGraph,
                diags: list[Diagnostic]) -> None:
    shape = graph.param_entries[name].shape
    if not shape:
        return
    size = shape[0]
    lo, hi = rows[0], rows[1] if rows[1] is not None else size
    if lo < 0 or hi > size > 0 or lo >= hi:
        diags.append(make("FTS102", source, p.span, label="row range out of bounds",
                          detail=f"row range [{lo}:{hi}] does not fit `{name}` ({size} rows); axolotl raises "
                                 "`invalid unfreeze range`"))
