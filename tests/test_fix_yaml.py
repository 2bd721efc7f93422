"""`--fix` in LightningCLI YAML (issue 13, item 4): edits at the scheduler callback's parsed nodes,
comments and layout kept, the result read back before anything is written, and a refusal that
prints the edit to make when it would not read back to the intended settings."""

from __future__ import annotations

import contextlib
import difflib
import io
import re
from pathlib import Path

import pytest
import yaml

from ftsc.cli import main
from ftsc.fix.yaml_edit import Refused, add_yaml_overrides
from ftsc.model.graph import ModelGraph

from .conftest import REPO

HEAD = "trainer:\n  strategy:\n    class_path: lightning.pytorch.strategies.FSDPStrategy\n" \
       "    init_args: {use_orig_params: false}\n  callbacks:\n"

# The reproducers of issue 13: `init_args:  # comment`, a comment between class_path and
# init_args, and FTSEarlyStopping listed before the scheduler (with and without init_args).
REPRODUCERS = {
    "comment_after_init_args": HEAD + (
        "  - class_path: finetuning_scheduler.FinetuningScheduler\n"
        "    init_args:  # scheduler options\n"
        "      ft_schedule: sched.yaml\n"),
    "comment_between_class_path_and_init_args": HEAD + (
        "  - class_path: finetuning_scheduler.FinetuningScheduler\n"
        "    # options follow\n"
        "    init_args:\n"
        "      ft_schedule: sched.yaml\n"),
    "early_stopping_listed_first": HEAD + (
        "  - class_path: finetuning_scheduler.FTSEarlyStopping\n"
        "    init_args:\n"
        "      monitor: val_loss\n"
        "  - class_path: finetuning_scheduler.FinetuningScheduler\n"
        "    init_args:\n"
        "      ft_schedule: sched.yaml\n"),
    "early_stopping_first_scheduler_without_init_args": HEAD + (
        "  - class_path: finetuning_scheduler.FTSEarlyStopping  # stops early\n"
        "    init_args: {monitor: val_loss}\n"
        "  - class_path: finetuning_scheduler.FinetuningScheduler\n"
        "  - class_path: lightning.pytorch.callbacks.LearningRateMonitor\n"),
}


def _scheduler_args(text: str) -> dict:
    (cb,) = [c for c in yaml.safe_load(text)["trainer"]["callbacks"]
             if c["class_path"].endswith("FinetuningScheduler")]
    return cb.get("init_args") or {}


def _added_lines(old: str, new: str) -> list[str]:
    """What `new` inserted into `old`: nothing of `old` may be changed, moved or removed."""
    ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    assert all(op in ("equal", "insert") for op, *_ in ops), "an original character changed"
    return [new[j1:j2] for op, _, _, j1, j2 in ops if op == "insert"]


@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_reproducers_edit_the_scheduler_callback_once(name: str) -> None:
    old = REPRODUCERS[name]
    new = add_yaml_overrides(old, ["model.head", "model.body"])
    assert isinstance(new, str), new
    assert new.count("init_args:") == old.count("init_args:") + ("without_init_args" in name)
    assert _scheduler_args(new)["strategy_adapter_cfg"] == {"awp_overrides": ["model.head", "model.body"]}
    assert _scheduler_args(new).get("ft_schedule") == _scheduler_args(old).get("ft_schedule")
    es = [c for c in yaml.safe_load(new)["trainer"]["callbacks"] if "EarlyStopping" in c["class_path"]]
    assert all(c["init_args"] == {"monitor": "val_loss"} for c in es)
    added = _added_lines(old, new)
    assert all("strategy_adapter_cfg" in a or "awp_overrides" in a or "init_args" in a for a in added)


