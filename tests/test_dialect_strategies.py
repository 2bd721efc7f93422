"""--strategy-config against the source projects' own code: accelerate 1.16 (16cb6eb) builds its
FSDP plugin from the same accelerate config YAML through its launcher (`_validate_launch_command`,
`prepare_multi_gpu_env`) and from a transformers `fsdp_config` JSON through
`TrainingArguments.fsdp_plugin_args`; its auto-wrap policy applied to the meta model gives the
wrapped classes / modules we must predict. transformers' `_resolve_parallel_plans` gives the hf plan.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

from ftsc.frontend.strategy import load_strategy
from ftsc.model.build import extract
from ftsc.model.graph import ModelGraph
from tests import models

ACCELERATE = {
    "fsdp1_cls": "fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n"
                 "  fsdp_transformer_layer_cls_to_wrap: LlamaDecoderLayer\n"
                 "  fsdp_use_orig_params: false\n",
    "fsdp1_default_cls": "fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n  fsdp_sharding_strategy: SHARD_GRAD_OP\n",
    "fsdp1_size": "fsdp_auto_wrap_policy: SIZE_BASED_WRAP\n  fsdp_min_num_params: 1000\n",
    "fsdp1_unprefixed": "auto_wrap_policy: transformer_based_wrap\n"
                        "  transformer_layer_cls_to_wrap: LlamaDecoderLayer,LlamaRMSNorm\n",
    "fsdp2_cls": "fsdp_version: 2\n  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n"
                 "  fsdp_reshard_after_forward: false\n",
    "fsdp2_size": "fsdp_version: 2\n  fsdp_auto_wrap_policy: SIZE_BASED_WRAP\n  fsdp_min_num_params: 2000\n",
    "fsdp2_nowrap": "fsdp_version: 2\n  fsdp_offload_params: true\n",
}
TRANSFORMERS = {
    "v2_default": {"fsdp_version": 2},
    "v2_cls_str": {"version": 2, "transformer_layer_cls_to_wrap": "LlamaDecoderLayer", "reshard_after_forward": False},
    "v2_size": {"auto_wrap_policy": "SIZE_BASED_WRAP", "min_num_params": 3000},
    "v1_cls": {"fsdp_version": 1, "fsdp_transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"],
               "use_orig_params": False},
    "v1_size_zero": {"version": 1, "auto_wrap_policy": "SIZE_BASED_WRAP"},
}
MODEL = ["--model", "tests.models:llama", "--no-cache"]
_ENV_OFF = {"FSDP_SYNC_MODULE_STATES": "false", "FSDP_CPU_RAM_EFFICIENT_LOADING": "false"}  # CPU-only runner


def _graph(module) -> ModelGraph:
    return ModelGraph(extract(module, "tests.models:llama"))


def _accelerate_plugin(path: Path, monkeypatch):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(["--config_file", str(path), "x.py"]))
    env = prepare_multi_gpu_env(args)
    for k in [k for k in os.environ if k.startswith("FSDP_")]:
        monkeypatch.delenv(k)
    for k, v in {**{k: v for k, v in env.items() if k.startswith("FSDP_")}, **_ENV_OFF}.items():
        monkeypatch.setenv(k, v)
    return FullyShardedDataParallelPlugin()


def _truth(plugin, model) -> dict:
    """What accelerate does with `model`: FSDP1 policy (class names / threshold), or, for FSDP2,
    every `fully_shard` call its own `fsdp2_prepare_model` makes (recorded, not run), with the
    effective `reshard_after_forward` (the root's None is False for torch) and offloading."""
    names = {id(m): n for n, m in model.named_modules()}
    if plugin.fsdp_version == 1:
        plugin.set_auto_wrap_policy(model)
        policy = plugin.auto_wrap_policy
        kw = getattr(policy, "keywords", {}) if policy is not None else {}
        return {"classes": sorted(f"{c.__module__}.{c.__qualname__}" for c in kw.get("transformer_layer_cls", ())),
                "min_num_params": kw.get("min_num_params"), "use_orig_params": plugin.use_orig_params,
                "sharding_strategy": plugin.sharding_strategy.name}
    import types

    from accelerate.utils.fsdp_utils import fsdp2_prepare_model
    from torch.distributed import fsdp

    calls: list[tuple[tuple[str, ...], bool, bool]] = []
    marked: list[tuple[object, type]] = []

    def fully_shard(module, **kwargs):
        group = module if isinstance(module, list) else [module]
        reshard = kwargs.get("reshard_after_forward")
        calls.append((tuple(names[id(m)] for m in group), bool(reshard) if reshard is not None else False,
                      type(kwargs.get("offload_policy")).__name__ == "CPUOffloadPolicy"))
        for m in group:  # an FSDPModule from now on, as after the real call
            marked.append((m, m.__class__))
            m.__class__ = type(f"FSDP{m.__class__.__name__}", (fsdp.FSDPModule, m.__class__), {})
        return module

    accelerator = types.SimpleNamespace(state=types.SimpleNamespace(fsdp_plugin=plugin), torch_device_mesh=None,
                                        mixed_precision="no", parallelism_config=None, is_main_process=True,
                                        device=torch.device("meta"))
    real, fsdp.fully_shard = fsdp.fully_shard, fully_shard
    try:
        fsdp2_prepare_model(accelerator, model)
    finally:
        fsdp.fully_shard = real
        for m, cls in marked:
            m.__class__ = cls
    return {"calls": calls}


def _ours(strategy) -> dict:
    """Our plan in the same shape: one call per entry, a grouped entry (the tail) one list call."""
    sched = strategy.loaded.schedule
    if sched.fsdp is not None:
        st = {s.name: s.value.py() for s in sched.fsdp.settings}
        return {"classes": sorted(st.get("auto_wrap_policy") or []), "min_num_params": st.get("min_num_params"),
                "use_orig_params": st["use_orig_params"],
                "sharding_strategy": st.get("sharding_strategy", "FULL_SHARD")}
    default = {s.name: s.value.py() for s in sched.fsdp2.settings}.get("fsdp_default_kwargs", {})
    calls = []
    for e in sched.fsdp2.plan:
        kwargs = {**default, **{s.name: s.value.py() for s in e.kwargs or ()}}
        calls.append(((e.selector.pattern, *(m.pattern for m in e.members)), kwargs.get("reshard_after_forward", True),
                      "offload_policy" in kwargs))
    return {"calls": calls}


@pytest.mark.parametrize("name", sorted(ACCELERATE))
def test_accelerate_config_matches_accelerate(name, tmp_path, monkeypatch):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nnum_processes: 4\n"
                    f"fsdp_config:\n  {ACCELERATE[name]}")
    model = models.llama()
    got = load_strategy(str(path), _graph(model))
    assert got.dialect == "accelerate" and got.world_size == 4
    assert not got.loaded.diagnostics
    assert _ours(got) == (_truth(_accelerate_plugin(path, monkeypatch), model))


