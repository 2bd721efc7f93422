"""The model stage end to end: building on meta, manifests, the CLI's model flags, compile, init."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftsc.cli import check_file, main
from ftsc.diagnostics.render import render_json
from ftsc.frontend import load_file
from ftsc.model import ModelError, load_graph, load_manifest
from ftsc.model.manifest import ManifestError, from_json, read

from .conftest import REPO

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

TOY = REPO / "tests" / "data" / "models" / "toy_models.py"
SCHEDULE = textwrap.dedent("""\
    phase 0 { thaw fts "layers.1" }
    phase 1 { thaw head.weight, /layers\\.1\\..*/, shared.weight, glob "layers.*.bias" }
    phase 2 { thaw model.haed.weight, tied.weight }
    """)


def target(name: str) -> str:
    return f"{TOY}:{name}"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_manifest_records_tree_ties_and_classes() -> None:
    """Modules, params with shape/dtype, tied params, shared modules, buffers, class MROs."""
    m = load_manifest(target("Net"), kwargs={"n": 3})
    names = [p.name for p in m.parameters]
    assert names[:2] == ["layers.0.weight", "layers.0.bias"]
    by_name = {p.name: p for p in m.parameters}
    assert by_name["layers.1.weight"].aliases == ("tied.weight",)
    assert by_name["layers.0.weight"].aliases == ("shared.weight",)
    assert by_name["head.weight"].shape == (2, 4) and by_name["head.weight"].dtype == "float32"
    assert {mod.name: mod.aliases for mod in m.modules}["layers.0"] == ("shared",)
    assert "norm.running_mean" in {b.name for b in m.buffers}
    assert "torch.nn.modules.batchnorm._BatchNorm" in m.classes["torch.nn.modules.batchnorm.BatchNorm1d"]
    assert from_json(json.loads(m.dumps())) == m  # JSON round trip is lossless


def test_manifest_and_live_model_give_identical_analysis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`check` and `compile` against `--model` and against its manifest print the same bytes."""
    sched = write(tmp_path, "s.ftsc", SCHEDULE)
    manifest = str(tmp_path / "m.json")
    kwargs = ["--model-kwargs", '{"n": 12}']
    assert main(["manifest", "--model", target("Net"), *kwargs, "-o", manifest]) == 0
    capsys.readouterr()
    outputs = []
    for flags in (["--model", target("Net"), *kwargs], ["--manifest", manifest]):
        for command in (["check", sched, "--format", "json"], ["compile", sched]):
            assert main([*command, *flags]) == 1
            outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[2] and outputs[1] == outputs[3]
    codes = {d["code"] for d in json.loads(outputs[0])["diagnostics"]}
    assert codes == {"FTS202", "FTS203", "FTS204", "FTS205", "FTS213"}


