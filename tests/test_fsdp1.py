"""FSDP1 end to end: the seed's DeBERTa example, `--fix`, compile units, FTS303-FTS305 via the CLI."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from ftsc.cli import main
from ftsc.frontend import load_file

from .conftest import REPO

pytestmark = pytest.mark.torch
pytest.importorskip("transformers")

SEED = REPO / "tests" / "data" / "fsdp_seed"
DEBERTA = f"{REPO / 'tests' / 'models.py'}:deberta_v2_lm"
ROOT_SIX = {"model.deberta.embeddings.word_embeddings.weight": None, "model.deberta.embeddings.LayerNorm.weight": None,
            "model.deberta.embeddings.LayerNorm.bias": None, "model.deberta.encoder.rel_embeddings.weight": 2,
            "model.deberta.encoder.LayerNorm.weight": 2, "model.deberta.encoder.LayerNorm.bias": 2}


@pytest.fixture(scope="module")
def deberta_manifest(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("m") / "deberta.json"
    assert main(["manifest", "--model", DEBERTA, "-o", str(path)]) == 0
    return str(path)


def _copy_seed(tmp_path: Path) -> Path:
    for f in SEED.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / "deberta_layer_only.yaml"


def _json_check(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict]]:
    rc = main(["check", *argv, "--format", "json"])
    return rc, json.loads(capsys.readouterr().out)["diagnostics"]


def test_seed_deberta_reproduces_documented_error(tmp_path: Path, deberta_manifest: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Only DebertaV2Layer wrapped: the root unit `model` holds the six documented parameters."""
    config = _copy_seed(tmp_path)
    rc, diags = _json_check([str(config), "--manifest", deberta_manifest], capsys)
    assert rc == 1
    (d,) = [d for d in diags if d["code"] == "FTS301"]
    assert d["data"]["unit"] == "model" and d["data"]["params"] == ROOT_SIX
    assert d["data"]["phases"] == [2, None]
    assert d["file"].endswith("deberta_schedule.yaml")  # points at the schedule's selector


