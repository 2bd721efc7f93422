"""FSDP2 end to end: the seed's Llama plan, plan order, containers, ties, user calls, `--fix`, compile."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from ftsc.cli import main

from .conftest import REPO

pytestmark = pytest.mark.torch
pytest.importorskip("transformers")

SEED = REPO / "tests" / "data" / "fsdp2_seed"
MODELS = REPO / "tests" / "models.py"
TOY = REPO / "tests" / "data" / "models" / "toy_models.py"


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("m") / "llama.json"
    assert main(["manifest", "--model", f"{MODELS}:llama_lm", "-o", str(path)]) == 0
    return str(path)


def _check(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict]]:
    rc = main(["check", *argv, "--format", "json"])
    return rc, json.loads(capsys.readouterr().out)["diagnostics"]


def _seed(tmp_path: Path) -> Path:
    for f in SEED.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / "llama_plan.yaml"


def test_seed_llama_plan_mixes_phases_0_and_2(tmp_path: Path, llama: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, diags = _check([str(_seed(tmp_path)), "--manifest", llama], capsys)
    mixed = {d["data"]["phase"]: d["data"]["plain_params"] for d in diags if d["code"] == "FTS401"}
    assert rc == 1 and mixed == {0: ["model.model.norm.weight"], 2: ["model.model.embed_tokens.weight"]}  # errors (SPEC §4.1)
    (unsynced,) = [d for d in diags if d["code"] == "FTS407"]
    assert unsynced["data"]["params"] == ["model.model.embed_tokens.weight", "model.model.norm.weight"]


def test_seed_llama_fix_prints_the_root_choice_and_writes_nothing(tmp_path: Path, llama: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Which group can hold the plain parameters depends on what `training_step` calls: `--fix`
    prints both choices and leaves the file alone; either choice, applied by hand, checks clean."""
    config = _seed(tmp_path)
    before = config.read_text()
    rc = main(["check", str(config), "--manifest", llama, "--fix", "--format", "json"])
    err = capsys.readouterr().err
    assert rc == 1 and config.read_text() == before
    assert not [line for line in err.splitlines() if line.startswith("fixed ")]
    assert "`'': {}` if `training_step` calls `self(...)`" in err
    assert "`'model': {}` if `training_step` calls `self.model(...)`" in err
    for last in ("''", "'model'"):
        config.write_text(before.replace("\\d*$': {}}", f"\\d*$': {{}}, {last}: {{}}}}"))
        assert last in config.read_text()
        rc, diags = _check([str(config), "--manifest", llama, "--strict"], capsys)
        assert rc == 0 and [d for d in diags if d["severity"] != "info"] == []


def test_plan_checks_and_reorder_fix(tmp_path: Path, llama: str, capsys: pytest.CaptureFixture[str]) -> None:
    sched = tmp_path / "s.ftsc"
    sched.write_text(textwrap.dedent("""\
        phase 0 { thaw glob "model.lm_head.*" }
        phase 1 { thaw glob "model.model.**" }
        fsdp2 {
            shard model.model
            shard /model\\.model\\.layers\\.\\d+/
            shard model.model.layers
            shard model.lm_headd
            shard model.lm_head
        }
        """))
    rc, diags = _check([str(sched), "--manifest", llama], capsys)
    codes = sorted(d["code"] for d in diags)
    assert rc == 1 and codes == ["FTS402", "FTS403", "FTS405"]
    (order,) = [d for d in diags if d["code"] == "FTS403"]
    assert sorted(order["data"]["skipped"]) == [f"model.model.layers.{i}" for i in range(4)]
    sched.write_text(sched.read_text().replace("    shard model.lm_headd\n", "").replace(
        "    shard model.model.layers\n", ""))
    _check([str(sched), "--manifest", llama, "--fix"], capsys)
    text = sched.read_text()
    assert text.index("layers") < text.index("shard model.model\n") and 'shard ""' not in text
    rc, diags = _check([str(sched), "--manifest", llama, "--strict"], capsys)
    assert rc == 0 and [d for d in diags if d["severity"] != "info"] == []


def test_tied_embeddings_in_two_groups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sched = tmp_path / "s.ftsc"
    sched.write_text('phase 0 { thaw glob "**" }\nfsdp2 {\n    shard model.lm_head\n    shard ""\n}\n')
    rc, diags = _check([str(sched), "--model", f"{MODELS}:llama_tied_lm"], capsys)
    (tie,) = [d for d in diags if d["code"] == "FTS404"]
    assert rc == 1 and tie["data"] == {"param": "model.model.embed_tokens.weight", "groups": ["model.lm_head", ""]}


def test_user_fully_shard_calls_compose_with_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sched = tmp_path / "s.ftsc"
    sched.write_text('phase 0 { thaw glob "model.2.*" }\nphase 1 { thaw /model\\.[01]\\..*/ }\n'
                     'fsdp2 {\n    shard model.1.0\n    shard model\n}\n')
    assert main(["compile", str(sched), "--model", f"{TOY}:SelfSharded"]) == 0
    doc = json.loads(capsys.readouterr().out)
    units = [(u["name"], len(u["params"])) for u in doc["sharding"]["units"]]
    assert doc["sharding"]["kind"] == "fsdp2"
    assert units == [("model.1", 4), ("model.0, model.2", 4), ("model", 0)]
    assert doc["diagnostics"][0]["code"] == "FTS403"  # model.1.0 is already managed by the user's group


def test_fix_leaves_tied_modules_to_a_common_ancestor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sched = tmp_path / "s.ftsc"
    sched.write_text('phase 0 { thaw glob "**" }\nfsdp2 {\n    shard model.lm_head\n    shard ""\n}\n')
    target = f"{MODELS}:llama_tied_lm"
    _check([str(sched), "--model", target, "--fix"], capsys)
    assert "lm_head" not in sched.read_text()
    rc, diags = _check([str(sched), "--model", target, "--strict"], capsys)
    assert rc == 0 and [d for d in diags if d["severity"] != "info"] == []
