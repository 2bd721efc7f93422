"""Inputs `ftsc check` should understand: LightningCLI configs naming a `.ftsc` schedule, YAML files
that are neither a schedule nor a config (skipped, with a note or silently), labels that quote
the file they point into, and no FTS204 for a schedule that could not be read."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml

from ftsc.cli import check_file, main
from ftsc.frontend import InputKind, load_file

from .conftest import REPO
from .docmodel import doc_graph

CALLBACK = "finetuning_scheduler.FinetuningScheduler"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return name


def config(schedule: str, **init_args: object) -> str:
    args = "".join(f"      {k}: {v}\n" for k, v in init_args.items())
    return (f"trainer:\n  max_epochs: 5\n  callbacks:\n  - class_path: {CALLBACK}\n    init_args:\n"
            f"      ft_schedule: {schedule}\n{args}")


# --- a LightningCLI config naming a `.ftsc` schedule ---------------------------------------------------------

def test_bundled_lightning_cli_example_passes(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`ftsc check examples/lightning_cli/config.yaml` exits 0 and reads the `.ftsc` it names."""
    monkeypatch.chdir(REPO)
    assert main(["check", "examples/lightning_cli/config.yaml"]) == 0
    assert capsys.readouterr().out == ""
    loaded = load_file("examples/lightning_cli/config.yaml")
    assert loaded.kind is InputKind.LIGHTNING_CONFIG and loaded.schedule is not None
    assert [p.name for p in loaded.schedule.phases] == ["head", "top block", "bottom block"]
    assert [s.path for s in loaded.related] == ["examples/lightning_cli/schedule.ftsc"]


def test_ftsc_schedule_named_by_config_is_checked_in_its_own_file(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors in the `.ftsc` file point at it, with its own line numbers."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "s.ftsc", "# two phases\nphase 0 {\n    thaw a.b\n}\nphase 2 {\n    thaw c.d\n}\n")
    cfg = write(tmp_path, "c.yaml", config("s.ftsc"))
    diags = check_file(load_file(cfg))
    assert [(d.code, d.file.path if d.file else None, d.start().line if d.start() else None) for d in diags] == [
        ("FTS201", "s.ftsc", 5)]


def test_ftsc_settings_win_over_the_callbacks_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As at run time: the `.ftsc` `schedule { }` block overrides the callback's `init_args`; the
    callback's other arguments and `trainer.max_epochs` still apply."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "s.ftsc", "schedule {\n    max_depth = 2\n}\nphase 0 {\n    thaw a\n    until epoch 6\n}\n"
                              "phase 1 {\n    thaw b\n}\nphase 2 {\n    thaw c\n}\n")
    cfg = write(tmp_path, "c.yaml", config("s.ftsc", max_depth=0, restore_best="false"))
    loaded = load_file(cfg)
    assert loaded.schedule is not None
    options = loaded.schedule.options
    assert (options.get("max_depth"), options.get("restore_best"), options.get("max_epochs")) == (2, False, 5)
    # max_depth 0 from the config would cut phases 1-2 off (FTS206); the file's 2 does not. The
    # epoch beyond max_epochs = 5 (from the config's trainer) is reported in the .ftsc file.
    got = [(d.code, d.file.path if d.file else None) for d in check_file(loaded)]
    assert got == [("FTS206", "s.ftsc")]


# --- YAML that is neither a schedule nor a config -------------------------------------------------------------

OTHER_YAML = {
    "model_args.yaml": "vocab_size: 32000\ndim: 512\nn_layers: 4\nn_heads: 8\nnorm_eps: 1.0e-05\n",
    "profiler.yaml": "class_path: lightning.pytorch.profilers.PyTorchProfiler\ninit_args:\n  filename: trace\n",
    ".pre-commit-config.yaml": "repos:\n- repo: local\n  hooks:\n  - id: ftsc-check\n    name: ftsc\n",
    "workflow.yml": "name: ci\non:\n  push:\n    branches: [main]\njobs:\n  test:\n    runs-on: ubuntu-latest\n",
    "empty.yaml": "",
    "names.yaml": "- alpha\n- beta\n",
    "scalar.yaml": "just a string\n",
    "manifests.yaml": "kind: Service\nmetadata: {name: a}\n---\nkind: Deployment\nmetadata: {name: b}\n",
    "mkdocs.yml": "site_name: docs\nmarkdown_extensions:\n- emoji:\n    index: !!python/name:material.emoji.twemoji\n",
}


