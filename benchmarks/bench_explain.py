"""`ftsc explain` vs `ftsc check` on a 100k-parameter manifest (FSDP1, one unit per layer), wall time.

Usage: python benchmarks/bench_explain.py   (best and median of 5 runs of each CLI, side by side)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        m = Path(tmp) / "m.json"
        m.write_text(json.dumps(manifest()))
        s = Path(tmp) / "s.ftsc"
        s.write_text('phase 0 { thaw glob "layers.999.*" }\nphase 1 { thaw /layers\\.9[0-8]\\d\\..*/ }\n'
                     'fsdp { auto_wrap_policy = [Block] }\n')
        base = [sys.executable, "-m", "ftsc"]
        cmds = {"check": [*base, "check", str(s), "--manifest", str(m)],
                "explain": [*base, "explain", str(s), "--manifest", str(m), "--world-size", "8", "--format", "json"]}
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(5):  # interleaved, so both see the same machine load
            for name, cmd in cmds.items():
                t = time.perf_counter()
                if subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL).returncode not in (0, 1):
                    raise SystemExit(f"{name} failed")
                times[name].append(time.perf_counter() - t)
        for name, ts in times.items():
            print(f"{name}: 100,000 parameters, 1,001 FSDP units, world size 8: best {min(ts):.2f} s, "
                  f"median {sorted(ts)[2]:.2f} s")


if __name__ == "__main__":
    main()
