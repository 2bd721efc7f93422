"""Codes as the registry states them: `rule --all` shows which rules need a model (and that flag is
true), each code has the one severity SPEC §4.1 gives it, and notes such as the quoted-key
conversion are FTS107 (info), never FTS102."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ftsc.check import check_text
from ftsc.cli import main
from ftsc.diagnostics import Severity
from ftsc.diagnostics.registry import RULES

from .docmodel import doc_graph

# SPEC §4.1 (contract): the severity of each listed code. FTS103 is the one code SPEC gives two
# (an error in `.ftsc`, a warning in FTS YAML); FTS9xx are errors.
SPEC_SEVERITY = {
    "FTS001": "error", "FTS101": "error", "FTS102": "error", "FTS201": "error", "FTS202": "error",
    "FTS203": "error", "FTS204": "info", "FTS205": "warning", "FTS206": "warning", "FTS301": "error",
    "FTS302": "warning", "FTS303": "error", "FTS304": "error", "FTS401": "error", "FTS407": "error",
    "FTS402": "error", "FTS403": "warning", "FTS404": "error", "FTS405": "warning", "FTS406": "error",
    "FTS901": "error",
}


def _ftsc_block(doc: str, section: str) -> str | None:
    m = re.search(rf"## {re.escape(section)}\n```ftsc\n(.*?)```", doc, re.DOTALL)
    return m.group(1) if m else None


def _yaml_block(doc: str, section: str) -> str | None:
    m = re.search(rf"## {re.escape(section)}\n```yaml\n(.*?)```", doc, re.DOTALL)
    return m.group(1) if m else None


@pytest.mark.parametrize("code", sorted(SPEC_SEVERITY))
def test_registry_severity_is_specs(code: str) -> None:
    assert RULES[code].severity.value == SPEC_SEVERITY[code]


def test_rule_all_shows_which_rules_need_a_model(capsys: pytest.CaptureFixture[str]) -> None:
    """The text listing's MODEL column and the JSON's `needs_model` are the registry's flags."""
    assert main(["rule", "--all"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split() == ["CODE", "NAME", "SEVERITY", "MODEL", "SUMMARY"]
    shown = {row.split()[0]: row.split()[3] for row in rows[1:]}
    assert shown == {code: "yes" if rule.needs_model else "-" for code, rule in RULES.items()}
    assert "yes" in shown.values() and "-" in shown.values()
    assert main(["rule", "--all", "--format", "json"]) == 0
    listed = {r["code"]: r["needs_model"] for r in json.loads(capsys.readouterr().out)}
    assert listed == {code: rule.needs_model for code, rule in RULES.items()}


@pytest.mark.parametrize("code", sorted(c for c, r in RULES.items() if r.needs_model))
def test_needs_model_is_true(code: str) -> None:
    """A rule marked as needing a model reports nothing without one, on the Example that triggers
    it with the doc model (so the mark is not decoration)."""
    bad = _ftsc_block(RULES[code].doc, "Example")
    if bad is None:
        pytest.skip("example is not a .ftsc file")
    if code not in {d.code for d in check_text(bad, "bad.ftsc", doc_graph())}:
        pytest.skip("the Example does not trigger with the doc model (test_rules_and_grammar reports that)")
    assert code not in {d.code for d in check_text(bad, "bad.ftsc")}


QUOTED_KEYS = "'0':\n  params:\n  - model.head.weight\n\"1\":\n  params:\n  - model.body.weight\n  lr: 1.0e-05\n"


def test_quoted_phase_key_is_a_note_not_an_invalid_value() -> None:
    diags = check_text(QUOTED_KEYS, "s.yaml")
    assert [(d.code, d.severity, d.start().line if d.start() else None) for d in diags] == [
        ("FTS107", Severity.INFO, 1), ("FTS107", Severity.INFO, 4)]


def test_ignoring_fts107_keeps_invalid_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--ignore FTS107` hides the notes only; FTS102 errors in the same file still fail the check."""
    path = tmp_path / "s.yaml"
    path.write_text(QUOTED_KEYS + "'x':\n  params:\n  - model.embed.weight\n")
    assert main(["check", "--ignore", "FTS107", "--format", "concise", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FTS107" not in out and "error[FTS102] phase key `x`" in out
    assert main(["check", "--ignore", "FTS102", "--format", "concise", str(path)]) == 0
    out = capsys.readouterr().out
    assert "FTS102" not in out and out.count("info[FTS107]") == 2


CORPUS = sorted((Path(__file__).resolve().parent / "ui").rglob("*.*"))


@pytest.mark.parametrize("code", ["FTS102", "FTS107"])
def test_one_severity_per_code_over_inputs(code: str) -> None:
    """Over the UI cases and a few hand-written YAML inputs, every FTS102 is an error and every
    FTS107 an info."""
    texts = [(p.name, p.read_text()) for p in CORPUS if p.suffix in (".ftsc", ".yaml")]
    texts += [("q.yaml", QUOTED_KEYS), ("b.yaml", "0:\n  params: x\n1.5:\n  params: [a]\n' 2 ':\n  lr: fast\n")]
    seen = [d for name, text in texts for d in check_text(text, name) if d.code == code]
    assert seen, f"no {code} in the inputs: the test would pass vacuously"
    assert {d.severity for d in seen} == {RULES[code].severity}


@pytest.mark.parametrize("code", sorted(c for c, r in RULES.items() if _yaml_block(r.doc, "Example") is not None
                                        and not r.needs_model and c not in ("FTS105",)))
def test_yaml_doc_examples_trigger_and_fix(code: str) -> None:
    """Rules documented with YAML: the Example triggers the rule; Use instead is clean."""
    doc = RULES[code].doc
    bad, good = _yaml_block(doc, "Example"), _yaml_block(doc, "Use instead")
    assert bad is not None and good is not None
    assert code in {d.code for d in check_text(bad, "bad.yaml")}
    assert [d for d in check_text(good, "good.yaml") if d.severity is not Severity.INFO or d.code == code] == []


HALF_SHARDED_TIE = 'phase 0 { thaw glob "**" }\nfsdp2 {\n    shard model.embed\n}\n'


def test_contract_codes_keep_their_severity_everywhere() -> None:
    """Over the UI cases, every rule's doc examples and a half-sharded tie (the doc model's
    `lm_head` shares `embed`'s weight), with and without the doc model, each code in SPEC §4.1
    is reported only at its SPEC severity (FTS103 excepted: SPEC gives it two)."""
    texts = [(p.name, p.read_text()) for p in CORPUS if p.suffix in (".ftsc", ".yaml")]
    texts += [(f"{code}-{section}.ftsc", block) for code, rule in RULES.items()
              for section in ("Example", "Use instead") if (block := _ftsc_block(rule.doc, section))]
    texts += [("tie.ftsc", HALF_SHARDED_TIE), ("q.yaml", QUOTED_KEYS)]
    seen: dict[str, set[str]] = {}
    for name, text in texts:
        for graph in (None, doc_graph()):
            for d in check_text(text, name, graph):
                seen.setdefault(d.code, set()).add(d.severity.value)
    assert len(set(seen) & set(SPEC_SEVERITY)) >= 15  # most contract codes were exercised
    wrong = {code: sorted(sevs) for code, sevs in seen.items()
             if code in SPEC_SEVERITY and sevs != {SPEC_SEVERITY[code]}}
    assert wrong == {}


def test_half_sharded_tie_is_an_error() -> None:
    (tie,) = [d for d in check_text(HALF_SHARDED_TIE, "tie.ftsc", doc_graph()) if d.code == "FTS404"]
    assert tie.severity is Severity.ERROR and tie.primary is not None and tie.primary.message == "half-sharded tie"