def test_seed_deberta_documented_fix_is_clean(tmp_path: Path, deberta_manifest: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Adding DebertaV2Encoder and DebertaV2Embeddings to the policy (the tutorial's fix) is clean."""
    config = _copy_seed(tmp_path)
    text = config.read_text().replace(
        "? transformers.models.deberta_v2.modeling_deberta_v2.DebertaV2Layer",
        "? transformers.models.deberta_v2.modeling_deberta_v2.DebertaV2Layer\n"
        "            ? transformers.models.deberta_v2.modeling_deberta_v2.DebertaV2Embeddings\n"
        "            ? transformers.models.deberta_v2.modeling_deberta_v2.DebertaV2Encoder")
    config.write_text(text)
    rc, diags = _json_check([str(config), "--manifest", deberta_manifest], capsys)
    assert rc == 0 and [d["code"] for d in diags if d["severity"] != "info"] == []


def test_fix_finds_the_fix_itself(tmp_path: Path, deberta_manifest: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`--fix` adds one override to awp_overrides; afterwards the config checks clean."""
    config = _copy_seed(tmp_path)
    rc, _ = _json_check([str(config), "--manifest", deberta_manifest, "--fix"], capsys)
    assert rc == 0
    overrides = load_file(str(config)).schedule.fsdp.wrap
    added = [s.pattern for s in overrides][2:]
    assert added in (["model.deberta.embeddings"], ["model.deberta.encoder"])
    rc, diags = _json_check([str(config), "--manifest", deberta_manifest], capsys)
    assert rc == 0 and not [d for d in diags if d["code"].startswith("FTS3")]


def test_fix_edits_the_dsl_fsdp_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sched = tmp_path / "s.ftsc"
    sched.write_text(textwrap.dedent("""\
        phase 0 { thaw glob "head.*" }
        phase 1 { thaw glob "layers.**" }
        # keep this comment
        fsdp {
            use_orig_params = false
        }
        """))
    model = f"{REPO / 'tests' / 'data' / 'models' / 'toy_models.py'}:make_net"
    assert main(["check", str(sched), "--model", model, "--format", "concise"]) == 1
    assert "FTS301" in capsys.readouterr().out
    main(["check", str(sched), "--model", model, "--fix", "--format", "concise"])
    out = capsys.readouterr()
    assert "FTS301" not in out.out and "fixed" in out.err
    text = sched.read_text()
    assert "# keep this comment" in text and "    wrap " in text
    assert load_file(str(sched)).diagnostics == []


def test_compile_lists_units_in_wrap_order(tmp_path: Path, deberta_manifest: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = _copy_seed(tmp_path)
    assert main(["compile", str(config), "--manifest", deberta_manifest]) == 1
    doc = json.loads(capsys.readouterr().out)
    units = doc["sharding"]["units"]
    assert doc["sharding"]["kind"] == "fsdp"
    names = [u["name"] for u in units]
    assert names[0] == "model.deberta.encoder.layer.0" and names[-1] == "model"
    assert names.index("model.pooler.dense") < names.index("model.classifier") < names.index("model")
    assert sorted(units[-1]["params"]) == sorted(ROOT_SIX)
    assert doc["sharding"]["unsharded"] == []
    assert doc["phases"][0]["params"] == ["model.classifier.weight", "model.classifier.bias"]


@pytest.mark.parametrize(("fsdp", "code", "needle"), [
    ('auto_wrap_policy = [torch.nn.Linearr]', "FTS303", "torch.nn.Linearr"),
    ('wrap model.deberta.encoder.layerr', "FTS303", "did you mean"),
    ('ignore model.nothing', "FTS303", "model.nothing"),
    ('use_orig_params = false', "FTS305", "phase 0 owns no FSDP-flattened parameter"),
])
def test_fsdp_config_checks(tmp_path: Path, deberta_manifest: str, fsdp: str, code: str, needle: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
    sched = tmp_path / "s.ftsc"
    sched.write_text(f'phase 0 {{ thaw glob "model.classifier.*" }}\nfsdp {{\n    {fsdp}\n}}\n')
    rc, diags = _json_check([str(sched), "--manifest", deberta_manifest], capsys)
    hits = [d for d in diags if d["code"] == code]
    assert rc == 1 and hits and needle in json.dumps(hits)


def test_manual_wrap_calls_are_recorded_and_predicted() -> None:
    """`wrap()` calls in configure_model become units (call order); the rest stays unsharded, as torch does."""
    from ftsc.model import load_graph
    from ftsc.model.build import build
    from ftsc.shard.fsdp1 import FSDP1Spec, predict

    from .fsdp_oracle import real_units

    target = f"{REPO / 'tests' / 'data' / 'models' / 'toy_models.py'}:ManualWrap"
    graph = load_graph(target)
    assert graph.manual_wraps == ("model.1", "model.2")
    for orig in (True, False):
        spec = FSDP1Spec(lightning=True, manual=graph.manual_wraps, use_orig_params=orig,
                         classes=("torch.nn.Linear",))
        pred = predict(graph, spec)
        module = build(target).to_empty(device="cpu")
        real, unsharded = real_units(module, spec)
        assert {u.name: list(u.params) for u in pred.units} == real
        assert sorted(pred.unsharded) == sorted(unsharded) == ["model.0.bias", "model.0.weight"]


@pytest.mark.parametrize("config", ["fsdp_seed/deberta_layer_only.yaml", "fsdp2_seed/llama_plan.yaml"])
def test_init_with_a_strategy_aligns_phases_to_units(tmp_path: Path, config: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`init --lightning-config` (FSDP1 or FSDP2) writes one phase per unit: no sharding diagnostics."""
    src = REPO / "tests" / "data" / config
    for f in src.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    cfg = tmp_path / src.name
    model = f"{REPO / 'tests' / 'models.py'}:{'deberta_v2_lm' if 'deberta' in config else 'llama_lm'}"
    out = tmp_path / "init.yaml"
    assert main(["init", "--model", model, "--lightning-config", str(cfg), "--to", "fts-yaml", "-o", str(out)]) == 0
    rc, diags = _json_check([str(out), "--lightning-config", str(cfg), "--model", model], capsys)
    # FTS206 (the config's max_depth) and FTS407 (the seed plan leaves embeddings/norm unsharded) are
    # about the config, not the generated schedule.
    codes = [d["code"] for d in diags if d["code"][:4] in ("FTS2", "FTS3", "FTS4")]
    assert [c for c in codes if c not in ("FTS206", "FTS407")] == []
    assert rc == (1 if "FTS407" in codes else 0)  # FTS407 is an error (SPEC §4.1)
    assert ("FTS407" in codes) == ("fsdp2" in config)
