"""Differential test: grouped `fully_shard` calls (one call over a list of modules) against torch.

accelerate's `fsdp2_prepare_model` (accelerate 1.16) shards the tail `[final norm, head]` (tied:
`[final norm, input embedding, head]`) in ONE list-form `fully_shard` call: one FSDPParamGroup
over the parameters of every listed module. transformers' own plan
(`apply_fully_sharded_data_parallelism`, 5.24) groups a final norm + head pair the same way.
ftsc plans such a call as one grouped plan entry (`ir.ShardEntry.members`).

Oracle: accelerate's own `fsdp2_prepare_model` runs with torch's real `fully_shard` (a 2-rank CPU
mesh on the fake process group) on a small transformers Llama, tied and untied; torch's lazy
init then names each parameter group (`FSDPParamGroup._module_fqn`) and its parameters
(`FSDPParam._param_fqn`), and validates that no parameter is managed by two groups. ftsc
imports the same accelerate config (`--strategy-config`) and predicts the groups; they must be
equal, names included. `ftsc check` on the tied model must then draw no FTS404.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from ftsc.frontend.strategy import load_strategy
from ftsc.model.build import extract
from ftsc.model.graph import ModelGraph
from ftsc.shard import fsdp2_analysis
from tests import models
from tests.fsdp_oracle import ensure_process_group
from tests.test_dialect_strategies import _accelerate_plugin

pytestmark = [pytest.mark.torch]

CONFIGS = {
    "cls": "  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n",
    "cls_no_reshard": "  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n  fsdp_reshard_after_forward: false\n",
    "nowrap": "  fsdp_auto_wrap_policy: NO_WRAP\n",
}
# No SIZE_BASED_WRAP case: on this Llama every threshold that selects a module selects the layers'
# ModuleList (torch refuses it: FTS405) or the base model, whose final norm accelerate then hands
# to the tail call again (torch fails re-sharding its DTensor; ftsc skips it, see accelerate.md).


def _config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nnum_processes: 2\n"
                    f"fsdp_config:\n  fsdp_version: 2\n{CONFIGS[name]}")
    return path


def torch_groups(model, plugin) -> tuple[dict[str, list[str]], list[str]]:
    """accelerate prepares `model` with the real `fully_shard`; torch's names for every parameter
    group and its parameters (after lazy init, which raises on a parameter in two groups), and
    the parameters left plain."""
    from accelerate.utils.fsdp_utils import fsdp2_prepare_model
    from torch.distributed import fsdp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    ensure_process_group()
    mesh = init_device_mesh("cpu", (2,))
    real = fsdp.fully_shard

    def on_cpu_mesh(module, **kwargs):
        return real(module, **{**kwargs, "mesh": mesh})

    accelerator = types.SimpleNamespace(state=types.SimpleNamespace(fsdp_plugin=plugin), torch_device_mesh=None,
                                        mixed_precision="no", parallelism_config=None, is_main_process=True,
                                        device=torch.device("cpu"))
    fsdp.fully_shard = on_cpu_mesh
    try:
        fsdp2_prepare_model(accelerator, model)
    finally:
        fsdp.fully_shard = real
    root = model._get_fsdp_state()
    root._lazy_init()  # names the groups; raises if a parameter is in two groups
    groups = {pg._module_fqn: [fp._param_fqn for fp in pg.fsdp_params]
              for state in root._state_ctx.all_states for pg in state._fsdp_param_groups}
    plain = [n for n, p in model.named_parameters() if not isinstance(p, DTensor)]
    return groups, plain


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_groups_match_accelerate_on_torch(name, tied, tmp_path, monkeypatch):
    factory = "llama_tied" if tied else "llama"
    path = _config(tmp_path, name)
    graph = ModelGraph(extract(getattr(models, factory)(), factory))
    schedule = load_strategy(str(path), graph).loaded.schedule
    analysis = fsdp2_analysis(schedule, graph)
    assert analysis is not None
    predicted = {g.name: list(g.params) for g in analysis.prediction.groups if g.params}

    real, plain = torch_groups(getattr(models, factory)(), _accelerate_plugin(path, monkeypatch))
    assert predicted == real  # names (torch's `_module_fqn`), parameters and their order
    assert list(analysis.prediction.unsharded) == plain == []
    assert not analysis.prediction.multi  # one group per parameter, as torch's lazy init checked
    tail = "model.embed_tokens, model.norm, lm_head" if tied else "model.norm, lm_head"
    assert tail in real


def test_tied_tail_draws_no_fts404(tmp_path, capsys):
    """The tied Llama: the tail group holds the embedding weight the head shares; no FTS404."""
    from ftsc.cli import main

    path = _config(tmp_path, "cls")
    rc = main(["check", "--model", "tests.models:llama_tied", "--no-cache", "--strategy-config", str(path),
               "--trainable", "model.layers.3.*", "--format", "json"])
    codes = [d["code"] for d in json.loads(capsys.readouterr().out)["diagnostics"]]
    assert "FTS404" not in codes and rc in (0, 1), codes


def test_compile_lists_the_tail_as_one_unit(tmp_path, capsys):
    """`compile` (SPEC 5.2): the grouped call is one unit, named as torch names its group."""
    from ftsc.cli import main

    path = _config(tmp_path, "cls")
    assert main(["compile", "--model", "tests.models:llama_tied", "--no-cache", "--strategy-config", str(path),
                 "--trainable", "model.layers.3.*"]) == 0
    units = json.loads(capsys.readouterr().out)["sharding"]["units"]
    assert {"name": "model.embed_tokens, model.norm, lm_head",
            "params": ["model.norm.weight", "model.embed_tokens.weight"]} in units
    assert [u["name"] for u in units][-1] == ""


def test_runtime_refuses_a_grouped_entry(tmp_path):
    """The Lightning runtime applies one module per entry: it refuses a grouped one at setup."""
    pytest.importorskip("lightning")
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    from ftsc.lightning.strategies import FSDP2Sharding

    graph = ModelGraph(extract(models.llama(), "llama"))
    schedule = load_strategy(str(_config(tmp_path, "cls")), graph).loaded.schedule
    with pytest.raises(MisconfigurationException, match=r"\[model\.norm, lm_head\] in one list-form"):
        FSDP2Sharding(schedule, graph, None, "on").setup(None, None)  # type: ignore[arg-type]


def _torch_plan_groups(model, calls: list[list[str]]) -> dict[str, list[str]]:
    """Each call `fully_shard([modules])` (one module: plain) on the CPU mesh; torch's group names
    and parameters after lazy init of the last call's module (the root)."""
    from torch.distributed import fsdp
    from torch.distributed.device_mesh import init_device_mesh

    ensure_process_group()
    mesh = init_device_mesh("cpu", (2,))
    for call in calls:
        mods = [model.get_submodule(n) for n in call]
        fsdp.fully_shard(mods if len(mods) > 1 else mods[0], mesh=mesh)
    root = model._get_fsdp_state()
    root._lazy_init()
    return {pg._module_fqn: [fp._param_fqn for fp in pg.fsdp_params]
            for state in root._state_ctx.all_states for pg in state._fsdp_param_groups}


