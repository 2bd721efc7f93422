"""`--model` naming a transformers `config.json` or checkpoint folder (`ftsc.model.hf_config`).

Oracle: transformers' own `from_pretrained` on a saved checkpoint (real weights), with its
default dtype handling: ftsc, reading only `config.json`, must see the same parameter names,
shapes and dtypes, whether the config writes `dtype` (transformers 5) or `torch_dtype` (4.x).
Then explain's bytes against the loaded model's own tensors, the refusals (code shipped with a
checkpoint, no architecture, unknown keys and dtypes), `[tool.ftsc] model` and the cache.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("transformers")

import torch

from ftsc.model.build import ModelLoadError, manifest_for
from tests.test_cache import assert_miss, ftsc

pytestmark = [pytest.mark.torch]


def _llama(dtype: torch.dtype, tie: bool) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=96, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tie)
    return LlamaForCausalLM(config).to(dtype)


def _bert(dtype: torch.dtype, tie: bool) -> Any:
    from transformers import BertConfig, BertForSequenceClassification

    del tie
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, num_labels=3)
    return BertForSequenceClassification(config).to(dtype)


CHECKPOINTS = {
    "llama-bf16": (_llama, torch.bfloat16, False, "dtype"),
    "llama-tied-fp16-torch_dtype": (_llama, torch.float16, True, "torch_dtype"),
    "bert-fp32": (_bert, torch.float32, False, "dtype"),
    "bert-bf16-torch_dtype": (_bert, torch.bfloat16, False, "torch_dtype"),
}


def save_checkpoint(folder: Path, case: str) -> Path:
    """A real checkpoint (weights and config) as `save_pretrained` writes it; for the `torch_dtype`
    cases the config's dtype key is renamed as transformers 4.x wrote it."""
    build, dtype, tie, key = CHECKPOINTS[case]
    torch.manual_seed(0)
    build(dtype, tie).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config[key] = config.pop("dtype", None) or config.pop("torch_dtype")
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def loaded(folder: Path) -> Any:
    """What transformers' own loading gives (the oracle): the class of `architectures`, default dtype."""
    import transformers

    config = json.loads((folder / "config.json").read_text())
    return getattr(transformers, config["architectures"][0]).from_pretrained(folder)


def _structure(params: Any) -> list[tuple[str, tuple[int, ...], str]]:
    return [(n, tuple(s), d.removeprefix("torch.")) for n, s, d in params]


@pytest.mark.parametrize("case", list(CHECKPOINTS))
def test_config_target_equals_from_pretrained(tmp_path: Path, case: str) -> None:
    folder = save_checkpoint(tmp_path / case, case)
    real = loaded(folder)
    want = _structure((n, p.shape, str(p.dtype)) for n, p in real.named_parameters())
    assert {d for _, _, d in want} == {str(CHECKPOINTS[case][1]).removeprefix("torch.")}
    for target in (str(folder), str(folder / "config.json")):
        m = manifest_for(target)
        assert _structure((p.name, p.shape, p.dtype) for p in m.parameters) == want
        assert [(b.name, tuple(b.shape)) for b in m.buffers] == [(n, tuple(b.shape)) for n, b in real.named_buffers()]


def test_dtype_kwarg_and_config_overrides(tmp_path: Path) -> None:
    folder = save_checkpoint(tmp_path / "ckpt", "llama-bf16")
    m = manifest_for(str(folder), {"dtype": "float32", "num_hidden_layers": 1})
    assert {p.dtype for p in m.parameters} == {"float32"}
    assert not any(p.name.startswith("model.layers.1.") for p in m.parameters)
    assert any(p.name.startswith("model.layers.0.") for p in m.parameters)


def test_explain_counts_the_checkpoint_dtype(tmp_path: Path) -> None:
    """Single device, everything trains, AdamW: explain's params / grads / optimizer bytes equal the
    loaded model's own tensor bytes (x1, x1, x2); overriding the dtype to float32 doubles them."""
    folder = save_checkpoint(tmp_path / "ckpt", "llama-bf16")
    real = loaded(folder)
    nbytes = sum(p.numel() * p.element_size() for p in real.parameters())
    schedule = tmp_path / "s.ftsc"
    schedule.write_text("phase 0 {\n    thaw /.*/\n}\n")
    runs = {}
    for dtype in ("config", "float32"):
        extra = ("--model-kwargs", '{"dtype": "float32"}') if dtype == "float32" else ()
        proc = ftsc(tmp_path, "explain", str(schedule), "--model", str(folder), "--no-cache", "--format", "json",
                    *extra)
        assert proc.returncode == 0, proc.stderr
        runs[dtype] = json.loads(proc.stdout)["phases"][0]["memory"]
    assert runs["config"]["params"] == runs["config"]["grads"] == nbytes
    assert runs["config"]["optimizer"] == 2 * nbytes
    assert runs["float32"]["params"] == 2 * nbytes


