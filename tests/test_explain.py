"""`ftsc explain` from the command line: doc examples (golden text and Markdown), SPEC §5.3's JSON
shape, FTS601, folding, argument errors, and no torch with `--manifest`."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ftsc.cli import main
from ftsc.model.manifest import FORMAT

from .conftest import REPO

EXAMPLE = ["examples/explain/schedule.ftsc", "--manifest", "examples/explain/manifest.json"]


def _doc_examples() -> list[tuple[str, str, str]]:
    """(file, command, expected output) for every console block `$ ftsc explain ...` with its output
    (tests/test_docs_shell.py runs them in a shell too; this runs them in-process, fast)."""
    out = []
    for doc in ("docs/explain.md", "README.md"):
        text = (REPO / doc).read_text(encoding="utf-8")
        for m in re.finditer(r"```console\n\$ (ftsc explain [^\n]*)\n(.*?)```", text, re.DOTALL):
            out.append((doc, m.group(1), m.group(2)))
    return out


@pytest.mark.parametrize("doc, command, expected", _doc_examples(), ids=lambda v: str(v)[:60])
def test_doc_examples_print_what_the_docs_show(doc: str, command: str, expected: str,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Each `ftsc explain` example in the docs prints exactly the output shown beside it."""
    monkeypatch.chdir(REPO)
    main(shlex.split(command)[1:])
    assert capsys.readouterr().out.rstrip("\n") == expected.rstrip("\n")


def test_doc_examples_exist() -> None:
    """The explain page and the README show text and Markdown output."""
    docs = {d for d, _, _ in _doc_examples()}
    assert docs == {"docs/explain.md", "README.md"}
    assert any("--format md" in c for _, c, _ in _doc_examples())


def _json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    rc = main(["explain", *args, "--format", "json"])
    return rc, json.loads(capsys.readouterr().out)


