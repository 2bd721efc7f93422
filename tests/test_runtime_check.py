"""One check pipeline: `ftsc check`, the package API and the runtime callback's setup give the
same diagnostics for the same file (suppressions applied, warnings reported with code and file:line)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch

import lightning.pytorch as pl

import ftsc
from ftsc.cli import main
from ftsc.diagnostics.render import render_concise

from .runtime_harness import TinyModule, loader

# Phase 0's lr is ignored (FTS207, a warning); phase 2's `model.9.*` matches nothing (FTS202, an
# error) but is suppressed on its line, so the file passes and training runs.
SCHEDULE = """\
phase 0 {
    thaw glob "model.4.*"
    lr = 0.5
    until epoch 1
}
phase 1 {
    thaw glob "model.2.*"
    until epoch 2
}
phase 2 {
    thaw glob "model.0.*", glob "model.9.*"  # ftsc: ignore[FTS202]
}
"""


def _model_file(tmp_path: Path) -> str:
    """A `--model` target building the same module the callback sees."""
    (tmp_path / "tiny_target.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent.parent)!r})\n"
        "from tests.runtime_harness import TinyModule\n"
        "def build():\n    return TinyModule()\n")
    return f"{tmp_path / 'tiny_target.py'}:build"


def _fit(sched: Path, tmp_path: Path) -> tuple[list[str], object]:
    from ftsc.lightning import FinetuningScheduler

    fts = FinetuningScheduler(ft_schedule=str(sched), epoch_transitions_only=True, restore_best=False)
    trainer = pl.Trainer(max_epochs=1, callbacks=[fts], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                         num_sanity_val_steps=0, limit_train_batches=1, limit_val_batches=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(TinyModule(), loader(0), loader(1))
    return [str(w.message) for w in caught if str(w.message).startswith("ftsc: ")], fts


def test_cli_api_and_callback_report_the_same_diagnostics(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sched = tmp_path / "s.ftsc"
    sched.write_text(SCHEDULE)
    target = _model_file(tmp_path)

    assert main(["check", "s.ftsc", "--model", target, "--format", "concise"]) == 0
    cli_lines = capsys.readouterr().out.splitlines()

    from ftsc.model import load_graph

    api_lines = render_concise(ftsc.check_file("s.ftsc", load_graph(target, None, {}))).splitlines()
    text_lines = render_concise(ftsc.check_text(SCHEDULE, "s.ftsc", load_graph(target, None, {}))).splitlines()

    warned, callback = _fit(sched, tmp_path)
    callback_lines = [w.removeprefix("ftsc: ") for w in warned]
    recorded = render_concise(callback.diagnostics).splitlines()  # type: ignore[attr-defined]

    assert cli_lines == [("s.ftsc:3:5: warning[FTS207] `lr` in phase 0 is ignored: phase 0 uses the "
                          "optimizer's configured lr")]
    assert api_lines == cli_lines
    assert text_lines == cli_lines
    assert recorded == cli_lines
    assert callback_lines == cli_lines  # the warning reached the training log, with code and file:line


def test_an_unsuppressed_error_stops_the_callback_as_it_fails_check(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    monkeypatch.chdir(tmp_path)
    sched = tmp_path / "s.ftsc"
    sched.write_text(SCHEDULE.replace("  # ftsc: ignore[FTS202]", ""))
    assert main(["check", "s.ftsc", "--model", _model_file(tmp_path), "--format", "concise"]) == 1
    with pytest.raises(MisconfigurationException, match=r"FTS202"):
        _fit(sched, tmp_path)


def test_the_check_library_runs_with_torch_unimportable(tmp_path: Path) -> None:
    """`ftsc.check_file` / `ftsc.check_text` (the pipeline the callback calls) never import torch."""
    import os
    import subprocess
    import sys

    blocker = tmp_path / "block"
    (blocker / "torch").mkdir(parents=True)
    (blocker / "torch" / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    (tmp_path / "s.ftsc").write_text("phase 1 { thaw a }\n")
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(repo)])}
    code = ("import sys, ftsc; a = [d.code for d in ftsc.check_file(sys.argv[1])]; "
            "b = [d.code for d in ftsc.check_text(open(sys.argv[1]).read(), sys.argv[1])]; "
            "print(a, b, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.ftsc")], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['FTS201'] ['FTS201'] False"
