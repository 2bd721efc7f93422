"""Acceptance: the FTS corpus schedules check clean, convert to the DSL and back with the same meaning."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftsc.cli import check_file, main
from ftsc.convert import convert
from ftsc.diagnostics import Severity
from ftsc.frontend import InputKind, load_file, load_text
from ftsc.source import SourceFile

from .conftest import DATA
from .semantics import candidate_names, meaning

CORPUS = sorted((DATA / "fts_corpus").glob("*.yaml"))


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_schedule_checks_without_errors(path: Path) -> None:
    """Every corpus schedule loads as FTS YAML and has no error-level diagnostic."""
    loaded = load_file(str(path))
    assert loaded.kind is InputKind.FTS_YAML
    assert loaded.schedule is not None and loaded.schedule.phases
    errors = [d for d in check_file(loaded) if d.severity is Severity.ERROR]
    assert errors == []


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_round_trip_keeps_meaning(path: Path, tmp_path: Path) -> None:
    """YAML -> DSL -> YAML: the DSL passes fmt --check and all three mean the same."""
    original = load_file(str(path))
    assert original.schedule is not None
    dsl_text, diags = convert(original.schedule, "ftsc", source=original.source)
    assert diags == []
    dsl_file = tmp_path / "converted.ftsc"
    dsl_file.write_text(dsl_text)
    assert main(["fmt", "--check", str(dsl_file)]) == 0
    dsl = load_file(str(dsl_file))
    assert dsl.schedule is not None
    assert [d for d in dsl.diagnostics if d.severity is Severity.ERROR] == []
    yaml_text, diags = convert(dsl.schedule, "fts-yaml", source=dsl.source)
    assert diags == []
    back = load_text(SourceFile("back.yaml", yaml_text))
    assert back.schedule is not None and back.diagnostics == []

    names = candidate_names(original.schedule)
    assert meaning(dsl.schedule, names) == meaning(original.schedule, names)
    assert meaning(back.schedule, names) == meaning(original.schedule, names)
    # Each phase resolves to something on the probe names, so the comparison is not vacuous.
    assert all(p["params"] for p in meaning(original.schedule, names))