@pytest.mark.parametrize(("old", "expect"), [
    (HEAD + "  - class_path: finetuning_scheduler.FinetuningScheduler\n    init_args:\n"
     "      strategy_adapter_cfg:\n        awp_overrides:\n        - a   # first\n        - 'b'\n"
     "      max_depth: 1\n", ["a", "b", "x"]),
    (HEAD + "  - class_path: finetuning_scheduler.FinetuningScheduler\n    init_args:\n"
     "      strategy_adapter_cfg: {awp_overrides: []}\n", ["x"]),
    (HEAD + "  - class_path: finetuning_scheduler.FinetuningScheduler\n    init_args: {max_depth: 2}\n", ["x"]),
    (HEAD + "  - class_path: finetuning_scheduler.FinetuningScheduler\n    init_args:   # none yet\n"
     "  - class_path: x.Y\n", ["x"]),
    (HEAD + "  - class_path: ftsc.lightning.FtscCallback\n    init_args:\n"
     "      strategy_adapter_cfg:\n        fsdp_default_kwargs: {}\n", ["x"]),
])
def test_layouts_extend_what_is_there(old: str, expect: list[str]) -> None:
    new = add_yaml_overrides(old, ["x"])
    assert isinstance(new, str), new
    (cb,) = [c for c in yaml.safe_load(new)["trainer"]["callbacks"] if c["class_path"] != "x.Y"]
    assert cb["init_args"]["strategy_adapter_cfg"]["awp_overrides"] == expect
    _added_lines(old, new)


@pytest.mark.parametrize("old", [
    HEAD + "  - {class_path: finetuning_scheduler.FinetuningScheduler}\n",  # flow-style callback
    HEAD + "  - class_path: finetuning_scheduler.FinetuningScheduler\n    init_args: {max_depth: 2,  # c\n      }\n",
    HEAD + "  - class_path: finetuning_scheduler.FinetuningScheduler\n    init_args:\n"
           "      strategy_adapter_cfg:\n        awp_overrides: [a,  # c\n          ]\n",
    HEAD + "  - class_path: finetuning_scheduler.FinetuningScheduler\n  - class_path: finetuning_scheduler."
           "FinetuningScheduler\n",  # two schedulers: which one?
    HEAD + "  - class_path: finetuning_scheduler.FinetuningScheduler\n    init_args:\n"
           "      strategy_adapter_cfg:\n        awp_overrides: model.head\n",  # not a list
    "shared: &adapter\n  awp_overrides: [a]\n" + HEAD + "  - class_path: finetuning_scheduler.FinetuningScheduler\n"
    "    init_args:\n      strategy_adapter_cfg: *adapter\n",  # the list lives in an anchor used elsewhere too
])
def test_refuses_what_would_not_read_back(old: str) -> None:
    refused = add_yaml_overrides(old, ["x"])
    assert isinstance(refused, Refused) and 'awp_overrides: ["x"]' in refused.edit


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _project(tmp_path: Path, config: str) -> tuple[Path, Path]:
    manifest = tmp_path / "m.json"
    manifest.write_text(ModelGraph.from_names(["model.head.w", "model.body.w"]).manifest.dumps())
    (tmp_path / "sched.yaml").write_text("0:\n  params: [model.head.w]\n1:\n  params: [model.body.w]\n")
    path = tmp_path / "cfg.yaml"
    path.write_bytes(config.encode())
    return path, manifest


@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_cli_fix_on_the_reproducers_checks_clean(tmp_path: Path, name: str) -> None:
    config = REPRODUCERS[name]
    if "ft_schedule" not in config:
        config = config.replace("  - class_path: finetuning_scheduler.FinetuningScheduler\n",
                                "  - class_path: finetuning_scheduler.FinetuningScheduler\n"
                                "    init_args: {ft_schedule: sched.yaml}\n")
    path, manifest = _project(tmp_path, config)
    rc, out, _ = _run(["check", str(path), "--manifest", str(manifest), "--format", "json"])
    assert rc == 1 and "FTS301" in out
    rc, _, err = _run(["check", str(path), "--manifest", str(manifest), "--fix"])
    assert rc == 0 and "fixed " in err, err
    fixed = path.read_text()
    assert _scheduler_args(fixed)["strategy_adapter_cfg"]["awp_overrides"] == ["model.head"]
    assert "# " not in config or all(c in fixed for c in re.findall(r"#.*", config))
    rc, _, err = _run(["check", str(path), "--manifest", str(manifest), "--fix"])
    assert rc == 0 and err == "" and path.read_text() == fixed


