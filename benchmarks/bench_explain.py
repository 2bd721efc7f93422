"""`ftsc explain` and `ftsc check` on a 100k-parameter manifest, wall time of the whole CLI process.

Usage:
    python benchmarks/bench_explain.py                        # this checkout, 5 runs of each command
    python benchmarks/bench_explain.py --old /tmp/wt_old      # side by side with another checkout
    python benchmarks/bench_explain.py --runs 9 --fsdp2 --keep DIR

Input: nothing (the manifest and schedules are generated in a temporary folder, or `--keep DIR`).
Output: a markdown table, per command and checkout: min, median and max wall seconds, and the
CPU seconds (user + system) of the median run. Every command runs as `python -m ftsc ...` in a
subprocess with `PYTHONPATH` set to the checkout; the runs are interleaved (checkout by checkout,
command by command) so that all of them see the same machine load. The outputs of the two
checkouts are compared byte for byte (a speed-up must not change what is printed).

The model: 1,000 blocks x 100 parameters (100,000 parameters, 16x16 each) under a ModuleList,
one FSDP1 unit per block (1,001 units, `auto_wrap_policy = [Block]`) and two phases; with
`--fsdp2`, also an FSDP2 plan sharding every block (1,000 `fully_shard` groups).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def manifest(layers: int = 1_000, per_layer: int = 100) -> dict:
    """A manifest with `layers x per_layer` parameters under a ModuleList."""
    modules = [{"name": "", "class": "Net"}, {"name": "layers", "class": "torch.nn.modules.container.ModuleList"}]
    params = []
    for i in range(layers):
        modules.append({"name": f"layers.{i}", "class": "Block"})
        params += [{"name": f"layers.{i}.p{j}", "shape": [16, 16]} for j in range(per_layer)]
    return {"format": "ftsc-manifest", "version": 1, "target": None,
            "classes": {"Net": [], "Block": [], "torch.nn.modules.container.ModuleList": []},
            "modules": modules, "parameters": params}


PHASES = 'phase 0 { thaw glob "layers.999.*" }\nphase 1 { thaw /layers\\.9[0-8]\\d\\..*/ }\n'
SCHEDULES = {"fsdp1": PHASES + "fsdp { auto_wrap_policy = [Block] }\n",
             "fsdp2": PHASES + "fsdp2 { shard /layers\\.\\d+$/ }\n"}


def _run(cmd: list[str], pythonpath: str) -> tuple[float, float, bytes]:
    """Wall seconds, CPU seconds (user + system) and stdout of one `python -m ftsc` process."""
    env = dict(os.environ, PYTHONPATH=pythonpath, PYTHONHASHSEED="0")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    # cwd: `-m` puts the working folder first on sys.path, which must not hold another `ftsc`
    proc = subprocess.run([sys.executable, "-m", "ftsc", *cmd], env=env, capture_output=True, check=False,
                          cwd=Path(cmd[1]).parent)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed ({pythonpath}): {proc.stderr.decode()[-2000:]}")

    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--old", metavar="CHECKOUT", help="another checkout to time side by side (e.g. a git worktree)")
    ap.add_argument("--fsdp2", action="store_true", help="also time an FSDP2 plan of 1,000 groups")
    ap.add_argument("--keep", metavar="DIR", help="write the inputs here and keep them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        m = folder / "m.json"
        m.write_text(json.dumps(manifest()))
        cmds: dict[str, list[str]] = {}
        for kind, text in SCHEDULES.items():
            if kind == "fsdp2" and not args.fsdp2:
                continue
            s = folder / f"{kind}.ftsc"
            s.write_text(text)
            cmds[f"`ftsc check {s.name} --manifest m.json`"] = ["check", str(s), "--manifest", str(m)]
            cmds[f"`ftsc explain {s.name} --manifest m.json --world-size 8 --format json`"] = [
                "explain", str(s), "--manifest", str(m), "--world-size", "8", "--format", "json"]
        trees = {"this checkout": str(ROOT)} | ({"--old": str(Path(args.old).resolve())} if args.old else {})
        for path in trees.values():
            found = subprocess.run([sys.executable, "-c", "import ftsc; print(ftsc.__file__)"], cwd=folder,
                                   env=dict(os.environ, PYTHONPATH=path), capture_output=True, text=True, check=True)
            if not found.stdout.startswith(str(Path(path) / "ftsc")):
                raise SystemExit(f"PYTHONPATH={path} selects {found.stdout.strip()}, not that checkout's ftsc")
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        outputs: dict[tuple[str, str], bytes] = {}
        for _ in range(args.runs):
            for tree, path in trees.items():
                for name, cmd in cmds.items():
                    wall, cpu, out = _run(cmd, path)
                    times.setdefault((name, tree), []).append((wall, cpu))
                    outputs[(name, tree)] = out
        print("| command | checkout | min (s) | median (s) | max (s) | CPU of median run (s) |")
        print("|---|---|---:|---:|---:|---:|")
        for name in cmds:
            for tree in trees:
                runs = sorted(times[(name, tree)])
                walls = [w for w, _ in runs]
                median = statistics.median(walls)
                cpu = runs[len(runs) // 2][1]
                print(f"| {name} | {tree} | {min(walls):.2f} | {median:.2f} | {max(walls):.2f} | {cpu:.2f} |")
        if args.old:
            same = all(outputs[(n, "this checkout")] == outputs[(n, "--old")] for n in cmds)
            print(f"\noutputs identical between the checkouts: {same}")


if __name__ == "__main__":
    main()
