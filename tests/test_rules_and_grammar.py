"""Grammar strictness, transformer coverage, IR shape, per-rule case tables and rule docs."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from lark import Lark

from ftsc import check_text, ir
from ftsc.build_ir import ToIR
from ftsc.cli import check_file
from ftsc.diagnostics import Severity
from ftsc.diagnostics.registry import RULES
from ftsc.frontend import load_text
from ftsc.parse import grammar_text, parse, parser
from ftsc.source import SourceFile

from .conftest import REPO
from .docmodel import MIXED_DTYPE_RULES, doc_graph, mixed_dtype_graph


def test_grammar_is_conflict_free_in_strict_mode() -> None:
    """Shift/reduce conflicts and terminal collisions fail here."""
    Lark(grammar_text(), parser="lalr", strict=True, propagate_positions=True)


def test_every_rule_has_an_ir_builder() -> None:
    """Each grammar rule (or alias) has a ToIR method, so nothing passes through silently."""
    names = {r.alias or r.origin.name for r in parser().rules if not (r.options.expand1 and not r.alias)}
    names = {str(n) for n in names if not str(n).startswith("_") and not str(n).startswith("__")}
    missing = sorted(n for n in names if not hasattr(ToIR, n))
    assert missing == []


def test_ir_nodes_are_frozen_slotted_kw_only_with_uncompared_spans() -> None:
    """Every IR dataclass is frozen, slotted, keyword-only; spans are left out of equality."""
    classes = [c for c in vars(ir).values() if isinstance(c, type) and dataclasses.is_dataclass(c)
               and c.__module__ == "ftsc.ir"]
    assert len(classes) >= 10
    for cls in classes:
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        assert params.frozen and hasattr(cls, "__slots__"), cls
        for f in dataclasses.fields(cls):
            assert f.kw_only, (cls, f.name)
            if f.name.endswith("span"):
                assert not f.compare, (cls, f.name)


def test_ir_dump_load_round_trip() -> None:
    """ir.load(ir.dump(x)) == x for a schedule using every construct."""
    text = (REPO / "tests" / "ui" / "schedule" / "everything.ftsc").read_text()
    tree = parse(SourceFile("e.ftsc", text)).tree
    from ftsc.build_ir import build_ir

    schedule, _ = build_ir(tree, SourceFile("e.ftsc", text))
    assert ir.load(ir.dump(schedule)) == schedule


CASES = [
    ("phase 0 { thaw a }", []),
    ("phase 1 { thaw a }", [("FTS201", 1, 7)]),
    ("phase 0 { thaw a } phase 0 { thaw b }", [("FTS201", 1, 26)]),
    ("phase 0 { thaw /a(/ }", [("FTS101", 1, 16)]),
    ('phase 0 { thaw glob "a.[b" }', []),
    ("phase 0 { thaw a } phase 1 { thaw b lr = -1 }", [("FTS102", 1, 42)]),
    ('phase 0 { thaw a } phase 1 { thaw b lr = "x" }', [("FTS102", 1, 42)]),
    ("phase 0 { thaw a max_transition_epoch = 2 }", [("FTS103", 1, 18)]),
    ("schedule { max_depth = 1 max_depth = 2 } phase 0 { thaw a }", [("FTS104", 1, 26)]),
    ('phase 0 { thaw fts "m.l.{0,11}.x" }', [("FTS205", 1, 24)]),
    ("phase 0 { thaw /m.layer.1/ }", [("FTS205", 1, 18)]),
    ("phase 0 { thaw /m\\.layer\\.1/ }", []),
    ("phase 0 { thaw a until epoch 3 } phase 1 { thaw b until epoch 2 } phase 2 { thaw c }", [("FTS206", 1, 57)]),
    ("schedule { max_depth = 0 } phase 0 { thaw a } phase 1 { thaw b }", [("FTS206", 1, 12)]),
    ("schedule { max_epochs = 2 } phase 0 { thaw a until epoch 5 } phase 1 { thaw b }", [("FTS206", 1, 52)]),
    ("phase 0 { thaw a lr = 0.1 }", [("FTS207", 1, 18)]),
    ("phase 0 { thaw a reinit optimizer torch.optim.SGD }", [("FTS208", 1, 18)]),
    ("schedule { epoch_transitions_only = true } phase 0 { thaw a } phase 1 { thaw b }", [("FTS209", 1, 50)]),
    ("phase 0 { thaw a } phase 1 { until epoch 2 }", [("FTS206", 1, 36), ("FTS210", 1, 26)]),
    ("phase 0 { thaw a } phase 1 { thaw b reinit optimizer my.Opt }", [("FTS211", 1, 37)]),
    ("schedule { allow_untested = true } phase 0 { thaw a } phase 1 { thaw b reinit optimizer my.Opt }", []),
    ("fsdp2 { shard a(act_ckpt = \"composable\") }", [("FTS406", 1, 28)]),
    ("fsdp2 { shard a(act_ckpt = [composable]) }", []),
    ("fsdp { use_orig_params = 1 }", [("FTS102", 1, 26)]),
]


@pytest.mark.parametrize("src, expected", CASES, ids=[c[0][:60] for c in CASES])
def test_rule_cases(src: str, expected: list[tuple[str, int, int]]) -> None:
    """Each case reports exactly the listed (code, line, column) tuples (FTS210 only where listed)."""
    got = sorted(d.check_tuple() for d in check_text(src))
    assert got == sorted(expected)


def _doc_block(doc: str, section: str) -> str | None:
    m = re.search(rf"## {re.escape(section)}\n```ftsc\n(.*?)```", doc, re.DOTALL)
    return m.group(1) if m else None


@pytest.mark.parametrize("code", sorted(RULES))
def test_rule_docs_have_sections(code: str) -> None:
    """Every rule documents what it does, why, an example and the fix."""
    doc = RULES[code].doc
    for section in ("## What it does", "## Why is this bad?", "## Example", "## Use instead"):
        assert section in doc, (code, section)


@pytest.mark.parametrize("code", sorted(c for c, r in RULES.items() if not r.needs_model and c not in ("FTS501", "FTS901")))
def test_rule_doc_examples_trigger_and_fix(code: str) -> None:
    """The Example triggers the rule; Use instead triggers no error or warning."""
    doc = RULES[code].doc
    bad, good = _doc_block(doc, "Example"), _doc_block(doc, "Use instead")
    if bad is None:  # rules documented with a YAML example (FTS105) are covered in test_cli
        pytest.skip("example is not a .ftsc file")
    assert code in {d.code for d in check_text(bad)}
    if good is not None:
        noisy = [d for d in check_text(good) if d.severity is not Severity.INFO]
        assert noisy == []


@pytest.mark.parametrize("code", sorted(c for c, r in RULES.items() if r.needs_model))
def test_model_rule_doc_examples_trigger_and_fix(code: str) -> None:
    """Model-aware rules: checked against the doc model, the Example triggers, Use instead is clean."""
    doc = RULES[code].doc
    bad, good = _doc_block(doc, "Example"), _doc_block(doc, "Use instead")
    assert bad is not None and good is not None
    graph = mixed_dtype_graph() if code in MIXED_DTYPE_RULES else doc_graph()
    assert code in {d.code for d in check_file(load_text(SourceFile("bad.ftsc", bad)), graph)}
    noisy = [d for d in check_file(load_text(SourceFile("good.ftsc", good)), graph) if d.severity is not Severity.INFO]
    assert noisy == []


@pytest.mark.slow
def test_wheel_ships_the_grammar(tmp_path: Path) -> None:
    """A built wheel contains ftsc/_grammar/ftsc.lark."""
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                           str(REPO)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ftsc/_grammar/ftsc.lark" in names and "ftsc/py.typed" in names
