"""End-to-end CLI tests: exit codes, output formats, configuration, fmt and convert."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftsc.cli import main

from .conftest import REPO

BAD = "phase 0 {\n    thaw a.b\n}\nphase 2 {\n    thaw c.d\n}\n"
WARN = 'phase 0 {\n    thaw fts "a.{0,3}.b"\n}\n'
GOOD = "phase 0 {\n    thaw a.b\n}\n"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """0 clean, 1 errors, 1 warnings under --strict, 2 unreadable files and bad arguments."""
    assert main(["check", write(tmp_path, "good.ftsc", GOOD)]) == 0
    assert main(["check", write(tmp_path, "bad.ftsc", BAD)]) == 1
    warn = write(tmp_path, "warn.ftsc", WARN)
    assert main(["check", warn]) == 0
    assert main(["check", "--strict", warn]) == 1
    assert main(["check", "--exit-zero", write(tmp_path, "b2.ftsc", BAD)]) == 0
    assert main(["check", str(tmp_path / "missing.ftsc")]) == 2
    assert main(["check", "--select", "NOPE", warn]) == 2
    assert main(["bogus"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_json_output_matches_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--format json has exactly SPEC §5.1's fields, 1-based positions and a summary."""
    main(["check", "--format", "json", write(tmp_path, "bad.ftsc", BAD)])
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == 1
    assert doc["summary"] == {"error": 1, "warning": 0, "info": 0}
    (d,) = doc["diagnostics"]
    assert set(d) == {"code", "name", "severity", "message", "file", "start", "end", "notes", "help", "data"}
    assert (d["code"], d["name"], d["severity"]) == ("FTS201", "non-contiguous-phases", "error")
    assert d["start"] == {"line": 4, "column": 7} and d["end"] == {"line": 4, "column": 8}
    assert d["file"].endswith("bad.ftsc")


@pytest.mark.parametrize("fmt, needle", [
    ("concise", "bad.ftsc:4:7: error[FTS201] phase"),
    ("github", "::error file="),
    ("text", "error[FTS201]: phase numbers"),
])
def test_text_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, needle: str) -> None:
    """Each format names the code and position its own way."""
    main(["check", "--format", fmt, write(tmp_path, "bad.ftsc", BAD)])
    assert needle in capsys.readouterr().out


def test_text_format_has_snippet_and_carets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default rendering shows the source line and a caret under the span."""
    main(["check", write(tmp_path, "bad.ftsc", BAD)])
    out = capsys.readouterr().out
    assert "4 | phase 2 {" in out and "  |       ^ phase 1 is missing before this one" in out
    assert "error: aborting due to 1 previous error" in out


def test_sarif(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SARIF output names the rule and the region."""
    main(["check", "--format", "sarif", write(tmp_path, "bad.ftsc", BAD)])
    doc = json.loads(capsys.readouterr().out)
    result = doc["runs"][0]["results"][0]
    assert result["ruleId"] == "FTS201"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 4


def test_select_ignore_by_code_name_and_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--ignore accepts codes, kebab names and prefixes."""
    bad = write(tmp_path, "bad.ftsc", BAD)
    for item in ("FTS201", "non-contiguous-phases", "FTS2"):
        assert main(["check", "--ignore", item, bad]) == 0
    assert main(["check", "--select", "FTS205", bad]) == 0
    capsys.readouterr()


def test_pyproject_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """[tool.ftsc] supplies files, ignore and strict; flags still win."""
    write(tmp_path, "warn.ftsc", WARN)
    (tmp_path / "pyproject.toml").write_text('[tool.ftsc]\nfiles = ["warn.ftsc"]\nstrict = true\n')
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 1
    (tmp_path / "pyproject.toml").write_text('[tool.ftsc]\nfiles = ["warn.ftsc"]\nstrict = true\nignore = ["FTS205"]\n')
    assert main(["check"]) == 0
    (tmp_path / "pyproject.toml").write_text('[tool.ftsc]\nstrictt = true\n')
    assert main(["check", "warn.ftsc"]) == 2
    assert "unknown key `strictt`" in capsys.readouterr().err


def test_suppressions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`# ftsc: ignore[...]` silences its line; an unused one is FTS090."""
    text = 'phase 0 {\n    thaw fts "a.{0,3}.b"  # ftsc: ignore[FTS205]\n    thaw c.d  # ftsc: ignore[FTS201]\n}\n'
    main(["check", "--format", "concise", write(tmp_path, "s.ftsc", text)])
    out = capsys.readouterr().out
    assert "FTS205" not in out
    assert "s.ftsc:3:30: warning[FTS090] unused suppression of `FTS201`" in out


