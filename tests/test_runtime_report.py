"""Visible phases: with Lightning's default logging a run prints the compiled plan as a table at fit
start and one line per transition (epoch, step, reason, what was thawed, new lrs, restored checkpoint);
`logging_level` quiets it (tests/test_runtime_options.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch

REPO = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys, warnings
warnings.filterwarnings("ignore")
import lightning.pytorch as pl
import torch
from ftsc.lightning import FinetuningScheduler, FTSEarlyStopping
from tests.runtime_harness import TinyModule, loader

sched = sys.argv[1]
torch.manual_seed(0)
trainer = pl.Trainer(max_epochs=6, logger=False, enable_progress_bar=False, enable_model_summary=False,
                     num_sanity_val_steps=0, default_root_dir=sys.argv[2],
                     callbacks=[FinetuningScheduler(ft_schedule=sched, restore_best=True),
                                FTSEarlyStopping(patience=1, min_delta=10.0),
                                pl.callbacks.ModelCheckpoint(dirpath=sys.argv[2], monitor="val_loss",
                                                             filename="best-{epoch}")])
trainer.fit(TinyModule(), loader(0), loader(1, sign=-1.0))
"""


def test_a_default_run_shows_the_plan_and_each_transition(tmp_path: Path) -> None:
    sched = tmp_path / "s.ftsc"
    sched.write_text('phase 0 { thaw glob "model.4.*" until step 6 }\n'
                     'phase 1 { thaw glob "model.2.*" lr = 0.001 until epoch 4 or plateau }\n'
                     'phase 2 { thaw glob "model.0.*" lr = 0.0005 }\n')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(sched), str(tmp_path / "run")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "ftsc:" in line or line.startswith("  ")]
    start = next(i for i, line in enumerate(lines) if "fine-tuning plan" in line)
    assert lines[start:start + 5] == [
        "ftsc: fine-tuning plan from s.ftsc (3 phases; sharding: no sharding)",
        "  phase  tensors     elements  lr      ends",
        "  0            2            9  0.01    step 6",
        "  1            2           72  0.001   epoch 4 or plateau on `val_loss` (patience 1)",
        "  2            2           72  0.0005  last phase: max_epochs or early stopping",
    ]
    moves = [line for line in lines if " -> " in line]
    # 4 batches per epoch: step 6 is reached in epoch 1; the validation at the end of epoch 1 brings no
    # improvement (min_delta 10, patience 1), so phase 1 ends at epoch 2; restore_best loads the best checkpoint.
    assert moves == [
        ("ftsc: epoch 1 (step 6): phase 0 -> 1 (step 6 reached); thawed 2 tensors (72 elements): model.2.weight, "
         "model.2.bias; new groups' lr 0.001; restored best checkpoint best-epoch=0.ckpt (phase 0)"),
        ("ftsc: epoch 2 (step 8): phase 1 -> 2 (plateau on `val_loss` after 1 epoch); thawed 2 tensors "
         "(72 elements): model.0.weight, model.0.bias; new groups' lr 0.0005; restored best checkpoint "
         "best-epoch=0.ckpt (phase 0)"),
    ]
    doc = (REPO / "docs" / "runtime.md").read_text()
    block = doc.split("## Visible phases", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    assert block.splitlines() == lines[start:start + 5] + moves  # the documented output is this run's