def test_cli_refusal_prints_the_edit_and_writes_nothing(tmp_path: Path) -> None:
    config = HEAD + ("  - class_path: finetuning_scheduler.FinetuningScheduler\n"
                     "    init_args: {ft_schedule: sched.yaml,  # a comment inside a flow mapping\n      }\n")
    path, manifest = _project(tmp_path, config)
    rc, _, err = _run(["check", str(path), "--manifest", str(manifest), "--fix"])
    assert rc == 1 and path.read_text() == config
    assert "not fixed (wrap model.head in its own FSDP unit): the edited file would not read back" in err
    assert 'awp_overrides: ["model.head"]' in err


def test_cli_fix_keeps_crlf_and_bom(tmp_path: Path) -> None:
    config = REPRODUCERS["comment_after_init_args"].replace("\n", "\r\n")
    path, manifest = _project(tmp_path, "\ufeff" + config)
    _run(["check", str(path), "--manifest", str(manifest), "--fix"])
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and b"awp_overrides" in data
    assert data.count(b"\n") == data.count(b"\r\n")


@pytest.mark.torch
def test_docs_fsdp2_choice_block_is_what_fix_prints(tmp_path: Path) -> None:
    """docs/sharding.md shows `--fix` output for the seed FSDP2 config; it must be what the command prints."""
    pytest.importorskip("transformers")
    doc = (REPO / "docs" / "sharding.md").read_text()
    block = re.search(r"```text\n(llama_plan\.yaml: .*?)```", doc, re.DOTALL)
    assert block is not None
    for f in (REPO / "tests" / "data" / "fsdp2_seed").iterdir():
        (tmp_path / f.name).write_text(f.read_text())
    manifest = tmp_path / "llama.json"
    assert _run(["manifest", "--model", f"{REPO / 'tests' / 'models.py'}:llama_lm", "-o", str(manifest)])[0] == 0
    config = tmp_path / "llama_plan.yaml"
    rc, _, err = _run(["check", str(config), "--manifest", str(manifest), "--fix", "--format", "json"])
    assert rc == 1
    assert err.replace(str(config), "llama_plan.yaml") == block.group(1)


def test_cli_fix_writes_into_the_lightning_config_given_apart(tmp_path: Path) -> None:
    """`check s.ftsc --lightning-config cfg.yaml --fix`: the overrides go into the config (where the
    sharding is configured), its trailing comment kept; the schedule file is not touched."""
    manifest = tmp_path / "m.json"
    manifest.write_text(ModelGraph.from_names(["model.head.w", "model.body.w"]).manifest.dumps())
    sched = tmp_path / "s.ftsc"
    sched.write_text("phase 0 { thaw model.head.w }\nphase 1 { thaw model.body.w }\n")
    config = tmp_path / "cfg.yaml"
    config.write_text(HEAD + "  - class_path: finetuning_scheduler.FinetuningScheduler  # the scheduler\n")
    argv = ["check", str(sched), "--lightning-config", str(config), "--manifest", str(manifest)]
    assert _run(argv)[0] == 1
    rc, _, err = _run([*argv, "--fix"])
    assert rc == 0 and err == f"fixed {config}: wrap model.head in its own FSDP unit\n"
    assert "FinetuningScheduler  # the scheduler\n    init_args:\n" in config.read_text()
    assert _scheduler_args(config.read_text()) == {"strategy_adapter_cfg": {"awp_overrides": ["model.head"]}}
    assert sched.read_text() == "phase 0 { thaw model.head.w }\nphase 1 { thaw model.body.w }\n"
