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


@pytest.mark.slow
@pytest.mark.parametrize("plan", ["aligned", "mixed", "fts-cfg"])
def test_model_parallel_fit_on_two_cpu_processes(plan: str, tmp_path: Path) -> None:
    """2 gloo processes: the plan is applied after configure_model, the self-check passes, phases
    transition, and both ranks end with the same weights."""
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "fsdp2_runtime_probe.py"), str(tmp_path), plan],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert [r["depth"] for r in rank0["rows"]] == [0, 1, 2]
    assert [len(r["lrs"]) for r in rank0["rows"]] == [1, 2, 3]
    dtensor = rank0["rows"][-1]["dtensor"]
    if plan in ("aligned", "fts-cfg"):
        assert all(dtensor.values())
        assert rank0["sums"] == rank1["sums"]
    else:
        # Only model.2 is sharded: the phase-2 group mixes DTensors and plain tensors (FTS401), and the
        # plain parameters train unsynchronized, so the ranks' copies drift apart (what FTS407 warns about).
        assert dtensor["model.2.weight"] and not dtensor["model.0.weight"]
        assert rank0["sums"]["model.2.weight"] == rank1["sums"]["model.2.weight"]
        assert rank0["sums"]["model.0.weight"] != rank1["sums"]["model.0.weight"]


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
