#!/usr/bin/env python3
"""Time `ftsc check --manifest` on a 100,000-parameter model with a 200-pattern schedule.

Acceptance criterion: "`ftsc check` against a manifest of a synthetic 100k-parameter model with
200 patterns finishes in under 1 s; report the time next to a plain per-pattern `re.match` loop
on the same data, in one run."

Generates, in a temp dir, the manifest of a synthetic MoE transformer with exactly 100,000
parameter tensors (130 layers, 256 experts per MoE layer; `lm_head.weight` tied to the
embedding) and an FTS YAML schedule with 200 patterns over 40 phases (exact FQNs, FTS prefixes,
regexes, `.*` starts), plus the equivalent `.ftsc` schedule (exact names, `/regex/`, `glob`,
`fts`). Then measures, in one run:

(a) `python -m ftsc check SCHEDULE --manifest m.json` as a subprocess (median wall time);
(b) the same in-process, stage by stage (manifest JSON decode, manifest validation, graph,
    name index, schedule load, resolution, passes, rendering) and as `ftsc.cli.main`;
(c) the naive resolver: for each of the 200 patterns, FTS semantics (the pattern itself if it is
    a parameter name, else `[n for n in names if rx.match(n)]`), names already in memory;
(d) ftsc's resolution alone (`ModelGraph.has_param` + `NameIndex.match`) on the same data,
    asserting that (c) and (d) give identical per-pattern results.

Prints markdown tables. Usage: python benchmarks/bench_resolve.py [--repeat N] [--profile] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------
# The synthetic model (Qwen2-MoE-like): 2 dense layers + 128 MoE layers of 256 experts with a
# shared expert; LayerNorms with biases, attention without; 100,000 tensors exactly.
# --------------------------------------------------------------------------------------------

LAYERS, DENSE, EXPERTS = 130, 2, 256
HIDDEN, KV, FFN_DENSE, FFN_EXPERT, FFN_SHARED, VOCAB = 2048, 512, 5632, 1408, 5632, 151_936
MODULE = "torch.nn.modules.module.Module"
LINEAR, NORM = "torch.nn.modules.linear.Linear", "torch.nn.modules.normalization.LayerNorm"
CLASSES = {
    "bench.moe.MoEForCausalLM": [MODULE], "bench.moe.MoEModel": [MODULE], "bench.moe.DecoderLayer": [MODULE],
    "bench.moe.Attention": [MODULE], "bench.moe.MLP": [MODULE], "bench.moe.SparseMoE": [MODULE],
    LINEAR: [MODULE], NORM: [MODULE], "torch.nn.modules.sparse.Embedding": [MODULE],
    "torch.nn.modules.container.ModuleList": [MODULE], MODULE: [],
}


def gen_manifest() -> dict[str, Any]:
    """The manifest document (`ftsc-manifest` version 1), in `named_modules()` order."""
    modules: list[dict[str, Any]] = []
    params: list[dict[str, Any]] = []

    def mod(name: str, cls: str) -> None:
        modules.append({"name": name, "class": cls, "aliases": []})

    def par(name: str, shape: tuple[int, ...], aliases: tuple[str, ...] = ()) -> None:
        params.append({"name": name, "shape": list(shape), "dtype": "bfloat16", "requires_grad": True,
                       "aliases": list(aliases)})

    def linear(name: str, out_f: int, in_f: int, bias: bool = False) -> None:
        mod(name, LINEAR)
        par(f"{name}.weight", (out_f, in_f))
        if bias:
            par(f"{name}.bias", (out_f,))

    def norm(name: str) -> None:
        mod(name, NORM)
        par(f"{name}.weight", (HIDDEN,))
        par(f"{name}.bias", (HIDDEN,))

    def mlp(name: str, ffn: int, bias: bool = False) -> None:
        mod(name, "bench.moe.MLP")
        linear(f"{name}.gate_proj", ffn, HIDDEN, bias)
        linear(f"{name}.up_proj", ffn, HIDDEN, bias)
        linear(f"{name}.down_proj", HIDDEN, ffn, bias)

    mod("", "bench.moe.MoEForCausalLM")
    mod("model", "bench.moe.MoEModel")
    mod("model.embed_tokens", "torch.nn.modules.sparse.Embedding")
    par("model.embed_tokens.weight", (VOCAB, HIDDEN), aliases=("lm_head.weight",))  # tied to the head
    mod("model.layers", "torch.nn.modules.container.ModuleList")
    for i in range(LAYERS):
        layer = f"model.layers.{i}"
        mod(layer, "bench.moe.DecoderLayer")
        mod(f"{layer}.attn", "bench.moe.Attention")
        for proj, out_f in (("q_proj", HIDDEN), ("k_proj", KV), ("v_proj", KV), ("o_proj", HIDDEN)):
            linear(f"{layer}.attn.{proj}", out_f, HIDDEN)
        norm(f"{layer}.input_layernorm")
        norm(f"{layer}.post_attention_layernorm")
        if i < DENSE:
            mlp(f"{layer}.mlp", FFN_DENSE, bias=True)
            continue
        mod(f"{layer}.mlp", "bench.moe.SparseMoE")
        linear(f"{layer}.mlp.router", EXPERTS, HIDDEN)
        mod(f"{layer}.mlp.experts", "torch.nn.modules.container.ModuleList")
        for e in range(EXPERTS):
            mlp(f"{layer}.mlp.experts.{e}", FFN_EXPERT)
        mlp(f"{layer}.mlp.shared_expert", FFN_SHARED)
        linear(f"{layer}.mlp.shared_expert_gate", 1, HIDDEN)
    norm("model.norm")
    mod("lm_head", LINEAR)
    par("lm_head.bias", (VOCAB,))
    assert len(params) == 100_000, len(params)
    return {"format": "ftsc-manifest", "version": 1, "target": "bench.moe:build", "classes": CLASSES,
            "modules": modules, "parameters": params, "buffers": [], "calls": []}


# --------------------------------------------------------------------------------------------
# The schedule: 200 patterns. Each entry is (FTS YAML pattern, equivalent `.ftsc` selector).
# --------------------------------------------------------------------------------------------

Sel = tuple[str, str]
TARGET_PATTERNS = 200


def _exact(name: str) -> Sel:
    return name, name


def _fts_prefix(prefix: str) -> Sel:
    """An FTS prefix such as `model.layers.3.attn` (unescaped dots); in `.ftsc`, a glob."""
    return prefix, f'glob "{prefix}.**"'


def _regex(rx: str) -> Sel:
    """An FTS regex whose matches are whole names here; in `.ftsc`, a `/regex/`."""
    return rx, f"/{rx}/"


def _layer_exact(i: int, cost: int) -> list[Sel]:
    """Layer `i`'s attention and MLP in `cost` patterns (2..5): exact attention names, a regex."""
    projs = ["q_proj", "k_proj", "v_proj", "o_proj"]
    k = cost - 1  # patterns for the four attention weights
    sels = [_exact(f"model.layers.{i}.attn.{p}.weight") for p in projs[: k - 1]]
    rest = projs[k - 1 :]
    if len(rest) == 1:
        sels.append(_exact(f"model.layers.{i}.attn.{rest[0]}.weight"))
    else:
        sels.append(_regex(rf"model\.layers\.{i}\.attn\.({'|'.join(rest)})\.weight"))
    sels.append(_regex(rf"model\.layers\.{i}\.mlp\..*"))
    return sels


