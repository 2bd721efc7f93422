#!/usr/bin/env python3
"""Time-to-first-error of `ftsc check --model`: cold, cached, `--manifest`, and FTS's own launch.

Two parts, one run:

1. **Stages of a cold `--model` check**, in a fresh interpreter per model (the DeBERTa-v2 and
   Llama LightningModules of tests/models.py, checked against the FSDP tutorial's config and
   examples/llama_fsdp2.ftsc): `import ftsc.cli` (ours), `import torch`, the model's own
   imports (first build minus second build: transformers, lightning), the meta-device build,
   manifest extraction, recording the cache key (ours, on a miss only), graph + analysis, and
   interpreter teardown (what `ftsc` now skips with `os._exit` once torch is loaded).
2. **Side by side** on the FSDP1 misconfiguration of benchmarks/bench_fsdp1.py (DeBERTa-v2,
   `ModuleWrapPolicy({DebertaV2Layer})`, six root parameters in two phases), in a throwaway git
   project holding copies of tests/models.py and the config: `ftsc check --model` cold (empty
   cache: builds and fills), cached (torch blocked: a hit must not import it), `--no-cache`,
   `--manifest` (torch blocked), and FinetuningScheduler's 2-process CPU launch
   (tests/fts_fsdp_probe.py, as bench_fsdp1.py runs it). Every run must report the same six
   parameters. Prints markdown tables and the ratios.

Usage: python benchmarks/bench_cold_start.py [--repeat N] [--skip-fts]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fsdp1 import CONFIG, PROBE, REPO, SIX, TORCH_BLOCKER, _ftsc_params

STAGES = r'''
import sys, time, json
t0 = time.perf_counter()
marks = {}
def mark(name):
    global t0
    t = time.perf_counter(); marks[name] = t - t0; t0 = t
import ftsc.cli as cli
from ftsc.model import build as b
from ftsc.model.cache import Recorder
from ftsc.model.graph import ModelGraph
mark("import ftsc (ours)")
import torch
mark("import torch")
target, schedule = sys.argv[1], sys.argv[2]
b.build(target)
mark("first build")
module = b.build(target)
mark("meta build")
manifest = b.extract(module, target)
mark("extract manifest")
rec = Recorder()
rec.files(); rec.dists()
mark("record cache key (ours, miss only)")
graph = ModelGraph(manifest)
loaded = cli.load_file(schedule)
diags = cli.check_file(loaded, graph)
mark("graph + analysis (ours)")
marks["model's imports"] = marks.pop("first build") - marks["meta build"]
print(json.dumps({"marks": marks, "modules": len(sys.modules), "params": len(manifest.parameters),
                  "diagnostics": len(diags), "end": time.time()}), flush=True)
'''


def _env(*front: str) -> dict[str, str]:
    path = [*front, str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONWARNINGS": "ignore"}


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)
    return time.perf_counter() - t0, proc


def stages(target: str, schedule: Path) -> tuple[dict[str, float], float, dict[str, int]]:
    """Stage times of one cold build-and-check in a fresh interpreter, and its teardown time."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", STAGES, target, str(schedule)], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=900, check=False)
    end = time.time()
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    marks = doc["marks"]
    marks["interpreter teardown (skipped by `ftsc` now)"] = end - doc["end"]
    return marks, wall, {k: doc[k] for k in ("modules", "params", "diagnostics")}


def _project(tmp: Path) -> Path:
    root = tmp / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    shutil.copy(REPO / "tests" / "models.py", root / "models.py")
    shutil.copy(CONFIG, root / "config.yaml")
    shutil.copy(CONFIG.parent / "deberta_schedule.yaml", root / "deberta_schedule.yaml")
    blocker = tmp / "block" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(TORCH_BLOCKER, encoding="utf-8")
    return root