def test_unrecognized_yaml_is_skipped_with_one_line_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Given explicitly: exit 0, nothing on stdout, exactly one note line per file on stderr."""
    monkeypatch.chdir(tmp_path)
    names = [write(tmp_path, name, text) for name, text in OTHER_YAML.items()]
    assert main(["check", *names]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert [line.split(":")[2].split()[-1] for line in lines] == names
    assert all(line.startswith("ftsc: note: skipped ") for line in lines)
    assert "`vocab_size`, `dim`, `n_layers`, ..." in lines[0]


def test_skip_unrecognized_is_silent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    names = [write(tmp_path, name, text) for name, text in OTHER_YAML.items()]
    assert main(["check", "--skip-unrecognized", *names]) == 0
    assert capsys.readouterr() == ("", "")


# --- freeze dialects: read, not skipped ----------------------------------------------------------------------

DIALECT_YAML = {
    "axolotl.yaml": "base_model: NousResearch/Llama-3.2-1B\nmicro_batch_size: 2\nunfrozen_parameters:\n- lm_head\n",
    "freeze.yaml": "model_name_or_path: Qwen/Qwen2.5-0.5B\nfinetuning_type: freeze\nfreeze_trainable_layers: 2\n",
}


def test_dialect_configs_are_read_not_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """axolotl and LLaMA-Factory YAML is its own kind, checked (not skipped) even under
    --skip-unrecognized; without a model nothing is reported."""
    monkeypatch.chdir(tmp_path)
    names = [write(tmp_path, name, text) for name, text in DIALECT_YAML.items()]
    assert [(load_file(n).kind, load_file(n).unrecognized, load_file(n).dialect.name)  # type: ignore[union-attr]
            for n in names] == [(InputKind.DIALECT, None, "axolotl"), (InputKind.DIALECT, None, "llama-factory")]
    assert main(["check", *names]) == 0
    assert capsys.readouterr() == ("", "")
    bad = write(tmp_path, "bad.yaml", "base_model: x\nmicro_batch_size: 1\nunfrozen_parameters:\n- 'a['\n")
    assert main(["check", "--skip-unrecognized", bad]) == 1
    assert "FTS101" in capsys.readouterr().out


def test_one_marker_key_is_no_dialect(tmp_path: Path) -> None:
    """`base_model` alone (many YAML files have one) does not make an axolotl config; `--dialect`
    forces the reading."""
    name = write(tmp_path, "card.yaml", "base_model: some/model\nlicense: mit\n")
    assert load_file(str(tmp_path / name)).unrecognized is not None
    forced = load_file(str(tmp_path / name), "axolotl")
    assert forced.kind is InputKind.DIALECT and forced.unrecognized is None


@pytest.mark.parametrize("text, code", [
    ("0:\n  params: [a]\nfoo:\n  params: [b]\n", "FTS102"),        # a non-numeric phase key
    ("'1a':\n  params: [a]\n", "FTS102"),                            # phase-shaped, no numeric key
    ("0: [a, b]\n", "FTS102"),                                       # a phase that is not a mapping
    ("- params: [a]\n- params: [b]\n", "FTS102"),                    # phases as a list
    ("0:\n  params: [a]\n2:\n  params: [b]\n", "FTS201"),
    ("0:\n  params: [a]\n---\n1:\n  params: [b]\n", "FTS001"),  # a schedule, then a second document
    ("---\n" + "[" * 5000 + "\n---\na: 1\n", "FTS001"),         # nesting past the loader's limit
])
def test_broken_schedules_are_still_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str], text: str, code: str) -> None:
    """Anything that could be a schedule is checked as one, even under --skip-unrecognized."""
    monkeypatch.chdir(tmp_path)
    assert main(["check", "--skip-unrecognized", write(tmp_path, "s.yaml", text)]) == 1
    assert f"error[{code}]" in capsys.readouterr().out


def test_config_with_extra_top_level_keys_is_a_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A LightningCLI config with a custom top-level argument is still checked as a config."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "s.ftsc", "phase 0 {\n    thaw a\n}\nphase 2 {\n    thaw b\n}\n")
    loaded = load_file(write(tmp_path, "c.yaml", config("s.ftsc") + "compile_model: true\n"))
    assert loaded.kind is InputKind.LIGHTNING_CONFIG and loaded.unrecognized is None
    assert [d.code for d in check_file(loaded)] == ["FTS201"]


def test_pre_commit_hook_covers_ftsc_and_yaml_and_skips_silently(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The hook's `files` regex takes `.ftsc`, `.yaml` and `.yml`; its entry skips other YAML silently
    and still fails on a broken schedule."""
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    files = re.compile(hook["files"])
    assert [bool(files.search(n)) for n in ("a.ftsc", "b.yaml", "c/d.yml", "e.py", "f.yaml.bak")] == [
        True, True, True, False, False]
    command, *args = hook["entry"].split()
    assert command == "ftsc"
    monkeypatch.chdir(tmp_path)
    others = [write(tmp_path, name, text) for name, text in OTHER_YAML.items()]
    good = write(tmp_path, "good.yaml", "0:\n  params: [a.b]\n")
    assert main([*args, *others, good]) == 0
    assert capsys.readouterr() == ("", "")
    bad = write(tmp_path, "bad.ftsc", "phase 1 {\n    thaw a\n}\n")
    assert main([*args, *others, bad]) == 1
    out, err = capsys.readouterr()
    assert "error[FTS201]" in out and err == ""