def _group(group: list[int], style: int) -> list[Sel]:
    """Attention and MLP of the layers in `group` (same tens digit), in one of three styles."""
    if style == 0:  # FTS prefixes, two per layer
        return [s for i in group for s in (_fts_prefix(f"model.layers.{i}.attn"), _fts_prefix(f"model.layers.{i}.mlp"))]
    if style == 1:  # one alternation
        return [_regex(rf"model\.layers\.({'|'.join(map(str, group))})\.(attn|mlp)\..*")]
    # A character class over the last digit, FTS style (unescaped dots).
    head, cls = str(group[0])[:-1], f"[{group[0] % 10}-{group[-1] % 10}]"
    return [(f"model.layers.{head}{cls}.attn.*", f'glob "model.layers.{head}{cls}.attn.**"'),
            (f"model.layers.{head}{cls}.mlp.*", f'glob "model.layers.{head}{cls}.mlp.**"')]


def gen_schedule() -> list[list[Sel]]:
    """Phases of (FTS pattern, `.ftsc` selector): head first, then layers top-down.

    Disjoint except for two deliberate overlaps (FTS203): `model.layers.12` (an FTS prefix, so
    also layers 120-129: FTS205) and `model\\.layers\\.(4|5)\\..*` take the LayerNorms phase 0
    already thaws. The 2 x 768 expert weights of layers 2 and 3 stay frozen (FTS204).
    """
    head: list[list[Sel]] = [
        [_exact("model.norm.weight"), _exact("model.embed_tokens.weight"), _exact("lm_head.bias"),
         (".*norm.*", "/.*norm.*/"), (".*bias", 'glob "**.bias"')],
        [("model.layers.12", 'fts "model.layers.12"')],
    ]
    tail: list[list[Sel]] = [
        [("model.layers.1[01].attn.*", 'glob "model.layers.1[01].attn.**"'),
         ("model.layers.1[01].mlp.*", 'glob "model.layers.1[01].mlp.**"')],
        [_regex(r"model\.layers\.[6-9]\.(attn|mlp)\..*")],
        [_regex(r"model\.layers\.(4|5)\..*")],
        [_fts_prefix("model.layers.2.attn"), _fts_prefix("model.layers.3.attn"),
         ("model.layers.[23].mlp.router.weight", 'glob "model.layers.[23].mlp.router.weight"'),
         _regex(r"model\.layers\.[23]\.mlp\.shared_expert.*")],
        [_regex(r"model\.layers\.[01]\.attn\..*"), _regex(r"model\.layers\.[01]\.mlp\..*weight")],
    ]
    # Layers 119..13 in groups that share the tens digit: [d7-d9], [d4-d6], [d0-d3].
    groups: list[list[int]] = []
    for d in range(11, 0, -1):
        for lo, hi in ((7, 9), (4, 6), (0, 3)):
            g = [10 * d + k for k in range(lo, hi + 1) if 13 <= 10 * d + k <= 119]
            if g:
                groups.append(g)
    plan = [(g, k % 4) for k, g in enumerate(groups)]  # style 3: exact names, 2..5 patterns per layer
    budget = TARGET_PATTERNS - sum(map(len, head)) - sum(map(len, tail))
    budget -= sum(len(_group(g, s)) if s != 3 else 2 * len(g) for g, s in plan)
    layer_cost: dict[int, int] = {}
    for g, s in plan:
        for i in g if s == 3 else ():
            layer_cost[i] = 2 + min(3, budget)
            budget -= layer_cost[i] - 2
    assert budget == 0, f"cannot reach {TARGET_PATTERNS} patterns ({budget} left)"
    middle = [[x for i in g for x in _layer_exact(i, layer_cost[i])] if s == 3 else _group(g, s) for g, s in plan]
    phases = head + middle + tail
    assert sum(map(len, phases)) == TARGET_PATTERNS
    return phases