@pytest.mark.parametrize("name", sorted(TRANSFORMERS))
def test_fsdp_config_json_matches_trainer(name, tmp_path, monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin
    from transformers import TrainingArguments

    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(TRANSFORMERS[name]))
    for k in [k for k in os.environ if k.startswith("FSDP_")]:
        monkeypatch.delenv(k)
    targs = TrainingArguments(output_dir=str(tmp_path / "out"), fsdp=True, fsdp_config=str(path), report_to=[])
    for k, v in _ENV_OFF.items():
        monkeypatch.setenv(k, v)
    kwargs = {**targs.fsdp_plugin_args, "cpu_ram_efficient_loading": False, "sync_module_states": False}
    if kwargs["fsdp_version"] == 2:
        kwargs.pop("sync_module_states")
    model = models.llama()
    got = load_strategy(str(path), _graph(model))
    assert got.dialect == "transformers" and not got.loaded.diagnostics
    assert _ours(got) == (_truth(FullyShardedDataParallelPlugin(**kwargs), model))


@pytest.mark.parametrize("version, value, shown", [
    ("2", "GPT2Block", "GPT2Block"),
    ("1", "[LlamaDecoderLayer]", "['LlamaDecoderLayer']"),  # the launcher writes a YAML list as its repr
])
def test_unknown_class_is_fts303_like_accelerate(tmp_path, monkeypatch, capsys, version, value, shown):
    from ftsc.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nnum_processes: 2\nfsdp_config:\n"
                    f"  fsdp_version: {version}\n  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n"
                    f"  fsdp_transformer_layer_cls_to_wrap: {value}\n")
    model = models.llama()
    with pytest.raises(ValueError, match=f"Could not find the transformer layer class {re.escape(shown)}"):
        _truth(_accelerate_plugin(path, monkeypatch), model)
    assert main(["check", *MODEL, "--format", "json", "--strategy-config", str(path), "--trainable", "lm_head.*"]) == 1
    found = [d for d in json.loads(capsys.readouterr().out)["diagnostics"] if d["code"] == "FTS303"]
    assert len(found) == 1 and shown in found[0]["message"]


