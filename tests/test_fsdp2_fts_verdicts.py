"""FTS401 vs FinetuningScheduler's own FSDP2 mixed DTensor/plain detection, run for real.

Oracle (slow tests): `tests/fts_fsdp2_probe.py`, one 2-process CPU launch (Lightning re-launches the
script for rank 1, gloo) running every scenario in turn: `Trainer.fit` with
`ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1)` and a `FinetuningScheduler`
subclass whose `on_fit_start` calls FTS's own `strategy_adapter.on_before_fts_fit_start()` --
`ModelParallelStrategyAdapter._validate_fsdp_fts_config()` after FTS resolved (`_validate_fsdp_plan`)
and applied (`_apply_fsdp_plan`, real `fully_shard`) the `fsdp_plan` -- and then stops. Its INFO
"produce mixed DTensor/Non-DTensor parameter group(s)" is captured from the log and parsed into
`{phase: [non-DTensor params]}`; the dict FTS passed to `_provide_mixed_pg_feedback` is recorded too
(the two must agree), as is every parameter's DTensor state after `configure_model`.

ftsc side: `ftsc check <LightningCLI config> --model <factory> --format json` (through
`ftsc.cli.main`): the FTS401 diagnostics' phases and `data["plain_params"]`. The per-parameter
DTensor map is also compared with `fsdp2_analysis` of the same config.

Each scenario also states the documented verdict, which the fast test checks against ftsc alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("finetuning_scheduler")

from ftsc.cli import main
from ftsc.frontend import load_file
from ftsc.model.build import build, extract
from ftsc.model.graph import ModelGraph
from ftsc.shard import fsdp2_analysis

from .conftest import REPO

pytestmark = [pytest.mark.torch]

DATA = Path(__file__).resolve().parent / "data" / "fsdp2"
PROBE = Path(__file__).resolve().parent / "fts_fsdp2_probe.py"

LLAMA = "tests/models.py:llama_lm"
TOY4 = "tests/fts_fsdp2_probe.py:toy4_lm"
NORM = "model.model.norm.weight"
EMBED = "model.model.embed_tokens.weight"


@dataclass(frozen=True)
class Scenario:
    id: str
    config: str  # LightningCLI config under tests/data/fsdp2
    model: str  # --model target
    mixed: dict[int, list[str]]  # documented: phase -> sorted plain params of each mixed phase


SCENARIOS = [
    # the seed's plan (torchtitan `{'model.output': {}, 'model.layers.\d*$': {}}` in HF Llama names):
    # norm (phase 0) and embed_tokens (phase 2) stay plain
    Scenario("llama/seed-plan", "llama_seed_plan.yaml", LLAMA, {0: [NORM], 2: [EMBED]}),
    # the same plan with the root appended (FTS's hint): clean
    Scenario("llama/seed-plan+root", "llama_seed_plan_root.yaml", LLAMA, {}),
    # layers only: phase 0 is all plain (not mixed), phase 2 is mixed
    Scenario("llama/layers-only", "llama_layers_only.yaml", LLAMA, {2: [EMBED]}),
    # a ModuleList key (pruned) and lm_head: only phase 0 has a DTensor
    Scenario("llama/modulelist-key", "llama_modulelist_key.yaml", LLAMA, {0: [NORM]}),
    # fts-anatomy.md §4.4's probe
    Scenario("toy4/one-layer", "toy4_one_layer.yaml", TOY4, {0: ["model.3.bias", "model.3.weight"]}),
    # parent before child: the child is skipped, the parent's group holds everything
    Scenario("toy4/parent-first", "toy4_parent_first.yaml", TOY4, {}),
    # a regex without `$` and the root last
    Scenario("toy4/regex-no-dollar+root", "toy4_regex_no_dollar.yaml", TOY4, {}),
]


# ---------------------------------------------------------------------------------------------
# ftsc's verdict


def ftsc_mixed(s: Scenario, capsys: pytest.CaptureFixture[str]) -> dict[int, list[str]]:
    rc = main(["check", str(DATA / s.config), "--model", s.model, "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert rc in (0, 1), out
    found: dict[int, list[str]] = {}
    for d in out["diagnostics"]:
        if d["code"] == "FTS401":
            assert d["data"]["phase"] not in found, "one FTS401 per phase"
            found[d["data"]["phase"]] = sorted(d["data"]["plain_params"])
    return found


def ftsc_dtensor(s: Scenario) -> dict[str, bool]:
    graph = ModelGraph(extract(build(s.model)))
    analysis = fsdp2_analysis(load_file(str(DATA / s.config)).schedule, graph)
    assert analysis is not None
    plain = set(analysis.prediction.unsharded)
    return {p: p not in plain for p in graph.params}


# ---------------------------------------------------------------------------------------------
# FTS's verdict: one 2-process launch for all scenarios


@pytest.fixture(scope="module")
def fts_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("fts_fsdp2")
    out = tmp / "verdicts.json"
    runs = [{"id": s.id, "config": str(DATA / s.config), "model": s.model.rsplit(":", 1)[1]} for s in SCENARIOS]
    spec = {"runs": runs, "out": str(out), "root_dir": str(tmp)}
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(PROBE), json.dumps(spec)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=240, check=False)
    assert out.is_file(), f"probe wrote no verdict (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    data = json.loads(out.read_text(encoding="utf-8"))
    return {r["id"]: r for r in data["runs"]}


def fts_mixed(raw: dict[str, Any]) -> dict[int, list[str]]:
    return {int(k): sorted(v) for k, v in raw["mixed"].items()}


# ---------------------------------------------------------------------------------------------
# Tests


def test_parse_info_reads_the_documented_message() -> None:
    from tests.fts_fsdp2_probe import parse_info

    text = ("\nThe current fine-tuning schedule and FSDP plan produce mixed DTensor/Non-DTensor parameter group(s) in "
            "at least one phase.\n...\nFound Non-DTensor parameters in mixed parameter groups: \n"
            "  Phase 0:  \n    {   'model.3.bias': <class 'torch.Tensor'>,\n    'model.3.weight': <class "
            "'torch.Tensor'>}\n  Phase 2:  \n    {'model.model.embed_tokens.weight': <class 'torch.Tensor'>}\n")
    assert parse_info(text) == {0: ["model.3.bias", "model.3.weight"], 2: ["model.model.embed_tokens.weight"]}
    assert parse_info(None) == {}


@pytest.mark.parametrize("s", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_ftsc_matches_documented_verdict(s: Scenario, capsys: pytest.CaptureFixture[str]) -> None:
    assert ftsc_mixed(s, capsys) == s.mixed


@pytest.mark.slow
@pytest.mark.parametrize("s", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_ftsc_matches_fts(s: Scenario, fts_runs: dict[str, dict[str, Any]],
                          capsys: pytest.CaptureFixture[str]) -> None:
    raw = fts_runs[s.id]
    assert raw["validated"] and raw["error"] is None, raw["error"]
    fts = fts_mixed(raw)
    assert fts == {int(k): sorted(v) for k, v in raw["feedback"].items()}  # the INFO text == FTS's own dict
    assert (raw["info"] is not None) == bool(fts)
    assert ftsc_mixed(s, capsys) == fts
    assert ftsc_dtensor(s) == raw["dtensor"]  # every parameter's DTensor/plain state
    assert fts == s.mixed  # the documented verdict