def test_fmt_check_write_and_idempotence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """fmt --check reports, fmt rewrites keeping comments, and a second fmt changes nothing."""
    path = write(tmp_path, "x.ftsc", "# top\nphase 0 { thaw a.b, /c\\.d/ # trailing\n lr=1e-3 }\n")
    assert main(["fmt", "--check", path]) == 1
    assert main(["fmt", path]) == 0
    text = Path(path).read_text()
    assert text == "# top\nphase 0 {\n    thaw a.b\n    thaw /c\\.d/  # trailing\n    lr = 0.001\n}\n"
    assert main(["fmt", "--check", path]) == 0
    assert main(["fmt", write(tmp_path, "y.ftsc", "phase 0 {")]) == 1
    assert main(["fmt", write(tmp_path, "z.yaml", "0: {}")]) == 2
    capsys.readouterr()


def test_convert_rejects_what_fts_cannot_express(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A step transition has no FTS YAML form: FTS501 and exit 1, nothing written."""
    path = write(tmp_path, "s.ftsc", "phase 0 {\n    thaw a.b\n    until step 100\n}\nphase 1 {\n    thaw c\n}\n")
    out = tmp_path / "out.yaml"
    assert main(["convert", path, "--to", "fts-yaml", "-o", str(out)]) == 1
    assert "FTS501" in capsys.readouterr().err and not out.exists()


def test_convert_writes_options_as_comments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Schedule options go to a commented init_args block; the YAML itself has only phases."""
    path = write(tmp_path, "s.ftsc", "schedule {\n    max_depth = 1\n}\nphase 0 {\n    thaw /a\\..*/\n}\n")
    assert main(["convert", path, "--to", "fts-yaml"]) == 0
    out = capsys.readouterr().out
    assert "#   max_depth: 1" in out and "0:\n  params:\n  - a\\..*\n" in out


def test_rule_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`ftsc rule` takes a code or a name and has a JSON form."""
    assert main(["rule", "param-in-multiple-phases"]) == 0
    assert "# FTS203" in capsys.readouterr().out
    assert main(["rule", "FTS205", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "over-matching-pattern"
    assert main(["rule", "FTS999"]) == 2


def test_lightning_config_missing_schedule_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config whose ft_schedule path does not exist: FTS105 warning, options still checked."""
    cfg = textwrap.dedent("""\
        trainer:
          callbacks:
          - class_path: finetuning_scheduler.FinetuningScheduler
            init_args:
              ft_schedule: ./nowhere.yaml
              max_depth: two
        """)
    assert main(["check", "--format", "concise", write(tmp_path, "c.yaml", cfg)]) == 1
    out = capsys.readouterr().out
    assert "warning[FTS105]" in out and "error[FTS102] `max_depth` must be an integer" in out


def test_lightning_config_applies_epoch_transitions_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--lightning-config with epoch_transitions_only: phases without epochs are FTS209."""
    sched = write(tmp_path, "s.yaml", "0:\n  params: [a.b]\n1:\n  params: [c.d]\n")
    cfg = write(tmp_path, "c.yaml", "trainer:\n  callbacks:\n  - class_path: finetuning_scheduler.FinetuningScheduler\n"
                "    init_args:\n      epoch_transitions_only: true\n")
    assert main(["check", sched]) == 0
    assert main(["check", "--lightning-config", cfg, sched]) == 1
    assert "FTS209" in capsys.readouterr().out


def test_cli_runs_with_torch_unimportable(tmp_path: Path) -> None:
    """`ftsc check` works when importing torch fails, and never imports it."""
    blocker = tmp_path / "block"
    (blocker / "torch").mkdir(parents=True)
    (blocker / "torch" / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    sched = write(tmp_path, "s.ftsc", BAD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)])}
    code = ("import sys; from ftsc.cli import main; rc = main(['check', sys.argv[1]]); "
            "print('torch' in sys.modules); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, sched], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "FTS201" in proc.stdout and proc.stdout.strip().endswith("False")


@pytest.mark.parametrize("command", ["check", "compile", "explain", "convert"])
def test_dialect_option_on_the_four_commands(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--dialect` takes `auto` or a dialect name on check, compile, explain and convert, and
    forces that reading: a YAML file no detector takes is read as LLaMA-Factory `full` tuning."""
    from ftsc.frontend.dialects import DIALECTS

    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--dialect {" + ",".join(("auto", *DIALECTS)) + "}" in " ".join(out.split())
    path = write(tmp_path, "train.yaml", "model_name_or_path: x\nstage: sft\n")
    manifest = str(REPO / "examples" / "dialects" / "llama12.json")
    extra = ["--to", "ftsc"] if command == "convert" else []
    assert main([command, path, "--manifest", manifest, "--dialect", "bogus", *extra]) == 2
    capsys.readouterr()
    status = main([command, path, "--manifest", manifest, "--dialect", "llama-factory", *extra])
    out, err = capsys.readouterr()
    assert "skipped" not in err and "not an FTS schedule" not in err
    if command == "convert":  # read as LLaMA-Factory: `finetuning_type` defaults to lora, which trains no phase here
        assert status == 2 and "ftsc reads no trainable set from this llama-factory config" in err
    else:
        assert status == 0 and "FTS102" in out + err and "`finetuning_type: lora` is not a freeze method" in out + err
    if command != "convert":
        assert main([command, path, "--dialect", "axolotl", "--trainable", "lm_head.weight"]) == 2
        assert "does not combine" in capsys.readouterr().err