@pytest.mark.parametrize("group", [["2", "0.1", "0"], ["0.1", "2"], ["2", "0"], ["0", "0.1"]],
                         ids=lambda g: "+".join(g))
def test_list_call_roots_order_and_name_match_torch(group):
    """A list naming a module inside another listed one (torch keeps the outer one), out of
    `named_modules()` order (torch's name sorts them), as one grouped plan entry."""
    from torch import nn

    from ftsc.shard.fsdp2 import predict2

    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)), nn.ReLU(), nn.Linear(4, 2))

    real = _torch_plan_groups(build(), [group, [""]])
    pred = predict2(ModelGraph(extract(build(), "seq")), [group[0], ""], members={group[0]: group[1:]})
    assert {g.name: list(g.params) for g in pred.groups if g.params} == real
    assert not pred.unsharded and not pred.failed


def _hf_plan_on_torch(factory: str):
    """transformers' own plan applied by its `apply_fully_sharded_data_parallelism` with the real
    `fully_shard` on the CPU mesh; the root's FSDP state (not yet lazily initialised)."""
    from types import SimpleNamespace

    from torch.distributed.device_mesh import init_device_mesh

    model = getattr(models, factory)()
    if not hasattr(model, "_resolve_parallel_plans"):
        pytest.skip("this transformers has no FSDP plans (they arrived in the 5.x line; read from 5.24)")
    from transformers.distributed.fsdp import apply_fully_sharded_data_parallelism

    plan = models.hf_fsdp_plan(model)
    ensure_process_group()
    mesh = init_device_mesh("cpu", (2,))
    apply_fully_sharded_data_parallelism(model, SimpleNamespace(get_mesh=lambda *_: mesh), plan, {})
    return model._get_fsdp_state()


def _hf_prediction(factory: str):
    graph = ModelGraph(extract(getattr(models, factory)(), factory))
    analysis = fsdp2_analysis(load_strategy("hf", graph).loaded.schedule, graph)
    assert analysis is not None
    return analysis.prediction


def test_hf_plan_groups_match_transformers_on_torch():
    """Untied Llama: transformers shards its final norm + head pair in one list-form call; the
    groups and torch's names for them are ftsc's (`--strategy-config hf`)."""
    root = _hf_plan_on_torch("llama")
    root._lazy_init()
    real = {pg._module_fqn: [fp._param_fqn for fp in pg.fsdp_params]
            for state in root._state_ctx.all_states for pg in state._fsdp_param_groups}
    pred = _hf_prediction("llama")
    assert {g.name: list(g.params) for g in pred.groups if g.params} == real
    assert real["model.norm, lm_head"] == ["model.norm.weight", "lm_head.weight"]


def test_hf_plan_on_a_tied_llama_splits_the_tie():
    """Tied Llama: transformers folds the head's rule into the embedding and groups
    `[model.norm, model.embed_tokens]`, but the head module, left to the root, reaches the same
    weight: torch 2.13 raises at the first forward (lazy init). ftsc predicts exactly that tie
    (FTS404, raising), between the pair's group and the root."""
    root = _hf_plan_on_torch("llama_tied")
    with pytest.raises(ValueError, match="'model.embed_tokens.weight' is shared with a parameter already managed"):
        root._lazy_init()
    pred = _hf_prediction("llama_tied")
    assert pred.multi == {"model.embed_tokens.weight": ("model.embed_tokens, model.norm", "")}
    assert pred.multi_raises == {"model.embed_tokens.weight": True}


def test_convert_with_an_fsdp2_strategy_refuses_the_grouped_tail(tmp_path, capsys):
    """`convert --strategy-config` would write the tail as one `shard` per module, three groups
    where accelerate builds one: refused (FTS501), nothing written."""
    from ftsc.cli import main

    out = tmp_path / "s.ftsc"
    assert main(["convert", "--model", "tests.models:llama_tied", "--no-cache", "--strategy-config",
                 str(_config(tmp_path, "cls")), "--trainable", "model.layers.3.*", "--to", "ftsc", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "FTS501" in err and "[model.norm, model.embed_tokens, lm_head]" in err and not out.exists()