def test_json_has_the_spec_shape(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """SPEC §5.3: exactly these keys, a cell per unit per phase, model_states the sum."""
    monkeypatch.chdir(REPO)
    rc, doc = _json([*EXAMPLE, "--world-size", "8"], capsys)
    assert rc == 0
    assert list(doc) == ["version", "world_size", "optimizer", "units", "phases", "diagnostics"]
    assert (doc["version"], doc["world_size"], doc["optimizer"]) == (1, 8, "adamw")
    names = [u["name"] for u in doc["units"]]
    assert names == ["backbone.0", "backbone.2", "backbone", "head"]  # Lightning flow: children are roots
    assert all(set(u) == {"name", "numel", "dtype"} for u in doc["units"])
    assert [p["index"] for p in doc["phases"]] == [0, 1, 2]
    for p in doc["phases"]:
        assert set(p) == {"index", "trainable_numel", "units", "memory"}
        assert [c["name"] for c in p["units"]] == names
        assert {c["state"] for c in p["units"]} <= {"trainable", "frozen", "partial", "none"}
        assert p["trainable_numel"] == sum(c["trainable_numel"] for c in p["units"])
        mem = p["memory"]
        assert list(mem) == ["params", "buffers", "grads", "optimizer", "model_states", "activations", "peak"]
        assert mem["model_states"] == mem["params"] + mem["buffers"] + mem["grads"] + mem["optimizer"]
        assert mem["activations"] is None and mem["peak"] is None
    assert [p["trainable_numel"] for p in doc["phases"]] == [33, 33 + 1056, 33 + 1056 + 288]
    assert [c["state"] for c in doc["phases"][0]["units"]] == ["frozen", "frozen", "none", "trainable"]


def test_estimates_only_with_batch_and_seq(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    """--batch/--seq fill activations and peak for transformer blocks; frozen lower blocks store nothing."""
    manifest = _layered_manifest(tmp_path, 4)
    sched = tmp_path / "s.ftsc"
    sched.write_text('phase 0 { thaw glob "layers.3.**" }\nphase 1 { thaw glob "layers.0.**" }\n')
    rc, doc = _json([str(sched), "--manifest", manifest, "--batch", "2", "--seq", "16"], capsys)
    acts = [p["memory"]["activations"] for p in doc["phases"]]
    assert rc == 0 and acts[0] > 0 and acts[1] == 4 * acts[0]  # 1 block stores activations, then all 4
    assert all(p["memory"]["peak"] >= p["memory"]["model_states"] + p["memory"]["activations"]
               for p in doc["phases"])
    main(["explain", str(sched), "--manifest", manifest, "--batch", "2", "--seq", "16"])
    assert "activations (estimate)" in capsys.readouterr().out


def _layered_manifest(tmp_path: Path, n: int) -> str:
    """`tmp_path/m.json`: `n` blocks `layers.<i>` (class Block), each one Linear `fc` (24x8 + 24)."""
    modules = [{"name": "", "class": "Net"}, {"name": "layers", "class": "torch.nn.modules.container.ModuleList"}]
    params = []
    for i in range(n):
        modules += [{"name": f"layers.{i}", "class": "Block"}, {"name": f"layers.{i}.fc", "class": "Lin"}]
        params += [{"name": f"layers.{i}.fc.weight", "shape": [24, 8]}, {"name": f"layers.{i}.fc.bias", "shape": [24]}]
    doc = {"format": FORMAT, "version": 1, "target": None,
           "classes": {"Net": [], "Block": [], "Lin": [], "torch.nn.modules.container.ModuleList": []},
           "modules": modules, "parameters": params}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_fts601_names_the_phase_over_budget(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """--max-memory turns the phases that exceed it into FTS601 errors (exit 1), naming phase and contributors."""
    monkeypatch.chdir(REPO)
    rc, doc = _json([*EXAMPLE, "--world-size", "2", "--max-memory", "9KiB"], capsys)
    found = [d for d in doc["diagnostics"] if d["code"] == "FTS601"]
    assert rc == 1 and [d["data"]["phase"] for d in found] == [1, 2]
    assert all(d["data"]["bytes"] > 9 * 1024 for d in found)
    assert "optimizer state" in found[0]["notes"][0] and "`backbone.2`" in found[0]["notes"][1]
    rc, doc = _json([*EXAMPLE, "--world-size", "2", "--max-memory", "1GiB"], capsys)
    assert rc == 0 and not [d for d in doc["diagnostics"] if d["code"] == "FTS601"]


def test_folds_repeated_layers_unless_all(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Identical consecutive layers fold into `layers.0–2 (x3)`; --all lists each."""
    manifest = _layered_manifest(tmp_path, 4)
    sched = tmp_path / "s.ftsc"
    sched.write_text('phase 0 { thaw glob "layers.3.**" }\nfsdp2 { shard glob "layers.*" shard "" }\n')
    main(["explain", str(sched), "--manifest", manifest])
    out = capsys.readouterr().out
    assert "layers.0–2 (x3)" in out and "layers.1 " not in out
    main(["explain", str(sched), "--manifest", manifest, "--all"])
    out = capsys.readouterr().out
    assert "layers.1 " in out and "–" not in out


@pytest.mark.parametrize("args, message", [
    (["--world-size", "0"], "--world-size must be a positive integer"),
    (["--batch", "2"], "give both --batch and --seq"),
    (["--max-memory", "lots"], "invalid size"),
    ([], None),
], ids=["world-size", "batch-alone", "max-memory", "no-model"])
def test_bad_arguments_exit_2(args: list[str], message: str | None, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Argument errors are `ftsc: error:` lines with exit status 2, never tracebacks."""
    monkeypatch.chdir(REPO)
    model = [] if message is None else EXAMPLE[1:]
    assert main(["explain", EXAMPLE[0], *model, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ftsc: error:") and (message or "needs a model") in err


def test_html_without_renderer_exits_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """--format html needs ftsc.explain.html; without it, a clear error and exit 2."""
    import importlib.util

    if importlib.util.find_spec("ftsc.explain.html") is not None:
        pytest.skip("the HTML renderer is present (tested with it)")
    monkeypatch.chdir(REPO)
    assert main(["explain", *EXAMPLE, "--format", "html"]) == 2
    assert "--format html is not available" in capsys.readouterr().err


def test_explain_with_manifest_never_imports_torch(tmp_path: Path) -> None:
    """`ftsc explain --manifest` works when importing torch fails, and never imports it."""
    blocker = tmp_path / "block"
    (blocker / "torch").mkdir(parents=True)
    (blocker / "torch" / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)])}
    code = ("import sys; from ftsc.cli import main; rc = main(['explain', *sys.argv[1:], '--format', 'json']); "
            "print('torch' in sys.modules); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, *EXAMPLE], check=False, env=env, capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("False") and '"phases"' in proc.stdout


CONFIG = """\
trainer:
  devices: 4
  num_nodes: 2
  precision: bf16-true
  strategy:
    class_path: lightning.pytorch.strategies.FSDPStrategy
    init_args:
      auto_wrap_policy: !!set {torch.nn.Linear: null}
  callbacks:
  - class_path: finetuning_scheduler.FinetuningScheduler
    init_args:
      ft_schedule: sched.yaml
optimizer:
  class_path: torch.optim.SGD
  init_args: {lr: 0.1, momentum: 0.9}
"""


def test_lightning_config_gives_world_size_precision_and_optimizer(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A LightningCLI config (as FILE or --lightning-config with an FTS YAML schedule) sets the world size
    (devices x num_nodes), the stored dtype (`bf16-true`) and the optimizer (SGD with momentum); flags win."""
    (tmp_path / "sched.yaml").write_text("0:\n  params:\n  - head.*\n1:\n  params:\n  - backbone.2.*\n")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    manifest = str(REPO / "examples/explain/manifest.json")
    rc, doc = _json([str(config), "--manifest", manifest], capsys)
    assert rc == 0 and (doc["world_size"], doc["optimizer"]) == (8, "sgd-momentum")
    assert {u["dtype"] for u in doc["units"]} == {"bfloat16", "none"}
    head = next(u for u in doc["units"] if u["name"] == "head")
    assert head["numel"] == 33
    rc, flags = _json([str(tmp_path / "sched.yaml"), "--lightning-config", str(config), "--manifest", manifest,
                       "--optimizer", "adam", "--world-size", "2"], capsys)
    assert rc == 0 and (flags["world_size"], flags["optimizer"]) == (2, "adam")
    assert [p["trainable_numel"] for p in flags["phases"]] == [33, 33 + 1056]
    # bf16 storage halves the parameter bytes of the float32 build
    config.write_text(CONFIG.replace("bf16-true", "32-true"))
    _, fp32 = _json([str(config), "--manifest", manifest], capsys)
    assert fp32["phases"][0]["memory"]["params"] > doc["phases"][0]["memory"]["params"]


def test_unparsable_schedule_reports_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A schedule with a syntax error gets its diagnostics (an empty report in JSON) and exit 1."""
    monkeypatch.chdir(REPO)
    bad = tmp_path / "bad.ftsc"
    bad.write_text("phase 0 { thaw\n")
    rc, doc = _json([str(bad), *EXAMPLE[1:]], capsys)
    assert rc == 1 and doc["phases"] == [] and [d["code"] for d in doc["diagnostics"]] == ["FTS001"]
    assert main(["explain", str(bad), *EXAMPLE[1:]]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "FTS001" in captured.err


def test_manifest_keeps_parameter_and_buffer_dtypes() -> None:
    """Manifests record parameter and buffer dtypes (float32 left out) and read old ones as float32."""
    from ftsc.model.manifest import BufferEntry, from_json

    doc = {"format": FORMAT, "version": 1, "modules": [{"name": "", "class": "Net"}],
           "parameters": [{"name": "w", "shape": [2]}, {"name": "v", "shape": [2], "dtype": "bfloat16"}],
           "buffers": [{"name": "b", "shape": [3], "dtype": "float16"}]}
    m = from_json(doc)
    assert [p.dtype for p in m.parameters] == ["float32", "bfloat16"]
    assert m.buffers == (BufferEntry("b", (3,), "float16", True),)
    again = from_json(json.loads(m.dumps()))
    assert again == m and "dtype" not in json.loads(m.dumps())["parameters"][0]


def test_cpu_offload_moves_model_states_to_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """FSDP1 `cpu_offload` and FSDP2 `offload_policy` report parameters, gradients and optimizer
    state in the sibling `host` object; the accelerator keeps the rest (SPEC §5.3)."""
    manifest = _layered_manifest(tmp_path, 2)
    sched = tmp_path / "s.ftsc"
    phases = 'phase 0 { thaw glob "layers.1.**" }\n'
    for block in ("fsdp { cpu_offload = true }", "fsdp2 { fsdp_default_kwargs = { offload_policy = {} } shard \"\" }"):
        sched.write_text(phases + block + "\n")
        rc, doc = _json([str(sched), "--manifest", manifest, "--world-size", "2"], capsys)
        sched.write_text(phases + block.replace("cpu_offload = true", "").replace("offload_policy = {}", "") + "\n")
        rc2, plain = _json([str(sched), "--manifest", manifest, "--world-size", "2"], capsys)
        mem, ref = doc["phases"][0]["memory"], plain["phases"][0]["memory"]
        assert rc == rc2 == 0 and "host" not in ref
        assert mem["params"] == mem["grads"] == mem["optimizer"] == 0
        assert {k: mem["host"][k] for k in ("params", "grads", "optimizer")} == \
            {k: ref[k] for k in ("params", "grads", "optimizer")}


def test_model_and_its_manifest_explain_alike(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`--model` (built on meta) and the manifest written from it give the same report."""
    pytest.importorskip("torch")
    monkeypatch.chdir(REPO)
    model = ["--model", "examples/lightning_cli/train.py:TinyRegressor", "--no-cache"]
    rc, built = _json([EXAMPLE[0], *model, "--world-size", "2"], capsys)
    rc2, read = _json([*EXAMPLE, "--world-size", "2"], capsys)
    assert rc == rc2 == 0 and built == read


def test_output_is_byte_identical_across_hash_seeds() -> None:
    """Text and JSON are the same bytes whatever PYTHONHASHSEED is."""
    outs = set()
    for seed in ("0", "1", "12345"):
        for fmt in ("text", "json"):
            proc = subprocess.run([sys.executable, "-m", "ftsc", "explain", *EXAMPLE, "--world-size", "8",
                                   "--format", fmt], check=False, capture_output=True, text=True, timeout=60,
                                  cwd=REPO, env={**os.environ, "PYTHONHASHSEED": seed})
            assert proc.returncode == 0, proc.stderr
            outs.add((fmt, proc.stdout))
    assert len(outs) == 2


def test_no_activation_estimate_without_transformer_blocks(capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A model without repeated blocks gets no activation estimate (null), and the text says why."""
    monkeypatch.chdir(REPO)
    rc, doc = _json([*EXAMPLE, "--batch", "2", "--seq", "8"], capsys)
    assert rc == 0 and all(p["memory"]["activations"] is None and p["memory"]["peak"] is None
                           for p in doc["phases"])
    main(["explain", *EXAMPLE, "--batch", "2", "--seq", "8"])
    assert "activations: not estimated (no transformer blocks" in capsys.readouterr().out


def _brute_force_busiest(graph: Any, groups: Any, trainable: frozenset[str], setup: Any) -> int:
    """Optimizer bytes of the busiest rank, rank by rank and element range by element range."""
    from ftsc.explain.memory import OPTIMIZER_STATES, _dtype, flat_layout, itemsize

    states = OPTIMIZER_STATES[setup.optimizer]
    ranks = setup.flat_ranks if setup.kind == "fsdp" else setup.world_size
    per_rank = [0] * ranks
    for g in groups:
        if g.layout == "flat" and g.params and not trainable.isdisjoint(g.params):
            spans, shard = flat_layout(graph, g.params, setup)
            size = itemsize(_dtype(graph, g.params[0], setup))
            for r in range(ranks):
                lo, hi = r * shard, (r + 1) * shard
                for (a, b), p in zip(spans, g.params):
                    if setup.use_orig_params and p in trainable:
                        per_rank[r] += states * max(0, min(b, hi) - max(a, lo)) * size
                if not setup.use_orig_params:
                    per_rank[r] += states * shard * size
        elif g.layout == "dim0":
            for p in g.params:
                if p not in trainable:
                    continue
                shape = graph.param_entries[p].shape
                rows, row = shape[0], graph.numel(p) // max(shape[0], 1)
                per = -(-rows // setup.world_size)
                for r in range(ranks):
                    per_rank[r] += states * max(0, min(rows, (r + 1) * per) - r * per) * row * itemsize(
                        _dtype(graph, p, setup))
        elif g.layout == "replica":
            for p in g.params:
                if p in trainable:
                    for r in range(ranks):
                        per_rank[r] += states * graph.numel(p) * itemsize(_dtype(graph, p, setup))
    return max(per_rank)


@pytest.mark.parametrize("seed", range(200))
def test_random_models_and_strategies_never_fail(seed: int) -> None:
    """Random shapes (empty dims included), dtypes, phases, strategies and world sizes: explain runs,
    model_states is the sum of its parts, and the busiest rank's optimizer bytes equal a rank-by-rank
    count."""
    import random

    from ftsc.analyze import AnalysisContext, prepare
    from ftsc.explain import explain
    from ftsc.explain.memory import Setup
    from ftsc.frontend import load_text
    from ftsc.model.graph import ModelGraph
    from ftsc.source import SourceFile

    rng = random.Random(seed)
    shapes = {f"m{i}.s{j}.w": [rng.choice([0, 1, 3, 7, 16, 33])] * rng.choice([1, 2])
              for i in range(rng.randint(1, 4)) for j in range(rng.randint(1, 3))}
    graph = ModelGraph.from_names(shapes)
    m = graph.manifest
    dtypes = ("float32", "bfloat16", "float16")
    graph = ModelGraph(replace(m, parameters=tuple(p._replace(dtype=rng.choice(dtypes)) for p in m.parameters)))
    names = list(shapes)
    rng.shuffle(names)
    cut = sorted(rng.sample(range(1, len(names) + 1), k=min(len(names), rng.randint(1, 3))))
    phases, start = [], 0
    for k, end in enumerate(cut):
        phases.append(f"phase {k} {{ " + " ".join(f"thaw {n}" for n in names[start:end]) + " }")
        start = end
    kind = rng.choice(["fsdp", "fsdp2", ""])
    block = {"fsdp": "fsdp { wrap " + rng.choice(sorted({n.rpartition('.')[0] for n in names})) +
             f" use_orig_params = {rng.choice(['true', 'false'])} }}",
             "fsdp2": 'fsdp2 { shard ' + rng.choice(sorted({n.partition('.')[0] for n in names})) + ' shard "" }',
             "": ""}[kind]
    loaded = load_text(SourceFile("s.ftsc", "\n".join(phases) + "\n" + block))
    assert loaded.schedule is not None, loaded.diagnostics
    ctx = prepare(loaded.schedule, AnalysisContext(loaded.source, loaded.kind, graph))
    ws = rng.choice([1, 2, 3, 5, 8, 16, 64])
    setup = Setup(kind=kind or ("ddp" if ws > 1 else "single"), world_size=ws,
                  optimizer=rng.choice(["adamw", "sgd", "sgd-momentum"]),
                  use_orig_params="use_orig_params = true" in block or kind != "fsdp")
    ex = explain(loaded.schedule, ctx, setup, batch=2, seq=4)
    for ph in ex.phases:
        mem = ph.memory.device
        assert mem.model_states == mem.params + mem.buffers + mem.grads + mem.optimizer
        assert 0 <= ph.memory.rank < ws
        assert mem.optimizer == _brute_force_busiest(graph, ex.groups, ph.trainable, setup)
    json.dumps(ex.to_json())
