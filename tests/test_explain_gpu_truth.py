"""explain against recorded GPU truth: the H200 runs of `benchmarks/bench_explain_memory.py`.

Each result file in `benchmarks/results/explain_memory_h200_v3/` holds, per configuration, rank
and phase, what real training steps allocated on one NVIDIA H200 (torch 2.11; world sizes 2 and 8
on torch's fake process group, every rank's real local shards). explain must give every phase's
model states to the byte (the busiest rank's requested bytes: 468 rows over a Llama and a ViT,
one device, DDP, FSDP1 both ways and FSDP2, three precisions, AdamW and SGD with momentum), and
the optimizer step's temporaries within 2 % or 16 MiB (AdamW one state's worth, SGD none; the step
peak was read as `max_memory_allocated()`, which counts the caching allocator's block rounding).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from ftsc.explain import build_report
from ftsc.model.build import manifest_for

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "explain_memory_h200_v3"
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_explain_memory import BENCHES, explain_inputs  # noqa: E402

pytestmark = [pytest.mark.torch]
KEYS = ("model", "strategy", "precision", "optimizer", "world_size")
MIB = 1 << 20


def _rows(pattern: str, keys: tuple[str, ...] = KEYS) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Result rows of the files matching `pattern`, by configuration."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for path in sorted(RESULTS.glob(pattern)):
        for row in json.loads(path.read_text())["rows"]:
            groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    return groups


MODEL_STATES = _rows("default_*.json")
STEPS = _rows("peak2_*.json", (*KEYS, "batch", "seq"))
VIT_TOKENS = 197


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each benchmark model's manifest, built once from its factory."""
    folder = tmp_path_factory.mktemp("manifests")
    out = {}
    for name, bench in BENCHES.items():
        path = folder / f"{name}.json"
        manifest = manifest_for(f"{REPO / 'benchmarks' / 'explain_models.py'}:{bench.factory}")
        path.write_text(json.dumps(manifest.to_json()))
        out[name] = str(path)
    return out


def _phases(key: tuple[Any, ...], manifests: dict[str, str], work: Path, **shape: int) -> list[dict[str, Any]]:
    cfg = dict(zip(KEYS, key, strict=False))
    schedule, trainer = explain_inputs(BENCHES[cfg["model"]], cfg, work)
    report = build_report(str(schedule), manifest=manifests[cfg["model"]],
                          lightning_config=str(trainer) if trainer else None, world_size=cfg["world_size"],
                          optimizer=cfg["optimizer"], **shape)
    return [ph["memory"] for ph in report["phases"]]


def test_the_recorded_runs_cover_the_acceptance() -> None:
    """468 model-state rows: 2 models x 5 strategies x 3 precisions x 2 optimizers, W 1/2/8, 3 phases."""
    assert len(MODEL_STATES) == 2 * (1 + 4 * 3) * 3 * 2
    assert sum(len({r["phase"] for r in rows}) for rows in MODEL_STATES.values()) == 468
    assert {k[4] for k in MODEL_STATES} == {1, 2, 8} and STEPS


@pytest.mark.parametrize("model_strategy_precision", sorted({k[:3] for k in MODEL_STATES}), ids="-".join)
def test_model_states_equal_the_bytes_measured_on_the_h200(model_strategy_precision: tuple[str, ...],
                                                           manifests: dict[str, str], tmp_path: Path) -> None:
    for key in sorted(k for k in MODEL_STATES if k[:3] == model_strategy_precision):
        memory = _phases(key, manifests, tmp_path)
        for phase, mem in enumerate(memory):
            ranks = [r for r in MODEL_STATES[key] if r["phase"] == phase]
            measured = max(r["requested"] for r in ranks)  # the busiest rank
            assert mem["model_states"] == measured, (key, phase, mem, measured)


@pytest.mark.parametrize("model", sorted(BENCHES))
def test_optimizer_step_temporaries_match_the_h200(model: str, manifests: dict[str, str], tmp_path: Path) -> None:
    """What the second optimizer step allocated beyond the model states (foreach AdamW: one new
    tensor per state, `sqrt(v) + eps`; SGD with momentum: nothing) is one state's worth for AdamW,
    and explain's peak (batch and sequence of the run) is never below the step's measured peak."""
    for key in sorted(k for k in STEPS if k[0] == model):
        batch, seq = key[5], VIT_TOKENS if model == "vit" else key[6]
        memory = _phases(key, manifests, tmp_path, batch=batch, seq=seq)
        for phase, mem in enumerate(memory):
            ranks = [r for r in STEPS[key] if r["phase"] == phase]
            temporaries = max(r["step_peak"] - r["measured"] for r in ranks)
            expected = mem["optimizer"] // 2 if key[3] == "adamw" else 0
            bound = max(0.02 * expected, 16 * MIB)
            assert abs(temporaries - expected) <= bound, (key, phase, temporaries, expected)
            step_peak = max(r["requested"] for r in ranks) + temporaries  # without the allocator's rounding
            assert mem["peak"] >= step_peak - bound, (key, phase, mem["peak"], step_peak)
