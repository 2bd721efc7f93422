"""Throughput and peak GPU memory per phase: ftsc's callback vs FinetuningScheduler (FTS), same run.

    python benchmarks/bench_gpu_phases.py --out runs/bench [--size small] [--steps 30] \\
        [--strategies fsdp1 fsdp1-flat fsdp2] [--schedulers ftsc fts] [--resume-at 1]

For each strategy it runs examples/gpu/llama_finetune.py (2 GPUs, bf16) under each scheduler,
one after the other on the same machine, and then resumes each scheduler's run from its
checkpoint of epoch `--resume-at` with `trainer.fit(ckpt_path=...)`. Prints a markdown table per
strategy (per phase: trainable numel, tokens/s, step time and peak memory, the mean over the
phase's epochs) and whether each resumed run follows the uninterrupted one (phase, parameter
groups and lrs per epoch; validation losses within 2%). Writes OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "gpu" / "llama_finetune.py"


def fit(out: Path, args: list[str], timeout: int) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    (out / "log.txt").parent.mkdir(parents=True, exist_ok=True)
    (out / "log.txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        return {"error": (proc.stdout + proc.stderr)[-3000:], "wall_s": time.perf_counter() - start}
    stats = json.loads((out / "stats.json").read_text())
    stats["wall_s"] = round(time.perf_counter() - start, 1)
    return stats


def per_phase(stats: dict[str, Any]) -> dict[int, dict[str, float]]:
    phases: dict[int, list[dict[str, Any]]] = {}
    for row in stats.get("epochs", []):
        if "tokens_per_s" not in row:  # an epoch without batches
            continue
        phases.setdefault(row["phase"], []).append(row)
    out = {}
    for phase, rows in sorted(phases.items()):
        out[phase] = {"trainable_numel": rows[0]["trainable_numel"],
                      "tokens_per_s": sum(r["tokens_per_s"] for r in rows) / len(rows),
                      "step_s": sum(r["step_s"] for r in rows) / len(rows),
                      "peak_mem_gib": max(r.get("peak_mem_gib", 0.0) for r in rows)}
    return out


def follows(resumed: dict[str, Any], full: dict[str, Any]) -> tuple[bool, str]:
    """Does the resumed run repeat the uninterrupted run's epochs after the checkpoint?"""
    if "error" in resumed:
        return False, "failed: " + resumed["error"].strip().splitlines()[-1]
    by_epoch = {r["epoch"]: r for r in full["epochs"]}
    worst = 0.0
    for row in resumed["epochs"]:
        ref = by_epoch.get(row["epoch"])
        if ref is None or (row["phase"], row["param_groups"]) != (ref["phase"], ref["param_groups"]):
            return False, (f"epoch {row['epoch']}: phase {row['phase']} with {row['param_groups']} groups, "
                           f"uninterrupted: phase {ref and ref['phase']} with {ref and ref['param_groups']} groups")
        if any(abs(a - b) > 1e-9 * max(abs(b), 1e-12) for a, b in zip(row["lrs"], ref["lrs"], strict=False)):
            return False, f"epoch {row['epoch']}: lrs {row['lrs']} vs {ref['lrs']}"
        worst = max(worst, abs(row["val_loss"] - ref["val_loss"]) / abs(ref["val_loss"]))
    ok = worst <= 0.02
    return ok, (f"phases, groups and lrs equal at epochs {[r['epoch'] for r in resumed['epochs']]}; "
                f"largest val_loss difference {worst:.2%}")


