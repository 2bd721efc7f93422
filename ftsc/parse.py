"""Parse `.ftsc` source text into a Lark tree.

Input: source text. Output: a `lark.Tree` with positions, the comments found while lexing,
and FTS001 diagnostics for syntax errors (never an exception for user input).
Never imports torch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ftsc.diagnostics import Diagnostic, make
from ftsc.lalr_tables import OPTIONS, load_parser
from ftsc.source import SourceFile, Span
from ftsc.syntax_examples import EXAMPLES

_TOKEN_NAMES = {
    "_LBRACE": "`{`", "_RBRACE": "`}`", "_LPAR": "`(`", "_RPAR": "`)`", "_LSQB": "`[`",
    "_RSQB": "`]`", "_COMMA": "`,`", "_EQ": "`=`", "PATH": "a name", "STRING": "a string",
    "REGEX": "a /regex/", "INT": "an integer", "FLOAT": "a number", "$END": "end of file",
    "REINIT_TARGET": "`optimizer` or `lr_scheduler`",
}


def grammar_text() -> str:
    """The grammar: from the installed package, else from the repository's `grammar/`."""
    try:
        return resources.files("ftsc").joinpath("_grammar/ftsc.lark").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return (Path(__file__).resolve().parent.parent / "grammar" / "ftsc.lark").read_text(encoding="utf-8")


@dataclass(slots=True)
class _Comments:
    tokens: list[Token] = field(default_factory=list)

    def __call__(self, token: Token) -> Token:
        self.tokens.append(token)
        return token


_COMMENTS = _Comments()


@functools.lru_cache(maxsize=2)
def parser(strict: bool = False) -> Lark:
    """The LALR parser (cached in memory). `strict=True` turns grammar conflicts into errors (tests).

    The tables come from `ftsc.lalr_tables` (shipped JSON, verified against the grammar; never
    a pickle from a shared folder): building them dominates CLI start-up.
    """
    callbacks = {"COMMENT": _COMMENTS}
    if strict:
        return Lark(grammar_text(), lexer_callbacks=callbacks, strict=True, **OPTIONS)
    return load_parser(grammar_text(), callbacks)


@dataclass(frozen=True, slots=True)
class Comment:
    """A `#` comment: its text (with the `#`) and span."""

    text: str
    span: Span


@dataclass(slots=True)
class ParseResult:
    """What `parse` produces: a tree (None on a syntax error), comments and diagnostics."""

    tree: Tree[Token] | None
    comments: list[Comment]
    diagnostics: list[Diagnostic]


def parse(source: SourceFile) -> ParseResult:
    """Parse a `.ftsc` file.

    Example:
        >>> from ftsc.source import SourceFile
        >>> r = parse(SourceFile("x.ftsc", "phase 0 { thaw a.b }"))
        >>> r.tree.data, r.diagnostics
        ('start', [])
    """
    p = parser()
    _COMMENTS.tokens = []
    try:
        tree = p.parse(source.text)
    except UnexpectedInput as err:
        comments = _collect(_COMMENTS.tokens)
        return ParseResult(None, comments, [_syntax_diagnostic(source, err)])
    except RecursionError:
        return ParseResult(None, [], [make("FTS001", source, Span(0, 0),
                                           detail="input is nested too deeply to parse")])
    return ParseResult(tree, _collect(_COMMENTS.tokens), [])


def _collect(tokens: list[Token]) -> list[Comment]:
    return [Comment(str(t), Span(t.start_pos or 0, t.end_pos or 0)) for t in tokens]


def _syntax_diagnostic(source: SourceFile, err: UnexpectedInput) -> Diagnostic:
    text = source.text
    pos = getattr(err, "pos_in_stream", None)
    if isinstance(err, UnexpectedEOF) or pos is None:
        pos = len(text)
    missing_eq = _lr_without_eq(source, err)
    if missing_eq is not None:
        return missing_eq
    label = _match_example(err)
    if isinstance(err, UnexpectedCharacters):
        ch = text[pos] if pos < len(text) else ""
        if ch == '"':
            return make("FTS001", source, Span(pos, pos + 1), detail="unterminated string",
                        label="string starts here", help='close the string with `"` on the same line')
        if ch == "/":
            return make("FTS001", source, Span(pos, pos + 1), detail="unterminated or empty /regex/",
                        label="regex starts here", help="close the regex with `/` on the same line; "
                        "write a literal slash as `\\/`")
        shown = repr(ch)[1:-1] if ch else "end of file"
        detail = label or f"unexpected character `{shown}`"
        end = pos + 1
    elif isinstance(err, UnexpectedToken):
        tok = err.token
        found = "end of file" if tok.type == "$END" else f"`{tok}`"
        detail = f"{label}, found {found}" if label else f"unexpected {found}"
        end = pos + max(1, len(str(tok))) if tok.type != "$END" else pos
    else:
        detail = label or "unexpected end of file"
        end = pos
    expected = sorted(getattr(err, "accepts", None) or getattr(err, "expected", None) or ())
    shown_expected = [_TOKEN_NAMES.get(e, f"`{e.strip('_').lower()}`") for e in expected if e != "COMMENT"]
    notes = (f"expected one of: {', '.join(dict.fromkeys(shown_expected))}",) if shown_expected else ()
    return make("FTS001", source, Span(pos, min(end, len(text)) if end > pos else pos),
                detail=detail, label="here", notes=notes)


def _lr_without_eq(source: SourceFile, err: UnexpectedInput) -> Diagnostic | None:
    """`lr 0.1` followed by anything but `decay`: the user meant `lr = 0.1`.

    Since `lr TOP decay ...` is a statement, the parser only fails at the token after the value;
    point at the value instead, whatever statement came before (the example table cannot, as its
    match depends on the parser state left by earlier statements).
    """
    if not isinstance(err, UnexpectedToken) or err.token.type == "_DECAY":
        return None
    if set(getattr(err, "accepts", None) or ()) != {"_DECAY"}:
        return None
    stack = getattr(getattr(getattr(err, "interactive_parser", None), "parser_state", None), "value_stack", [])
    if len(stack) < 2 or not isinstance(stack[-1], Token) or getattr(stack[-2], "type", None) != "_LR":
        return None
    value = stack[-1]
    return make("FTS001", source, Span(value.start_pos or 0, value.end_pos or 0),
                detail="expected `=` after the setting name", label="value without `=`",
                help=f"write `lr = {value}`; `lr {value} decay D per LAYERS` is the layer-wise form "
                "(docs/lr-decay.md)")


def _match_example(err: UnexpectedInput) -> str | None:
    try:
        return err.match_examples(parser().parse, EXAMPLES, use_accepts=True)  # type: ignore[return-value]
    except Exception:  # noqa: BLE001 - matching is best effort; the generic message remains
        return None
    finally:
        _COMMENTS.tokens = []
