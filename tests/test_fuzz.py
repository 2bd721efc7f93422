"""Property-based and mutation fuzzing of the front ends, the analysis and the CLI.

1. Grammar-driven programs (`hypothesis.extra.lark.from_lark`) over `grammar/ftsc.lark`:
   parse + build_ir never raise, analysis is deterministic, `fmt` round-trips and is
   idempotent, diagnostic spans stay inside the source.
2. A seeded mutation fuzzer over valid `.ftsc` programs and FTS YAML schedules (inlined
   below; no file outside `tests/` is read) that runs `ftsc check` / `ftsc fmt --check`
   in-process and asserts no crash, no internal error (FTS901) and exit status 0/1. Nothing is
   timed: a hang detector (`faulthandler`, one minute per command) aborts a run that hangs.
3. The same mutants against the doc model and against a hostile-names model (long runs of one
   character, the names `(a+)+$`-style patterns take exponential time on in Python's `re`).
"""

from __future__ import annotations

import faulthandler
import os
import random
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

import ftsc.cli
import ftsc.frontend
import ftsc.parse
from ftsc.build_ir import build_ir
from ftsc.diagnostics import Severity
from ftsc.fmt import format_schedule
from ftsc.source import SourceFile

pytestmark = pytest.mark.fuzzing

# --------------------------------------------------------------------------------------------
# 1. Grammar-driven property tests
# --------------------------------------------------------------------------------------------

_KEYWORDS = frozenset({
    "schedule", "phase", "thaw", "until", "or", "epoch", "step", "plateau", "reinit", "optimizer",
    "lr_scheduler", "glob", "fts", "fsdp", "fsdp2", "wrap", "ignore", "shard", "true", "false", "null",
})

_SEGMENT = st.sampled_from(["model", "layers", "weight", "bias", "lr", "mode", "head", "attn",
                            "torch", "optim", "SGD", "x", "_a1", "encoder", "patience", "name"])
_INDEX_SEGMENT = st.sampled_from(["0", "1", "11", "weight", "bias"])


@st.composite
def _path(draw: st.DrawFn) -> str:
    first = draw(_SEGMENT)
    rest = draw(st.lists(st.one_of(_SEGMENT, _INDEX_SEGMENT), max_size=3))
    text = ".".join([first, *rest])
    return text if text not in _KEYWORDS else text + "_x"


_STRING_BODY = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.*", max_size=12)
_REGEXES = st.sampled_from([
    r"/model\.[0-9]+\..*/", r"/.*bias/", r"/model\.layers\.(0|1)\..*/", r"/head\..*/",
    r"/a+/", r"/^model\.x$/", r"/[a-z_]+\.weight/", r"/model\.layers\.1[0-1]\.attn\..*/",
    r"/x\/y/", r"/(a|b)c?/",
])
_FLOATS = st.sampled_from(["0.001", "1e-05", "0.5", "2.0", "1e3", "3.14", ".5", "1.", "-0.1", "+2.5e-3"])


