"""Bounded matching (`ftsc.matching`) is Python's `re.match` / `re.fullmatch`, in bounded time.

Oracle: Python's `re` itself, on names short enough that its backtracking stays small. Both
engines are compared (RE2 where the pattern allows it, and the memoised fallback machine,
forced with `use_re2=False`), on:
- hypothesis-generated patterns (anchors, classes, categories, flags, greedy/lazy/possessive
  repeats, atomic groups, lookaround) against generated names (newlines, non-ASCII);
- every pattern of our corpus: tests/data, examples, tests/ui, the shared FTS example corpus
  (when present) and the regexes of the fuzz suite, against the names of the models they are
  written for and against hostile names.
Hostile inputs (long runs of one character against `(a+)+$`, `(a|aa)+$`, `(.*a){25}`) must
return, with results checked against facts worked out by hand. A hang detector aborts the run
after a minute (`faulthandler`); nothing here measures time.
"""

from __future__ import annotations

import faulthandler
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftsc import ir
from ftsc.frontend import load_file
from ftsc.matching import Matcher, UnsupportedPattern, accepts, match_names, unsupported_reason
from ftsc.model.names import NameIndex

REPO = Path(__file__).resolve().parent.parent
SHARED_CORPUS = REPO.parent / "shared" / "corpus"
HANG_S = 60


@pytest.fixture(autouse=True)
def _hang_detector() -> Iterator[None]:
    """Abort (with every thread's traceback) a test that runs for over a minute."""
    faulthandler.dump_traceback_later(HANG_S, exit=True, file=sys.__stderr__)
    yield
    faulthandler.cancel_dump_traceback_later()


def _python(pattern: str, name: str, full: bool) -> int | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = re.fullmatch(pattern, name) if full else re.match(pattern, name)
    return None if m is None else m.end()


def _assert_same(pattern: str, names: list[str]) -> None:
    """Each engine (RE2, the bounded machine, Python's own `re` where it is linear) agrees with
    Python's `re`, name by name and through `accepts`."""
    alphabet = "".join(names)
    for use_re2, use_python in ((True, False), (False, False), (True, True)):
        m = Matcher(pattern, alphabet, use_re2=use_re2, use_python=use_python)
        for full in (False, True):
            assert accepts(m, names, full=full) == [_python(pattern, n, full) is not None for n in names], (
                pattern, use_re2, use_python, full)
        for name in names:
            want = _python(pattern, name, False)
            if want is not None or not use_re2 or m.engine == "re2":
                got = m.match(name)
                if want is None or got is None:
                    assert got == want, (pattern, name, use_re2, m.engine)
                else:  # the match's end: Python's leftmost-first choice
                    assert got == want, (pattern, name, use_re2, m.engine, "end")
            assert m.fullmatch(name) == (_python(pattern, name, True) is not None), (pattern, name, use_re2)


# --------------------------------------------------------------------------------------------
# Hypothesis: generated patterns against generated names
# --------------------------------------------------------------------------------------------

_ATOMS = ["a", "b", "A", ".", r"\.", "1", "_", r"\n", "[ab]", "[^a]", "[a-c]", "[.1]", r"\d", r"\w", r"\s",
          r"\W", r"\D", "é", "[^\\n]", r"[\w.]", "(?i:a)", "(?-i:a)", r"\x41"]
_ANCHORS = ["^", "$", r"\A", r"\Z", r"\b", r"\B"]
_CHARS = "aAb1._\né ſ"


