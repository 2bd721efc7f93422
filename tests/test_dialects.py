"""Freeze dialects (axolotl, LLaMA-Factory): our importers against what the projects' own code
did with the same configs (recorded by tests/record_dialect_truth.py; the projects do not run
here), and the wiring through `check`, `compile`, `explain` and `convert`."""

from __future__ import annotations

import faulthandler
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from ftsc.check import import_dialect, run_check
from ftsc.cli import main
from ftsc.frontend import InputKind, load_file
from ftsc.frontend.dialects import DIALECTS
from ftsc.model import ModelGraph, load_graph

from .conftest import REPO

DATA = REPO / "tests" / "data" / "dialects"
CONFIGS = sorted(DATA.glob("*/*.yaml"))
ALL_CODES = ("FTS202", "FTS205", "FTS301", "FTS302", "FTS306", "FTS408")


def model_of(path: Path) -> str:
    m = re.match(r"#\s*ftsc-test-model:\s*(\w+)", path.read_text().splitlines()[0])
    assert m is not None, path
    return m.group(1)


def manifest(name: str) -> str:
    return str(DATA / "models" / f"{name}.json")


def graph_for(path: Path) -> ModelGraph:
    return load_graph(None, manifest(model_of(path)))


def truth(path: Path) -> dict[str, Any]:
    return json.loads(path.with_suffix(".truth.json").read_text())


def imported(path: Path) -> tuple[Any, ModelGraph]:
    loaded = load_file(str(path))
    assert loaded.kind is InputKind.DIALECT and loaded.dialect is not None
    assert loaded.dialect.name == path.parent.name
    out, graph = import_dialect(loaded, graph_for(path))
    assert graph is not None
    return out, graph


def test_enough_configs_per_project() -> None:
    """At least 5 configs per project, each with its recorded truth."""
    for project in DIALECTS:
        configs = sorted((DATA / project).glob("*.yaml"))
        assert len(configs) >= 5, project
        assert all(c.with_suffix(".truth.json").is_file() for c in configs), project


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_trainable_set_matches_the_project(path: Path) -> None:
    """The parameters phase 0 trains are exactly those the project left `requires_grad`."""
    want = truth(path)
    loaded, graph = imported(path)
    assert list(graph.params) == want["parameters"]  # the same model as the recording
    result = run_check(loaded, graph)
    assert result.context is not None and result.context.resolution is not None
    phase = result.context.resolution.phase(0)
    got = [p for p in graph.params if phase is not None and p in phase.params]
    assert got == want["trainable"]