def _config(folder: Path, **changes: Any) -> Path:
    folder.mkdir(parents=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32, "hidden_size": 8,
              "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
              "dtype": "bfloat16"}
    config.update(changes)
    (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return folder


REFUSALS = {
    "code shipped with the checkpoint": ({"auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}}, {},
                                         "file.py:build"),
    "no architectures": ({"architectures": None}, {}, '{"architecture": "LlamaForCausalLM"}'),
    "unknown class": ({"architectures": ["NoSuchForCausalLM"]}, {}, "has no model class `NoSuchForCausalLM`"),
    "unknown kwarg": ({}, {"num_layerz": 2}, "`num_layerz`: the LlamaConfig has no such attribute"),
    "bad dtype kwarg": ({}, {"dtype": "float33"}, "`float33` is not a torch dtype"),
    "bad dtype in config": ({"dtype": "int33"}, {}, "transformers cannot read it: AttributeError: module 'torch' has no attribute 'int33'"),
    "not a config": ({"model_type": None, "format": "ftsc-manifest"}, {}, "transformers cannot read it"),
    "implausible layer count": ({"num_hidden_layers": 10**8}, {}, "`num_hidden_layers` = 100000000 is implausible"),
    "implausible override": ({}, {"num_hidden_layers": 20_000}, "`num_hidden_layers` = 20000 is implausible"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_name_the_way_out(tmp_path: Path, case: str) -> None:
    changes, kwargs, needle = REFUSALS[case]
    folder = _config(tmp_path / "ckpt", **changes)
    with pytest.raises(ModelLoadError) as err:
        manifest_for(str(folder), kwargs)
    assert needle in str(err.value)
    assert str(err.value).startswith(f"--model `{folder}`: ")


def test_architecture_kwarg_builds_a_config_without_architectures(tmp_path: Path) -> None:
    folder = _config(tmp_path / "ckpt", architectures=None)
    m = manifest_for(str(folder), {"architecture": "LlamaForCausalLM"})
    assert m.parameters[-1].name == "lm_head.weight" and m.parameters[-1].dtype == "bfloat16"


def test_folder_without_config_keeps_the_target_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = ftsc(tmp_path, "manifest", "--model", "empty")
    assert proc.returncode == 2
    assert "a transformers `config.json` (or a folder holding one)" in proc.stderr


def test_project_setting_and_cache(tmp_path: Path) -> None:
    """`[tool.ftsc] model = "ckpt"` is relative to the pyproject; the second run is a cache hit
    (no torch), and an edited config.json is a miss."""
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "pyproject.toml").write_text('[tool.ftsc]\nmodel = "ckpt"\n')
    _config(root / "ckpt")
    (root / "s.ftsc").write_text("phase 0 {\n    thaw lm_head.weight\n}\n")
    blocker = tmp_path / "block" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    first = ftsc(root, "explain", "s.ftsc", "--format", "json")
    assert first.returncode == 0, first.stderr
    assert ftsc(root, "explain", "s.ftsc", "--format", "json", blocked=True).stdout == first.stdout
    config = json.loads((root / "ckpt" / "config.json").read_text())
    (root / "ckpt" / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 2}))
    assert_miss(ftsc(root, "explain", "s.ftsc", "--format", "json", blocked=True))
    second = ftsc(root, "explain", "s.ftsc", "--format", "json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["units"] != json.loads(first.stdout)["units"]


def _hub_cache(root: Path, repo: str, **changes: Any) -> Path:
    """A Hugging Face cache holding only `repo`'s config.json, laid out as `huggingface_hub` keeps it."""
    folder = root / f"models--{repo.replace('/', '--')}"
    snapshot = _config(folder / "snapshots" / "0123abcd", **changes)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0123abcd")
    return snapshot


def _without_target(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return {k: v for k, v in json.loads(proc.stdout).items() if k != "target"}


def test_model_id_from_the_local_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--model hf:ORG/NAME` reads the config from the local cache (never the network); the same
    structure as the snapshot folder; a model not in the cache is refused with the way to get it."""
    snapshot = _hub_cache(tmp_path / "hub", "acme/tiny-llama")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    by_id = ftsc(tmp_path, "manifest", "--model", "hf:acme/tiny-llama", "--no-cache")
    assert by_id.returncode == 0, by_id.stderr
    by_folder = ftsc(tmp_path, "manifest", "--model", str(snapshot), "--no-cache")
    assert _without_target(by_id) == _without_target(by_folder)
    assert {p.get("dtype") for p in json.loads(by_id.stdout)["parameters"]} == {"bfloat16"}
    missing = ftsc(tmp_path, "manifest", "--model", "hf:acme/missing", "--no-cache")
    assert missing.returncode == 2
    assert "`acme/missing` is not in the local Hugging Face cache, and ftsc never downloads" in missing.stderr


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-10, 10**12) | st.floats(allow_nan=False)
                           | st.text(max_size=12), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
CONFIG_KEYS = st.sampled_from(["architectures", "model_type", "vocab_size", "hidden_size", "num_hidden_layers",
                               "num_attention_heads", "num_key_value_heads", "intermediate_size", "dtype",
                               "torch_dtype", "auto_map", "tie_word_embeddings", "text_config", "head_dim"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(CONFIG_KEYS, JSON_VALUES, max_size=4))
def test_fuzzed_configs_build_or_are_refused(tmp_path: Path, changes: dict[str, Any]) -> None:
    """Whatever a config.json holds, a config target builds or ends in one `ModelLoadError`."""
    folder = _config(Path(tempfile.mkdtemp(dir=tmp_path)) / "ckpt", **changes)
    try:
        manifest_for(str(folder))
    except ModelLoadError as err:
        assert str(err).startswith(f"--model `{folder}`: ")
