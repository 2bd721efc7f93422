"""Under DDP every rank reaches the same verdict on the schedule and raises the same clear error
(no rank left waiting on a dead peer: 'Connection closed by peer')."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch

REPO = Path(__file__).resolve().parent.parent


def test_a_schedule_failing_on_one_rank_stops_every_rank_with_the_same_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "ddp_verdict_probe.py"), str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, check=False)
    results = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))}
    assert sorted(results) == ["rank0", "rank1"], proc.stderr[-3000:]
    for r in results.values():
        assert r["misconfiguration"] is True, r
        assert "FTS202" in r["error"] and r["error"].startswith("on rank 1: "), r
    assert results["rank0"]["error"] == results["rank1"]["error"]