def yaml_text(phases: list[list[Sel]]) -> str:
    out = []
    for k, sels in enumerate(phases):
        out.append(f"{k}:\n  params:\n")
        out.extend("  - '" + fts.replace("'", "''") + "'\n" for fts, _ in sels)
        if k < len(phases) - 1:
            out.append(f"  max_transition_epoch: {k + 1}\n")
    return "".join(out)


def ftsc_text(phases: list[list[Sel]]) -> str:
    out = [f"schedule {{\n    max_epochs = {len(phases) + 1}\n}}\n"]
    for k, sels in enumerate(phases):
        body = [f"    thaw {dsl}" for _, dsl in sels]
        if k < len(phases) - 1:
            body.append(f"    until epoch {k + 1}")
        out.append(f"\nphase {k} {{\n" + "\n".join(body) + "\n}\n")
    return "".join(out)


def pattern_mix(patterns: list[str], names: frozenset[str]) -> str:
    kinds: Counter[str] = Counter()
    for p in patterns:
        if p in names:
            kinds["exact FQN"] += 1
        elif p.startswith("."):
            kinds["wildcard start"] += 1
        elif "\\" in p:
            kinds["escaped regex"] += 1
        elif "[" in p:
            kinds["FTS prefix with a class"] += 1
        else:
            kinds["FTS prefix"] += 1
    return ", ".join(f"{n} {k}" for k, n in kinds.most_common())


