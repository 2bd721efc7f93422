"""Time the `--fix` search (ftsc.fix.search) and `ftsc check --fix` on generated FSDP1 models.

A model of L layers x 6 linears (weight + bias) plus a head, `use_orig_params = false` with no
overrides, a schedule whose phase 0 is the head and phases 1..P each thaw one layer: the root
unit mixes P + 2 labels, so the search must wrap the head and P layers. Reports, per size, the
median wall time of the search alone and of one in-process `check --fix` (search, edit,
read-back, re-check, write). Run: `python benchmarks/bench_fix.py [--repeat 5]`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftsc.analyze import AnalysisContext, prepare  # noqa: E402
from ftsc.cli import main  # noqa: E402
from ftsc.fix.search import fsdp1_overrides  # noqa: E402
from ftsc.frontend import load_file  # noqa: E402
from ftsc.model import load_graph  # noqa: E402
from ftsc.model.graph import ModelGraph  # noqa: E402


def _case(folder: Path, layers: int, phases: int) -> tuple[Path, Path]:
    params = [f"model.layers.{i}.{m}.{p}" for i in range(layers)
              for m in ("attn.q", "attn.k", "attn.v", "mlp.up", "mlp.down", "norm") for p in ("weight", "bias")]
    manifest = folder / "m.json"
    manifest.write_text(ModelGraph.from_names([*params, "model.head.weight"]).manifest.dumps())
    body = "".join(f'phase {j} {{ thaw glob "model.layers.{j}.**" }}\n' for j in range(1, phases + 1))
    sched = folder / "s.ftsc"
    sched.write_text("phase 0 { thaw model.head.weight }\n" + body + "fsdp {\n    use_orig_params = false\n}\n")
    return sched, manifest


def _median(fn, repeat: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main_() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print("| layers | modules | phases | search (s) | check --fix (s) |")
    print("|---:|---:|---:|---:|---:|")
    for layers, phases in ((50, 10), (200, 40), (800, 100)):
        with tempfile.TemporaryDirectory() as tmp:
            sched, manifest = _case(Path(tmp), layers, phases)
            text = sched.read_text()
            loaded, graph = load_file(str(sched)), load_graph(None, str(manifest), {})
            ctx = prepare(loaded.schedule, AnalysisContext(loaded.source, loaded.kind, graph))
            res, fsdp1 = ctx.resolution, ctx.fsdp1
            phase0 = res.phase(0).params

            def search() -> None:
                assert fsdp1_overrides(graph, fsdp1.spec, fsdp1.prediction, res.phase_of, phase0)

            def fix() -> None:
                sched.write_text(text)
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    main(["check", str(sched), "--manifest", str(manifest), "--fix"])
                assert sched.read_text() != text

            print(f"| {layers} | {len(graph.modules)} | {phases} | {_median(search, args.repeat):.3f} | "
                  f"{_median(fix, args.repeat):.3f} |")


if __name__ == "__main__":
    main_()
