"""examples/gpu/llama_finetune.py end to end: a Llama fine-tuned in 4 phases under FSDP2 or FSDP1,
uninterrupted and resumed from a checkpoint with `trainer.fit(ckpt_path=...)`.

On CPU (always): FSDP2 through ModelParallelStrategy with 2 gloo processes, full and sharded
checkpoints. On 2 CUDA GPUs (marker `gpu`; CPU-only machines skip it): FSDP1 with and without
`use_orig_params`, and FSDP2, with NCCL and bf16.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.slow]

SCRIPT = REPO / "examples" / "gpu" / "llama_finetune.py"
PHASES = [0, 1, 2, 3, 3]  # one epoch per phase, then the last phase trains on
GPUS = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs; run `python -m pytest -m gpu "
                          "tests/test_llama_example.py` on a GPU machine (examples/gpu/README.md)")


def fit(out: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--size", "tiny", "--steps", "3", "--val-steps", "2",
                           "--seq-len", "32", "--batch-size", "4", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-6000:]
    return json.loads((out / "stats.json").read_text())


def check_run_and_resume(tmp_path: Path, *args: str, resume_at: int, rel: float) -> None:
    full = fit(tmp_path / "full", *args)
    assert [r["phase"] for r in full["epochs"]] == PHASES
    assert [r["param_groups"] for r in full["epochs"]] == [1, 2, 3, 4, 4]
    assert full["final_phase"] == 3
    assert len(full["self_check"]) == 1 and "match the prediction" in full["self_check"][0], full["self_check"]
    assert full["epochs"][-1]["trainable_numel"] == full["params"]
    ckpt = next((tmp_path / "full" / "ckpt").glob(f"epoch={resume_at}*"))
    resumed = fit(tmp_path / "resumed", *args, "--resume", str(ckpt))
    tail = full["epochs"][resume_at + 1:]
    assert [r["epoch"] for r in resumed["epochs"]] == [r["epoch"] for r in tail]
    for a, b in zip(resumed["epochs"], tail, strict=True):
        assert (a["phase"], a["trainable_numel"], a["param_groups"]) == (b["phase"], b["trainable_numel"],
                                                                         b["param_groups"]), (a, b)
        assert a["lrs"] == pytest.approx(b["lrs"], rel=1e-9)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=rel), (a, b)
    assert "match the prediction" in resumed["self_check"][0]


@pytest.mark.parametrize(("checkpoint", "resume_at"), [("full", 1), ("sharded", 2)])
def test_fsdp2_on_cpu_runs_all_phases_and_resumes_exactly(checkpoint: str, resume_at: int, tmp_path: Path) -> None:
    check_run_and_resume(tmp_path, "--strategy", "fsdp2", "--accelerator", "cpu", "--checkpoint", checkpoint,
                         resume_at=resume_at, rel=1e-5)


@pytest.mark.gpu
@GPUS
@pytest.mark.parametrize("checkpoint", ["full", "sharded"])
@pytest.mark.parametrize("strategy", ["fsdp1", "fsdp1-flat", "fsdp2"])
def test_two_gpus_run_all_phases_and_resume(strategy: str, checkpoint: str, tmp_path: Path) -> None:
    # bf16 and NCCL reductions are not bitwise reproducible across processes: the losses get a tolerance
    check_run_and_resume(tmp_path, "--strategy", strategy, "--accelerator", "gpu", "--checkpoint", checkpoint,
                         resume_at=1, rel=2e-2)


def check_restore_best(tmp_path: Path, *args: str, rel: float) -> None:
    """The validation loss falls every epoch, so the best checkpoint at each transition is the state
    just saved: restoring it (weights, and optimizer state into the checkpoint's groups, through the
    strategy's own load) must leave the trajectory as it is without restore_best."""
    plain = fit(tmp_path / "plain", *args)
    restored = fit(tmp_path / "restored", *args, "--restore-best")
    losses = [r["val_loss"] for r in plain["epochs"]]
    assert losses == sorted(losses, reverse=True)  # the premise: each epoch is the best so far
    assert [r["phase"] for r in restored["epochs"]] == PHASES
    for a, b in zip(restored["epochs"], plain["epochs"], strict=True):
        assert a["lrs"] == pytest.approx(b["lrs"], rel=1e-9)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=rel), (a, b)


def test_fsdp2_restore_best_on_cpu_reloads_the_current_state(tmp_path: Path) -> None:
    check_restore_best(tmp_path, "--strategy", "fsdp2", "--accelerator", "cpu", "--checkpoint", "sharded", rel=1e-5)


@pytest.mark.gpu
@GPUS
@pytest.mark.parametrize("strategy", ["fsdp1", "fsdp1-flat"])
def test_two_gpus_restore_best(strategy: str, tmp_path: Path) -> None:
    check_restore_best(tmp_path, "--strategy", strategy, "--accelerator", "gpu", rel=2e-2)


def test_fsdp2_on_cpu_matches_fts(tmp_path: Path) -> None:
    """The same example under FinetuningScheduler itself: per epoch the same phase, parameter groups,
    lrs and validation loss (fp32 on CPU: rel. 1e-6)."""
    args = ("--strategy", "fsdp2", "--accelerator", "cpu", "--epochs", "4")
    ours, fts = fit(tmp_path / "ftsc", *args), fit(tmp_path / "fts", *args, "--scheduler", "fts")
    assert [r["phase"] for r in fts["epochs"]] == PHASES[:4]
    for a, b in zip(ours["epochs"], fts["epochs"], strict=True):
        assert (a["phase"], a["trainable_numel"], a["param_groups"]) == (b["phase"], b["trainable_numel"],
                                                                         b["param_groups"])
        assert a["lrs"] == pytest.approx(b["lrs"], rel=1e-9)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6), (a, b)