# --------------------------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------------------------

def median_wall(cmd: list[str], repeat: int, env: dict[str, str] | None = None) -> tuple[float, int]:
    times, rc = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t0)
        rc = proc.returncode
    return statistics.median(times), rc


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """(median seconds, last result) of `fn()` over `repeat` calls.

    Before each call the objects alive so far are collected and frozen (`gc.freeze`), so that the
    garbage collector does not rescan this script's own 100k-name structures, as it would not in
    a fresh `ftsc check` process.
    """
    times, result = [], None
    for _ in range(repeat):
        result = None
        gc.collect()
        gc.freeze()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def repo_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def quiet(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            return fn()
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    ap.add_argument("--profile", action="store_true",
                    help="also print the top of a cProfile (cumtime) of in-process `ftsc check` on the YAML file")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    import ftsc
    from ftsc import ir
    from ftsc.analyze import AnalysisContext, analyze
    from ftsc.analyze.resolve import match_selector, resolve, resolve_schedule
    from ftsc.cli import check_file
    from ftsc.cli import main as cli_main
    from ftsc.diagnostics.render import RENDERERS
    from ftsc.frontend import load_file
    from ftsc.model.graph import ModelGraph
    from ftsc.model.manifest import from_json, read
    from ftsc.model.names import NameIndex

    if Path(ftsc.__file__).resolve().parent.parent != REPO:
        print(f"warning: imported ftsc from {ftsc.__file__}, not {REPO}", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="ftsc-bench-resolve-"))
    try:
        t0 = time.perf_counter()
        doc = gen_manifest()
        man_path = tmp / "m.json"
        man_path.write_text(from_json(doc).dumps(), encoding="utf-8")  # the `ftsc manifest` layout
        phases = gen_schedule()
        yaml_path, dsl_path = tmp / "schedule.yaml", tmp / "schedule.ftsc"
        yaml_path.write_text(yaml_text(phases))
        dsl_path.write_text(ftsc_text(phases))
        gen_s = time.perf_counter() - t0
        names = [p["name"] for p in doc["parameters"]]
        assert len(names) == 100_000, len(names)
        patterns = [fts for sels in phases for fts, _ in sels]
        del doc

        print(f"Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs; "
              f"ftsc from {Path(ftsc.__file__).parent}; median of {args.repeat}\n")
        print(f"Inputs (generated in {gen_s:.1f} s): manifest {len(names):,} parameters, "
              f"{sum(1 for _ in json.loads(man_path.read_text())['modules']):,} modules, "
              f"{man_path.stat().st_size / 2**20:.1f} MiB; schedule {len(patterns)} patterns in {len(phases)} phases "
              f"(YAML {yaml_path.stat().st_size / 1024:.1f} KiB, .ftsc {dsl_path.stat().st_size / 1024:.1f} KiB)\n")

        # ---- (a) subprocess -----------------------------------------------------------------
        sub: dict[str, tuple[float, int]] = {}
        for path in (yaml_path, dsl_path):
            sub[path.suffix] = median_wall([sys.executable, "-m", "ftsc", "check", str(path), "--manifest",
                                            str(man_path)], args.repeat, env=repo_env())
        startup, _ = median_wall([sys.executable, "-m", "ftsc", "--version"], args.repeat, env=repo_env())

        # ---- (b) in-process, stage by stage -------------------------------------------------
        model_stages: list[tuple[str, float]] = []
        text = man_path.read_text(encoding="utf-8")
        t, man_doc = timed(lambda: json.loads(text), args.repeat)
        model_stages.append((f"manifest: `json.loads` ({man_path.stat().st_size / 2**20:.1f} MiB)", t))
        t, manifest = timed(lambda: from_json(man_doc), args.repeat)
        model_stages.append(("manifest: validation + entries (`from_json`)", t))
        t, _ = timed(lambda: read(man_path), args.repeat)
        model_stages.append(("= manifest: `read` (file + decode + validate)", t))
        t, graph = timed(lambda: ModelGraph(manifest), args.repeat)
        model_stages.append(("graph: `ModelGraph(manifest)`", t))
        t_build_index, _ = timed(lambda: NameIndex(graph.params), args.repeat)
        model_stages.append(("graph: `NameIndex` (sorts the 100k names)", t_build_index))
        diag_counts: dict[str, Counter[str]] = {}
        per_kind: dict[str, list[tuple[str, float]]] = {}
        exits: dict[str, int] = {}
        for path in (yaml_path, dsl_path):
            rows: list[tuple[str, float]] = []
            t, loaded = timed(lambda p=path: load_file(str(p)), args.repeat)
            rows.append(("schedule: load + parse", t))
            g = ModelGraph(manifest)
            _ = g.index
            t, res = timed(lambda g=g, s=loaded.schedule: resolve_schedule(s, g), args.repeat)
            rows.append(("resolution: `resolve_schedule` (index built)", t))
            ctx = AnalysisContext(loaded.source, loaded.kind, g, res)
            t, diags = timed(lambda c=ctx, s=loaded.schedule: analyze(s, c), args.repeat)
            rows.append(("passes: `analyze` (resolution given)", t))
            diag_counts[path.suffix] = Counter(d.code for d in diags)
            t, _ = timed(lambda d=diags: RENDERERS["text"](sorted(d, key=type(d[0]).sort_key)), args.repeat)
            rows.append(("render: text", t))
            t, _ = timed(lambda p=path: check_file(load_file(str(p)), ModelGraph(read(man_path))), args.repeat)
            rows.append(("**load manifest + load schedule + analyze** (`check_file`)", t))
            t, rc = timed(quiet(lambda p=path: cli_main(["check", str(p), "--manifest", str(man_path)])), args.repeat)
            rows.append(("**`ftsc.cli.main(['check', ...])`**", t))
            exits[path.suffix] = rc
            per_kind[path.suffix] = rows

        # ---- (c) naive vs (d) NameIndex, FTS semantics, 200 patterns -------------------------
        rxs = [re.compile(p) for p in patterns]
        name_set = frozenset(names)

        def naive() -> list[list[str]]:
            return [[p] if p in name_set else [n for n in names if rx.match(n)] for p, rx in zip(patterns, rxs)]

        g = ModelGraph(manifest)
        _ = g.index, g.has_param("")  # built once (timed above)

        def indexed() -> list[list[str]]:
            return [[p] if g.has_param(p) else g.index.match(rx) for p, rx in zip(patterns, rxs)]

        t_naive, r_naive = timed(naive, args.repeat)
        t_index, r_index = timed(indexed, args.repeat)
        assert r_naive == r_index, [p for p, a, b in zip(patterns, r_naive, r_index) if a != b]
        hits = sum(len(r) for r in r_naive)

        # The `.ftsc` selectors: `ftsc.analyze.resolve.resolve` (reference loop) vs `match_selector`.
        loaded = load_file(str(dsl_path))
        sels: list[ir.Selector] = [s for ph in loaded.schedule.phases for s in ph.selectors]
        t_naive_dsl, rn = timed(lambda: [resolve(s, names) for s in sels], args.repeat)
        t_index_dsl, ri = timed(lambda: [match_selector(s, g)[0] for s in sels], args.repeat)
        assert rn == ri, [s.pattern for s, a, b in zip(sels, rn, ri) if a != b]

        # The two schedule files thaw the same parameters in the same phases.
        res_yaml = resolve_schedule(load_file(str(yaml_path)).schedule, g)
        res_dsl = resolve_schedule(loaded.schedule, g)
        assert [set(p.params) for p in res_yaml.phases] == [set(p.params) for p in res_dsl.phases]
        in_phases = Counter(len(v) for v in res_yaml.phases_of.values())

        # ---- report -----------------------------------------------------------------------------
        print(f"Pattern mix (FTS YAML): {pattern_mix(patterns, name_set)}. Parameters in one phase: "
              f"{in_phases[1]:,}, in two: {in_phases[2]:,}, in none: {len(res_yaml.unscheduled):,} "
              "(the `.ftsc` file resolves identically, asserted).\n")

        print(f"## `ftsc check` vs the plain `re.match` loop (wall time, s; median of {args.repeat})\n")
        print("| measurement | FTS YAML | `.ftsc` |")
        print("|---|---|---|")
        print(f"| **`python -m ftsc check SCHEDULE --manifest m.json`** (subprocess; goal < 1 s) | "
              f"**{sub['.yaml'][0]:.3f}** | **{sub['.ftsc'][0]:.3f}** |")
        print(f"| (c) naive resolution alone: {len(patterns)} patterns x {len(names):,} names "
              f"({hits:,} matches), plain loop | "
              f"{t_naive:.3f} | {t_naive_dsl:.3f} |")
        print(f"| (d) ftsc resolution alone (`NameIndex`) | {t_index:.3f} | {t_index_dsl:.3f} |")
        print(f"| ratio (c) / (d) | {t_naive / t_index:.1f}x | {t_naive_dsl / t_index_dsl:.1f}x |")
        print(f"| ratio `ftsc check` / (c) | {sub['.yaml'][0] / t_naive:.2f} | {sub['.ftsc'][0] / t_naive_dsl:.2f} |")
        print(f"| exit status (subprocess / in-process) | {sub['.yaml'][1]} / {exits['.yaml']} | "
              f"{sub['.ftsc'][1]} / {exits['.ftsc']} |")
        for suffix in (".yaml", ".ftsc"):
            counts = ", ".join(f"{c} x{n}" for c, n in sorted(diag_counts[suffix].items())) or "none"
            print(f"\ndiagnostics ({suffix}): {counts}")
        print("\n(c) is `p` if it is a parameter name, else `[n for n in names if rx.match(n)]` (YAML), "
              "and `ftsc.analyze.resolve.resolve` (`.ftsc`); (d) is `has_param`/`NameIndex.match` "
              f"(`match_selector`), index prebuilt ({t_build_index:.3f} s to build). Per-pattern results "
              "identical (asserted).")

        print(f"\n## Where the time goes (in-process, s; median of {args.repeat})\n")
        print("| stage | FTS YAML | `.ftsc` |")
        print("|---|---|---|")
        print(f"| start-up: `python -m ftsc --version` (subprocess) | {startup:.3f} | {startup:.3f} |")
        for label, t in model_stages:
            print(f"| {label} | {t:.3f} | {t:.3f} |")
        for (label, ty), (_, td) in zip(per_kind[".yaml"], per_kind[".ftsc"]):
            print(f"| {label} | {ty:.3f} | {td:.3f} |")
        worst = max(sub[".yaml"][0], sub[".ftsc"][0])
        print(f"\nGoal `ftsc check` < 1 s: {'met' if worst < 1 else 'NOT met'} "
              f"(subprocess {min(sub['.yaml'][0], sub['.ftsc'][0]):.3f}-{worst:.3f} s).")

        if args.profile:
            prof = cProfile.Profile()
            sink = io.StringIO()
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                prof.runcall(cli_main, ["check", str(yaml_path), "--manifest", str(man_path)])
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
            print("\n## cProfile of in-process `ftsc check schedule.yaml --manifest m.json` (cumtime)\n")
            print("```")
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:8000])
            print("```")
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
