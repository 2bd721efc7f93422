"""Differential test: ftsc's FSDP2 prediction vs real torch `fully_shard`, group by group.

Two oracles, both in-process on torch's fake process group (world size 2, rank 0; a 2-D
`("data_parallel", "tensor_parallel")` = `(2, 1)` CPU mesh like Lightning's
`ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1)`):

- `tests.fsdp_oracle.real_groups(model, plan, user_calls)`: the user's `fully_shard` calls, then
  the plan (module FQNs in order) with FTS-style skipping of already-managed modules. Compared
  with `ftsc.shard.fsdp2.predict2` on a second, identically seeded build.
- `fts_groups` (below): FinetuningScheduler's own `ModelParallelStrategyAdapter` --
  `_validate_fsdp_plan()` resolves the raw `fsdp_plan` dict (exact names beat regexes,
  `re.match` prefix semantics, ModuleList/ModuleDict pruning, first-insertion order) and
  `_apply_fsdp_plan()` applies it (skip + warn for managed modules), after the LightningModule's
  own `configure_model` (real `fully_shard` calls). Compared with `ftsc.shard.fsdp2_analysis` of
  the same plan written as an `.ftsc` `fsdp2` block with `fts "..."` keys, or as a LightningCLI
  config's `strategy_adapter_cfg.fsdp_plan`.

Compared exactly: every group's parameters in FSDPParam order, the plain parameters, the skipped
plan entries, the resolved plan order (FTS oracle), every registration path's DTensor/plain
state (`named_parameters(remove_duplicate=False)`), tied parameters managed by two groups
(predicted `multi` <-> the first forward raises FSDP's duplicate-parameter `ValueError`), silent
unties (predicted `untied` <-> exactly those alias paths stay plain), and calls that fail at
`fully_shard()` time (predicted `failed` <-> the real call raises).
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("finetuning_scheduler")

import torch
from torch import nn

from ftsc.frontend import load_file, load_text
from ftsc.model.build import build, extract
from ftsc.model.graph import ModelGraph
from ftsc.shard import fsdp2_analysis
from ftsc.shard.fsdp2 import Prediction2, predict2
from ftsc.source import SourceFile
from tests import models
from tests.fsdp_oracle import ensure_process_group, real_groups

pytestmark = [pytest.mark.torch]

DATA = Path(__file__).resolve().parent / "data" / "fsdp2"
TOY = "tests/data/models/toy_models.py"
LAYERS = [f"model.model.layers.{i}" for i in range(4)]
SEED_PLAN = ["model.lm_head", *LAYERS]  # torchtitan {'model.output', 'model.layers.\d*$'} in HF Llama names
DUP = "is shared with a parameter already managed by another FSDP group"


# ---------------------------------------------------------------------------------------------
# Extra toy models


def two_parents_lm() -> nn.Module:
    return models.wrap(models.two_parents())


# ---------------------------------------------------------------------------------------------
# Helpers


def _mesh() -> Any:
    from torch.distributed.device_mesh import init_device_mesh

    ensure_process_group()
    return init_device_mesh("cpu", (2, 1), mesh_dim_names=("data_parallel", "tensor_parallel"))


def _twice(factory: Callable[[], nn.Module], meta: bool = False) -> tuple[nn.Module, nn.Module]:
    out = []
    for _ in range(2):
        torch.manual_seed(0)
        with torch.device("meta") if meta else contextlib.nullcontext():
            out.append(factory())
    return out[0], out[1]


def _predicted_plain_paths(graph: ModelGraph, pred: Prediction2) -> set[str]:
    plain: set[str] = set()
    unsharded = set(pred.unsharded)
    for p in graph.params:
        if p in pred.untied:
            plain.update(pred.untied[p])
        elif p in unsharded:
            plain.update((p, *graph.param_entries[p].aliases))
    return plain


def _real_plain_paths(model: nn.Module) -> set[str]:
    from torch.distributed.tensor import DTensor

    return {n for n, p in model.named_parameters(remove_duplicate=False) if not isinstance(p, DTensor)}


def _real_untied(model: nn.Module, primary_of: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """Primary FQN -> the alias paths still plain, where some registration of it became a DTensor."""
    plain = _real_plain_paths(model)
    paths: dict[str, list[str]] = {}
    for path, p in primary_of.items():
        paths.setdefault(p, []).append(path)
    return {p: tuple(x for x in ps if x in plain) for p, ps in paths.items()
            if 0 < sum(x in plain for x in ps) < len(ps)}


def _primary_of(model: nn.Module) -> dict[str, str]:
    """Every registration path -> the primary FQN of its parameter (before sharding)."""
    primary = {id(p): n for n, p in model.named_parameters()}
    return {n: primary[id(p)] for n, p in model.named_parameters(remove_duplicate=False)}


def _primary_of_after(model: nn.Module, built: nn.Module) -> dict[str, str]:
    """Registration path -> primary FQN, taken from the unsharded twin `built` (paths are identical)."""
    return {path: p for path, p in _primary_of(built).items() if path in dict(model.named_parameters(
        remove_duplicate=False))}


def _forward_error(model: nn.Module, call: Callable[[nn.Module], Any]) -> str | None:
    try:
        call(model)
    except Exception as err:  # noqa: BLE001 - compared with the prediction
        return f"{type(err).__name__}: {err}"
    return None


def _token_forward(m: nn.Module) -> Any:
    return _entry(m)(torch.zeros(1, 4, dtype=torch.long))


def _toy_forward(m: nn.Module) -> Any:
    return _entry(m)(torch.zeros(2, 8))


def _entry(m: nn.Module) -> nn.Module:
    """What a training step runs: the LightningModule's `model`, or the wrapper itself where the root is
    sharded (its FSDP pre-forward hook runs lazy init first; the wrapper has no forward of its own)."""
    from torch.distributed.fsdp import FSDPModule

    return m if isinstance(m, FSDPModule) else m.model


# ---------------------------------------------------------------------------------------------
# Oracle 2: FTS's own plan resolution and application


def fts_groups(module: nn.Module, fsdp_plan: dict[str, dict], run_configure_model: bool = False) -> dict[str, Any]:
    """Resolve and apply `fsdp_plan` with FTS's `ModelParallelStrategyAdapter` on a (2, 1) mesh.

    Returns the resolved plan (FTS's order), the `fully_shard` calls in order with their groups'
    params, plain params, skipped entries and pruning warnings.
    """
    from finetuning_scheduler.strategy_adapters import model_parallel as mp
    from torch.distributed.fsdp import FSDPModule

    mesh = _mesh()

    class Adapter(mp.ModelParallelStrategyAdapter):
        @property
        def pl_module(self) -> Any:
            return module

        @property
        def pls_handle(self) -> Any:
            return SimpleNamespace(device_mesh=mesh)

    names = {id(m): n for n, m in module.named_modules()}
    primary_of = _primary_of(module)
    calls: list[str] = []
    real_fully_shard = mp.fully_shard

    def recording(target: Any, *args: Any, **kwargs: Any) -> Any:
        mods = list(target) if isinstance(target, (list, tuple)) else [target]
        calls.append(", ".join(names[id(m)] for m in mods))
        return real_fully_shard(target, *args, **kwargs)

    adapter = Adapter(fsdp_plan={k: dict(v) for k, v in fsdp_plan.items()})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        adapter._validate_fsdp_plan()
        resolved = list(adapter.fsdp_plan)
        user: list[str] = []
        if run_configure_model:  # the module's own calls, then the plan (FTS's `_wrapped_configure_model`)
            import torch.distributed.fsdp as fsdp_pkg

            orig = fsdp_pkg.fully_shard

            def user_recording(target: Any, *args: Any, **kwargs: Any) -> Any:
                mods = list(target) if isinstance(target, (list, tuple)) else [target]
                user.append(", ".join(names[id(m)] for m in mods))
                return orig(target, *args, **kwargs)

            object.__setattr__(module, "_device_mesh", mesh)
            fsdp_pkg.fully_shard = user_recording
            try:
                module.configure_model()
            finally:
                fsdp_pkg.fully_shard = orig
        mp.fully_shard = recording
        try:
            adapter._apply_fsdp_plan()
        finally:
            mp.fully_shard = real_fully_shard
    groups: dict[str, list[str]] = {}
    for call in [*user, *calls]:
        first = module.get_submodule(call.split(", ")[0])
        assert isinstance(first, FSDPModule)
        params = []
        for pg in first._get_fsdp_state()._fsdp_param_groups:
            for fp in pg.fsdp_params:
                owner = names[id(fp._module_info.module)]
                params.append(primary_of[f"{owner}.{fp._module_info.param_name}" if owner else fp._module_info.param_name])
        groups[call] = params
    msgs = [str(w.message) for w in caught]
    skipped = [n for n in resolved if n not in adapter.fsdp_plan]
    return {"resolved": resolved, "order": [*user, *calls], "groups": groups, "skipped": skipped,
            "plain": sorted({primary_of[n] for n in _real_plain_paths(module)}),
            "pruned": sorted(re.findall(r"apply the FSDP API to \('([^']*)'\)", "\n".join(msgs))),
            "warned_skip": sorted(re.findall(r"Module '([^']*)' or one of its parents has already", "\n".join(msgs)))}


# ---------------------------------------------------------------------------------------------
# Scenarios for oracle 1 (explicit module plans through `predict2` / `real_groups`)


@dataclass(frozen=True)
class Case:
    id: str
    factory: Callable[[], nn.Module]
    plan: tuple[str, ...]
    meta: bool = False
    expect: dict[str, Any] = field(default_factory=dict)  # documented facts checked on the prediction


CASES = [
    Case("llama/seed-plan", models.llama_lm, tuple(SEED_PLAN),
         expect={"plain": {"model.model.embed_tokens.weight", "model.model.norm.weight"}}),
    Case("llama/seed-plan+root", models.llama_lm, (*SEED_PLAN, ""), expect={"plain": set()}),
    Case("llama/parent-before-child", models.llama_lm, ("model.model", "model.model.layers.0", ""),
         expect={"skipped": ["model.model.layers.0"]}),
    Case("llama/root-first", models.llama_lm, ("", *SEED_PLAN), expect={"skipped": SEED_PLAN}),
    Case("llama/meta/seed-plan+root", models.llama_lm, (*SEED_PLAN, ""), meta=True, expect={"plain": set()}),
    Case("llama/meta/seed-plan", models.llama_lm, tuple(SEED_PLAN), meta=True),
    Case("llama-tied/seed-plan/untie", models.llama_tied_lm, tuple(SEED_PLAN),
         expect={"untied": {"model.model.embed_tokens.weight": ("model.model.embed_tokens.weight",)}}),
    Case("llama-tied/seed-plan+root/multi", models.llama_tied_lm, (*SEED_PLAN, ""),
         expect={"multi": {"model.model.embed_tokens.weight": ("model.lm_head", "")}}),
    Case("llama-tied/layers+root", models.llama_tied_lm, (*LAYERS, ""),
         expect={"plain": set(), "multi": {}, "untied": {}}),
    Case("gpt2/head+wte/multi", models.gpt2_lm, ("model.lm_head", "model.transformer.wte"),
         expect={"multi": {"model.transformer.wte.weight": ("model.lm_head", "model.transformer.wte")}}),
    Case("gpt2/blocks+root", models.gpt2_lm, ("model.transformer.h.0", "model.transformer.h.1", ""),
         expect={"plain": set(), "multi": {}}),
    Case("gpt2/wte-only/untie", models.gpt2_lm, ("model.transformer.wte",),
         expect={"untied": {"model.transformer.wte.weight": ("model.lm_head.weight",)}}),
    Case("t5/blocks+root", models.t5_lm,
         ("model.encoder.block.0", "model.encoder.block.1", "model.decoder.block.0", "model.decoder.block.1", ""),
         expect={"plain": set(), "multi": {}}),
    Case("t5/encoder+decoder/multi", models.t5_lm, ("model.encoder", "model.decoder")),
    Case("shared-linear/alias-split/untie", models.shared_linear_lm, ("model.0",),
         expect={"untied": {"model.0.weight": ("model.1.weight",)}}),
    Case("shared-linear/two-groups/multi", models.shared_linear_lm, ("model.0", "model.1"),
         expect={"multi": {"model.0.weight": ("model.0", "model.1")}}),
    Case("shared-module/alias-path+root", models.shared_module_lm, ("model.2", ""),
         expect={"plain": set(), "multi": {}}),
    Case("shared-module/two-subtrees/fails", two_parents_lm, ("model.enc", "model.dec", ""),
         expect={"failed": True}),
    Case("nested/blocks+root", models.nested_lm, ("model.encoder.0", "model.encoder.1", "model.decoder.conv", ""),
         expect={"plain": set()}),
    Case("deberta/layers+root", models.deberta_v2_lm,
         (*(f"model.deberta.encoder.layer.{i}" for i in range(12)), ""), meta=True, expect={"plain": set()}),
]


def _compare(graph: ModelGraph, pred: Prediction2, real: dict[str, Any], model: nn.Module,
             primary_of: dict[str, str]) -> None:
    if pred.failed:  # a call re-shards a DTensor: the real run stopped at that call
        assert real["error"] is not None, (pred.failed, real)
        assert "overlapping meshes" in real["error"] or "Invariant" in real["error"], real["error"]
        failing = pred.failed[0][0]
        done = [g.name for g in pred.groups]
        # every group before the failing one was built identically
        upto = done[:done.index(failing)]
        assert list(real["groups"]) == upto
        assert {n: real["groups"][n] for n in upto} == {g.name: list(g.params) for g in pred.groups if g.name in upto}
        return
    assert real["error"] is None, real["error"]
    assert {g.name: list(g.params) for g in pred.groups} == real["groups"]
    assert list(real["groups"]) == [g.name for g in pred.groups]  # application order
    assert sorted(pred.unsharded) == sorted(real["plain"])
    assert [s.module for s in pred.skipped] == real["skipped"]
    assert _predicted_plain_paths(graph, pred) == _real_plain_paths(model)  # per registration path
    assert pred.untied == _real_untied(model, primary_of)
    # a parameter reached by two groups has two DTensors (distinct objects from one original)
    for p, owners in pred.multi.items():
        real_owners = [g for g, ps in real["groups"].items() if p in ps]
        assert real_owners == list(owners)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_predict2_matches_fully_shard(c: Case) -> None:
    built, real_model = _twice(c.factory, meta=c.meta)
    graph = ModelGraph(extract(built))
    pred = predict2(graph, list(c.plan))
    primary_of = _primary_of(real_model)
    real = real_groups(real_model, list(c.plan))
    _compare(graph, pred, real, real_model, primary_of)
    exp = c.expect
    if "plain" in exp:
        assert set(pred.unsharded) == exp["plain"]
    if "skipped" in exp:
        assert [s.module for s in pred.skipped] == exp["skipped"]
    if "untied" in exp:
        assert pred.untied == exp["untied"]
    if "multi" in exp:
        assert pred.multi == exp["multi"]
    if "failed" in exp:
        assert bool(pred.failed) == exp["failed"]


# ---------------------------------------------------------------------------------------------
# Tied parameters managed by two groups (`multi`): the first forward raises FSDP's duplicate-parameter
# `ValueError` iff one sharded module contains both groups (`multi_raises`); otherwise each group is its
# own FSDP root at lazy init and the tie is silently split into two DTensors.

MULTI_CASES = [
    pytest.param(models.llama_tied_lm, (*SEED_PLAN, ""), _token_forward, id="llama-tied/seed-plan+root"),
    pytest.param(models.llama_tied_lm, ("model.lm_head", "model.model.embed_tokens", ""), _token_forward,
                 id="llama-tied/head+embed+root"),
    # no sharded common ancestor: no error, the tie splits
    pytest.param(models.gpt2_lm, ("model.lm_head", "model.transformer.wte"), _token_forward, id="gpt2/head+wte"),
    pytest.param(models.shared_linear_lm, ("model.0", "model.1"), _toy_forward, id="shared-linear/two-groups"),
    pytest.param(models.shared_linear_lm, ("model.0", "model.1", ""), _toy_forward,
                 id="shared-linear/two-groups+root"),
    pytest.param(models.gpt2_lm, ("model.lm_head", "model.transformer.wte", "model.transformer"), _token_forward,
                 id="gpt2/head+wte+transformer"),
    # no multi: the forward must not raise the duplicate error
    pytest.param(models.llama_tied_lm, (*LAYERS, ""), _token_forward, id="llama-tied/layers+root"),
    pytest.param(models.gpt2_lm, ("model.transformer.h.0", "model.transformer.h.1", ""), _token_forward,
                 id="gpt2/blocks+root"),
    pytest.param(models.shared_module_lm, ("model.2", ""), _toy_forward, id="shared-module/alias-path+root"),
]


@pytest.mark.parametrize(("factory", "plan", "forward"), MULTI_CASES)
def test_multi_raises_at_first_forward(factory: Callable[[], nn.Module], plan: tuple[str, ...],
                                       forward: Callable[[nn.Module], Any]) -> None:
    built, real_model = _twice(factory)
    pred = predict2(ModelGraph(extract(built)), list(plan))
    real = real_groups(real_model, list(plan))
    assert real["error"] is None
    assert set(pred.multi_raises) == set(pred.multi)
    err = _forward_error(real_model, forward)
    raises = err is not None and DUP in err
    assert raises == any(pred.multi_raises.values()), f"predicted {pred.multi_raises}, forward error: {err}"
    if not raises:
        assert err is None or "missing the required \"forward\"" in err, err
    for p, groups in pred.multi.items():  # two distinct DTensors, one per group, whether or not it raises
        regs = [real_model.get_parameter(path) for path, q in _primary_of_after(real_model, built).items() if q == p]
        assert len({id(x) for x in regs}) >= len(groups)


def test_multi_without_common_root_splits_the_tie() -> None:
    """No sharded module contains both groups: both aliases become distinct DTensors, the forward runs."""
    from torch.distributed.tensor import DTensor

    built, real_model = _twice(models.gpt2_lm)
    plan = ["model.lm_head", "model.transformer.wte"]
    pred = predict2(ModelGraph(extract(built)), plan)
    assert pred.multi == {"model.transformer.wte.weight": ("model.lm_head", "model.transformer.wte")}
    assert pred.multi_raises == {"model.transformer.wte.weight": False}
    real_groups(real_model, plan)
    head, wte = real_model.model.lm_head.weight, real_model.model.transformer.wte.weight
    assert isinstance(head, DTensor) and isinstance(wte, DTensor) and head is not wte
    assert _forward_error(real_model, _token_forward) is None


# ---------------------------------------------------------------------------------------------
# Oracle 2: plan resolution (`fsdp2_analysis`) vs FTS's adapter


@dataclass(frozen=True)
class PlanCase:
    id: str
    factory: Callable[[], nn.Module]
    fsdp_plan: dict[str, dict]  # the raw FTS `fsdp_plan` (keys are FTS module names / regexes)
    meta: bool = False
    expect_pruned: tuple[str, ...] = ()


PLAN_CASES = [
    PlanCase("llama/seed-regex", models.llama_lm, {"model.lm_head": {}, r"model.model.layers.\d*$": {}}),
    PlanCase("llama/seed-regex+root", models.llama_lm, {"model.lm_head": {}, r"model.model.layers.\d*$": {}, "": {}}),
    # no `$`: also matches every submodule of each layer (later skipped as managed) and the ModuleList
    # itself (`model.model.layers` is matched by `\d*` = "" and pruned)
    PlanCase("llama/regex-no-dollar+root", models.llama_lm, {r"model.model.layers.\d": {}, "": {}}),
    PlanCase("llama/modulelist-key", models.llama_lm, {"model.model.layers": {}, "model.model": {}},
             expect_pruned=("model.model.layers",)),
    PlanCase("llama/catch-all-regex", models.llama_lm, {".*": {}}),
    PlanCase("llama-tied/meta/seed-regex", models.llama_tied_lm,
             {"model.lm_head": {}, r"model.model.layers.\d*$": {}}, meta=True),
    PlanCase("nested/moduledict-and-regex", models.nested_lm,
             {r"model.encoder.\d": {}, "model.decoder": {}, "model.decoder.head": {}, "": {}},
             expect_pruned=("model.decoder", "model.encoder.0.mixer", "model.encoder.1.mixer")),
    # an exact name beats the regex reading (`model.1` would also match `model.10`)
    PlanCase("linear11/exact-beats-regex", models.linear11_lm, {"model.1": {}, r"model.\d$": {}, "model": {}}),
    PlanCase("linear11/later-key-keeps-position", models.linear11_lm,
             {"model.1$": {"reshard_after_forward": False}, r"model.\d$": {}, "": {}}),
    PlanCase("gpt2/blocks-regex+root", models.gpt2_lm, {r"model.transformer.h.\d+$": {}, "": {}}),
]


def _ftsc_text(fsdp_plan: dict[str, dict]) -> str:
    lines = []
    for key, kwargs in fsdp_plan.items():
        kw = "(" + ", ".join(f"{k} = {str(v).lower()}" for k, v in kwargs.items()) + ")" if kwargs else ""
        sel = '""' if key == "" else 'fts "' + key.replace("\\", "\\\\") + '"'
        lines.append(f"    shard {sel}{kw}")
    return 'phase 0 {\n    thaw glob "**"\n}\n\nfsdp2 {\n' + "\n".join(lines) + "\n}\n"


@pytest.mark.parametrize("c", PLAN_CASES, ids=[c.id for c in PLAN_CASES])
def test_fsdp2_analysis_matches_fts_adapter(c: PlanCase) -> None:
    built, real_model = _twice(c.factory, meta=c.meta)
    graph = ModelGraph(extract(built))
    loaded = load_text(SourceFile("plan.ftsc", _ftsc_text(c.fsdp_plan)))
    assert not [d for d in loaded.diagnostics if d.severity.name == "ERROR"], loaded.diagnostics
    analysis = fsdp2_analysis(loaded.schedule, graph)
    assert analysis is not None and not analysis.unmatched
    fts = fts_groups(real_model, c.fsdp_plan)
    pred = analysis.prediction
    assert list(analysis.plan) == fts["resolved"]  # FTS's resolution and order
    assert sorted(m for _, m in analysis.containers) == fts["pruned"]
    if c.expect_pruned:
        assert fts["pruned"] == sorted(c.expect_pruned)
    assert [g.name for g in pred.groups] == fts["order"]
    assert {g.name: list(g.params) for g in pred.groups} == fts["groups"]
    assert [s.module for s in pred.skipped] == fts["skipped"]
    assert sorted(fts["skipped"]) == fts["warned_skip"]
    assert sorted(pred.unsharded) == fts["plain"]
    assert _predicted_plain_paths(graph, pred) == _real_plain_paths(real_model)


def test_lightning_cli_config_plan_matches_fts_adapter() -> None:
    """The seed's plan as a LightningCLI config (`strategy_adapter_cfg.fsdp_plan`), HF Llama names."""
    path = DATA / "llama_seed_plan_root.yaml"
    loaded = load_file(str(path))
    built, real_model = _twice(models.llama_lm)
    graph = ModelGraph(extract(built))
    analysis = fsdp2_analysis(loaded.schedule, graph)
    assert analysis is not None
    import yaml

    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    fts_cb = next(cb for cb in cfg["trainer"]["callbacks"] if cb["class_path"].endswith("FinetuningScheduler"))
    fsdp_plan = fts_cb["init_args"]["strategy_adapter_cfg"]["fsdp_plan"]
    fts = fts_groups(real_model, fsdp_plan)
    assert list(analysis.plan) == fts["resolved"] == [*SEED_PLAN, ""]
    assert {g.name: list(g.params) for g in analysis.prediction.groups} == fts["groups"]
    assert sorted(analysis.prediction.unsharded) == fts["plain"] == []


# ---------------------------------------------------------------------------------------------
# User `fully_shard` calls in configure_model composed with a plan


@pytest.mark.parametrize("fsdp_plan", [
    {"": {}},
    {"model.1.0": {}, "model": {}, "": {}},  # model.1.0 is inside the user's model.1 group: skipped
    {"model.1": {}, "model.2": {}},  # the user already sharded both (model.2 in a list-form call): skipped
], ids=["root", "inner+model+root", "already-sharded"])
def test_user_calls_composed_with_plan(fsdp_plan: dict[str, dict]) -> None:
    target = f"{TOY}:SelfSharded"
    built = build(target)  # meta device; configure_model's fully_shard calls recorded
    graph = ModelGraph(extract(built))
    assert graph.user_fully_shard == (("model.1",), ("model.0", "model.2"))
    loaded = load_text(SourceFile("plan.ftsc", _ftsc_text(fsdp_plan)))
    analysis = fsdp2_analysis(loaded.schedule, graph)
    assert analysis is not None
    pred = analysis.prediction
    # oracle 1: replay the recorded calls with real fully_shard on a meta-device build
    from tests.data.models.toy_models import SelfSharded

    with torch.device("meta"):
        replay = SelfSharded()
    primary_of = _primary_of(replay)
    real = real_groups(replay, list(analysis.plan), user_calls=[list(c) for c in graph.user_fully_shard])
    _compare(graph, pred, real, replay, primary_of)
    # oracle 2: the module's real configure_model, then FTS's adapter
    with torch.device("meta"):
        lm = SelfSharded()
    fts = fts_groups(lm, fsdp_plan, run_configure_model=True)
    assert [g.name for g in pred.groups] == fts["order"]
    assert {g.name: list(g.params) for g in pred.groups} == fts["groups"]
    assert [s.module for s in pred.skipped] == fts["skipped"]
    assert sorted(pred.unsharded) == fts["plain"]
    assert [g.source for g in pred.groups][:2] == ["user", "user"]