def table(strategy: str, runs: dict[str, dict[str, Any]]) -> str:
    names = [s for s in runs if "error" not in runs[s]]
    phases = {s: per_phase(runs[s]) for s in names}
    lines = [f"#### {strategy}", "",
             "| phase | trainable params | " + " | ".join(f"{s} tokens/s | {s} step ms | {s} peak GiB" for s in names)
             + (" | ftsc/FTS tokens/s |" if {"ftsc", "fts"} <= set(names) else " |"),
             "|---:|---:|" + "---:|" * (3 * len(names) + ({"ftsc", "fts"} <= set(names)))]
    for phase in sorted(next(iter(phases.values()), {})):
        cells = []
        for s in names:
            p = phases[s].get(phase, {})
            cells += [f"{p.get('tokens_per_s', 0):,.0f}", f"{1000 * p.get('step_s', 0):.1f}",
                      f"{p.get('peak_mem_gib', 0):.2f}"]
        ratio = ""
        if {"ftsc", "fts"} <= set(names) and phase in phases["fts"]:
            ratio = f" {phases['ftsc'][phase]['tokens_per_s'] / phases['fts'][phase]['tokens_per_s']:.3f} |"
        numel = phases[names[0]][phase]["trainable_numel"]
        lines.append(f"| {phase} | {numel:,} | " + " | ".join(cells) + " |" + ratio)
    for s, run in runs.items():
        if "error" in run:
            lines.append(f"\n{s}: failed: {run['error'].strip().splitlines()[-1]}")
        else:
            lines.append(f"\n{s}: fit {run['fit_s']} s, final phase {run['final_phase']}, "
                         f"self-check: {run['self_check'] or 'none'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", default="small")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--strategies", nargs="+", default=["fsdp1", "fsdp2"])
    ap.add_argument("--schedulers", nargs="+", default=["ftsc", "fts"])
    ap.add_argument("--resume-at", type=int, default=1, help="-1: no resume runs")
    ap.add_argument("--resume-for", nargs="+", default=["ftsc", "fts"], help="schedulers whose runs are resumed")
    ap.add_argument("--keep-checkpoints", action="store_true",
                    help="keep every run's checkpoints (by default they are deleted once used: GBs per epoch)")
    ap.add_argument("--timeout", type=int, default=600)
    args = ap.parse_args()
    out = Path(args.out)
    common = ["--size", args.size, "--steps", str(args.steps), "--epochs", str(args.epochs)]
    results: dict[str, Any] = {"args": vars(args), "strategies": {}}
    for strategy in args.strategies:
        runs: dict[str, dict[str, Any]] = {}
        resumes: dict[str, Any] = {}
        for sched in args.schedulers:
            runs[sched] = fit(out / f"{strategy}-{sched}", [*common, "--strategy", strategy, "--scheduler", sched],
                              args.timeout)
            print(f"{strategy} {sched}: {runs[sched].get('wall_s')} s", "error" if "error" in runs[sched] else "",
                  flush=True)
        for sched in args.schedulers:
            ckpts = sorted((out / f"{strategy}-{sched}" / "ckpt").glob(f"epoch={args.resume_at}*"))
            if "error" in runs[sched] or not ckpts or sched not in args.resume_for or args.resume_at < 0:
                continue
            resumed = fit(out / f"{strategy}-{sched}-resumed", [*common, "--strategy", strategy, "--scheduler", sched,
                                                               "--resume", str(ckpts[0])], args.timeout)
            ok, why = follows(resumed, runs[sched])
            resumes[sched] = {"ok": ok, "detail": why, "epochs": resumed.get("epochs")}
            print(f"{strategy} {sched} resumed from epoch {args.resume_at}: {'OK' if ok else 'DIFFERS'}: {why}",
                  flush=True)
        results["strategies"][strategy] = {"runs": runs, "resumed": resumes}
        if not args.keep_checkpoints:
            for ckpt in out.glob(f"{strategy}-*/ckpt"):
                shutil.rmtree(ckpt)
        print(table(strategy, runs), "\n", flush=True)
    first = next((r for s in results["strategies"].values() for r in s["runs"].values() if "device" in r), {})
    results["device"] = first.get("device")
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"device: {results['device']}; torch {first.get('torch')}, lightning {first.get('lightning')}; "
          f"{first.get('params')} parameters")


if __name__ == "__main__":
    main()