@pytest.mark.parametrize("path", [c for c in CONFIGS if "dtypes" in truth(c)],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_dtypes_after_casts_match_the_project(path: Path) -> None:
    """The graph the analysis sees carries the project's casts (LLaMA-Factory's fp32 upcast)."""
    want = truth(path)["dtypes"]
    _, graph = imported(path)
    assert {p: graph.param_entries[p].dtype for p in graph.params} == want


@pytest.mark.parametrize("path", [c for c in CONFIGS if truth(c).get("fsdp")],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_wrap_units_match_accelerate(path: Path) -> None:
    """FSDP version, `use_orig_params` and the wrapped modules are those accelerate picked."""
    want = truth(path)["fsdp"]
    loaded, graph = imported(path)
    ctx = run_check(loaded, graph).context
    assert ctx is not None
    if want["version"] == 1:
        assert ctx.fsdp1 is not None and ctx.fsdp2 is None
        assert ctx.fsdp1.spec.use_orig_params is want["use_orig_params"]
        settings = {st.name: st.value.data for st in loaded.schedule.fsdp.settings}
        assert settings.get("cpu_offload", False) is want["offload"]
        assert sorted(u.name for u in ctx.fsdp1.prediction.units if u.name) == sorted(want["units"])
        groups = [u.params for u in ctx.fsdp1.prediction.units]
    else:
        assert ctx.fsdp2 is not None and ctx.fsdp1 is None
        groups = [g.params for g in ctx.fsdp2.prediction.groups]
    # the units as accelerate leaves them: which parameters each FlatParameter / fully_shard group holds
    assert sorted(sorted(g) for g in groups if g) == sorted(sorted(g) for g in want["groups"])


@pytest.mark.parametrize("path", [c for c in CONFIGS if (truth(c).get("fsdp") or {}).get("version") == 2],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fully_shard_arguments_match_accelerate(path: Path) -> None:
    """The plan entries are accelerate's `fully_shard` calls: the modules of each call (the
    tail's list as one grouped entry), in order, with its `reshard_after_forward` and offload."""
    want = truth(path)["fsdp"]
    loaded, _ = imported(path)
    assert loaded.schedule.fsdp2 is not None and loaded.schedule.fsdp2.plan
    calls = []
    for entry in loaded.schedule.fsdp2.plan:
        kwargs = {k.name: k.value.data for k in entry.kwargs or ()}
        # the root's `None` is torch's choice for a root: False
        calls.append(([entry.selector.pattern, *(m.pattern for m in entry.members)],
                      "offload_policy" in kwargs, kwargs.get("reshard_after_forward", True)))
    # one entry per call, a grouped call (accelerate's tail) one grouped entry, in accelerate's order
    assert calls == [(c["modules"], c["offload"], bool(c["reshard_after_forward"])) for c in want["fully_shard_calls"]]


def test_a_broken_importer_fails_the_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison can fail: axolotl without its `.` rewriting selects other parameters."""
    from ftsc.frontend.dialects import axolotl

    monkeypatch.setattr(axolotl, "rewrite", lambda pattern: pattern)
    path = DATA / "axolotl" / "literal_dots.yaml"
    loaded, graph = imported(path)
    phase = run_check(loaded, graph).context.resolution.phase(0)  # type: ignore[union-attr]
    assert sorted(phase.params) != sorted(truth(path)["trainable"])


# --- what check reports ------------------------------------------------------------------------------------


def codes(path: Path) -> list[str]:
    loaded, graph = imported(path)
    return [d.code for d in run_check(loaded, graph).diagnostics]


def test_partially_frozen_flat_parameter_is_fts301() -> None:
    """axolotl: `unfrozen_parameters` leaving a decoder layer's FlatParameter partly frozen
    (use_orig_params false) is FTS301, with the FSDP message, not FinetuningScheduler's."""
    loaded, graph = imported(DATA / "axolotl" / "partial_unit.yaml")
    diags = [d for d in run_check(loaded, graph).diagnostics if d.code == "FTS301"]
    assert [d.data["unit"] for d in diags] == ["model.layers.11", ""]
    assert all("FlatParameter requires uniform requires_grad" in " ".join(d.notes) for d in diags)
    assert all("awp_overrides" not in (d.help or "") for d in diags)
    first = diags[0].start()
    assert first is not None and first.line == 13  # the entry that selected the layer's MLP


def test_partially_frozen_unit_with_orig_params_is_fts302(tmp_path: Path) -> None:
    """The same selection with `fsdp_use_orig_params: true` is FTS302 (wasted gradients)."""
    text = (DATA / "axolotl" / "partial_unit.yaml").read_text().replace("fsdp_use_orig_params: false",
                                                                         "fsdp_use_orig_params: true")
    path = tmp_path / "axolotl" / "partial_unit.yaml"
    path.parent.mkdir()
    path.write_text(text)
    loaded = load_file(str(path))
    out, graph = import_dialect(loaded, graph_for(DATA / "axolotl" / "partial_unit.yaml"))
    got = [d for d in run_check(out, graph).diagnostics if d.code.startswith("FTS30")]
    assert [(d.code, d.data["unit"]) for d in got] == [("FTS302", "model.layers.11"), ("FTS302", "")]


def test_llama_factory_upcast_makes_fsdp1_units_mixed_dtype() -> None:
    """LLaMA-Factory upcasts trainable parameters to fp32 in a bf16 model: a decoder layer whose
    MLP and attention train but whose norms do not mixes dtypes in one FlatParameter (FTS306)."""
    loaded, graph = imported(DATA / "llama-factory" / "first3_fsdp1.yaml")
    diags = run_check(loaded, graph).diagnostics
    mixed = [d.data["unit"] for d in diags if d.code == "FTS306"]
    assert mixed == ["model.layers.0", "model.layers.1", "model.layers.2"]
    # the transformers default `use_orig_params` is true: partly trained units are FTS302, not FTS301
    assert {d.code for d in diags} >= {"FTS302", "FTS306"} and "FTS301" not in {d.code for d in diags}


def test_without_the_upcast_there_is_no_dtype_finding(tmp_path: Path) -> None:
    """`pure_bf16` keeps trainable parameters in bf16: the same selection mixes no dtypes."""
    text = (DATA / "llama-factory" / "first3_fsdp1.yaml").read_text().replace("bf16: true", "pure_bf16: true")
    path = tmp_path / "first3.yaml"
    path.write_text(text)
    out, graph = import_dialect(load_file(str(path)), graph_for(DATA / "llama-factory" / "first3_fsdp1.yaml"))
    assert "FTS306" not in [d.code for d in run_check(out, graph).diagnostics]


def test_fsdp2_trainable_dtypes_are_uniform_after_the_upcast(tmp_path: Path) -> None:
    """FSDP2 checks only trainable parameters' dtypes: the upcast trains fp32 only (no FTS408),
    while an FSDP2 group training bf16 next to fp32 would be reported."""
    assert "FTS408" not in codes(DATA / "llama-factory" / "qwen_pure_bf16_fsdp2.yaml")
    text = (DATA / "llama-factory" / "first3_fsdp1.yaml").read_text().replace("version: 1", "version: 2")
    path = tmp_path / "first3.yaml"
    path.write_text(text)
    out, graph = import_dialect(load_file(str(path)), graph_for(DATA / "llama-factory" / "first3_fsdp1.yaml"))
    assert graph.param_entries["model.layers.0.mlp.up_proj.weight"].dtype == "float32"
    assert "FTS408" not in [d.code for d in run_check(out, graph).diagnostics]


def test_dialect_inputs_get_no_never_thawed_noise() -> None:
    """Everything a dialect does not train is frozen on purpose: no FTS204 (nor FTS305, an FTS rule)."""
    for path in CONFIGS:
        got = codes(path)
        assert "FTS204" not in got and "FTS305" not in got, path


def test_axolotl_surprises_are_fts205() -> None:
    """axolotl: `model.layers.1` also unfreezes layers 10 and 11; `.*` means dots, not anything."""
    loaded, graph = imported(DATA / "axolotl" / "unanchored_fsdp2.yaml")
    diags = [d for d in run_check(loaded, graph).diagnostics if d.code == "FTS205"]
    assert len(diags) == 1 and "model.layers.10." in diags[0].message
    loaded, graph = imported(DATA / "axolotl" / "literal_dots.yaml")
    diags = run_check(loaded, graph).diagnostics
    assert [d.code for d in diags if d.code in ("FTS202", "FTS205")] == ["FTS202", "FTS205"]
    assert "literal dot" in next(d.message for d in diags if d.code == "FTS205")


def test_hostile_unfrozen_parameters_are_matched_in_bounded_time(tmp_path: Path) -> None:
    """axolotl matches `unfrozen_parameters` with Python's `re`, which backtracks for exponential time
    on `(a|aa)+$` against a long run of `a`: ftsc matches it in bounded time and reports FTS106
    (axolotl itself would hang); the result equals Python's on a name short enough for Python."""
    names = {"a" * 3000 + "b": (2,), "aaaa": (2,), "model.w": (2,)}
    graph = ModelGraph.from_names(names)
    (tmp_path / "m.json").write_text(graph.manifest.dumps())
    config = tmp_path / "axo.yaml"
    config.write_text("base_model: x\nsequence_len: 8\nunfrozen_parameters:\n  - (a|aa)+$\n")
    loaded = load_file(str(config))
    faulthandler.dump_traceback_later(60, exit=True)  # a hang detector, far above a loaded machine's normal
    try:
        out, g = import_dialect(loaded, graph)
        diags = run_check(out, g).diagnostics
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert "FTS106" in [d.code for d in diags]
    short = [n for n in names if len(n) < 100]  # Python's `re` itself would hang on the long name
    assert [s.pattern for s in out.schedule.phases[0].selectors] == [n for n in short if re.match("(a|aa)+$", n)]


def test_size_wrap_selecting_a_module_list_is_fts405_at_launch() -> None:
    """accelerate's FSDP2 size policy picks `layers` ModuleLists; torch refuses them (no FinetuningScheduler
    here to prune the entry)."""
    loaded, graph = imported(DATA / "axolotl" / "mm_size_wrap.yaml")
    diags = [d for d in run_check(loaded, graph).diagnostics if d.code == "FTS405"]
    assert sorted(d.data["key"] for d in diags) == ["model.language_model.layers", "model.vision_tower.encoder.layers"]
    assert all("at launch" in d.notes[0] and d.start() is not None and d.start().line == 23 for d in diags)


def test_llama_factory_substring_catch_is_fts205() -> None:
    """LLaMA-Factory: `freeze_extra_modules: norm` also trains every layer's `*_layernorm`."""
    loaded, graph = imported(DATA / "llama-factory" / "extra_substring.yaml")
    diags = [d for d in run_check(loaded, graph).diagnostics if d.code == "FTS205"]
    assert len(diags) == 1 and "`norm`" in diags[0].message and "input_layernorm" in diags[0].message


def test_llama_factory_layer_index_catches_vision_layers() -> None:
    """LLaMA-Factory: with the vision tower trainable, `.0.` and `.1.` (the first two language
    layers) also train the vision encoder's layers 0 and 1 (the recorded truth has them)."""
    path = DATA / "llama-factory" / "llava_vision_catch.yaml"
    assert "model.vision_tower.encoder.layers.1.mlp.fc1.weight" in truth(path)["trainable"]
    loaded, graph = imported(path)
    diags = [d for d in run_check(loaded, graph).diagnostics if d.code == "FTS205"]
    assert [d.message.split("`")[1] for d in diags] == [".0.", ".1."]
    assert all("model.vision_tower.encoder.layers." in d.message for d in diags)


# --- the command line --------------------------------------------------------------------------------------


def test_check_reads_dialect_configs_instead_of_skipping_them(capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "axolotl" / "partial_unit.yaml"
    assert main(["check", str(path), "--manifest", manifest("llama12"), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [d["code"] for d in out["diagnostics"]] == ["FTS301", "FTS301"]
    assert main(["check", str(DATA / "llama-factory" / "last2_all.yaml")]) == 0  # no model: nothing to say
    assert "skipped" not in capsys.readouterr().err


def test_dialect_flag_forces_and_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--dialect` reads a file the detector would not take; `auto` is the default; a wrong
    name is a usage error."""
    plain = tmp_path / "plain.yaml"
    plain.write_text("unfrozen: true\nfreeze_trainable_layers_not: 1\n")
    assert main(["check", str(plain)]) == 0
    assert "skipped" in capsys.readouterr().err
    text = (DATA / "llama-factory" / "last2_all.yaml").read_text().replace("finetuning_type: freeze\n", "")
    text = text.replace("freeze_trainable_layers: 2\n", "").replace("freeze_trainable_modules: all\n", "")
    path = tmp_path / "lf.yaml"
    path.write_text(text + "finetuning_type: full\n")
    assert main(["compile", str(path), "--manifest", manifest("llama12"), "--dialect", "llama-factory"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["phases"][0]["params"]) == 111
    assert main(["compile", str(path), "--manifest", manifest("llama12"), "--dialect", "nope"]) == 2
    capsys.readouterr()
    assert main(["check", str(path), "--manifest", manifest("llama12"), "--dialect", "axolotl"]) == 0
    assert load_file(str(path), "axolotl").dialect.name == "axolotl"  # type: ignore[union-attr]


def test_compile_lists_the_trainable_set_and_units(capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "llama-factory" / "llama_pro_size.yaml"
    assert main(["compile", str(path), "--manifest", manifest("mistral2")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["phases"][0]["params"] == truth(path)["trainable"]
    assert doc["sharding"]["kind"] == "fsdp2"
    assert sorted(sorted(u["params"]) for u in doc["sharding"]["units"] if u["params"]) == \
        sorted(sorted(g) for g in truth(path)["fsdp"]["groups"])


def test_explain_sees_the_upcast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """explain's model-state bytes follow the dialect's dtypes: fp32 trainable parameters cost
    more than the same parameters kept in bf16 (`pure_bf16`)."""
    path = DATA / "llama-factory" / "last2_all.yaml"
    assert main(["explain", str(path), "--manifest", manifest("llama12"), "--format", "json"]) == 0
    upcast = json.loads(capsys.readouterr().out)
    pure = tmp_path / "pure.yaml"
    pure.write_text(path.read_text().replace("bf16: true", "pure_bf16: true"))
    assert main(["explain", str(pure), "--manifest", manifest("llama12"), "--format", "json"]) == 0
    kept = json.loads(capsys.readouterr().out)
    a, b = upcast["phases"][0], kept["phases"][0]
    assert a["trainable_numel"] == b["trainable_numel"] > 0
    trainable = a["trainable_numel"]  # 2 bytes more per trainable element for the fp32 copy, and its fp32 gradient
    assert a["memory"]["params"] - b["memory"]["params"] == 2 * trainable
    assert a["memory"]["grads"] - b["memory"]["grads"] == 2 * trainable


@pytest.mark.parametrize("fmt", ["ftsc", "fts-yaml"])
def test_convert_writes_the_trainable_set(fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With the model, convert writes the exact trainable set; LLaMA-Factory's needs the model
    (the layers it trains depend on the layer count)."""
    for path, model in ((DATA / "axolotl" / "qwen_rows.yaml", "qwen2_4"), (DATA / "llama-factory" / "last2_all.yaml",
                                                                          "llama12")):
        out = tmp_path / f"{path.stem}.{'ftsc' if fmt == 'ftsc' else 'yaml'}"
        assert main(["convert", str(path), "--to", fmt, "--manifest", manifest(model), "-o", str(out)]) == 0
        back = load_file(str(out))
        assert back.kind is not InputKind.DIALECT
        res = run_check(back, graph_for(path)).context.resolution  # type: ignore[union-attr]
        assert sorted(res.phase(0).params) == sorted(truth(path)["trainable"])  # type: ignore[union-attr]
    capsys.readouterr()
    assert main(["convert", str(DATA / "llama-factory" / "last2_all.yaml"), "--to", fmt]) == 2
    assert "give --model" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["ftsc", "fts-yaml"])
def test_convert_refuses_a_grouped_fsdp2_call(fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """accelerate's tail is one `fully_shard` call over three modules (tied Qwen): neither the DSL
    nor FTS's `fsdp_plan` writes one, and one entry per module would shard three groups."""
    path = DATA / "llama-factory" / "qwen_pure_bf16_fsdp2.yaml"
    out = tmp_path / "out"
    assert main(["convert", str(path), "--to", fmt, "--manifest", manifest("qwen2_4"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "FTS501" in err and "[model.norm, model.embed_tokens, lm_head] in one `fully_shard` call" in err
    assert not out.exists()


def test_convert_without_a_model_keeps_axolotls_regexes(capsys: pytest.CaptureFixture[str]) -> None:
    """axolotl's patterns convert without a model, rewritten as axolotl reads them (`.` literal,
    anchored at the start only)."""
    assert main(["convert", str(DATA / "axolotl" / "literal_dots.yaml"), "--to", "ftsc"]) == 0
    out = capsys.readouterr().out
    assert r"/(?:model\.layers\.*\.mlp\.*).*/" in out and r"/(?:model\.layers.+\.self_attn" in out


def test_convert_refuses_a_model_for_other_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.ftsc"
    path.write_text("phase 0 { thaw lm_head.weight }\n")
    assert main(["convert", str(path), "--to", "fts-yaml", "--manifest", manifest("llama12")]) == 2
    assert "freeze-dialect" in capsys.readouterr().err


def test_fix_leaves_dialect_configs_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "partial_unit.yaml"
    shutil.copy(DATA / "axolotl" / "partial_unit.yaml", path)
    before = path.read_text()
    assert main(["check", "--fix", str(path), "--manifest", manifest("llama12")]) == 1
    assert "--fix does not edit" in capsys.readouterr().err
    assert path.read_text() == before


def test_dialect_checks_need_no_torch() -> None:
    """Reading a dialect config and checking it against a manifest imports neither torch nor
    transformers (the pre-commit hook's path)."""
    import subprocess
    import sys

    code = ("import sys\nfrom ftsc.cli import main\n"
            f"main(['check', {str(DATA / 'llama-factory' / 'first3_fsdp1.yaml')!r}, '--manifest', "
            f"{manifest('llama12')!r}, '--format', 'concise'])\n"
            "print(sorted(m for m in ('torch', 'transformers', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert "FTS306" in out and out.rstrip().endswith("[]")