def _quantified(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    q = st.sampled_from(["*", "+", "?", "{2}", "{1,3}", "{0,2}", "{2,}", "*?", "+?", "??", "{1,2}?", "*+", "++",
                         "?+", "{2}+", "{1,3}+", "{2,}+"])
    return st.builds(lambda x, k: f"(?:{x}){k}", inner, q)


def _regex() -> st.SearchStrategy[str]:
    leaf = st.one_of(st.sampled_from(_ATOMS), st.sampled_from(_ANCHORS))

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.lists(inner, min_size=2, max_size=4).map("".join),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: "(?:" + "|".join(xs) + ")"),
            inner.map(lambda x: f"({x})"),
            _quantified(inner),
            inner.map(lambda x: f"(?>{x})"),
            inner.map(lambda x: f"(?={x})"),
            inner.map(lambda x: f"(?!{x})"),
            st.sampled_from(["a", "[ab]", r"\.", r"\d", "ab", "."]).map(lambda x: f"(?<={x})"),
            st.sampled_from(["a", r"\w", "a."]).map(lambda x: f"(?<!{x})"),
        )

    body = st.recursive(leaf, extend, max_leaves=8)
    return st.builds(lambda f, b: f + b, st.sampled_from(["", "", "(?i)", "(?s)", "(?m)", "(?a)", "(?ims)"]), body)


