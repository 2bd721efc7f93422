"""Every output is byte-identical across `PYTHONHASHSEED` values and between `--model` and `--manifest`.

One process per hash seed runs the CLI over a case with several suggestions: an 11-layer model
whose schedule draws a prefix over-match (FTS205), a did-you-mean (FTS202), an FSDP1 unit
mixing four phases (FTS301, five `wrap` overrides in the help and in the `--fix` edit) and an
FSDP2 plan out of order (FTS403, reordered by `--fix`), in every output format, plus
`compile`, `init`, `convert`, `manifest`, and `--fix` into a `.ftsc` file and into a
LightningCLI config. The outputs and the files left behind must be identical for all seeds; the
`--model` and `--manifest` runs of each command must print the same bytes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = [pytest.mark.torch, pytest.mark.slow]

SEEDS = ("0", "1", "4242")
NET = f"{REPO / 'tests' / 'models.py'}:linear11_lm"
LLAMA = f"{REPO / 'tests' / 'models.py'}:llama_lm"

DSL_FSDP1 = """\
phase 0 { thaw model.0.weight, model.0.bias }
phase 1 { thaw fts "model.1.*" }
phase 2 { thaw model.2.weight, model.2.bias, model.3.wieght }
phase 3 { thaw glob "model.5.*" }
fsdp {
    use_orig_params = false
}
"""

DSL_FSDP2 = """\
phase 0 { thaw glob "model.lm_head.*" }
phase 1 { thaw glob "model.model.layers.**" }
phase 2 { thaw glob "model.model.**" }
fsdp2 {
    shard model.model
    shard /model\\.model\\.layers\\.\\d+/
    shard model.lm_head
    shard ""
}
"""

FTS_YAML = """\
0:
  params: [model.0.weight, model.0.bias]
1:
  params: ['model.1.*']
2:
  params: [model.2.weight, model.2.bias, model.5.weight, model.5.bias]
"""

CONFIG = """\
trainer:
  max_epochs: 4
  strategy:
    class_path: lightning.pytorch.strategies.FSDPStrategy
    init_args:
      use_orig_params: false
  callbacks:
  - class_path: finetuning_scheduler.FTSEarlyStopping
    init_args:
      monitor: val_loss
  - class_path: finetuning_scheduler.FinetuningScheduler
    init_args:  # the schedule
      ft_schedule: sched.yaml
"""

# Runs in a fresh interpreter per seed: every command in-process, outputs and files as JSON.
DRIVER = """
import contextlib, io, json, sys
from pathlib import Path
from ftsc.cli import main
commands = json.loads(sys.argv[1])
out = []
for argv in commands:
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        rc = main(argv)
    out.append({"argv": argv, "rc": rc, "out": o.getvalue(), "err": e.getvalue()})
files = {p.name: p.read_text() for p in sorted(Path(".").iterdir()) if p.is_file()}
print(json.dumps({"runs": out, "files": files}))
"""


def _commands() -> list[list[str]]:
    cmds: list[list[str]] = [["manifest", "--model", NET, "-o", "net.json"],
                             ["manifest", "--model", LLAMA, "-o", "llama.json"],
                             ["manifest", "--model", NET]]
    for model in (["--model", NET], ["--manifest", "net.json"]):
        for fmt in ("text", "json", "sarif", "concise", "github"):
            cmds.append(["check", "a.ftsc", *model, "--format", fmt])
        cmds += [["check", "fts.yaml", *model, "--lightning-config", "cfg.yaml", "--format", "text"],
                 ["compile", "a.ftsc", *model],
                 ["init", *model], ["init", *model, "--to", "fts-yaml"]]
    for model in (["--model", LLAMA], ["--manifest", "llama.json"]):
        cmds += [["check", "b.ftsc", *model, "--format", "json"], ["compile", "b.ftsc", *model],
                 ["init", *model, "--lightning-config", str(REPO / "tests" / "data" / "fsdp2_seed" / "llama_plan.yaml"),
                  "--to", "ftsc"]]
    cmds += [["convert", "a.ftsc", "--to", "fts-yaml"], ["convert", "fts.yaml", "--to", "ftsc"],
             ["check", "a.ftsc", "--manifest", "net.json", "--fix"],
             ["check", "a.ftsc", "--manifest", "net.json", "--fix"],
             ["check", "cfg.yaml", "--manifest", "net.json", "--fix"],
             ["check", "b.ftsc", "--manifest", "llama.json", "--fix"]]
    return cmds


def _run(seed: str, folder: Path) -> dict:
    folder.mkdir()
    (folder / "a.ftsc").write_text(DSL_FSDP1)
    (folder / "b.ftsc").write_text(DSL_FSDP2)
    (folder / "fts.yaml").write_text(FTS_YAML)
    (folder / "sched.yaml").write_text(FTS_YAML)
    (folder / "cfg.yaml").write_text(CONFIG)
    env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(_commands())], cwd=folder, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("seeds")
    return {seed: _run(seed, base / f"seed{seed}") for seed in SEEDS}


def test_the_case_has_several_suggestions(runs: dict[str, dict]) -> None:
    """The case exercises what used to vary: several overrides in help text and in `--fix` edits."""
    first = runs[SEEDS[0]]
    by_argv = {" ".join(r["argv"]): r for r in first["runs"]}
    doc = json.loads(by_argv["check a.ftsc --manifest net.json --format json"]["out"])
    codes = {d["code"] for d in doc["diagnostics"]}
    assert {"FTS202", "FTS205", "FTS301"} <= codes
    (unit,) = [d for d in doc["diagnostics"] if d["code"] == "FTS301"]
    assert unit["help"].count("`model.") >= 4
    fixes = [r for r in first["runs"] if r["argv"][-1] == "--fix"]
    assert fixes[0]["err"].startswith("fixed a.ftsc: wrap ") and fixes[0]["err"].count(",") >= 3
    assert fixes[1]["err"] == ""  # the second --fix finds nothing to do
    assert fixes[2]["err"].startswith("fixed cfg.yaml: wrap ")
    assert fixes[3]["err"].startswith("fixed b.ftsc: plan reordered bottom-up")
    assert "awp_overrides: [" in first["files"]["cfg.yaml"] and "wrap model.0, " in first["files"]["a.ftsc"]


def test_outputs_are_identical_across_hash_seeds(runs: dict[str, dict]) -> None:
    first = runs[SEEDS[0]]
    for seed in SEEDS[1:]:
        other = runs[seed]
        for a, b in zip(first["runs"], other["runs"], strict=True):
            assert (a["rc"], a["out"], a["err"]) == (b["rc"], b["out"], b["err"]), (seed, a["argv"])
        assert first["files"] == other["files"], seed


def test_model_and_manifest_print_the_same_bytes(runs: dict[str, dict]) -> None:
    compared = 0
    for seed in SEEDS:
        results = {tuple(r["argv"]): r for r in runs[seed]["runs"]}
        for argv, r in results.items():
            if "--model" not in argv or argv[0] == "manifest":
                continue
            i = argv.index("--model")
            manifest = "net.json" if argv[i + 1] == NET else "llama.json"
            twin = results[(*argv[:i], "--manifest", manifest, *argv[i + 2:])]
            assert (r["rc"], r["out"], r["err"]) == (twin["rc"], twin["out"], twin["err"]), argv
            compared += 1
    assert compared == len(SEEDS) * 12