def _tok(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Every token is followed by a space, so adjacent tokens never fuse when lexed."""
    return strategy.map(lambda s: s + " ")


def _explicit() -> dict[str, st.SearchStrategy[str]]:
    explicit: dict[str, st.SearchStrategy[str]] = {}
    for term in ftsc.parse.parser(strict=True).terminals:
        if term.pattern.type == "str":
            explicit[term.name] = st.just(term.pattern.value + " ")
    explicit.update({
        "PATH": _tok(_path()),
        "STRING": _tok(_STRING_BODY.map(lambda s: f'"{s}"')),
        "REGEX": _tok(_REGEXES),
        "INT": _tok(st.integers(min_value=0, max_value=12).map(str)),
        "FLOAT": _tok(_FLOATS),
        "REINIT_TARGET": _tok(st.sampled_from(["optimizer", "lr_scheduler"])),
        "LAYERS": _tok(st.sampled_from(["layers.{i}", "model.encoder.layer.{i}", "{i}", "blocks.{i}.attn", "h_{i}"])),
        "COMMENT": st.sampled_from(["# note\n", "#\n", "# ftsc: ignore[FTS210]\n"]),
        "WS": st.sampled_from([" ", "\n", "\t", "\n\n"]),
    })
    return explicit


PROGRAMS = from_lark(ftsc.parse.parser(strict=True), start="start", explicit=_explicit())

_PROPS = settings(
    max_examples=int(os.environ.get("FTSC_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def _load(text: str) -> ftsc.frontend.Loaded:
    return ftsc.frontend.load_text(SourceFile("x.ftsc", text))


def _diag_key(d) -> tuple:
    span = d.primary.span if d.primary else None
    return (d.code, d.severity, d.message, span.start if span else None, span.end if span else None)


@_PROPS
@given(PROGRAMS)
def test_generated_programs_parse_and_build(text: str) -> None:
    source = SourceFile("x.ftsc", text)
    result = ftsc.parse.parse(source)
    assert result.tree is not None, [d.message for d in result.diagnostics]
    assert result.diagnostics == []
    schedule, diags = build_ir(result.tree, source)
    assert schedule is not None
    assert all(d.code != "FTS901" for d in diags)


@_PROPS
@given(PROGRAMS)
def test_analysis_is_deterministic_and_spans_in_source(text: str) -> None:
    first = ftsc.cli.check_file(_load(text))
    second = ftsc.cli.check_file(_load(text))
    assert [_diag_key(d) for d in first] == [_diag_key(d) for d in second]
    assert all(d.code != "FTS901" for d in first), [d.message for d in first]
    for d in first:
        if d.primary is not None and d.file is not None and d.file.text == text:
            span = d.primary.span
            assert 0 <= span.start <= span.end <= len(text), (d.code, span, len(text))


@_PROPS
@given(PROGRAMS)
def test_fmt_round_trips_and_is_idempotent(text: str) -> None:
    loaded = _load(text)
    assert loaded.schedule is not None
    if any(d.severity is Severity.ERROR for d in loaded.diagnostics):
        return
    # Without comments: the IR alone.
    plain = format_schedule(loaded.schedule)
    again = _load(plain)
    assert not any(d.severity is Severity.ERROR for d in again.diagnostics), plain
    assert again.schedule == loaded.schedule, plain
    assert format_schedule(again.schedule) == plain
    # With comments re-attached from the source.
    formatted = format_schedule(loaded.schedule, loaded.comments, loaded.source)
    reloaded = _load(formatted)
    assert reloaded.schedule == loaded.schedule, formatted
    assert format_schedule(reloaded.schedule, reloaded.comments, reloaded.source) == formatted


# --------------------------------------------------------------------------------------------
# 2. Mutation fuzzing through the CLI
# --------------------------------------------------------------------------------------------

DSL_SEEDS = [
    """\
# DeBERTa-style schedule
schedule {
    max_depth = 2
    restore_best = true
}

phase 0 "head" {
    thaw model.classifier.bias, model.classifier.weight
    thaw /model\\.pooler\\.dense\\..*/
    until epoch 1
}

phase 1 {
    thaw glob "model.deberta.encoder.layer.11.*"
    lr = 1e-05
    until epoch 2 or plateau(patience = 3, mode = min)
}

phase 2 {
    thaw fts "model.deberta.encoder.layer.([0-9]|10).(output|attention|intermediate).*"
    reinit optimizer torch.optim.SGD(lr = 0.1, momentum = 0.9)
}
""",
    """\
phase 0 { thaw a.b }
phase 1 { thaw "c.d", /e\\..*/ until step 100 }
fsdp {
    wrap model.layers.0
    ignore model.embed
}
""",
    """\
schedule {
    reinit lr_scheduler torch.optim.lr_scheduler.StepLR(step_size = 1, gamma = 0.7) {
        pl_lrs_cfg = {interval = epoch, frequency = 1}
        init_pg_lrs = [2.0e-06, 2.0e-06]
    }
}
phase 0 { thaw model.output.weight, model.norm.weight until epoch 1 }
phase 1 { thaw glob "model.layers.*.attention.*" }
fsdp2 {
    shard model.layers.0(reshard_after_forward = true)
    shard /model\\.layers\\.[1-3]/
}
""",
    "phase 0 {}\n",
    "",
]

YAML_SEEDS = [
    # config_RteBoolqModule_ft_schedule_deberta_base.yaml
    """\
0:
  params:
  - model.classifier.bias
  - model.classifier.weight
  - model.pooler.dense.bias
  - model.pooler.dense.weight
  - model.deberta.encoder.LayerNorm.bias
  - model.deberta.encoder.LayerNorm.weight
  - model.deberta.encoder.rel_embeddings.weight
  - model.deberta.encoder.layer.{0,11}.(output|attention|intermediate).*
1:
  params:
  - model.deberta.embeddings.LayerNorm.bias
  - model.deberta.embeddings.LayerNorm.weight
2:
  params:
  - model.deberta.embeddings.word_embeddings.weight
""",
    # config_RteBoolqModule_ft_schedule_deberta_base_fsdp.yaml
    """\
0:
  params:
  - model.classifier.*
  max_transition_epoch: 1
1:
  params:
  - model.pooler.dense.*
  - model.deberta.encoder.layer.11.(output|attention|intermediate).*
  max_transition_epoch: 2
2:
  params:
  - model.deberta.encoder.layer.([0-9]|10).(output|attention|intermediate).*
  - model.deberta.encoder.LayerNorm.bias
  - model.deberta.encoder.LayerNorm.weight
  - model.deberta.encoder.rel_embeddings.weight
  # excluding these parameters from the schedule to enhance the debugging demonstration
  #- model.deberta.embeddings.LayerNorm.bias
  #- model.deberta.embeddings.LayerNorm.weight
  #- model.deberta.embeddings.word_embeddings.weight
""",
    # model_parallel_config_defaults_llama_ft_schedule.yaml
    """\
0:
  params:
  - model.output.weight
  - model.norm.*
  max_transition_epoch: 1
1:
  params:
  - model.layers.3.(feed_forward|ffn_norm|attention.w.*|attention_norm).*
  max_transition_epoch: 2
2:
  params:
  - model.layers.[0-2].(feed_forward|ffn_norm|attention.w.*|attention_norm).*
  - model.tok_embeddings.weight
""",
]

_EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
if _EXAMPLES.is_dir():
    DSL_SEEDS += [p.read_text(encoding="utf-8") for p in sorted(_EXAMPLES.glob("*.ftsc"))]

_PATHOLOGICAL_REGEXES = ["/(a+)+$/", "/(a|aa)+$/", "/(.*a){25}/", "/(?=a)(a+)+$/", "/a{99999999999}/", "/((((((((((a))))))))))/", "/((a)/", "/a)/",
                         "/[a-/", "/(?P<x>a)(?P=y)/", "/\\/", "/*/", "/(?<!a+)b/", "/a{5,3}/"]
_HUGE = ["1" + "0" * 5000, "1e999", "-1e999", "1" + "9" * 5000 + ".5", "-" + "9" * 5000, "1e-999",
         "0." + "0" * 5000 + "1"]
_DSL_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|/(?:[^/\\\n]|\\.)+/|#[^\n]*|[A-Za-z0-9_.+-]+|\S')
_YAML_TOKEN = re.compile(r"[^\s:\-\[\]{},]+|\S")

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
PHASE_BOMB = """\
0: &p
  params: &x [a, a, a, a, a, a, a, a, a, a]
  extra: &y [*x, *x, *x, *x, *x, *x, *x, *x, *x, *x]
  more: &z [*y, *y, *y, *y, *y, *y, *y, *y, *y, *y]
  most: [*z, *z, *z, *z, *z, *z, *z, *z, *z, *z]
1: *p
2: *p
"""
RECURSIVE_ANCHORS = [
    "&a [*a]\n",
    "0: &a\n  params: *a\n",
    "&a {x: *a}\n",
    "0:\n  params: &l [model.a, *l]\n",
    "0: &m\n  <<: *m\n  params: [a]\n",
]
DUPLICATE_KEYS = [
    "0:\n  params: [a]\n0:\n  params: [b]\n",
    "0:\n  params: [a]\n  params: [b]\n  max_transition_epoch: 1\n  max_transition_epoch: 2\n",
    "0: {params: [a], params: [a]}\n",
]
YAML_EXTRA = [
    "0:\n  params: [/(a+)+$/]\n",
    "0:\n  params: ['(a+)+$', 'a{99999999999}', '((((((((((a))))))))))', '((a)']\n",
    "0:\n  params: [a]\n  max_transition_epoch: " + "1" * 5000 + "\n",
    "0:\n  params: [a]\n  max_transition_epoch: 1e999\n",
    "0:\n  params: [a]\n1" + "0" * 400 + ":\n  params: [b]\n",
    "0:\n  params: [a]\n'100000000':\n  params: [b]\n",
    "0:\n  params: [a\x01]\n",  # was FTS901: PyYAML's reader rejects control characters up front
    "0:\n  params: [a]\n  lr: .inf\n  max_transition_epoch: .nan\n",
    "[" * 5000 + "]" * 5000 + "\n",
    "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "- " * 3000 + "x\n",
    "!!python/object/apply:os.system ['echo hi']\n",
    "0: !!set {a, b}\n",
    "? [a, b]\n: 1\n",
    "0:\n  params: !!binary aGVsbG8=\n",
    "--- 0\n--- 1\n",
    "%YAML 1.1\n---\n0: {params: [a]}\n",
    "0:\n  params: [a]\n  new_optimizer: {optimizer_init: {class_path: torch.optim.SGD, init_args: {lr: 1e999}}}\n",
    "0:\n  params:\n    - " + "x" * 100000 + "\n",
    "\ufeff0:\n  params: [a]\n",
]
DSL_EXTRA = [
    "phase 0 { thaw /(a+)+$/ }\n",
    "phase 0 { thaw /a{99999999999}/ }\n",
    "phase 0 { thaw /((((((((((a))))))))))/ }\n",
    "phase 0 { thaw /((a)/ } phase 1 { thaw /a)/ }\n",
    "phase 0 { thaw glob \"{{{{a\" } phase 1 { thaw glob \"[[[\" } phase 2 { thaw fts \"(((\" }\n",
    "phase " + "1" * 5000 + " { thaw a }\n",
    "phase 0 { thaw a until epoch " + "1" * 5000 + " }\n",
    "phase 0 { thaw a } phase 1" + "0" * 400 + " { thaw b }\n",  # was a hang in FTS201
    "phase 0 { thaw a } phase 100000000 { thaw b } phase 5 { thaw c }\n",
    "phase 0 { thaw a until step -" + "1" * 5000 + " }\n",
    "phase 0 { thaw a lr = 1e999 }\n",
    "phase 0 { thaw a lr = -1e999 x = " + "9" * 5000 + " }\n",
    "schedule { x = " + "[" * 5000 + "]" * 5000 + " }\n",
    "schedule { x = " + "[" * 400 + "]" * 400 + " }\n",
    "schedule { x = " + "[" * 900 + "]" * 900 + " }\n",
    "schedule { x = " + "{a = " * 400 + "1" + "}" * 400 + " }\n",
    "schedule { x = " + "{a = " * 3000 + "1" + "}" * 3000 + " }\n",
    "phase 0 { thaw a }" * 2000 + "\n",
    "phase 0 { thaw " + ", ".join(f"m.l{i}" for i in range(3000)) + " }\n",
    "phase 0 { thaw a\x00 }\n",
    "phase 0 { thaw \"a\\\" }\n",
    "phase 0 { thaw \"\" } phase 1 { thaw glob \"\" } phase 2 { thaw fts \"\" }\n",
    "# ftsc: ignore[FTS999]\n# ftsc: ignore-file[\nphase 0 { thaw a } # ftsc: ignore[\n",
    "phase 0 { thaw a } # ftsc: ignore[FTS210, FTS2, fts-nonsense, ]\n",
    "\ufeffphase 0 { thaw a }\n",
    "phase 0 { thaw a }\r\nphase 1 {\r\n thaw b\r\n}\r\n",
    "phase 0 { thaw \u00e9\u00e8 }\n",
    "phase 0 \"\u2028\" { thaw a }\n",
]


def _insert_bytes(rng: random.Random, data: bytes, kind: str) -> bytes:
    for _ in range(rng.randint(1, 4)):
        pos = rng.randint(0, len(data))
        choice = rng.random()
        if choice < 0.5:
            chunk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
        else:
            chunk = rng.choice([b"{", b"}", b"(", b")", b"[", b"]", b",", b"=", b"\"", b"/", b"#", b"\n",
                                b"\\", b":", b"-", b" ", b"&a", b"*a", b"!!", b"\x00", b"\xff\xfe", b"\xc3",
                                b"\xed\xa0\x80", b"\t"])
        data = data[:pos] + chunk + data[pos:]
    return data


def _tokens(text: str, kind: str) -> list[str]:
    pattern = _YAML_TOKEN if kind == "yaml" else _DSL_TOKEN
    return pattern.findall(text)


def _token_mutation(rng: random.Random, text: str, kind: str) -> str:
    toks = _tokens(text, kind)
    if not toks:
        return text
    sep = rng.choice([" ", "\n"]) if kind == "ftsc" else None
    op = rng.choice(["delete", "duplicate", "swap"])
    i = rng.randrange(len(toks))
    if op == "delete":
        del toks[i]
    elif op == "duplicate":
        toks.insert(i, toks[i])
    else:
        j = rng.randrange(len(toks))
        toks[i], toks[j] = toks[j], toks[i]
    if sep is not None:
        return sep.join(toks)
    # YAML: mutate in place to keep the layout (indentation) mostly intact.
    spans = [m.span() for m in _YAML_TOKEN.finditer(text)]
    s, e = spans[i]
    if op == "delete":
        return text[:s] + text[e:]
    if op == "duplicate":
        return text[:e] + " " + text[s:e] + text[e:]
    j = rng.randrange(len(spans))
    (a, b), (c, d) = sorted([spans[i], spans[j]])
    if (a, b) == (c, d):
        return text
    return text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]


def _splice(rng: random.Random, text: str, piece: str) -> str:
    pos = rng.randint(0, len(text))
    return text[:pos] + piece + text[pos:]


def _mutate(rng: random.Random, seed: str, kind: str) -> bytes:
    text = seed
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(9)
        if op == 0:
            return _insert_bytes(rng, text.encode("utf-8"), kind)
        if op == 1:
            text = text[: rng.randint(0, len(text))]
        elif op in (2, 3):
            text = _token_mutation(rng, text, kind)
        elif op == 4:
            piece = rng.choice(_PATHOLOGICAL_REGEXES)
            if kind == "yaml":
                piece = rng.choice([piece, f"'{piece[1:-1]}'", f" [{piece[1:-1]}]"])
            text = _splice(rng, text, piece)
        elif op == 5:
            text = _splice(rng, text, " " + rng.choice(_HUGE) + " ")
        elif op == 6:
            depth = rng.choice([50, 500, 999, 5000])
            opener, closer = rng.choice([("[", "]"), ("{", "}"), ("(", ")"), ("{a = ", "}")])
            nest = opener * depth + (closer * depth if rng.random() < 0.7 else "")
            text = _splice(rng, text, nest)
        elif op == 7:
            text = _splice(rng, text, rng.choice(["\x00", "\ufeff", "\u2028", "\r", "\x0b", "\U0001f600"]))
        else:
            if kind == "yaml":
                text = rng.choice([BILLION_LAUGHS, PHASE_BOMB, *RECURSIVE_ANCHORS, *DUPLICATE_KEYS]) \
                    if rng.random() < 0.3 else _splice(rng, text, rng.choice(["&a ", "*a", "*zz", "<<: *a\n",
                                                                             "!!map ", "? ", "|\n"]))
            else:
                text = _splice(rng, text, rng.choice(["phase", "thaw", "until", "reinit", "{", "}", ",",
                                                      "glob", "fts", "=", "schedule { }", "# c\n", "\"",
                                                      "/", "\\"]))
    return text.encode("utf-8", errors="surrogatepass")


HANG_S = 60  # a hang detector, far above any normal run on a loaded machine; not a speed check


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    faulthandler.dump_traceback_later(HANG_S, exit=True, file=sys.__stderr__)
    try:
        status = ftsc.cli.main(argv)
    finally:
        faulthandler.cancel_dump_traceback_later()
    out, err = capsys.readouterr()
    return status, out, err


def _check_input(tmp_path: Path, name: str, data: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    commands = [["check", str(path)]]
    if name.endswith(".ftsc"):
        commands.append(["fmt", "--check", str(path)])
    for argv in commands:
        status, out, err = _run_cli(argv, capsys)
        context = f"{argv[0]} on {data[:200]!r}... ({len(data)} bytes)"
        assert status in (0, 1), f"{context}: exit {status}\n{err}"
        assert "Traceback" not in err, context
        assert "FTS901" not in err and "FTS901" not in out, f"{context}\n{out}\n{err}"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory so that no `[tool.ftsc]` table changes the results."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("text", DSL_SEEDS + DSL_EXTRA, ids=lambda t: repr(t[:24]))
def test_fixed_dsl_inputs(text: str, in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _check_input(in_tmp, "s.ftsc", text.encode("utf-8"), capsys)


@pytest.mark.parametrize("text", YAML_SEEDS + YAML_EXTRA + [BILLION_LAUGHS, PHASE_BOMB]
                         + RECURSIVE_ANCHORS + DUPLICATE_KEYS, ids=lambda t: repr(t[:24]))
def test_fixed_yaml_inputs(text: str, in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _check_input(in_tmp, "s_ft_schedule.yaml", text.encode("utf-8"), capsys)


def test_seeds_are_valid(in_tmp: Path) -> None:
    for i, text in enumerate(DSL_SEEDS):
        loaded = _load(text)
        assert loaded.schedule is not None and not [d for d in loaded.diagnostics
                                                    if d.severity is Severity.ERROR], (i, loaded.diagnostics)
    for text in YAML_SEEDS:
        loaded = ftsc.frontend.load_text(SourceFile("s.yaml", text))
        assert loaded.schedule is not None, loaded.diagnostics


def test_invalid_utf8(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("s.ftsc", "s.yaml"):
        for data in (b"\xff\xfe\x00p", b"phase 0 { thaw a\xc3 }", b"\xed\xa0\x80", b"0:\n  params: [\x80]\n"):
            _check_input(in_tmp, name, data, capsys)


N_MUTANTS = 60


@pytest.mark.parametrize("batch", range(4))
def test_mutated_dsl(batch: int, in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(1000 + batch)
    for n in range(N_MUTANTS):
        seed = rng.choice(DSL_SEEDS + DSL_EXTRA[:5])
        _check_input(in_tmp, f"m{n}.ftsc", _mutate(rng, seed, "ftsc"), capsys)


@pytest.mark.parametrize("batch", range(4))
def test_mutated_yaml(batch: int, in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(2000 + batch)
    for n in range(N_MUTANTS):
        seed = rng.choice(YAML_SEEDS)
        _check_input(in_tmp, f"m{n}_ft_schedule.yaml", _mutate(rng, seed, "yaml"), capsys)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.sampled_from(DSL_SEEDS), data=st.binary(max_size=16), pos=st.floats(0, 1),
       trunc=st.floats(0, 1))
def test_hypothesis_byte_mutations(seed: str, data: bytes, pos: float, trunc: float, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    raw = seed.encode("utf-8")
    raw = raw[: int(len(raw) * (1 - trunc * 0.5))]
    cut = int(len(raw) * pos)
    _check_input(tmp_path, "h.ftsc", raw[:cut] + data + raw[cut:], capsys)


# --- model-aware fuzzing: the same mutants checked against a manifest, and mutated manifests --------


def _doc_manifest(tmp_path: Path) -> str:
    from .docmodel import doc_graph

    path = tmp_path / "model.json"
    path.write_text(doc_graph().manifest.dumps())
    return str(path)


def _check_with_model(tmp_path: Path, name: str, data: bytes, manifest: str,
                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    for argv in (["check", str(path), "--manifest", manifest], ["compile", str(path), "--manifest", manifest]):
        status, out, err = _run_cli(argv, capsys)
        context = f"{argv[0]} --manifest on {data[:200]!r}... ({len(data)} bytes)"
        assert status in (0, 1), f"{context}: exit {status}\n{err}"
        assert "Traceback" not in err and "FTS901" not in out + err, f"{context}\n{out}\n{err}"


@pytest.mark.parametrize("kind", ["ftsc", "yaml"])
def test_mutants_against_a_model(kind: str, in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _doc_manifest(in_tmp)
    rng = random.Random(3000 + len(kind))
    seeds = DSL_SEEDS + DSL_EXTRA[:5] if kind == "ftsc" else YAML_SEEDS
    for n in range(N_MUTANTS):
        name = f"m{n}.ftsc" if kind == "ftsc" else f"m{n}_ft_schedule.yaml"
        _check_with_model(in_tmp, name, _mutate(rng, rng.choice(seeds), kind), manifest, capsys)
    for n, seed in enumerate(seeds):  # the seeds themselves, unmutated
        _check_with_model(in_tmp, f"s{n}.{'ftsc' if kind == 'ftsc' else 'yaml'}", seed.encode(), manifest, capsys)


def test_mutated_manifests_exit_0_1_or_2(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A damaged manifest is exit status 2 with a message naming the problem, never a traceback."""
    good = Path(_doc_manifest(in_tmp)).read_text()
    sched = in_tmp / "s.ftsc"
    sched.write_text('phase 0 { thaw glob "model.head.*" }\nfsdp { wrap model.head }\n')
    rng = random.Random(4000)
    pieces = ['"name"', '"shape"', "[", "]", "{", "}", ",", ":", "null", "-1", "true", '"x"', "1e999", '""']
    for n in range(N_MUTANTS):
        text = good
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(text))
            op = rng.randrange(3)
            if op == 0:
                text = text[:i] + text[i + rng.randint(1, 40):]
            elif op == 1:
                text = text[:i] + rng.choice(pieces) + text[i:]
            else:
                text = text.replace(rng.choice(pieces), rng.choice(pieces), 1)
        path = in_tmp / f"m{n}.json"
        path.write_text(text)
        status, out, err = _run_cli(["check", str(sched), "--manifest", str(path)], capsys)
        assert status in (0, 1, 2), f"exit {status} for {text[:300]!r}"
        assert "Traceback" not in err and "FTS901" not in out + err, f"{text[:300]!r}\n{err}"
        if status == 2:
            assert "ftsc: error:" in err