# --- labels quote the file they point into ---------------------------------------------------------------------

def assert_snippets_quote_their_files(rendered: str, root: Path) -> int:
    """Every `N | text` line under a `-->`/`:::` header is line N of the file that header names.

    Returns:
        How many source lines were compared.
    """
    lines: list[str] | None = None
    compared = 0
    for row in rendered.splitlines():
        head = re.match(r"\s*(?:-->|:::) (.+):(\d+):(\d+)$", row)
        if head:
            lines = (root / head.group(1)).read_text().splitlines()
            assert int(head.group(2)) <= len(lines), row
            continue
        quoted = re.match(r"\s*(\d+) \| (.*)$", row)
        if quoted and lines is not None:
            n = int(quoted.group(1))
            assert n <= len(lines), f"line {n} of a {len(lines)}-line file: {row}"
            assert lines[n - 1].replace("\t", " ")[:200] == quoted.group(2).removesuffix("..."), row
            compared += 1
        elif not row.strip():
            lines = None
    return compared


SCHEDULE = ("0:\n  params: [model.head.weight]\n  max_transition_epoch: 1\n"
            "1:\n  params: [model.body.weight]\n  max_transition_epoch: 2\n"
            "2:\n  params: [model.embed.weight]\n  max_transition_epoch: 3\n"
            "3:\n  params: [model.layers.0.weight]\n")


@pytest.mark.parametrize("kind", ["yaml", "ftsc"])
@pytest.mark.parametrize("how", ["config names the schedule", "--lightning-config"])
def test_fts206_labels_point_into_the_file_they_quote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], how: str, kind: str) -> None:
    """`max_depth` set in the config cuts off phases of the schedule file: the primary label quotes
    the config, the `never runs` labels quote the schedule, each at its own line numbers."""
    monkeypatch.chdir(tmp_path)
    # Padding lines make a line number valid in one file and not the other, or differ in text.
    if kind == "ftsc":
        write(tmp_path, "s.ftsc", "".join(f"phase {i} {{\n    thaw p{i}\n    until epoch {i + 1}\n}}\n"
                                          for i in range(3)) + "phase 3 {\n    thaw p3\n}\n")
        sched = "s.ftsc"
    else:
        sched = write(tmp_path, "s.yaml", "# padding\n" * 3 + SCHEDULE)
    if how == "--lightning-config":
        cfg = write(tmp_path, "c.yaml", f"trainer:\n  callbacks:\n  - class_path: {CALLBACK}\n"
                                        "    init_args:\n      max_depth: 1\n")
        assert main(["check", sched, "--lightning-config", cfg]) == 0
    else:
        cfg = write(tmp_path, "c.yaml", config(sched, max_depth=1))
        assert main(["check", cfg]) == 0
    out = capsys.readouterr().out
    block = next(b for b in out.split("\n\n") if "stops before phase 2" in b)
    assert f"  --> {cfg}:" in block and f"  ::: {sched}:" in block
    assert block.count("never runs") == 2
    assert assert_snippets_quote_their_files(out, tmp_path) >= 3


def test_snippet_checker_catches_a_wrong_file(tmp_path: Path) -> None:
    """The oracle above fails on a quote that is not the named file's line."""
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    with pytest.raises(AssertionError):
        assert_snippets_quote_their_files("  --> a.txt:1:1\n  |\n2 | three\n", tmp_path)


# --- FTS204 only for a schedule that was read -----------------------------------------------------------------

@pytest.mark.parametrize("init_args", ["      ft_schedule: nowhere.yaml\n", "      restore_best: true\n"],
                         ids=["schedule not found", "implicit schedule"])
def test_no_never_thawed_without_phases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, init_args: str) -> None:
    """FTS105 (or FTS's implicit schedule, which thaws everything) with a model: no FTS204."""
    monkeypatch.chdir(tmp_path)
    cfg = write(tmp_path, "c.yaml", f"trainer:\n  callbacks:\n  - class_path: {CALLBACK}\n    init_args:\n{init_args}")
    codes = [d.code for d in check_file(load_file(cfg), doc_graph())]
    assert "FTS204" not in codes
    assert codes == (["FTS105"] if "nowhere" in init_args else [])


def test_never_thawed_still_reported_for_a_read_schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "s.yaml", "0:\n  params: [model.head.weight]\n")
    cfg = write(tmp_path, "c.yaml", config("s.yaml"))
    assert "FTS204" in [d.code for d in check_file(load_file(cfg), doc_graph())]
