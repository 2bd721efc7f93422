"""`ftsc convert` output checks with no finding its input did not have, over the corpus.

Inputs: the FTS YAML schedules and LightningCLI configs under tests/data/ (the FTS example
corpus, FSDP and FSDP2 cases), the bundled examples/ (.ftsc schedules, a LightningCLI config
naming one), and every YAML/.ftsc file under the folders listed in FTSC_EXTRA_CORPUS
(os.pathsep-separated; e.g. a checkout of FTS's `src/fts_examples`). YAML converts to `.ftsc`,
`.ftsc` to FTS YAML. Each input and its conversion are checked without a model and against a
model holding names that probe every pattern (tests/semantics.py); the conversion's codes must
be a sub-multiset of the input's. Inputs convert refuses (errors, a schedule file not found,
FTS501: not expressible) are counted, not compared.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from ftsc.cli import check_file, main
from ftsc.frontend import load_file
from ftsc.model.graph import ModelGraph

from .conftest import DATA, REPO
from .semantics import candidate_names


def _inputs() -> list[Path]:
    roots = [DATA / "fts_corpus", DATA / "fsdp", DATA / "fsdp2", DATA / "fsdp_seed", DATA / "fsdp2_seed",
             REPO / "examples"]
    roots += [Path(p) for p in os.environ.get("FTSC_EXTRA_CORPUS", "").split(os.pathsep) if p]
    found = {p.resolve() for root in roots for pattern in ("*.yaml", "*.yml", "*.ftsc") for p in root.rglob(pattern)}
    return sorted(found)


INPUTS = _inputs()


def _where(path: Path) -> tuple[Path, str]:
    """Where to run from, and the path to give: the repository root for its own files (the
    bundled LightningCLI example names its schedule from there), else the file's folder."""
    if REPO in path.parents:
        return REPO, str(path.relative_to(REPO))
    return path.parent, path.name


def _codes(path: str, graph: ModelGraph | None) -> Counter[str]:
    return Counter(d.code for d in check_file(load_file(path), graph))


@pytest.mark.parametrize("path", INPUTS, ids=[f"{p.parent.name}/{p.name}" for p in INPUTS])
def test_conversion_adds_no_finding(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    cwd, name = _where(path)
    monkeypatch.chdir(cwd)  # configs name their schedules relative to where training starts
    original = load_file(name)
    if original.unrecognized is not None:
        pytest.skip(f"not a schedule: {original.unrecognized}")
    target, suffix = ("fts-yaml", ".yaml") if path.suffix == ".ftsc" else ("ftsc", ".ftsc")
    out = tmp_path / f"converted{suffix}"
    status = main(["convert", name, "--to", target, "-o", str(out)])
    err = capsys.readouterr().err
    if status != 0:
        assert status in (1, 2) and "not converted" in err, err
        pytest.skip(f"convert refuses it: {err.splitlines()[-1]}")
    assert original.schedule is not None
    names = candidate_names(original.schedule)
    for graph in (None, ModelGraph.from_names(names) if names else None):
        before, after = _codes(name, graph), _codes(str(out), graph)
        new = after - before
        assert not new, f"{'with' if graph else 'without'} a model, the conversion adds {dict(new)} " \
                        f"(input: {dict(before)}, output: {dict(after)})"


def test_corpus_is_not_vacuous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Most inputs convert (the comparison above is not skipped away), FTS patterns included."""
    converted = 0
    for path in INPUTS:
        cwd, name = _where(path)
        monkeypatch.chdir(cwd)
        target = "fts-yaml" if path.suffix == ".ftsc" else "ftsc"
        if main(["convert", name, "--to", target, "-o", str(tmp_path / "out")]) == 0:
            converted += 1
    assert converted >= 20, converted


def test_pattern_conversion_that_would_add_a_finding_is_caught(tmp_path: Path) -> None:
    """The comparison catches what this test exists for: an FTS pattern written as the same
    regex (`/model.classifier.*/`) draws FTS205 that the FTS YAML input did not."""
    src = tmp_path / "s.yaml"
    src.write_text("0:\n  params:\n  - model.classifier.*\n")
    bad = tmp_path / "bad.ftsc"
    bad.write_text("phase 0 {\n    thaw /model.classifier.*/\n}\n")
    assert "FTS205" in (_codes(str(bad), None) - _codes(str(src), None))
