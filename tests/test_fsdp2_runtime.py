"""FSDP2 at run time: ftsc's callback applies the compiled plan under ModelParallelStrategy and
checks the real fully_shard groups against the prediction."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")


def _launch(mode: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "tests" / "fsdp2_runtime_probe.py"), str(out), mode],
                          cwd=out.parent, capture_output=True, text=True, timeout=300, check=False)


def _fit(mode: str, out: Path) -> tuple[dict, dict]:
    """Run the probe in `mode` on 2 gloo processes; each rank's record."""
    proc = _launch(mode, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "rank0.json").read_text()), json.loads((out / "rank1.json").read_text())


def _assembled(rank0: dict, rank1: dict) -> dict[str, list]:
    """Every parameter's full value from the ranks' own local data: a sharded parameter's two `Shard(0)`
    pieces concatenated along dim 0 (no collective involved), a plain one as rank 0 holds it."""
    return {n: rank0["local"][n] + rank1["local"][n] if rank0["sharded"][n] else rank0["local"][n]
            for n in rank0["local"]}


def _max_difference(a: dict[str, list], b: dict[str, list]) -> float:
    assert a.keys() == b.keys()
    diffs = []
    for name in a:
        x, y = torch.tensor(a[name], dtype=torch.float64), torch.tensor(b[name], dtype=torch.float64)
        assert x.shape == y.shape, (name, x.shape, y.shape)
        diffs.append((x - y).abs().max().item() if x.numel() else 0.0)
    return max(diffs)


@pytest.fixture(scope="module")
def ddp_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """The same schedule, model, data and seed under plain DDP (whose replicas stay equal: test_ddp.py)."""
    rank0, rank1 = _fit("ddp", tmp_path_factory.mktemp("ddp") / "out")
    assert _max_difference(rank0["local"], rank1["local"]) == 0.0
    return rank0["local"]


@pytest.mark.slow
@pytest.mark.parametrize("plan", ["aligned", "fts-cfg", "aligned-nosync"])
def test_model_parallel_fit_on_two_cpu_processes(plan: str, tmp_path: Path, ddp_reference: dict) -> None:
    """2 gloo processes: the plan is applied after configure_model, the self-check passes, phases
    transition, and the weights the ranks hold (their own local shards, put together without any
    collective) equal DDP's; a run with gradient synchronisation switched off is told apart."""
    rank0, rank1 = _fit(plan, tmp_path / "out")
    assert [r["depth"] for r in rank0["rows"]] == [0, 1, 2]
    assert [len(r["lrs"]) for r in rank0["rows"]] == [1, 2, 3]
    dtensor = rank0["rows"][-1]["dtensor"]
    if plan in ("aligned", "fts-cfg"):
        assert all(dtensor.values()) and all(rank0["sharded"].values())
        assert _max_difference(_assembled(rank0, rank1), ddp_reference) < 1e-6
    else:  # the broken variant: same structure, unsynchronised gradients
        assert all(rank0["sharded"].values())
        assert _max_difference(_assembled(rank0, rank1), ddp_reference) > 1e-4


@pytest.mark.slow
def test_a_plan_leaving_trainable_parameters_plain_stops_the_run(tmp_path: Path) -> None:
    """Only model.2 is sharded: phases would thaw plain parameters that train unsynchronized on each rank
    (replicas drifting apart silently), so the callback refuses the plan at setup with FTS407 on both ranks."""
    proc = _launch("mixed", tmp_path / "out")
    assert proc.returncode != 0
    assert "error[FTS407]" in proc.stderr and "[rank1]" in proc.stderr, proc.stderr[-3000:]


def test_fully_shard_kwargs_translate_fts_aliases() -> None:
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy

    from ftsc.lightning.fsdp2 import fully_shard_kwargs

    kwargs, act = fully_shard_kwargs({"reshard_after_forward": False, "act_ckpt": ["composable"],
                                      "mp_policy": {"param_dtype": "bf16", "reduce_dtype": "float32"},
                                      "cpu_offload_policy": {"pin_memory": False}})
    assert act == ["composable"] and kwargs["reshard_after_forward"] is False
    assert kwargs["mp_policy"] == MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    assert isinstance(kwargs["offload_policy"], CPUOffloadPolicy)


def test_real_groups_match_the_prediction_and_differences_are_reported() -> None:
    """The self-check's two halves: reading real groups (fake process group) and comparing."""
    from torch import nn
    from torch.distributed.device_mesh import init_device_mesh

    from ftsc.lightning.fsdp2 import apply_plan, real_groups
    from ftsc.model.build import extract
    from ftsc.model.graph import ModelGraph
    from ftsc.shard import compare_units as compare
    from ftsc.shard.fsdp2 import predict2

    from .fsdp_oracle import ensure_process_group

    ensure_process_group()
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)), nn.Linear(4, 2))
    plan = ["1.0", "1", "2"]
    predicted = {g.name: list(g.params) for g in predict2(ModelGraph(extract(model)), plan).groups}
    applied = apply_plan(model, [(m, {}) for m in plan], init_device_mesh("cpu", (2,), mesh_dim_names=("dp",)))
    assert applied == plan
    real = real_groups(model)
    assert compare(predicted, real) == []
    assert compare({**predicted, "0": []}, real) == ["predicted group `0` was not built"]
    wrong = {**predicted, "2": ["2.weight"]}
    assert compare(wrong, real) == ["group `2` differs: missing [], unexpected ['2.bias']"]