def side_by_side(repeat: int, skip_fts: bool) -> list[tuple[str, list[float]]]:
    py = sys.executable
    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = _project(Path(tmp))
        blocked = _env(str(Path(tmp) / "block"))
        check = [py, "-m", "ftsc", "check", "config.yaml", "--model", "models.py:deberta_v2_lm", "--format", "json"]

        cache = root / ".ftsc_cache"
        dt, proc = _run([py, "-m", "ftsc", "manifest", "--model", "models.py:deberta_v2_lm", "--no-cache",
                         "-o", "m.json"], root, _env())
        assert proc.returncode == 0, proc.stderr[-2000:]
        cases = [
            ("`ftsc check --model`, cold (empty cache: build + fill)", check, _env(), True),
            ("`ftsc check --model`, cached (torch blocked)", check, blocked, False),
            ("`ftsc check --model --no-cache`", [*check, "--no-cache"], _env(), False),
            ("`ftsc check --manifest m.json` (torch blocked)",
             [py, "-m", "ftsc", "check", "config.yaml", "--manifest", "m.json", "--format", "json"], blocked, False),
        ]
        times: dict[str, list[float]] = {name: [] for name, *_ in cases}
        for _ in range(repeat):  # interleaved, so that load changes hit every row alike
            for name, cmd, env, empty in cases:
                if empty:
                    shutil.rmtree(cache, ignore_errors=True)
                dt, proc = _run(cmd, root, env)
                assert proc.returncode == 1 and _ftsc_params(proc) == SIX, (name, proc.stdout[-2000:],
                                                                            proc.stderr[-2000:])
                times[name].append(dt)
        rows += list(times.items())
        if not skip_fts:
            fts_times = []
            for i in range(repeat):
                out = Path(tmp) / f"fts{i}.json"
                spec = {"config": str(CONFIG), "model": "deberta_v2_lm", "out": str(out), "root_dir": tmp}
                dt, proc = _run([py, str(PROBE), json.dumps(spec)], REPO, _env())
                errors = json.loads(out.read_text(encoding="utf-8"))["errors"]
                assert len(errors) == 1 and "do not have disjoint FSDP-flattened parameter sets" in errors[0], errors
                listed = {ln.split("'")[1] for ln in errors[0].split("provided below:")[1].splitlines() if "'" in ln}
                assert listed == SIX, listed
                fts_times.append(dt)
            rows.append(("FTS: 2-process CPU launch (wall)", fts_times))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per row of the side-by-side table (median)")
    ap.add_argument("--skip-fts", action="store_true", help="leave out FinetuningScheduler's launch")
    args = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=False).stdout.strip() or "?"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True, check=False).stdout.strip()
    print(f"commit {commit}{' (working tree has uncommitted changes)' if dirty else ''}; {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f} at start\n")

    floor, _ = _run([sys.executable, "-c", "pass"], REPO, _env())
    print(f"## Stages of a cold `--model` check (one fresh interpreter each; `python -c pass`: {floor:.2f} s)\n")
    cases = [("tests/models.py:deberta_v2_lm", CONFIG), ("tests/models.py:llama_lm", REPO / "examples" / "llama_fsdp2.ftsc")]
    results = [(t, *stages(t, s)) for t, s in cases]
    names = list(results[0][1])
    print("| stage (s) | " + " | ".join(f"`{t.split(':')[1]}`" for t, *_ in results) + " |")
    print("|---|" + "---:|" * len(results))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{r[1][name]:.2f}" for r in results) + " |")
    print("| **process wall** | " + " | ".join(f"**{r[2]:.2f}**" for r in results) + " |")
    print("| modules loaded / parameters / diagnostics | "
          + " | ".join(f"{r[3]['modules']} / {r[3]['params']} / {r[3]['diagnostics']}" for r in results) + " |")

    rows = side_by_side(args.repeat, args.skip_fts)
    print(f"\n## Time to the FSDP1 error (same six root parameters everywhere; median of {args.repeat})\n")
    print("| what | median wall (s) | runs (s) |\n|---|---:|---|")
    for name, ts in rows:
        print(f"| {name} | {statistics.median(ts):.2f} | {', '.join(f'{t:.2f}' for t in ts)} |")
    med = {name: statistics.median(ts) for name, ts in rows}
    cold, cached, nocache, manifest = (med[rows[i][0]] for i in range(4))
    print(f"\nRatios: cached / `--manifest` **{cached / manifest:.2f}x** (target <= 1.5x); "
          f"cold / `--no-cache` {cold / nocache:.2f}x (the cost of filling)", end="")
    if not args.skip_fts:
        fts = med[rows[4][0]]
        print(f"; FTS / cached **{fts / cached:.1f}x** (target >= 10x); FTS / cold {fts / cold:.1f}x; "
              f"FTS / `--manifest` {fts / manifest:.1f}x")
    else:
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