@pytest.mark.parametrize("factory", ["llama", "llama_tied", "gpt2", "t5"])
def test_hf_plan_matches_transformers(factory):
    """The model's own plan resolved by transformers (`_resolve_parallel_plans`, dp_size > 1) against
    ours: untied Llama, tied Llama (the head's rule folds into the embedding), GPT-2 and T5 (the
    config's default rules name nothing there: warned, dropped)."""

    model = getattr(models, factory)()
    if not hasattr(model, "_resolve_parallel_plans"):
        pytest.skip("this transformers has no FSDP plans (they arrived in the 5.x line; read from 5.24)")
    from transformers.distributed.fsdp import is_norm_and_head_pair

    plan = models.hf_fsdp_plan(model)
    free = [m for m, s in plan.items() if s == "free_full_weight"]
    keep = [m for m, s in plan.items() if s == "keep_full_weight"]
    # `apply_fully_sharded_data_parallelism`: a final norm + head pair is one list-form call
    grouped = is_norm_and_head_pair([(m, model.get_submodule(m)) for m in keep], model)
    want = [((m,), True) for m in free] + ([(tuple(keep), False)] if grouped else [((m,), False) for m in keep])
    got = load_strategy("hf", ModelGraph(extract(model, factory)))
    entries = got.loaded.schedule.fsdp2.plan
    assert [((e.selector.pattern, *(m.pattern for m in e.members)), e.kwargs[0].value.py()) for e in entries] == [
        *want, (("",), False)]
    assert grouped is (factory in ("llama", "llama_tied"))  # both Llamas exercise the pair


# ---- the command line -------------------------------------------------------------------------

FSDP1 = ("compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nnum_processes: 2\nfsdp_config:\n"
         "  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n  fsdp_use_orig_params: false\n")
FSDP2 = ("compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nnum_processes: 8\nfsdp_config:\n"
         "  fsdp_version: 2\n  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n")


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_check_partial_layer_under_accelerate_fsdp1(tmp_path, capsys):
    """A layer thawed in part with use_orig_params false: accelerate's FSDP1 FlatParameter refuses it."""
    from ftsc.cli import main

    cfg = _file(tmp_path, "fsdp1.yaml", FSDP1)
    assert main(["check", *MODEL, "--format", "json", "--strategy-config", cfg,
                 "--trainable", "model.layers.3.mlp.*"]) == 1
    codes = {d["code"] for d in json.loads(capsys.readouterr().out)["diagnostics"]}
    assert "FTS301" in codes
    assert main(["check", *MODEL, "--format", "json", "--strategy-config", cfg, "--trainable", "model.layers.3.*",
                 "--trainable", "lm_head.weight", "--trainable", "model.norm.weight",
                 "--trainable", "model.embed_tokens.weight", "--select", "FTS301"]) == 0