# --- a hostile-names model: long runs of one character, against catastrophic patterns ----------

HOSTILE_PATTERNS = ["(a+)+$", "(a|aa)+$", "(.*a){25}", "(a*)*b", r"(\w+\.?)+$", "(?=a)(a|aa)+$", "((a+)+)+!",
                    "(.*.*)*=", r"(\d+)+x", "(a{1,2})+$"]


def _hostile_manifest(tmp_path: Path) -> str:
    """A model whose parameter and module names contain runs of thousands of one character."""
    names = ["a" * 3000, "a" * 3000 + "b", "a" * 64 + "." + "a" * 2000 + ".weight", "1" * 2000 + ".w",
             "x." + "_" * 1000 + ".y", "model.layers.1.weight", "model.layers.10.weight", "aa.b.c.d." * 20 + "w"]
    from ftsc.model.graph import ModelGraph

    path = tmp_path / "hostile.json"
    path.write_text(ModelGraph.from_names({n: (2,) for n in names}).manifest.dumps())
    return str(path)


def test_hostile_names_manifest_is_valid(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _hostile_manifest(in_tmp)
    sched = in_tmp / "s.ftsc"
    sched.write_text('phase 0 {\n    thaw /a+/\n}\n')
    status, out, err = _run_cli(["check", str(sched), "--manifest", manifest], capsys)
    assert status in (0, 1) and "ftsc: error" not in err, err
    assert "FTS202" not in out + err  # the names are really there: `/a+/` matches one of them


@pytest.mark.parametrize("pattern", HOSTILE_PATTERNS)
def test_hostile_patterns_against_hostile_names(pattern: str, in_tmp: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """check, compile, explain and init return (bounded matching); FTS106 flags the exponential ones."""
    manifest = _hostile_manifest(in_tmp)
    dsl = in_tmp / "h.ftsc"
    dsl.write_text(f'phase 0 {{\n    thaw fts "{pattern}"\n}}\nphase 1 {{\n    thaw /{pattern}/\n}}\n')
    yaml_path = in_tmp / "h_ft_schedule.yaml"
    yaml_path.write_text(f"0:\n  params:\n  - '{pattern}'\n")
    for argv in (["check", str(dsl), "--manifest", manifest], ["check", str(yaml_path), "--manifest", manifest],
                 ["compile", str(dsl), "--manifest", manifest], ["explain", str(yaml_path), "--manifest", manifest],
                 ["init", "--manifest", manifest]):
        status, out, err = _run_cli(argv, capsys)
        assert status in (0, 1), f"{argv[0]}: exit {status}\n{err}"
        assert "Traceback" not in err and "FTS901" not in out + err, f"{argv}\n{out}\n{err}"
    status, out, err = _run_cli(["check", str(yaml_path)], capsys)
    from ftsc.backtracking import exponential_backtracking

    assert ("FTS106" in out + err) == exponential_backtracking(pattern)


def test_mutants_against_hostile_names(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _hostile_manifest(in_tmp)
    rng = random.Random(5000)
    for n in range(N_MUTANTS):
        kind = rng.choice(["ftsc", "yaml"])
        seeds = DSL_SEEDS if kind == "ftsc" else YAML_SEEDS
        text = _mutate(rng, rng.choice(seeds), kind).decode("utf-8", errors="replace")
        piece = rng.choice(HOSTILE_PATTERNS)
        text = _splice(rng, text, f" fts \"{piece}\" " if kind == "ftsc" else f"\n  - '{piece}'\n")
        name = f"h{n}.ftsc" if kind == "ftsc" else f"h{n}_ft_schedule.yaml"
        _check_with_model(in_tmp, name, text.encode("utf-8", errors="surrogatepass"), manifest, capsys)
