"""`ftsc check --fix` converges: what it writes checks clean of the codes it addresses, adds no new
code, and a second `--fix` changes nothing.

Property test over generated models (module trees with parameters on leaves and inner modules,
sometimes a tied parameter, written as manifests: no torch), generated schedules (each
parameter in one phase or never thawed) and generated sharding: FSDP1 with `use_orig_params`
either way, with or without overrides, in a `.ftsc` `fsdp` block or a LightningCLI config
(FSDPStrategy + FinetuningScheduler callback naming an FTS YAML schedule); FSDP2 with a plan of
modules in any order, in a `.ftsc` `fsdp2` block. Plus the reproducers from issue 12.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftsc.cli import main
from ftsc.model.graph import ModelGraph

pytestmark = pytest.mark.fuzzing

# What each kind of edit addresses, by the words of its `fixed ...` line.
ADDRESSED = {"wrap ": {"FTS301", "FTS302", "FTS305"}, "plan reordered bottom-up": {"FTS403"},
             "tied modules left to a common ancestor's group": {"FTS404"}}
FIXABLE = {"fsdp": {"FTS301", "FTS302", "FTS305"}, "fsdp2": {"FTS403", "FTS404"}}


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _codes(path: Path, manifest: Path) -> list[str]:
    rc, out, err = _run(["check", str(path), "--manifest", str(manifest), "--format", "json"])
    assert rc in (0, 1), err
    return sorted(d["code"] for d in json.loads(out)["diagnostics"] if d["severity"] != "info")


@st.composite
def models(draw: st.DrawFn) -> tuple[list[str], dict[str, str]]:
    """Parameter FQNs of a module tree (depth <= 3), and maybe one tied alias."""
    params: list[str] = []

    def grow(prefix: str, depth: int) -> None:
        n = draw(st.integers(1 if depth == 0 else 0, 3 if depth < 2 else 2))
        if n == 0 or depth == 3:
            params.extend(f"{prefix}{p}" for p in draw(st.sampled_from([["weight"], ["weight", "bias"]])))
            return
        if depth and draw(st.booleans()):
            params.append(f"{prefix}scale")  # a parameter on an inner module
        for i in range(n):
            grow(f"{prefix}{'abc'[depth % 3]}{i}.", depth + 1)

    grow("", 0)
    aliases: dict[str, str] = {}
    if draw(st.booleans()) and len(params) > 1:
        primary = draw(st.sampled_from(params))
        aliases = {f"tie.{primary.rsplit('.', 1)[-1]}": primary}
    return params, aliases


@st.composite
def cases(draw: st.DrawFn, kind: str) -> dict:
    params, aliases = draw(models())
    n_phases = draw(st.integers(1, min(3, len(params))))
    labels = draw(st.lists(st.sampled_from([*range(n_phases), None]), min_size=len(params), max_size=len(params)))
    used = sorted({x for x in labels if x is not None})
    if not used:
        labels[0], used = 0, [0]
    renumber = {old: new for new, old in enumerate(used)}
    phases: dict[int, list[str]] = {}
    for p, lab in zip(params, labels, strict=True):
        if lab is not None:
            phases.setdefault(renumber[lab], []).append(p)
    graph = ModelGraph.from_names(params, aliases=aliases)
    modules = [m for m in graph.modules if m]
    case = {"params": params, "aliases": aliases, "phases": phases, "kind": kind}
    if kind == "fsdp2":
        case["plan"] = draw(st.lists(st.sampled_from(modules), unique=True, max_size=4))
        case["root"] = draw(st.booleans())
    else:
        case["orig"] = draw(st.booleans())
        case["overrides"] = draw(st.lists(st.sampled_from(modules), unique=True, max_size=2))
        case["yaml"] = draw(st.booleans())
    return case


def _write(case: dict, folder: Path) -> tuple[Path, Path]:
    manifest = folder / "m.json"
    manifest.write_text(ModelGraph.from_names(case["params"], aliases=case["aliases"]).manifest.dumps())
    thaw = "".join(f"phase {i} {{ thaw {', '.join(ps)} }}\n" for i, ps in sorted(case["phases"].items()))
    if case["kind"] == "fsdp2":
        entries = [*case["plan"], *([""] if case["root"] else [])]
        shards = "".join(f'    shard "{m}"\n' if m == "" else f"    shard {m}\n" for m in entries)
        path = folder / "s.ftsc"
        path.write_text(f"{thaw}# the plan\nfsdp2 {{\n{shards}}}\n")
        return path, manifest
    if not case["yaml"]:
        wraps = f"    wrap {', '.join(case['overrides'])}\n" if case["overrides"] else ""
        path = folder / "s.ftsc"
        path.write_text(f"{thaw}fsdp {{  # sharding\n    use_orig_params = {str(case['orig']).lower()}\n{wraps}}}\n")
        return path, manifest
    (folder / "sched.yaml").write_text("".join(f"{i}:\n  params: {json.dumps(ps)}\n"
                                               for i, ps in sorted(case["phases"].items())))
    adapter = (f"      strategy_adapter_cfg:\n        awp_overrides: {json.dumps(case['overrides'])}\n"
               if case["overrides"] else "")
    path = folder / "cfg.yaml"
    path.write_text("trainer:\n  strategy:\n    class_path: lightning.pytorch.strategies.FSDPStrategy\n"
                    f"    init_args:\n      use_orig_params: {str(case['orig']).lower()}\n  callbacks:\n"
                    "  - class_path: finetuning_scheduler.FTSEarlyStopping  # stop early\n"
                    "    init_args: {monitor: val_loss}\n"
                    "  - class_path: finetuning_scheduler.FinetuningScheduler\n"
                    f"    init_args:  # options\n      ft_schedule: sched.yaml\n{adapter}")
    return path, manifest


def _converges(case: dict, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path, manifest = _write(case, folder)
    before_text, before = path.read_text(), _codes(path, manifest)
    _, _, err = _run(["check", str(path), "--manifest", str(manifest), "--fix"])
    after_text, after = path.read_text(), _codes(path, manifest)
    fixed = [line for line in err.splitlines() if line.startswith("fixed ")]
    addressed = {code for words, codes in ADDRESSED.items() for line in fixed if words in line for code in codes}
    if after_text != before_text:
        assert len(fixed) == 1 and addressed, err
        assert not set(after) & addressed, (after, after_text)
        assert set(after) <= set(before), (before, after, after_text)
        outcome = "fixed"
    else:
        assert not fixed, err
        assert after == before
        if set(before) & FIXABLE[case["kind"]]:
            assert "not fixed" in err, (before, err)  # never silent about what it could not fix
        outcome = "unchanged"
    _run(["check", str(path), "--manifest", str(manifest), "--fix"])
    assert path.read_text() == after_text, "a second --fix changed the file"
    return outcome


SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SETTINGS
@given(case=cases("fsdp"))
def test_fsdp1_fix_converges(case: dict, tmp_path_factory: pytest.TempPathFactory) -> None:
    _converges(case, tmp_path_factory.mktemp("c"))


@SETTINGS
@given(case=cases("fsdp2"))
def test_fsdp2_fix_converges(case: dict, tmp_path_factory: pytest.TempPathFactory) -> None:
    _converges(case, tmp_path_factory.mktemp("c"))


def test_the_generators_reach_fixable_cases(tmp_path: Path) -> None:
    """The property is not vacuous: over a fixed sample, both modes of FSDP1 and FSDP2 get fixed."""
    outcomes: dict[tuple[str, object], set[str]] = {}
    for kind in ("fsdp", "fsdp2"):
        for i, case in enumerate(_sample(kind, 60)):
            key = (kind, case.get("orig", None))
            outcomes.setdefault(key, set()).add(_converges(case, tmp_path / f"{kind}{i}"))
    assert outcomes[("fsdp", False)] >= {"fixed"} and outcomes[("fsdp", True)] >= {"fixed"}
    assert outcomes[("fsdp2", None)] >= {"fixed"}


def _sample(kind: str, n: int) -> list[dict]:
    found: list[dict] = []

    @settings(max_examples=n, deadline=None, derandomize=True, database=None)
    @given(case=cases(kind))
    def collect(case: dict) -> None:
        found.append(case)

    collect()
    return found


def test_fsdp1_flat_no_overrides_fixes_phase_zero_too(tmp_path: Path) -> None:
    """Issue 12: `use_orig_params = false`, no overrides: the fix must not leave FTS305 (phase 0 owns no
    flattened parameter) behind, and a second `--fix` has nothing to do."""
    case = {"kind": "fsdp", "params": ["head.w", "layers.0.w", "layers.1.w"], "aliases": {},
            "phases": {0: ["head.w"], 1: ["layers.0.w", "layers.1.w"]}, "orig": False, "overrides": [],
            "yaml": False}
    path, manifest = _write(case, tmp_path)
    assert _codes(path, manifest) == ["FTS301", "FTS305"]
    assert _converges(case, tmp_path / "run") == "fixed"
    fixed = (tmp_path / "run" / "s.ftsc").read_text()
    assert "    wrap head\n" in fixed and "fsdp {  # sharding\n" in fixed  # the phase-0 module; comment kept


def test_fsdp2_root_is_never_written(tmp_path: Path) -> None:
    """Issue 12: plain trainable parameters are reported as a choice; no root `""` is written."""
    case = {"kind": "fsdp2", "params": ["body.w", "head.w"], "aliases": {},
            "phases": {0: ["head.w"], 1: ["body.w"]}, "plan": ["body"], "root": False}
    path, manifest = _write(case, tmp_path)
    text = path.read_text()
    rc, _, err = _run(["check", str(path), "--manifest", str(manifest), "--fix"])
    assert rc == 1 and path.read_text() == text
    assert '`shard ""` if `training_step` calls `self(...)`' in err
    assert "`shard head` if `training_step` calls `self.head(...)`" in err
