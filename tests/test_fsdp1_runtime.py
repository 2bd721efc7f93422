"""FSDP1 at run time: ftsc's callback wraps along the compiled plan under Lightning's FSDPStrategy
and its fit-start self-check confirms the predicted FlatParameters (2 CPU gloo processes, through
the CPU shim; FSDP1 training itself needs GPUs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = [pytest.mark.torch, pytest.mark.slow]
pytest.importorskip("torch")


@pytest.mark.parametrize(("block", "units"), [
    ("    auto_wrap_policy = [torch.nn.Linear]", {"model.0", "model.2", "model.4", "model"}),
    ("    wrap model.4", {"model.4", "model"}),
    ("FTS-CONFIG", {"model.0", "model.2", "model.4", "model"}),  # policy on the strategy, awp_overrides in the cfg
])
def test_fsdp1_wrapping_matches_the_prediction(block: str, units: set[str], tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "fsdp1_runtime_probe.py"), str(tmp_path), block],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["checked"] and result["error"] is None, result
    assert set(result["units"]) == units
    assert {k: sorted(v) for k, v in result["units"].items()} == {k: sorted(v) for k, v in result["predicted"].items()}
    assert result["trainable"] == ["model.4.bias", "model.4.weight"]  # phase 0 only
