"""`NameIndex` (prefix-pruned regex matching) against the plain loop, and `regexes.match_prefix`.

The contract (`ftsc/model/names.py`): `NameIndex(names).match(rx, full=...)` returns exactly
`[n for n in names if rx.match(n)]` (`rx.fullmatch` with `full=True`), in registration order.
The property tests draw FQN-like name lists built to stress the sorted-range walk (names that
differ only by `.` vs `_`, prefixes of each other, empty names, unicode, names containing
`\\n`) and patterns made from name prefixes or from a small alphabet of regex atoms.
"""

from __future__ import annotations

import re
import warnings

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ftsc.model.names import NameIndex
from ftsc.regexes import match_prefix

# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

_SEG_CHARS = "ab_01xyzAZ"
_UNICODE = "éßμ名Ω"


def _segment() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(alphabet=_SEG_CHARS, min_size=1, max_size=4),
        st.sampled_from(["model", "layers", "attn", "mlp", "weight", "bias", "norm", "1", "10", "12", "2"]),
        st.text(alphabet=_SEG_CHARS + _UNICODE, min_size=1, max_size=3),
    )


@st.composite
def _fqn(draw: st.DrawFn) -> str:
    return ".".join(draw(st.lists(_segment(), min_size=1, max_size=4)))


@st.composite
def _names(draw: st.DrawFn) -> list[str]:
    """A name list with the near-collisions the index must keep apart."""
    base = draw(st.lists(_fqn(), min_size=0, max_size=12))
    out = list(base)
    for name in base:
        kind = draw(st.integers(0, 6))
        if not name:
            continue
        i = draw(st.integers(0, len(name) - 1))
        if kind == 0:  # `.` <-> `_` at one position (`layers.1` vs `layers_1`)
            swapped = {".": "_", "_": "."}.get(name[i], ".")
            out.append(name[:i] + swapped + name[i + 1 :])
        elif kind == 1:  # a prefix of another name
            out.append(name[:i])
        elif kind == 2:  # an extension of another name
            out.append(name + draw(st.sampled_from(["0", ".w", "_x", "\n", "."])))
        elif kind == 3:  # a newline inside
            out.append(name[:i] + "\n" + name[i:])
        elif kind == 4:  # the same name twice (NameIndex takes any sequence)
            out.append(name)
    if draw(st.booleans()):
        out.append(draw(st.sampled_from(["", ".", "\n", "_", "a\nb", "a.b\n"])))
    return draw(st.permutations(out))


_ATOMS = ["a", "b", "x", "1", "0", "_", "model", "layers", ".", r"\.", r"\d", "[0-9]", "[a-z]", "[^.]",
          "\n", "é", "*", "+", "?", "{1,2}", "*?", "|", "(", ")", "(?:", "^", "$", ".*", ".+", r"\Z"]
_FLAGS = ["", "", "", "(?i)", "(?s)", "(?m)", "(?x)"]


def _compiles(p: str) -> re.Pattern[str] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return re.compile(p)
    except (re.error, OverflowError, RecursionError, ValueError):
        return None


@st.composite
def _atom_regex(draw: st.DrawFn) -> str:
    body = "".join(draw(st.lists(st.sampled_from(_ATOMS), max_size=10)))
    return draw(st.sampled_from(_FLAGS)) + body


@st.composite
def _prefix_pattern(draw: st.DrawFn, names: list[str]) -> str:
    """A prefix of one of `names`, `.` left unescaped (FTS style), sometimes with an ending."""
    if not names:
        return draw(_fqn())
    name = draw(st.sampled_from(names))
    cut = name[: draw(st.integers(0, len(name)))]
    # Escape only what would not compile; `.` stays a wildcard.
    cut = "".join(re.escape(c) if c in "\\^$*+?{}[]|()" else c for c in cut)
    return cut + draw(st.sampled_from(["", "", ".*", "$", r"\.", ".", "_", "[0-9]", r"\d+"]))


