#!/usr/bin/env python3
"""Time `ftsc check` on large schedules and measure CLI start-up.

(a) Generates a 1,000-phase `.ftsc` schedule and a 1,000-phase FTS YAML schedule in a temp
    dir and times `ftsc check` on each, as a subprocess and in-process (`ftsc.cli.main`).
(b) Measures start-up: `python -m ftsc --version` and `ftsc check` on a tiny file, in a
    subprocess whose PYTHONPATH puts a `torch` package that raises ImportError first (and
    records the attempt), and reports whether torch was imported.

Prints markdown tables. Usage: python benchmarks/bench_check.py [--phases N] [--repeat N] [--entry-point]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

TINY = "phase 0 {\n    thaw model.head.weight\n}\n"

TORCH_BLOCKER = """\
import os
_marker = os.environ.get("FTSC_BENCH_TORCH_MARKER")
if _marker:
    open(_marker, "a").write("torch import attempted\\n")
raise ImportError("torch is blocked by benchmarks/bench_check.py")
"""


def gen_ftsc(n: int) -> str:
    out = [f"schedule {{\n    max_epochs = {n // 10 + 10}\n}}\n"]
    for i in range(n):
        body = [
            f"    thaw model.layers.{i}.attn.weight",
            f"    thaw /model\\.layers\\.{i}\\.mlp\\..*/",
            f'    thaw glob "model.layers.{i}.norm*.*"',
        ]
        if i % 10 == 0 and i < n - 1:
            body.append(f"    until epoch {i // 10 + 1} or plateau")
        out.append(f"\nphase {i} {{\n" + "\n".join(body) + "\n}\n")
    return "".join(out)


def gen_yaml(n: int) -> str:
    out = []
    for i in range(n):
        out.append(f"{i}:\n  params:\n"
                   f"  - model.layers.{i}.attn.weight\n"
                   f"  - model\\.layers\\.{i}\\.mlp\\..*\n"
                   f"  - model\\.layers\\.{i}\\.norm[^.]*\\..*\n")
        if i % 10 == 0 and i < n - 1:
            out.append(f"  max_transition_epoch: {i // 10 + 1}\n")
    return "".join(out)


def median_wall(cmd: list[str], repeat: int, env: dict[str, str] | None = None) -> tuple[float, int]:
    times, rc = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t0)
        rc = proc.returncode
    return statistics.median(times), rc


def median_inprocess(argv: list[str], repeat: int) -> tuple[float, int]:
    from ftsc.cli import main  # the repo's ftsc: main() puts REPO first on sys.path

    times, rc = [], 0
    for _ in range(repeat):
        sink = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            rc = main(argv)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), rc


USE_ENTRY_POINT = False


def ftsc_cmd() -> list[str]:
    """`python -m ftsc` (this checkout), or the installed `ftsc` entry point with --entry-point."""
    exe = shutil.which("ftsc")
    return [exe] if USE_ENTRY_POINT and exe else [sys.executable, "-m", "ftsc"]


def repo_env(extra_first: str | None = None) -> dict[str, str]:
    """The environment for subprocesses: PYTHONPATH = [extra_first,] REPO [, old PYTHONPATH]."""
    env = dict(os.environ)
    parts = ([extra_first] if extra_first else []) + [str(REPO)]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phases", type=int, default=1000, help="phases in the generated schedules")
    ap.add_argument("--repeat", type=int, default=5, help="runs per large-file measurement (median)")
    ap.add_argument("--startup-repeat", type=int, default=10, help="runs per start-up measurement")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    ap.add_argument("--entry-point", action="store_true",
                    help="time the installed `ftsc` script instead of `python -m ftsc` from this checkout")
    args = ap.parse_args()
    global USE_ENTRY_POINT
    USE_ENTRY_POINT = args.entry_point
    sys.path.insert(0, str(REPO))
    import ftsc

    if not args.entry_point and Path(ftsc.__file__).resolve().parent.parent != REPO:
        print(f"warning: imported ftsc from {ftsc.__file__}, not {REPO}", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="ftsc-bench-"))
    try:
        big_ftsc = tmp / f"big_{args.phases}.ftsc"
        big_yaml = tmp / f"big_{args.phases}.yaml"
        tiny = tmp / "tiny.ftsc"
        big_ftsc.write_text(gen_ftsc(args.phases))
        big_yaml.write_text(gen_yaml(args.phases))
        tiny.write_text(TINY)

        cpus = os.cpu_count()
        print(f"Python {platform.python_version()} on {platform.platform()}, {cpus} CPUs; "
              f"ftsc from {Path(ftsc.__file__).parent}; command `{' '.join(ftsc_cmd())}`\n")

        print(f"## `ftsc check` on {args.phases}-phase schedules (median of {args.repeat}, wall time)\n")
        print("| input | size | subprocess (s) | in-process `ftsc.cli.main` (s) | exit |")
        print("|---|---|---|---|---|")
        for path in (big_ftsc, big_yaml):
            sub, rc1 = median_wall(ftsc_cmd() + ["check", str(path)], args.repeat, env=repo_env())
            inp, rc2 = median_inprocess(["check", str(path)], args.repeat)
            size = f"{path.stat().st_size / 1024:.0f} KiB"
            print(f"| `{path.suffix}` | {size} | {sub:.3f} | {inp:.3f} | {rc1}/{rc2} |")

        # Start-up, with torch blocked.
        block = tmp / "block"
        (block / "torch").mkdir(parents=True)
        (block / "torch" / "__init__.py").write_text(TORCH_BLOCKER)
        marker = tmp / "torch_marker.txt"
        env = repo_env(extra_first=str(block))
        env["FTSC_BENCH_TORCH_MARKER"] = str(marker)

        print(f"\n## Start-up with torch blocked (median of {args.startup_repeat}, wall time; goal < 0.3 s)\n")
        print("| command | wall (s) | exit |")
        print("|---|---|---|")
        rows = [
            ("python -m ftsc --version", [sys.executable, "-m", "ftsc", "--version"]),
            (" ".join(["ftsc" if USE_ENTRY_POINT else "python -m ftsc", "check tiny.ftsc"]), ftsc_cmd() + ["check", str(tiny)]),
            ("python -c pass (interpreter floor)", [sys.executable, "-c", "pass"]),
        ]
        for label, cmd in rows:
            t, rc = median_wall(cmd, args.startup_repeat, env=env)
            print(f"| `{label}` | {t:.3f} | {rc} |")

        probe = ("import sys, contextlib, io\n"
                 "import ftsc.cli\n"
                 "with contextlib.redirect_stdout(io.StringIO()):\n"
                 f"    rc = ftsc.cli.main(['check', {str(tiny)!r}])\n"
                 "print(rc, 'torch' in sys.modules)\n")
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
        rc_s, in_mods = (out.stdout.split() + ["?", "?"])[:2]
        attempted = marker.exists()
        # Same probe without the blocker: does ftsc import torch when torch is available?
        plain = subprocess.run([sys.executable, "-c", probe], env=repo_env(), capture_output=True, text=True)
        plain_in = (plain.stdout.split() + ["?", "?"])[1]
        have_torch = subprocess.run([sys.executable, "-c", "import importlib.util as u; print(u.find_spec('torch') is not None)"],
                                    capture_output=True, text=True).stdout.strip()
        print("\n## torch import\n")
        print("| check | result |")
        print("|---|---|")
        print(f"| `'torch' in sys.modules` after `ftsc.cli.main(['check', tiny])`, torch blocked | {in_mods} (exit {rc_s}) |")
        print(f"| torch import attempted (blocker was reached) | {attempted} |")
        print(f"| torch installed in this environment | {have_torch} |")
        print(f"| `'torch' in sys.modules`, torch not blocked | {plain_in} |")
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