def test_compile_with_trainable_and_fsdp2(tmp_path, capsys):
    from ftsc.cli import main

    cfg = _file(tmp_path, "fsdp2.yaml", FSDP2)
    assert main(["compile", *MODEL, "--strategy-config", cfg, "--trainable", "model.layers.3.*"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["sharding"]["kind"] == "fsdp2"
    assert [u["name"] for u in doc["sharding"]["units"]][:4] == [f"model.layers.{i}" for i in range(4)]
    thawed = [p for ph in doc["phases"] for p in ph["params"]]
    assert thawed and all(p.startswith("model.layers.3.") for p in thawed)


def test_explain_reads_num_processes(tmp_path, capsys):
    from ftsc.cli import main

    cfg = _file(tmp_path, "fsdp2.yaml", FSDP2)
    assert main(["explain", *MODEL, "--format", "json", "--strategy-config", cfg, "--trainable", "lm_head.*"]) == 0
    assert json.loads(capsys.readouterr().out)["world_size"] == 8


def test_schedule_file_with_strategy_config(tmp_path, capsys):
    from ftsc.cli import main

    cfg = _file(tmp_path, "fsdp.json", json.dumps({"version": 1, "use_orig_params": False}))
    sched = _file(tmp_path, "s.ftsc",
                  "phase 0 {\n  thaw lm_head.weight\n}\nphase 1 {\n  thaw /model\\.layers\\.3\\.mlp\\..*/\n}\n")
    assert main(["check", *MODEL, "--format", "json", "--strategy-config", cfg, sched]) == 1
    assert "FTS301" in {d["code"] for d in json.loads(capsys.readouterr().out)["diagnostics"]}


def test_hf_plan_from_the_command_line(capsys):
    from ftsc.cli import main

    assert main(["compile", *MODEL, "--strategy-config", "hf", "--trainable", "model.layers.3.*"]) == 0
    units = [u["name"] for u in json.loads(capsys.readouterr().out)["sharding"]["units"]]
    assert units[:5] == [*(f"model.layers.{i}" for i in range(4)), "model.embed_tokens"]


@pytest.mark.parametrize("argv, message", [
    (["--trainable", "x", "FILE"], "without a schedule FILE"),
    (["--lightning-config", "LIGHTNING", "--strategy-config", "CFG"], "not both"),
    (["--strategy-config", "SCHED"], "not an accelerate config"),
])
def test_usage_errors(tmp_path, capsys, argv, message):
    from ftsc.cli import main

    sched = _file(tmp_path, "s.ftsc", "phase 0 {\n  thaw lm_head.weight\n}\n")
    cfg = _file(tmp_path, "fsdp.yaml", FSDP1)
    other = _file(tmp_path, "other.yaml", "0:\n  params: [lm_head.weight]\n")
    lightning = _file(tmp_path, "cli.yaml", "trainer:\n  max_epochs: 1\n")
    argv = [{"FILE": sched, "CFG": cfg, "SCHED": other, "LIGHTNING": lightning}.get(a, a) for a in argv]
    if "FILE" not in argv and sched not in argv and "--trainable" not in argv:
        argv = [*argv, sched]
    assert main(["check", *MODEL, *argv]) == 2
    assert message in capsys.readouterr().err


def test_float_threshold_refused_like_the_plugin(tmp_path, monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin
    from transformers import TrainingArguments

    path = _file(tmp_path, "f.json", json.dumps({"version": 1, "auto_wrap_policy": "SIZE_BASED_WRAP",
                                                  "min_num_params": 1e6}))
    targs = TrainingArguments(output_dir=str(tmp_path / "out"), fsdp=True, fsdp_config=path, report_to=[])
    for k, v in _ENV_OFF.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match="must be an integer"):
        FullyShardedDataParallelPlugin(**{**targs.fsdp_plugin_args, "cpu_ram_efficient_loading": False,
                                          "sync_module_states": False})
    assert [d.code for d in load_strategy(path, None).loaded.diagnostics] == ["FTS102"]


def test_accelerate_tail_is_one_grouped_call(tmp_path, monkeypatch):
    """accelerate shards `[final norm, head]` in one call; ftsc plans it as one grouped entry
    and predicts one `fully_shard` group holding both modules' parameters."""
    from ftsc.shard import fsdp2_analysis

    path = _file(tmp_path, "a.yaml", FSDP2)
    calls = _truth(_accelerate_plugin(Path(path), monkeypatch), models.llama())["calls"]
    assert (("model.norm", "lm_head"), False, False) in calls
    got = load_strategy(path, _graph(models.llama()))
    assert (("model.norm", "lm_head"), False, False) in _ours(got)["calls"]
    analysis = fsdp2_analysis(got.loaded.schedule, _graph(models.llama()))
    tail = [g for g in analysis.prediction.groups if g.modules == ("model.norm", "lm_head")]
    assert [g.params for g in tail] == [("model.norm.weight", "lm_head.weight")]


def test_accelerate_multi_gpu_is_ddp_with_its_world_size(tmp_path, capsys):
    from ftsc.cli import main

    cfg = _file(tmp_path, "ddp.yaml",
                "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_processes: 4\n")
    got = load_strategy(cfg, None)
    assert got.world_size == 4 and got.loaded.schedule.fsdp is None and got.loaded.schedule.fsdp2 is None
    assert main(["explain", *MODEL, "--strategy-config", cfg, "--trainable", "lm_head.*"]) == 0
    assert capsys.readouterr().out.startswith("--trainable: DDP, world size 4,")


def test_convert_writes_the_strategy_as_the_fsdp_block(tmp_path, capsys):
    """`convert --to ftsc` of a selection under an accelerate config: the `.ftsc` it writes compiles
    to the same phases and FSDP units as the selection under the config; FTS YAML, which holds no
    strategy, is refused rather than written without it."""
    from ftsc.cli import main

    cfg = _file(tmp_path, "fsdp1.yaml", FSDP1)
    args = ["--strategy-config", cfg, "--trainable", "model.layers.3.*", "--trainable", "lm_head.weight"]
    out = tmp_path / "s.ftsc"
    assert main(["convert", *MODEL, *args, "--to", "ftsc", "-o", str(out)]) == 0
    assert "fsdp {" in out.read_text()
    status = main(["compile", *MODEL, *args])
    want = json.loads(capsys.readouterr().out)
    assert main(["compile", *MODEL, str(out)]) == status == 1  # layer 3 and the head: FTS301 either way
    got = json.loads(capsys.readouterr().out)
    assert got["sharding"] == want["sharding"] and got["phases"] == want["phases"]
    # The same FSDP finding; as a schedule of its own, the `.ftsc` also draws the rules of a run by the
    # scheduler (FTS204, FTS305), which an accelerate launch does not have.
    assert [d["data"] for d in got["diagnostics"] if d["code"] == "FTS301"] == [
        d["data"] for d in want["diagnostics"] if d["code"] == "FTS301"]
    assert main(["convert", *MODEL, *args, "--to", "fts-yaml"]) == 2
    assert "holds no strategy" in capsys.readouterr().err