@st.composite
def _derived_regex(draw: st.DrawFn, names: list[str]) -> str:
    """A regex grown from a prefix of one of `names`: most characters kept (so the fixed start,
    and with it the pruning, is long), some swapped case or replaced by `.`, a class or a
    quantified atom; a global flag in front; sometimes an alternation."""
    name = draw(st.sampled_from(names)) if names else draw(_fqn())
    cut = name[: draw(st.integers(0, len(name)))]
    rate = draw(st.sampled_from([5, 15, 40]))  # percent of characters changed
    parts: list[str] = []
    for c in cut:
        lit = re.escape(c) if c in "\\^$*+?{}[]|().# " else c
        if c == "\n" and draw(st.booleans()):  # `.` matches a newline only under `(?s)`
            parts.append(".")
        elif draw(st.integers(0, 99)) >= rate:
            parts.append(lit)
        else:
            parts.append(draw(st.sampled_from([
                ".", ".", lit.swapcase(), lit + "*", lit + "+", lit + "?", lit + "{1,2}", lit + "*?",
                r"\d", "[0-9]", "[^.]", r"\w", "[a-z_.]", r"\." if c == "." else f"[{lit}]",
                f"({lit})", f"(?:{lit}|{lit.swapcase()})", f"{lit}|x",
            ])))
    body = "".join(parts) + draw(st.sampled_from(["", "", ".*", "$", r"\Z", "|x", ".", r"\n"]))
    flags = draw(st.sampled_from(["", "", "(?s)", "(?s)", "(?i)", "(?m)", "(?x)", "(?is)"]))
    return flags + draw(st.sampled_from(["", "", "^"])) + body


def _plain(names: list[str], rx: re.Pattern[str], full: bool) -> list[str]:
    test = rx.fullmatch if full else rx.match
    return [n for n in names if test(n)]


def _assert_like_plain_loop(names: list[str], patterns: list[str], full: bool) -> None:
    """NameIndex matches each (compilable) pattern exactly as a plain loop over `names` does."""
    idx = NameIndex(names)
    for p in patterns:
        rx = _compiles(p)
        if rx is not None:
            assert idx.match(rx, full=full) == _plain(names, rx, full), (p, names, full)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

# Sized so that the whole file runs in well under 10 s on a 2-core machine.
_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.fuzzing
@_SETTINGS
@given(data=st.data(), names=_names(), full=st.booleans())
@example(data=None, names=["m.1.w", "m.10.w", "m_1.w", "m", "m.1"], full=False)
def test_prefix_patterns_equal_plain_loop(data: st.DataObject | None, names: list[str], full: bool) -> None:
    patterns = ["m.1", r"m\.1", "m.1$", "m.", "", "m.1.*"] if data is None else \
        [data.draw(_prefix_pattern(names)) for _ in range(4)]
    _assert_like_plain_loop(names, patterns, full)


@pytest.mark.fuzzing
@_SETTINGS
@given(names=_names(), patterns=st.lists(_atom_regex(), min_size=1, max_size=4), full=st.booleans())
def test_atom_regexes_equal_plain_loop(names: list[str], patterns: list[str], full: bool) -> None:
    _assert_like_plain_loop(names, patterns, full)


@pytest.mark.fuzzing
@settings(_SETTINGS, max_examples=150)
@given(data=st.data(), names=_names(), full=st.booleans())
def test_derived_regexes_equal_plain_loop(data: st.DataObject, names: list[str], full: bool) -> None:
    _assert_like_plain_loop(names, [data.draw(_derived_regex(names)) for _ in range(4)], full)


@pytest.mark.fuzzing
@settings(max_examples=60, deadline=None)
@given(names=_names(), prefix=st.one_of(_fqn(), st.sampled_from(["", ".", "m", "\n", "a\n"])))
def test_with_prefix_property(names: list[str], prefix: str) -> None:
    assert NameIndex(names).with_prefix(prefix) == sorted(n for n in names if n.startswith(prefix))


@pytest.mark.fuzzing
@settings(max_examples=30, deadline=None)
@given(names=_names())
def test_candidates_cover_every_match(names: list[str]) -> None:
    """Candidates are a superset of the matches, for patterns with a long fixed start."""
    idx = NameIndex(names)
    for name in names:
        rx = re.compile(re.escape(name))
        sorted_names = sorted(names)
        got = {sorted_names[k] for k in idx.candidates(rx.pattern)}
        assert {n for n in names if rx.match(n)} <= got


# --------------------------------------------------------------------------------------------
# Examples
# --------------------------------------------------------------------------------------------

_MODEL = ["model.layers.1.attn.weight", "model.layers.10.attn.weight", "model.layers.1.mlp.bias",
          "model.layers_1.attn.weight", "model.layers.2.norm.weight", "model.embed.weight", "head.weight"]