def test_compile_json_follows_the_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SPEC §5.2: phases, unscheduled, aliases, sharding none, diagnostics; primary names only."""
    sched = write(tmp_path, "s.ftsc", "phase 0 { thaw head.weight, head.bias }\n"
                                      "phase 1 { thaw glob \"layers.*.*\" until epoch 2 lr = 0.01 }\n"
                                      "phase 2 { thaw norm.weight }\n")
    assert main(["compile", sched, "--model", target("make_net")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"version", "phases", "unscheduled", "aliases", "sharding", "diagnostics"}
    assert doc["phases"][0] == {"index": 0, "name": None, "params": ["head.weight", "head.bias"], "lr": None,
                                "max_transition_epoch": -1}
    assert doc["phases"][1]["params"] == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
                                          "layers.2.weight", "layers.2.bias"]
    assert doc["phases"][1]["lr"] == 0.01 and doc["phases"][1]["max_transition_epoch"] == 2
    assert doc["phases"][2]["lr"] == 1e-5  # FTS's base_max_lr default
    assert doc["unscheduled"] == ["norm.bias"]
    assert doc["aliases"] == {"shared.weight": "layers.0.weight", "shared.bias": "layers.0.bias",
                              "tied.weight": "layers.1.weight"}
    assert doc["sharding"] == {"kind": "none", "units": [], "unsharded": []}
    assert [d["code"] for d in doc["diagnostics"]] == ["FTS204"]


def test_compile_needs_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", write(tmp_path, "s.ftsc", "phase 0 { thaw a }\n")]) == 2
    assert "compile needs a model" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "kwargs", "expected"), [
    ("NeedsArgs", None, "cannot be called with no arguments"),
    ("NeedsArgs", '{"width": 3}', "cannot be called with these --model-kwargs"),
    ("ReadsValues", None, "building the model on the meta device failed"),
    ("NotAModule", None, "is not an nn.Module or LightningModule"),
    ("returns_int", None, "returned int"),
    ("Missing", None, "has no attribute `Missing`"),
    ("INSTANCE", '{"a": 1}', "module instance"),
])
def test_model_errors_exit_2_without_traceback(name: str, kwargs: str | None, expected: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["manifest", "--model", target(name)] + (["--model-kwargs", kwargs] if kwargs else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


@pytest.mark.parametrize(("argv", "expected"), [
    (["--model", "tests/data/models/broken.py:Net"], "importing `tests/data/models/broken.py` failed: ImportError"),
    (["--model", "no_such_pkg_xyz.mod:Net"], "No module named 'no_such_pkg_xyz'"),
    (["--model", "tests/data/models/none.py:Net"], "no such file"),
    (["--model", "toy_models"], "expected `pkg.module:attr`"),
    (["--model", "x:y", "--model-kwargs", "[1]"], "must be a JSON object"),
    (["--model", "x:y", "--model-kwargs", "{bad"], "not valid JSON"),
])
def test_target_errors(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert main(["manifest", *argv]) == 2
    assert expected in capsys.readouterr().err


def test_factory_instance_and_module_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A factory, a module instance, and a `pkg.module:attr` target all load."""
    assert load_graph(target("make_net")).params[:2] == ("layers.0.weight", "layers.0.bias")
    assert load_graph(target("INSTANCE")).params == ("0.weight", "0.bias", "1.weight", "1.bias")
    monkeypatch.syspath_prepend(str(TOY.parent))
    assert load_graph("toy_models:make_net").params == load_graph(target("make_net")).params


def test_lightning_module_configure_model_runs_on_meta() -> None:
    graph = load_graph(target("Lit"))
    assert graph.params == ("model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias")


