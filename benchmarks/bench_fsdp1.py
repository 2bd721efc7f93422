#!/usr/bin/env python3
"""Time ftsc's static FSDP1 check against FinetuningScheduler reaching the same error for real.

The input is the FTS FSDP tutorial's documented error: DeBERTa-v2 (tests/models.py:deberta_v2_lm,
tiny), the tutorial schedule, `ModuleWrapPolicy({DebertaV2Layer})`,
`awp_overrides: ["model.pooler.dense", "model.classifier"]`, `use_orig_params: false`
(tests/data/fsdp/deberta_layer_only_orig_false.yaml). Both sides must report the same six root
parameters.

Measured in one run (wall times, subprocesses, median of --repeat):
1. `python -m ftsc check CONFIG --model tests/models.py:deberta_v2_lm --format json --no-cache`
   (builds the model on the meta device every time: imports torch + transformers; the structure
   cache is measured by bench_cold_start.py);
2. `python -m ftsc manifest --model ... -o m.json` once, then
   `python -m ftsc check CONFIG --manifest m.json --format json` with a `torch` package that raises
   ImportError first on PYTHONPATH (so any torch import would fail the check);
3. `python tests/fts_fsdp_probe.py SPEC`: a real 2-process CPU launch (gloo) of Lightning +
   FinetuningScheduler with the CPU FSDP shim, stopped right after FTS's FSDP validation raised
   (`seconds` = rank 0's time from process start to the error).

Prints a markdown table. Usage: python benchmarks/bench_fsdp1.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "tests" / "data" / "fsdp" / "deberta_layer_only_orig_false.yaml"
MODEL = "tests/models.py:deberta_v2_lm"
PROBE = REPO / "tests" / "fts_fsdp_probe.py"
SIX = {"model.deberta.embeddings.LayerNorm.bias", "model.deberta.embeddings.LayerNorm.weight",
       "model.deberta.embeddings.word_embeddings.weight", "model.deberta.encoder.LayerNorm.bias",
       "model.deberta.encoder.LayerNorm.weight", "model.deberta.encoder.rel_embeddings.weight"}
TORCH_BLOCKER = 'raise ImportError("torch is blocked by benchmarks/bench_fsdp1.py")\n'


def _env(extra_path: str | None = None) -> dict[str, str]:
    path = [p for p in (extra_path, str(REPO), os.environ.get("PYTHONPATH")) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONWARNINGS": "ignore"}


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    return time.perf_counter() - t0, proc


def _ftsc_params(proc: subprocess.CompletedProcess[str]) -> set[str]:
    diags = json.loads(proc.stdout)["diagnostics"]
    return {p for d in diags if d["code"] == "FTS301" for p in d["data"]["params"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    py = sys.executable
    rows: list[tuple[str, list[float], str]] = []

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        blocker = tmpdir / "block" / "torch"
        blocker.mkdir(parents=True)
        (blocker / "__init__.py").write_text(TORCH_BLOCKER, encoding="utf-8")
        manifest = tmpdir / "m.json"

        # 1. ftsc check with --model
        times = []
        for _ in range(args.repeat):
            dt, proc = _timed([py, "-m", "ftsc", "check", str(CONFIG), "--model", MODEL, "--format", "json",
                               "--no-cache"], _env())
            assert proc.returncode == 1 and _ftsc_params(proc) == SIX, proc.stdout[-2000:] + proc.stderr[-2000:]
            times.append(dt)
        rows.append(("`ftsc check CONFIG --model tests/models.py:deberta_v2_lm`", times, "FTS301, same 6 params"))

        # 1b. the same check in-process, after torch/transformers/lightning are imported (analysis cost only)
        snippet = "\n".join([
            "import contextlib, io, time, lightning.pytorch, transformers, torch",
            "from ftsc.cli import main",
            f"argv = ['check', {str(CONFIG)!r}, '--model', {MODEL!r}, '--format', 'json', '--no-cache']",
            "ts = []",
            f"for _ in range({args.repeat}):",
            "    t0 = time.perf_counter()",
            "    with contextlib.redirect_stdout(io.StringIO()):",
            "        main(argv)",
            "    ts.append(time.perf_counter() - t0)",
            "print(ts)",
        ])
        _, proc = _timed([py, "-c", snippet], _env())
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows.append(("in-process `ftsc.cli.main(check --model)`, imports already done", json.loads(proc.stdout), "-"))

        # 2. manifest once, then check against it with torch blocked
        dt, proc = _timed([py, "-m", "ftsc", "manifest", "--model", MODEL, "--no-cache", "-o", str(manifest)],
                          _env())
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows.append(("`ftsc manifest --model ... -o m.json` (once)", [dt], "-"))
        times = []
        for _ in range(args.repeat):
            dt, proc = _timed([py, "-m", "ftsc", "check", str(CONFIG), "--manifest", str(manifest), "--format", "json"],
                              _env(str(blocker.parent)))
            assert proc.returncode == 1 and _ftsc_params(proc) == SIX, proc.stdout[-2000:] + proc.stderr[-2000:]
            times.append(dt)
        rows.append(("`ftsc check CONFIG --manifest m.json` (torch blocked)", times, "FTS301, same 6 params"))

        # 3. FTS for real: 2 processes on CPU/gloo
        times, to_error = [], []
        for i in range(args.repeat):
            out = tmpdir / f"fts{i}.json"
            spec = {"config": str(CONFIG), "model": "deberta_v2_lm", "out": str(out), "root_dir": str(tmpdir)}
            dt, proc = _timed([py, str(PROBE), json.dumps(spec)], _env())
            verdict = json.loads(out.read_text(encoding="utf-8"))
            errors = verdict["errors"]
            assert len(errors) == 1 and "do not have disjoint FSDP-flattened parameter sets" in errors[0], verdict
            listed = {line.split("'")[1] for line in errors[0].split("provided below:")[1].splitlines() if "'" in line}
            assert listed == SIX, listed
            times.append(dt)
            to_error.append(verdict["seconds"])
        rows.append(("FTS: 2-process CPU launch (wall)", times, "MisconfigurationException, same 6 params"))
        rows.append(("FTS: rank 0, process start -> error", to_error, "-"))

    print(f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} "
          f"{platform.machine()}; median of {args.repeat}\n")
    print("| what | median wall (s) | runs (s) | verdict |\n|---|---|---|---|")
    for name, ts, verdict in rows:
        print(f"| {name} | {statistics.median(ts):.2f} | {', '.join(f'{t:.2f}' for t in ts)} | {verdict} |")
    fts = statistics.median(rows[4][1])
    print(f"\nRatio FTS wall / `ftsc check --model`: **{fts / statistics.median(rows[0][1]):.1f}x**; "
          f"FTS wall / `ftsc check --manifest`: **{fts / statistics.median(rows[3][1]):.1f}x**")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
