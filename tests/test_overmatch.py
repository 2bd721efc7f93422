"""FTS205 on prefix over-matches (`layers.1.*` also thaws `layers.10.*`) and FTS106 (catastrophic
backtracking).

FTS205's oracle is independent of ftsc's matcher: Python's `re.match` gives what FTS thaws, and
a name's dotted prefix (`str.startswith`) gives what the pattern looks like it names; the extra
parameters reported must be exactly the difference.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ftsc.analyze.rules.fts106_catastrophic_backtracking import check as fts106_check
from ftsc.backtracking import exponential_backtracking
from ftsc.cli import check_file
from ftsc.frontend import load_file, load_text
from ftsc.model.graph import ModelGraph
from ftsc.source import SourceFile

REPO = Path(__file__).resolve().parent.parent
CORPORA = [REPO / "tests" / "data" / "fts_corpus", REPO.parent / "shared" / "corpus" / "fts-examples"]


def _twelve_layers() -> ModelGraph:
    """A synthetic 12-layer GPT-style model; `attn_ln` is a sibling of `attn`."""
    shapes: dict[str, tuple[int, ...]] = {"embed.weight": (8, 4)}
    for i in range(12):
        for sub in ("attn.c_attn", "attn.c_proj", "attn_ln", "mlp.fc", "mlp.proj"):
            shapes[f"h.{i}.{sub}.weight"] = (4, 4)
        shapes[f"layers.{i}.weight"] = (4,)
        shapes[f"layers.{i}.bias"] = (4,)
    shapes["head.weight"] = (4, 4)
    return ModelGraph.from_names(shapes)


def _fts205_model(pattern: str, graph: ModelGraph) -> list[dict]:
    text = f"0:\n  params:\n  - {pattern}\n"
    diags = check_file(load_text(SourceFile("s_ft_schedule.yaml", text)), graph)
    return [d.data for d in diags if d.code == "FTS205" and d.data]


@pytest.mark.parametrize(("pattern", "intended_prefix", "suggestion"), [
    ("layers.1.*", "layers.1.", r"layers\.1\..*"),
    ("layers.1", "layers.1.", r"layers\.1\."),
    ("h.2.attn.*", "h.2.attn.", r"h\.2\.attn\..*"),
    ("h.1.*", "h.1.", r"h\.1\..*"),
])
def test_prefix_over_match_on_twelve_layers(pattern: str, intended_prefix: str, suggestion: str) -> None:
    graph = _twelve_layers()
    thawed = [n for n in graph.params if re.match(pattern, n)]
    meant = [n for n in thawed if n.startswith(intended_prefix)]
    extra = [n for n in thawed if n not in meant]
    assert extra and meant  # the case is what it claims to be
    found = _fts205_model(pattern, graph)
    assert len(found) == 1
    assert found[0]["params"] == extra
    assert found[0]["suggestion"] == suggestion
    # The suggestion means what the pattern looks like.
    assert [n for n in graph.params if re.match(suggestion, n)] == meant


@pytest.mark.parametrize("pattern", [r"layers\.1\..*", r"h\.2\.attn\..*", "h.11.*", "layers.11", "head.*",
                                     r"layers\.1\.", "h.2.attn.c_proj.weight"])
def test_no_fts205_when_the_pattern_means_what_it_says(pattern: str) -> None:
    assert _fts205_model(pattern, _twelve_layers()) == []


def _corpus_patterns() -> list[str]:
    out: set[str] = set()
    for root in CORPORA:
        if not root.is_dir():
            continue
        for path in sorted(root.glob("*.yaml")):
            loaded = load_file(str(path))
            if loaded.schedule is None or loaded.kind != "fts-yaml":
                continue
            out |= {s.pattern for p in loaded.schedule.phases for s in p.selectors}
    return sorted(out)


def _deberta_names(layers: int = 12) -> list[str]:
    names = ["model.deberta.embeddings.word_embeddings.weight", "model.deberta.embeddings.LayerNorm.weight",
             "model.deberta.embeddings.LayerNorm.bias", "model.deberta.encoder.rel_embeddings.weight",
             "model.deberta.encoder.LayerNorm.weight", "model.deberta.encoder.LayerNorm.bias",
             "model.pooler.dense.weight", "model.pooler.dense.bias", "model.classifier.weight", "model.classifier.bias"]
    for i in range(layers):
        for sub in ("attention.self.query_proj", "attention.output.dense", "intermediate.dense", "output.dense",
                    "output.LayerNorm"):
            names += [f"model.deberta.encoder.layer.{i}.{sub}.weight", f"model.deberta.encoder.layer.{i}.{sub}.bias"]
    for i in range(layers):
        for sub in ("attention.wq", "attention.wo", "feed_forward.w1", "attention_norm", "ffn_norm"):
            names.append(f"model.layers.{i}.{sub}.weight")
    return names + ["model.norm.weight", "model.output.weight", "model.tok_embeddings.weight"]


def _layer_prefix(pattern: str) -> str | None:
    """The corpus pattern cut after its first layer index, in the FTS idiom: `...layer.1.*`."""
    m = re.match(r"(model\.(?:deberta\.encoder\.layer|layers))\.", pattern)
    return None if m is None else m.group(1)


def test_corpus_idiom_is_reported() -> None:
    """Every layer pattern of the FTS example corpus, written in the `prefix.N.*` idiom, is
    reported on a 12-layer model for N = 1 (siblings 10, 11) and not for N = 2 (no siblings)."""
    patterns = _corpus_patterns()
    assert patterns, "no FTS corpus found"
    stems = sorted({s for p in patterns if (s := _layer_prefix(p))})
    assert len(stems) == 2
    graph = ModelGraph.from_names({n: (2,) for n in _deberta_names()})
    for stem in stems:
        for idiom in (f"{stem}.1.*", f"{stem}.1"):
            thawed = [n for n in graph.params if re.match(idiom, n)]
            extra = [n for n in thawed if not n.startswith(f"{stem}.1.")]
            found = _fts205_model(idiom, graph)
            assert len(found) == 1 and found[0]["params"] == extra and extra, idiom
        assert _fts205_model(f"{stem}.2.*", graph) == []


def test_corpus_as_written_has_no_false_prefix_reports() -> None:
    graph = ModelGraph.from_names({n: (2,) for n in _deberta_names()})
    for pattern in _corpus_patterns():
        for data in _fts205_model(pattern, graph):
            meant = [n for n in graph.params if re.match(pattern, n) and n not in data["params"]]
            # Whatever is reported must really be outside what the escaped form matches.
            assert not any(re.match(data["suggestion"], n) for n in data["params"]), pattern
            assert meant


# --------------------------------------------------------------------------------------------
# FTS106
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|aa)+$", "(.*a){25}", r"(\d+)*$", "(x+x+)+y", "(?:a|b|ab)*c",
                                     r"model\.(\w+\.?)+$", "(a*)*$"])
def test_fts106_flags_catastrophic(pattern: str) -> None:
    assert exponential_backtracking(pattern)
    loaded = load_text(SourceFile("x.ftsc", f'phase 0 {{ thaw fts "{pattern}" }}'))
    from ftsc.analyze.context import AnalysisContext

    assert [d.code for d in fts106_check(loaded.schedule, AnalysisContext(loaded.source, loaded.kind))] == ["FTS106"]


@pytest.mark.parametrize("pattern", ["(a+)+", r"(\w+\.)+$", r"model\.layers\.\d+\..*", "model.classifier.*",
                                     ".*bias$", r"(?:\w+\.)*weight$", "a*a*$", "(ab|a)*c",
                                     "model.deberta.encoder.layer.{0,11}.(output|attention|intermediate).*"])
def test_fts106_leaves_linear_patterns(pattern: str) -> None:
    assert not exponential_backtracking(pattern)


def test_fts106_regex_selectors_are_matched_in_full() -> None:
    # `/(a+)+/` must match the whole name: a failing end makes Python backtrack.
    assert exponential_backtracking("(a+)+", full=True) and not exponential_backtracking("(a+)+")


@pytest.mark.parametrize(("pattern", "named"), [
    (r"h\.[23]\.attn.*", "`h.2.attn_ln`, `h.3.attn_ln`"),  # a class: no single literal start
    ("h.2.attn.*", "`h.2.attn_ln`"),
    ("layers.1", "`layers.10`, `layers.11`"),
])
def test_message_names_the_siblings_caught(pattern: str, named: str) -> None:
    """The message names each extra name up to the segment where the pattern's matching part stops
    (`attn.*` stops inside `attn_ln`), not the first segment after the pattern's literal start."""
    text = f"0:\n  params:\n  - '{pattern}'\n"
    diags = [d for d in check_file(load_text(SourceFile("s_ft_schedule.yaml", text)), _twelve_layers())
             if d.code == "FTS205" and d.data]
    assert len(diags) == 1 and f"also matches {named} (" in diags[0].message
