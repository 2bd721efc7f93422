"""Turn a parsed `.ftsc` tree into the IR.

Input: the Lark tree from `ftsc.parse`. Output: an `ir.Schedule` plus FTS1xx diagnostics
(invalid values, unknown keys, bad regexes). User errors are never raised here (Lark would
wrap them in `VisitError`): they are collected and the offending piece is left out.
Never imports torch.
"""

from __future__ import annotations

from typing import Any

from lark import Token, Transformer, Tree, v_args
from lark.tree import Meta

from ftsc import ir, layer_lr, schema
from ftsc.diagnostics import Diagnostic, make
from ftsc.regexes import compile_problem, glob_to_regex
from ftsc.source import SourceFile, Span

_CRITERION_ORDER = {ir.CriterionKind.EPOCH: 0, ir.CriterionKind.STEP: 1, ir.CriterionKind.PLATEAU: 2}

# Phase keys of FTS YAML that the DSL spells differently: where a migrating user should look.
_DSL_SPELLING = {
    "max_transition_epoch": "write `until epoch N`",
    "params": "write `thaw <selector>, ...`",
    "new_optimizer": "write `reinit optimizer <class>(...)`",
    "new_lr_scheduler": "write `reinit lr_scheduler <class>(...) { ... }`",
    "reinit_optim_cfg": "write `reinit optimizer <class>(...)` in the `schedule` block",
    "reinit_lr_cfg": "write `reinit lr_scheduler <class>(...)` in the `schedule` block",
    "awp_overrides": "write `wrap <module>` in the `fsdp` block",
    "fsdp_plan": "write `shard <module>(...)` in the `fsdp2` block",
}


def _span(meta: Meta) -> Span:
    if getattr(meta, "empty", True):
        return Span(0, 0)
    return Span(meta.start_pos, meta.end_pos)


def _tok_span(tok: Token) -> Span:
    return Span(tok.start_pos or 0, tok.end_pos or 0)