@pytest.mark.parametrize("pattern", [
    "model.layers.1", r"model\.layers\.1\.", "model.layers.1[0-9]", r"model\.layers\.(1|2)\..*",
    ".*bias", ".*norm.*", "head.weight", "model.layers_1", "(?i)MODEL", "model.layers.1.attn.weight$",
    "^model", r"\Amodel", "model|head", "mode.*", "m.d.l", "(?s)model.layers", "", "zzz",
])
@pytest.mark.parametrize("full", [False, True])
def test_model_like_examples(pattern: str, full: bool) -> None:
    rx = re.compile(pattern)
    assert NameIndex(_MODEL).match(rx, full=full) == _plain(_MODEL, rx, full)


def test_newline_only_matched_by_dotall() -> None:
    names = ["a\nb", "a.b", "a_b", "ab"]
    idx = NameIndex(names)
    assert idx.match(re.compile("a.b")) == ["a.b", "a_b"]
    assert idx.match(re.compile("(?s)a.b")) == ["a\nb", "a.b", "a_b"]
    assert idx.match(re.compile("a\nb")) == ["a\nb"]


def test_with_prefix() -> None:
    idx = NameIndex(["b.w", "a.w", "a.b", "a", "ab.w", "a_b"])
    assert idx.with_prefix("a") == ["a", "a.b", "a.w", "a_b", "ab.w"]
    assert idx.with_prefix("a.") == ["a.b", "a.w"]
    assert idx.with_prefix("a.w") == ["a.w"]
    assert idx.with_prefix("a.w.x") == []
    assert idx.with_prefix("c") == []
    assert idx.with_prefix("") == ["a", "a.b", "a.w", "a_b", "ab.w", "b.w"]
    assert NameIndex([]).with_prefix("a") == []
    assert len(idx) == 6


# --------------------------------------------------------------------------------------------
# match_prefix edge cases
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "expected"), [
    ("model.x|head.y", ((), False)),  # top-level alternation: no fixed start
    ("ab|cd", ((), False)),
    ("a|b", ((), False)),  # single characters become a set
    ("ab|ac", (("a",), False)),  # the parser factors out the common prefix: still sound
    ("(?i)abc", None),  # case-insensitive: literals do not pin characters
    ("(", None),  # does not compile
    ("^abc", (("a", "b", "c"), False)),  # a leading `^` is skipped
    (r"\Aab", (("a", "b"), False)),
    ("(?m)^ab", (("a", "b"), False)),
    ("a^b", (("a",), False)),  # `^` after the start ends the template
    ("ab*c", (("a",), False)),  # a quantified literal is not part of the template
    ("ab+", (("a",), False)),
    ("ab?", (("a",), False)),
    ("ab{2}", (("a",), False)),
    ("a.b", (("a", None, "b"), False)),
    (r"a\.b", (("a", ".", "b"), False)),
    ("(?s)a.b", (("a", None, "b"), True)),
    ("[a]b", (("a", "b"), False)),  # a one-character class is a literal
    ("a[bc]d", (("a",), False)),
    ("(a)b", (("a", "b"), False)),  # a group of literals extends the template
    (r"x(1|2)y", (("x",), False)),  # alternatives branch; the common start is what is shared
    ("(a*)b", ((), False)),  # a group with a quantifier ends the template
    ("(?x) a b", (("a", "b"), False)),
    (".*bias", ((), False)),
    ("", ((), False)),
])
def test_match_prefix(pattern: str, expected: tuple[tuple[str | None, ...], bool] | None) -> None:
    assert match_prefix(pattern) == expected


# --------------------------------------------------------------------------------------------
# Edge cases outside what ftsc passes in (`regexes.compiled` never adds flags, FQNs are short)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("flags", "pattern"), [(re.IGNORECASE, "a"), (re.DOTALL, "a.b"), (re.VERBOSE, "a b")])
def test_compile_flags(flags: int, pattern: str) -> None:
    names = ["A", "a\nb", "ab"]
    rx = re.compile(pattern, flags)
    assert NameIndex(names).match(rx) == _plain(names, rx, False)


def test_many_leading_wildcards() -> None:
    names = ["x" * 3000]
    rx = re.compile("." * 1500)
    assert NameIndex(names).match(rx) == names
