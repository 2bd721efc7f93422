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


def _commented_config(yaml_text: str) -> dict[str, object]:
    """The YAML blocks of a converted file's header comments (prose lines left out)."""
    import re

    import yaml

    rows = [row[2:] for row in yaml_text.splitlines() if row.startswith("# ")]
    kept = [row for row in rows if row.startswith(" ") or re.match(r"[a-z_]+:( |$)", row)]
    return yaml.safe_load("\n".join(kept)) or {}


DSL_EXAMPLES = sorted((REPO / "examples").glob("*.ftsc"))


@pytest.mark.parametrize("path", DSL_EXAMPLES, ids=[p.name for p in DSL_EXAMPLES])
def test_yaml_header_is_a_working_config(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`.ftsc` -> FTS YAML: the commented callback arguments, early-stopping/checkpoint settings and
    trainer settings, pasted into a LightningCLI config naming the YAML, give the `.ftsc`'s options
    and sharding settings back."""
    import yaml

    from ftsc.convert import convert

    dsl = load_file(str(path))
    assert dsl.schedule is not None
    text, _ = convert(dsl.schedule, "fts-yaml", source=dsl.source)
    header = _commented_config(text)
    (tmp_path / "s.yaml").write_text(text)
    init_args = dict(header.get("init_args") or {}, ft_schedule="s.yaml")  # type: ignore[call-overload]
    trainer = dict(header.get("trainer") or {})  # type: ignore[call-overload]
    callbacks: list[dict[str, object]] = [{"class_path": "finetuning_scheduler.FinetuningScheduler",
                                           "init_args": init_args}]
    for key, cls in (("early_stopping", "FTSEarlyStopping"), ("checkpoint", "FTSCheckpoint")):
        if key in header:
            callbacks.append({"class_path": f"finetuning_scheduler.{cls}", "init_args": header[key]})
    trainer["callbacks"] = callbacks
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"trainer": trainer}, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    config = load_file("c.yaml")
    assert config.schedule is not None and [d for d in config.diagnostics if d.severity.value != "info"] == []

    def options(schedule: object) -> dict[str, object]:
        return {s.name: s.value.py() for s in schedule.options.settings}  # type: ignore[attr-defined]

    def sharding(schedule: object) -> tuple[object, ...]:
        out = []
        for block in (schedule.fsdp, schedule.fsdp2):  # type: ignore[attr-defined]
            out.append(None if block is None else {s.name: s.value.py() for s in block.settings})
        return tuple(out)

    assert options(config.schedule) == options(dsl.schedule)
    assert sharding(config.schedule) == sharding(dsl.schedule)