def unescape_string(body: str) -> str:
    """Undo the DSL's string escapes: `\\"` and `\\\\`; other backslashes stay verbatim."""
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body) and body[i + 1] in '"\\':
            out.append(body[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def unescape_regex(body: str) -> str:
    """Undo the regex literal's one escape: `\\/` is `/`; other pairs stay verbatim."""
    out: list[str] = []
    i = 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append("/" if body[i + 1] == "/" else body[i : i + 2])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


@v_args(meta=True)
class ToIR(Transformer[Token, ir.Schedule]):
    """One method per grammar rule; see `grammar/ftsc.lark`."""

    def __init__(self, source: SourceFile) -> None:
        super().__init__(visit_tokens=False)
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        self.validator = schema.Validator(source, diagnostics=self.diagnostics)

    def _report(self, code: str, span: Span, **kw: Any) -> None:
        self.diagnostics.append(make(code, self.source, span, **kw))

    def __default__(self, data: Any, children: Any, meta: Any) -> Any:
        raise AssertionError(f"FTS901: grammar rule `{data}` has no IR builder")

    # --- values ---------------------------------------------------------------------------

    def int_value(self, meta: Meta, children: list[Token]) -> ir.Value:
        return ir.scalar(self._int(children[0]), _span(meta))

    def float_value(self, meta: Meta, children: list[Token]) -> ir.Value:
        value = float(children[0])
        if value in (float("inf"), float("-inf")):
            self._report("FTS102", _tok_span(children[0]), detail="number is out of range",
                         label="too large for a float")
            value = 0.0
        return ir.scalar(value, _span(meta))

    def string_value(self, meta: Meta, children: list[Token]) -> ir.Value:
        return ir.scalar(unescape_string(children[0][1:-1]), _span(meta))

    def name_value(self, meta: Meta, children: list[Token]) -> ir.Value:
        return ir.scalar(str(children[0]), _span(meta))

    def true_value(self, meta: Meta, children: list[Any]) -> ir.Value:
        return ir.scalar(True, _span(meta))

    def false_value(self, meta: Meta, children: list[Any]) -> ir.Value:
        return ir.scalar(False, _span(meta))

    def null_value(self, meta: Meta, children: list[Any]) -> ir.Value:
        return ir.scalar(None, _span(meta))

    def list_value(self, meta: Meta, children: list[Any]) -> ir.Value:
        return ir.Value(data=tuple(c for c in children if c is not None), kind="list", span=_span(meta))

    def dict_value(self, meta: Meta, children: list[Any]) -> ir.Value:
        return ir.Value(data=tuple(c for c in children if c is not None), kind="dict", span=_span(meta))

    def setting(self, meta: Meta, children: list[Any]) -> ir.Setting:
        name, value = children
        return ir.Setting(name=str(name), value=value, span=_span(meta), name_span=_tok_span(name))

    def lr_setting(self, meta: Meta, children: list[Any]) -> ir.Setting:
        start = _span(meta).start
        return ir.Setting(name="lr", value=children[0], span=_span(meta), name_span=Span(start, start + 2))

    def call_args(self, meta: Meta, children: list[Any]) -> tuple[ir.Setting, ...]:
        return tuple(c for c in children if c is not None)

    def _int(self, tok: Token) -> int:
        try:
            return int(tok)
        except ValueError:
            self._report("FTS102", _tok_span(tok), detail="integer is too large", label="too many digits")
            return 0

    # --- selectors ------------------------------------------------------------------------

    def _selector(self, kind: ir.SelectorKind, pattern: str, span: Span) -> ir.Selector:
        sel = ir.Selector(kind=kind, pattern=pattern, span=span)
        if not pattern:
            if kind is not ir.SelectorKind.EXACT:  # `""` names the root module (`shard ""`)
                self._report("FTS102", span, detail="selector is empty", label="empty")
            return sel
        regex = glob_to_regex(pattern) if kind is ir.SelectorKind.GLOB else pattern
        if kind is not ir.SelectorKind.EXACT:
            problem = compile_problem(regex)
            if problem:
                self._report("FTS101", span, detail=problem, label="does not compile")
        return sel

    def exact_selector(self, meta: Meta, children: list[Token]) -> ir.Selector:
        tok = children[0]
        text = unescape_string(tok[1:-1]) if tok.type == "STRING" else str(tok)
        return self._selector(ir.SelectorKind.EXACT, text, _span(meta))

    def regex_selector(self, meta: Meta, children: list[Token]) -> ir.Selector:
        return self._selector(ir.SelectorKind.REGEX, unescape_regex(children[0][1:-1]), _span(meta))

    def glob_selector(self, meta: Meta, children: list[Token]) -> ir.Selector:
        return self._selector(ir.SelectorKind.GLOB, unescape_string(children[0][1:-1]), _span(meta))

    def fts_selector(self, meta: Meta, children: list[Token]) -> ir.Selector:
        return self._selector(ir.SelectorKind.FTS, unescape_string(children[0][1:-1]), _span(meta))

    # --- layer-wise lr decay --------------------------------------------------------------

    def layers_prefix(self, meta: Meta, children: list[Token]) -> ir.Selector:
        return self._layers(ir.Selector(kind=ir.SelectorKind.EXACT, pattern=str(children[0]), span=_span(meta)))

    def layers_glob(self, meta: Meta, children: list[Token]) -> ir.Selector:
        sel = ir.Selector(kind=ir.SelectorKind.GLOB, pattern=unescape_string(children[0][1:-1]), span=_span(meta))
        return self._layers(sel)

    def _layers(self, sel: ir.Selector) -> ir.Selector:
        problem = layer_lr.layers_problem(sel)
        if problem:
            code = "FTS102" if "{i}" in problem else "FTS101"
            self._report(code, sel.span, detail=problem, label="layer pattern",
                         help="write the layer modules with `{i}` for the index, e.g. `model.layers.{i}`")
        return sel

    def embeddings_place(self, meta: Meta, children: list[ir.Selector]) -> tuple[str, tuple[ir.Selector, ...]]:
        return ("embeddings", tuple(children))

    def norm_place(self, meta: Meta, children: list[ir.Selector]) -> tuple[str, tuple[ir.Selector, ...]]:
        return ("norm", tuple(children))

    def _rate(self, value: ir.Value, what: str) -> float:
        v = value.data
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
        self._report("FTS102", value.span, detail=f"{what} must be a positive number", label="not positive")
        return 1.0

    def _decay(self, meta: Meta, top: ir.Value, decay: float | None, start: float | None,
               preset: ir.LrPreset, layers: ir.Selector, places: list[Any]) -> ir.LrDecay:
        parts: dict[str, list[ir.Selector]] = {"embeddings": [], "norm": []}
        for kind, sels in places:
            parts[kind].extend(sels)
        if parts["norm"] and preset in (ir.LrPreset.ELECTRA, ir.LrPreset.FASTAI):
            self._report("FTS102", parts["norm"][0].span,
                         detail=f"the `{preset}` convention has no place for a final norm",
                         label="no `norm` placement",
                         help="leave it out: parameters outside the embeddings and layers get the top lr (the "
                              "head's)")
        return ir.LrDecay(lr=self._rate(top, "the lr"), decay=decay, start=start, preset=preset, layers=layers,
                          embeddings=tuple(parts["embeddings"]), norm=tuple(parts["norm"]), span=_span(meta))

    def lr_decay(self, meta: Meta, children: list[Any]) -> ir.LrDecay:
        top, decay, preset_tok, layers, *places = children
        d = self._rate(decay, "the decay factor")
        if d > 1:
            self._report("FTS102", decay.span, detail="the decay factor must be at most 1", label="grows per layer",
                         help="write the factor each lower layer's lr is multiplied by, e.g. `decay 0.8`")
            d = 1.0
        preset = ir.LrPreset(str(preset_tok)) if preset_tok is not None else ir.LrPreset.BEIT
        return self._decay(meta, top, d, None, preset, layers, places)

    def lr_slice(self, meta: Meta, children: list[Any]) -> ir.LrDecay:
        first, second, layers, *places = children
        if second is None:  # slice(stop)
            return self._decay(meta, first, None, None, ir.LrPreset.FASTAI, layers, places)
        start = self._rate(first, "the slice start")
        return self._decay(meta, second, None, start, ir.LrPreset.FASTAI, layers, places)

    # --- statements -----------------------------------------------------------------------

    def thaw_stmt(self, meta: Meta, children: list[ir.Selector]) -> tuple[str, tuple[ir.Selector, ...]]:
        for sel in children:
            if not sel.pattern and sel.kind is ir.SelectorKind.EXACT:
                self._report("FTS102", sel.span, detail="selector is empty", label="`\"\"` names the root module, "
                             "not a parameter")
        return ("thaw", tuple(children))

    def wrap_stmt(self, meta: Meta, children: list[ir.Selector]) -> tuple[str, tuple[ir.Selector, ...]]:
        return ("wrap", tuple(children))

    def ignore_stmt(self, meta: Meta, children: list[ir.Selector]) -> tuple[str, tuple[ir.Selector, ...]]:
        return ("ignore", tuple(children))

    def epoch_criterion(self, meta: Meta, children: list[Token]) -> ir.Criterion:
        return self._counted(ir.CriterionKind.EPOCH, children[0], meta)

    def step_criterion(self, meta: Meta, children: list[Token]) -> ir.Criterion:
        return self._counted(ir.CriterionKind.STEP, children[0], meta)

    def _counted(self, kind: ir.CriterionKind, tok: Token, meta: Meta) -> ir.Criterion:
        value = self._int(tok)
        if value < 0:
            self._report("FTS102", _tok_span(tok), detail=f"`until {kind}` needs a non-negative integer",
                         label="negative", help="leave out `until` to end the phase by plateau only")
            value = 0
        return ir.Criterion(kind=kind, value=value, span=_span(meta))

    def plateau_criterion(self, meta: Meta, children: list[Any]) -> ir.Criterion:
        args = children[0]
        if args:
            args = self.validator.settings(args, schema.EARLY_STOPPING, where="plateau argument")
        return ir.Criterion(kind=ir.CriterionKind.PLATEAU, args=args or None, span=_span(meta))

    def until_stmt(self, meta: Meta, children: list[ir.Criterion]) -> tuple[str, tuple[ir.Criterion, ...]]:
        return ("until", tuple(children))

    def reinit_stmt(self, meta: Meta, children: list[Any]) -> ir.Reinit:
        target_tok, path_tok, init_args, block = children
        target = ir.ReinitTarget(str(target_tok))
        settings: tuple[ir.Setting, ...] = ()
        if init_args is not None:
            init_args = self.validator.settings(init_args, schema.INIT_ARGS)
        if block is not None:
            spec = schema.LR_SCHEDULER_REINIT if target is ir.ReinitTarget.LR_SCHEDULER else schema.OPTIMIZER_REINIT
            settings = self.validator.settings(block.data, spec)
        return ir.Reinit(target=target, class_path=str(path_tok), init_args=init_args,
                         settings=settings, span=_span(meta))

    def shard_stmt(self, meta: Meta, children: list[Any]) -> ir.ShardEntry:
        selector, kwargs = children
        if kwargs is not None:
            kwargs = self.validator.settings(kwargs, schema.FULLY_SHARD)
        return ir.ShardEntry(selector=selector, kwargs=kwargs, span=_span(meta))

    # --- blocks ---------------------------------------------------------------------------

    def _reinits(self, reinits: list[ir.Reinit]) -> tuple[ir.Reinit, ...]:
        seen: dict[ir.ReinitTarget, ir.Reinit] = {}
        for r in reinits:
            if r.target in seen:
                self._report("FTS104", r.span, key=f"reinit {r.target}", label="second directive",
                             help="keep one `reinit` per target")
                continue
            seen[r.target] = r
        return tuple(sorted(seen.values(), key=lambda r: list(ir.ReinitTarget).index(r.target)))

    def _settings(self, settings: list[ir.Setting], block: schema.Block) -> tuple[ir.Setting, ...]:
        for s in settings:
            if s.name not in block.keys and s.name in _DSL_SPELLING:
                self._report("FTS103", s.name_span, where=block.name, key=s.name,
                             label="FTS YAML spelling", help=f"in `.ftsc` files, {_DSL_SPELLING[s.name]}")
        known = [s for s in settings if s.name in block.keys or s.name not in _DSL_SPELLING]
        return self.validator.settings(tuple(known), block)

    def schedule_block(self, meta: Meta, children: list[Any]) -> ir.Options:
        settings = [c for c in children if isinstance(c, ir.Setting)]
        reinits = [c for c in children if isinstance(c, ir.Reinit)]
        return ir.Options(settings=self._settings(settings, schema.OPTIONS),
                          reinits=self._reinits(reinits), span=_span(meta))

    def phase_decl(self, meta: Meta, children: list[Any]) -> ir.Phase:
        index_tok, name_tok, *stmts = children
        selectors: list[ir.Selector] = []
        criteria: list[ir.Criterion] | None = None
        settings: list[ir.Setting] = []
        reinits: list[ir.Reinit] = []
        decays: list[ir.LrDecay] = []
        for stmt in stmts:
            if isinstance(stmt, ir.LrDecay):
                decays.append(stmt)
            elif isinstance(stmt, ir.Setting):
                settings.append(stmt)
            elif isinstance(stmt, ir.Reinit):
                reinits.append(stmt)
            elif stmt[0] == "thaw":
                selectors.extend(stmt[1])
            else:
                criteria = (criteria or []) + list(stmt[1])
        until = None
        if criteria is not None:
            by_kind: dict[ir.CriterionKind, ir.Criterion] = {}
            for c in criteria:
                if c.kind in by_kind:
                    self._report("FTS104", c.span, key=f"until {c.kind}", label="second criterion",
                                 help="a phase has at most one criterion of each kind")
                    continue
                by_kind[c.kind] = c
            until = tuple(sorted(by_kind.values(), key=lambda c: _CRITERION_ORDER[c.kind]))
        name = unescape_string(name_tok[1:-1]) if name_tok is not None else None
        for extra in decays[1:]:
            self._report("FTS104", extra.span, key="lr ... per", label="second decay form",
                         help="a phase has one layer-wise lr form")
        lr_setting = next((s for s in settings if s.name == "lr"), None)
        if decays and lr_setting is not None:
            self._report("FTS209", lr_setting.span, detail="a phase has either `lr = X` or a layer-wise `lr ... per` "
                         "form, not both", label="second lr",
                         help="the decay form's first number is the top (head) lr")
            settings = [s for s in settings if s.name != "lr"]
        return ir.Phase(index=self._int(index_tok), name=name, selectors=tuple(selectors), until=until,
                        settings=self._settings(settings, schema.PHASE), reinits=self._reinits(reinits),
                        lr_decay=decays[0] if decays else None,
                        span=_span(meta), index_span=_tok_span(index_tok))

    def fsdp_block(self, meta: Meta, children: list[Any]) -> ir.FSDPConfig:
        settings = [c for c in children if isinstance(c, ir.Setting)]
        wrap = [s for c in children if isinstance(c, tuple) and c[0] == "wrap" for s in c[1]]
        ignore = [s for c in children if isinstance(c, tuple) and c[0] == "ignore" for s in c[1]]
        return ir.FSDPConfig(settings=self._settings(settings, schema.FSDP), wrap=tuple(wrap),
                             ignore=tuple(ignore), span=_span(meta))

    def fsdp2_block(self, meta: Meta, children: list[Any]) -> ir.FSDP2Config:
        settings = [c for c in children if isinstance(c, ir.Setting)]
        plan = [c for c in children if isinstance(c, ir.ShardEntry)]
        return ir.FSDP2Config(settings=self._settings(settings, schema.FSDP2), plan=tuple(plan),
                              span=_span(meta))

    def start(self, meta: Meta, children: list[Any]) -> ir.Schedule:
        options: list[ir.Options] = [c for c in children if isinstance(c, ir.Options)]
        fsdp = [c for c in children if isinstance(c, ir.FSDPConfig)]
        fsdp2 = [c for c in children if isinstance(c, ir.FSDP2Config)]
        for extra, word in ((options[1:], "schedule"), (fsdp[1:], "fsdp"), (fsdp2[1:], "fsdp2")):
            for block in extra:
                self._report("FTS104", Span(block.span.start, block.span.start + len(word)), key=word,
                             label="second block", help=f"merge the `{word}` blocks into one")
        if fsdp and fsdp2:
            self._report("FTS209", Span(fsdp2[0].span.start, fsdp2[0].span.start + 5),
                         detail="a schedule has either an `fsdp` or an `fsdp2` block, not both",
                         label="second sharding block")
        return ir.Schedule(
            options=options[0] if options else ir.Options(),
            phases=tuple(c for c in children if isinstance(c, ir.Phase)),
            fsdp=fsdp[0] if fsdp else None,
            fsdp2=fsdp2[0] if fsdp2 and not fsdp else None,
            span=Span(0, len(self.source.text)),
        )


def build_ir(tree: Tree[Token], source: SourceFile) -> tuple[ir.Schedule, list[Diagnostic]]:
    """Build the IR for a parsed file.

    Example:
        >>> from ftsc.parse import parse
        >>> from ftsc.source import SourceFile
        >>> src = SourceFile("x.ftsc", "phase 0 { thaw /model\\\\.head\\\\..*/ }")
        >>> schedule, diags = build_ir(parse(src).tree, src)
        >>> schedule.phases[0].selectors[0].kind.value, diags
        ('regex', [])
    """
    builder = ToIR(source)
    try:
        schedule = builder.transform(tree)
    except RecursionError:
        return ir.Schedule(), [make("FTS001", source, Span(0, 0), detail="input is nested too deeply to process")]
    return schedule, builder.diagnostics


__all__ = ["ToIR", "build_ir", "unescape_regex", "unescape_string"]