def _compiles(pattern: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            re.compile(pattern)
    except (re.error, OverflowError, RecursionError):
        return False
    return True


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(pattern=_regex().filter(_compiles), names=st.lists(st.text(alphabet=_CHARS, max_size=8), min_size=1, max_size=6))
def test_generated_patterns_match_like_python(pattern: str, names: list[str]) -> None:
    _assert_same(pattern, names)


@pytest.mark.parametrize("pattern", [
    r"(|a)*", r"(a|ab)(c|bcd)?", r"(a*)*b?", r"(a|)+?b", r"(?:a?)+?", r"(?:(?:a|b)*?)*", r"a$\n", r"(?m)a$",
    r"\Z", r"(?s).*\Z", r"(?i)[\u017f]", r"(?i)\u212a", r"(?i)k", r"(?a)\w+", r"\bb", r"a{0}", r"(?x) a b # c",
    r"(?>a*)a", r"a*+a", r"(?=(a+))a*b", r"(?<!a)b", r"(?:a{2,3}){2}", r"(?:a|b|ab)*c",
])
def test_known_edge_cases(pattern: str) -> None:
    _assert_same(pattern, ["", "a", "aa", "aaa", "ab", "abc", "abcd", "a\n", "\na", "K", "k", "ſ", "s", "ba", "bcd",
                           "a b", "aab", "éa", "a\nb"])


# Found by tests/fuzz_campaign_matching.py (100k inputs, seed 1): loops whose iteration can match
# empty (`\b`, `\B`, `(?=...)`, `(...)?` alternatives) inside atomic and possessive groups, where
# the first match's end decides the outcome (Python's repeat leaves a loop after an empty
# iteration); a local `(?a:...)` in a str pattern.
@pytest.mark.parametrize(("pattern", "names"), [
    (r"(?s)(?:(((?:\b|.|\w)){2})++|$)", ["é", ".\n\n b_", "b1_x_b \n  ", "Aab. aAb", "x.b"]),
    (r"(?s)((?:((?:(?i:a)|1|\Z))*+|\Z|(?:(?:_|\Z)|($){2,}|(.)?)))*+", ["111ſ\n1.ſ", "\nxxb"]),
    (r"(?m)((?:(?:(?:[^a]|\B|[ab])|1(?i:a)[ab]^)|(?=_layers\B)|([^a])+))*+", ["model.layers.0.weight", "h.2.attn"]),
    (r"(?a)((?:\w|(é)?|(?:a|\b.|(?<!\w)^)))*+", ["model.layers.0.weight", "h.2.attn_ln.weight"]),
    (r"((?:\x41|(b\x41\W){2}|(?:(?:x|[^a])|(?>\b)|.)))*+", ["model.layers.0.weight", "h.2.attn.c_attn.weight"]),
    (r"(?:((?:(?:_|[a-c]|[a-c])|(?=\x41)|.))*+|(?:(\s){2}layers|_)|((?:(?<!\w)[a-c]|[a-c]))++)",
     ["A _x.é", "x_", " ", "\n", ".bſ\n.bbbſ", "x. a\n1\nAxb", "xbA. _ſ"]),
    (r"(?:(?:[^a]|\B|[ab])|(?=_x))*", ["model.layers", "ab"]),
    (r"(?s)(?>(?:(?:\b|.)(?:\b|.))+)$", [".\n\n b_", "ab", ". b"]),
    (r"(?a:a+)++$", ["aaa", "b", "aé"]),
    (r"(?a:a{3}|b{3}|ab)*c", ["aaac", "abc", "c", "x"]),
    (r"(?a:\w+)$", ["é", "a_1"]),
    # seed 2: CPython runs `X{3}+` as three atomic iterations of X, never backtracking between them
    # (`(?>X{3})` may): `(\w+){3}+` fails on "abcd", `(?>(\w+){3})` matches it.
    (r"(\w+\.?){3}+$", ["axxxAſ1", "1._xxbé", "ax.1.1", " bſ\n11", "a "]),
    (r"(?:a|ab){2}+c", ["ababc", "aac", "abc"]),
    (r"(?:x*){2,5}+y", ["xxy", "y"]),
])
def test_fuzz_findings(pattern: str, names: list[str]) -> None:
    _assert_same(pattern, names)


# --------------------------------------------------------------------------------------------
# Every pattern of the corpus and the test suite
# --------------------------------------------------------------------------------------------


def _schedule_files() -> list[Path]:
    roots = [REPO / "tests" / "data", REPO / "examples", REPO / "tests" / "ui", SHARED_CORPUS]
    out: list[Path] = []
    for root in roots:
        if root.is_dir():
            out += [p for p in root.rglob("*") if p.suffix in (".ftsc", ".yaml", ".yml") and p.is_file()]
    return sorted(out)


def _corpus_patterns() -> list[str]:
    from . import test_fuzz

    patterns: set[str] = set()
    for path in _schedule_files():
        try:
            loaded = load_file(str(path))
        except Exception:  # noqa: BLE001 - files that are not schedules
            continue
        if loaded.schedule is None:
            continue
        sched = loaded.schedule
        sels = [s for p in sched.phases for s in p.selectors]
        if sched.fsdp:
            sels += [*sched.fsdp.wrap, *sched.fsdp.ignore]
        if sched.fsdp2:
            sels += [e.selector for e in sched.fsdp2.plan]
        for s in sels:
            if s.kind in (ir.SelectorKind.FTS, ir.SelectorKind.REGEX):
                patterns.add(s.pattern)
    for text in list(test_fuzz._REGEXES.elements) + test_fuzz._PATHOLOGICAL_REGEXES:  # type: ignore[attr-defined]
        if text.startswith("/") and text.endswith("/"):
            patterns.add(text[1:-1])
    return sorted(p for p in patterns if _compiles(p) and unsupported_reason(p) is None)


def _model_names() -> list[str]:
    names = ["model.classifier.weight", "model.classifier.bias", "model.pooler.dense.weight", "model.norm.weight",
             "model.output.weight", "model.tok_embeddings.weight", "model.head.weight", "model.head.bias",
             "model.embed.weight", "model.body.weight", "a", "aa", "ab", "b", "model", "x", "model_x.weight"]
    for i in range(13):
        names += [f"model.deberta.encoder.layer.{i}.{sub}.weight" for sub in
                  ("attention.self.query_proj", "output.dense", "intermediate.dense", "attention.output.LayerNorm")]
        names += [f"model.layers.{i}.{sub}.weight" for sub in
                  ("attention.wq", "feed_forward.w1", "attention_norm", "ffn_norm")]
        names += [f"model.encoder.layer.{i}.attention.self.query.weight", f"model.layers.{i}.bias"]
    return names


_HOSTILE_SHORT = ["a" * 12, "a" * 12 + "b", "." * 12, "1" * 12 + "x", "aaaa.aaaa.aaaa!"]


def test_corpus_is_not_empty() -> None:
    patterns = _corpus_patterns()
    assert len(patterns) > 30 and "model.classifier.*" in patterns and "(a+)+$" in patterns


@pytest.mark.parametrize("pattern", _corpus_patterns())
def test_corpus_patterns_match_like_python(pattern: str) -> None:
    names = _model_names() + _HOSTILE_SHORT
    _assert_same(pattern, names)
    index = NameIndex(names)
    assert index.match(pattern) == [n for n in names if re.match(pattern, n)]
    assert index.match(pattern, full=True) == [n for n in names if re.fullmatch(pattern, n)]


# --------------------------------------------------------------------------------------------
# Hostile patterns against hostile names: bounded, and right
# --------------------------------------------------------------------------------------------

RUN = 20_000


@pytest.mark.parametrize(("pattern", "name", "end"), [
    ("(a+)+$", "a" * RUN + "b", None),
    ("(a+)+$", "a" * RUN, RUN),
    ("(a|aa)+$", "a" * RUN + "!", None),
    ("(a|aa)+$", "a" * RUN, RUN),
    ("(.*a){25}", "a" * 24 + "b" * RUN, None),
    ("(.*a){25}", "a" * 25 + "b" * RUN, 25),
    (r"(\w+\.)+$", "a." * RUN + "!", None),
    (r"(?=a)(a|aa)+$", "a" * RUN + "b", None),  # lookahead: the fallback machine
    (r"(?:a|aa)++$", "a" * RUN + "b", None),
    (r"(?!b)(.*a)+x", "a" * RUN, None),
    (r"a{1500}(a|aa)*$", "a" * RUN + "b", None),  # count above RE2's limit
])
def test_hostile_inputs_are_bounded(pattern: str, name: str, end: int | None) -> None:
    for use_re2 in (True, False):
        assert Matcher(pattern, name, use_re2=use_re2).match(name) == end, (pattern, use_re2)


def test_hostile_names_through_the_index() -> None:
    names = ["a" * n for n in (1, 10, 100, 1000, 5000)] + ["a" * 5000 + "b", "model.layers.1.weight"]
    index = NameIndex(names)
    assert index.match("(a+)+$") == names[:5]
    assert index.match("(a|aa)+b") == [names[5]]
    assert index.match("(.*a){25}") == names[2:6]


def test_backreferences_are_refused() -> None:
    for pattern in (r"(a)\1", r"(?P<x>a)(?P=x)", r"(a)?(?(1)b|c)"):
        assert unsupported_reason(pattern) is not None
        with pytest.raises(UnsupportedPattern):
            match_names(pattern, ["aa"])
    assert unsupported_reason("(a+)+$") is None


def test_backreference_is_fts101(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ftsc.cli import main

    path = tmp_path / "s.ftsc"
    path.write_text('phase 0 {\n    thaw /(a)\\1/\n}\n')
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr()
    assert "FTS101" in out.out + out.err and "backreferences" in out.out + out.err


@pytest.mark.parametrize("pattern", [
    r"(a+)+$", r"(a|aa)+$", r"(.*a){25}", r"a?a?a?a?a?a?a?a?a?a?aaaaaaaaaa", r".*a.*a.*a.*b", r".*\d+b",
    r"(?:a|ab)(?:c|bcd)(?:d*)$", r"\w*\w*\w*x",
])
def test_python_engine_only_where_it_is_linear(pattern: str) -> None:
    """Python's own `re` runs a pattern only when its backtracking is linear in the name: never on
    these (nested or chained ambiguous repeats, branches sharing a first character)."""
    from ftsc.matching import _linear_in_python, _parse

    alphabet = tuple("ab1dx.")
    parsed = _parse(pattern)
    assert not _linear_in_python(parsed.data, parsed.state.flags, alphabet, False)
    assert not _linear_in_python(parsed.data, parsed.state.flags, alphabet, True)


@pytest.mark.parametrize("pattern", [r"model\.layers\.\d+\..*", "model.layers.1.*", r".*norm.*", r".*bias",
                                     r"model\.layers\.(4|5)\..*", r"model.layers.11[0-3].mlp.*"])
def test_python_engine_on_hostile_names(pattern: str) -> None:
    """The FTS idioms Python runs itself, on names of 20,000 characters (the hang detector bounds it)."""
    names = [ch * 20000 + tail for ch in "a1._" for tail in ("", "b", ".weight")] + ["model.layers.110.mlp.w"]
    m = Matcher(pattern, "".join(names))
    assert m._python[1]
    assert accepts(m, names) == [re.match(pattern, n) is not None for n in names]
