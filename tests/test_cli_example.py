"""The LightningCLI example in examples/lightning_cli runs on CPU and walks through its phases."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from ftsc.cli import main

from .conftest import REPO

pytestmark = [pytest.mark.torch, pytest.mark.slow]
pytest.importorskip("jsonargparse")

EXAMPLE = REPO / "examples" / "lightning_cli"


def test_example_schedule_checks_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(EXAMPLE / "schedule.ftsc"), "--model", f"{EXAMPLE / 'train.py'}:TinyRegressor",
                 "--strict"]) == 0


def test_lightning_cli_example_runs_through_all_phases(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "train.py"), "fit", "--config", str(EXAMPLE / "config.yaml"),
         "--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.save_dir={tmp_path}",
         f"--trainer.default_root_dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (metrics,) = tmp_path.rglob("metrics.csv")
    phases = [float(r["finetuning_phase"]) for r in csv.DictReader(metrics.open()) if r["finetuning_phase"]]
    assert phases == sorted(phases) and phases[0] == 0.0 and phases[-1] == 2.0
    output = proc.stdout + proc.stderr  # Lightning's default logging shows the plan and each transition
    assert output.count("ftsc: fine-tuning plan from") == 1
    assert [line.split("): ")[1].split(" (")[0] for line in output.splitlines() if " -> " in line] == \
        ["phase 0 -> 1", "phase 1 -> 2"]