def test_noisy_model_keeps_stdout_json(capsys: pytest.CaptureFixture[str]) -> None:
    """What the model's code prints goes to stderr (a build, so not answered from the cache)."""
    assert main(["manifest", "--model", target("Noisy"), "--no-cache"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["parameters"][0]["name"] == "fc.weight"
    assert "building Noisy" in captured.err


@pytest.mark.parametrize(("text", "expected"), [
    ("{", "not valid JSON"),
    ("[]", "expected a JSON object"),
    ('{"format": "other"}', "not an ftsc manifest"),
    ('{"format": "ftsc-manifest", "version": 9}', "unsupported version 9"),
    ('{"format": "ftsc-manifest", "version": 1, "modules": [{"name": "a", "class": "X"}]}', "must be the root"),
    ('{"format": "ftsc-manifest", "version": 1, "modules": [{"name": "", "class": "X"}], '
     '"parameters": [{"name": "a.w", "shape": [2]}]}', "has no module 'a'"),
    ('{"format": "ftsc-manifest", "version": 1, "modules": [{"name": "", "class": "X"}], '
     '"parameters": [{"name": "w", "shape": [-1]}]}', "non-negative ints"),
])
def test_bad_manifests_exit_2(tmp_path: Path, text: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path, "m.json", text)
    with pytest.raises(ManifestError, match="m.json"):
        read(manifest)
    assert main(["check", write(tmp_path, "s.ftsc", "phase 0 { thaw a }\n"), "--manifest", manifest]) == 2
    assert expected in capsys.readouterr().err


def test_model_and_manifest_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="either --model or --manifest"):
        load_graph(target("Net"), "m.json")


def test_check_with_manifest_runs_with_torch_unimportable(tmp_path: Path) -> None:
    """`ftsc check --manifest` needs no torch: with torch blocked it resolves and reports as usual."""
    manifest = tmp_path / "m.json"
    assert main(["manifest", "--model", target("make_net"), "-o", str(manifest)]) == 0
    sched = write(tmp_path, "s.yaml", "0:\n  params: [head.*]\n1:\n  params: [layers.9]\n")
    blocker = tmp_path / "blocker"
    (blocker / "torch").mkdir(parents=True)
    (blocker / "torch" / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    code = ("import sys; from ftsc.cli import main; rc = main(['check', sys.argv[1], '--manifest', sys.argv[2], "
            "'--format', 'concise']); print('torch' in sys.modules); sys.exit(rc)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)])}
    proc = subprocess.run([sys.executable, "-c", code, sched, str(manifest)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "FTS202" in proc.stdout and "`layers.9` matches no parameter" in proc.stdout
    assert proc.stdout.strip().endswith("False")


def test_tool_ftsc_maps_schedules_to_manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """With [tool.ftsc] `manifests`, `ftsc check` (the pre-commit hook) needs no arguments."""
    (tmp_path / "schedules").mkdir()
    assert main(["manifest", "--model", target("make_net"), "-o", str(tmp_path / "net.json")]) == 0
    write(tmp_path, "schedules/a.ftsc", "phase 0 { thaw head.wieght }\n")
    write(tmp_path, "other.ftsc", "phase 0 { thaw head.wieght }\n")
    write(tmp_path, "pyproject.toml", '[tool.ftsc]\nfiles = ["schedules/a.ftsc", "other.ftsc"]\n'
                                      '[tool.ftsc.manifests]\n"schedules/*.ftsc" = "net.json"\n')
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["check", "--format", "concise"]) == 1
    out = capsys.readouterr().out
    assert "a.ftsc:1:16: error[FTS202]" in out and "other.ftsc" not in out.replace("a.ftsc", "")
    write(tmp_path, "pyproject.toml", '[tool.ftsc]\nmanifest = "net.json"\nmanifests = "x"\n')
    assert main(["check", "other.ftsc"]) == 2
    assert "must be a table" in capsys.readouterr().err


@pytest.mark.parametrize("style", ["fts", "module"])
@pytest.mark.parametrize("to", ["ftsc", "fts-yaml"])
def test_init_writes_a_schedule_that_checks_clean(tmp_path: Path, style: str, to: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The default schedule thaws every parameter exactly once; `module` never splits a module."""
    out = tmp_path / ("s.ftsc" if to == "ftsc" else "s.yaml")
    assert main(["init", "--model", target("Net"), "--style", style, "--to", to, "-o", str(out)]) == 0
    graph = load_graph(target("Net"))
    diags = check_file(load_file(str(out)), graph)
    assert [d.code for d in diags if d.severity.value != "info"] == [], render_json(diags)
    from ftsc.analyze.resolve import resolve_schedule

    res = resolve_schedule(load_file(str(out)).schedule, graph)
    assert sorted(p for ph in res.phases for p in ph.params) == sorted(graph.params)
    if style == "module":
        owners = [{p.rpartition(".")[0] for p in ph.params} for ph in res.phases]
        assert all(len(o) == 1 for o in owners)
        assert len({frozenset(o) for o in owners}) == len(owners)
    else:
        assert all(len(ph.params) == 2 for ph in res.phases[:-1])


def test_networkx_view_has_containment_aliases_and_class_hierarchy() -> None:
    """ModelGraph.graph: module/param/class nodes; alias registrations are edges marked alias."""
    g = load_graph(target("Net"), kwargs={"n": 2}).graph
    assert g.nodes["p:layers.1.weight"]["numel"] == 16
    assert g.edges["m:layers", "m:layers.0"] == {"kind": "contains", "name": "0", "alias": False}
    assert g.edges["m:", "m:layers.0"]["alias"] is True  # `shared` registers layers.0 again
    assert g.edges["m:tied", "p:layers.1.weight"] == {"kind": "contains", "name": "weight", "alias": True}
    bn = "c:torch.nn.modules.batchnorm.BatchNorm1d"
    assert g.has_edge("m:norm", bn) and g.has_edge(bn, "c:torch.nn.modules.batchnorm._BatchNorm")
