"""Safety properties (issue 13): nothing executable from a shared location, configuration only
from the project, atomic writes, only regular files, no secrets quoted, coded diagnostics for
wrong input, and the formatter keeping suppressions on the statements they govern.

Each section starts with the reproducer of the reported problem, then the property.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import stat
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ftsc.atomic
import ftsc.lalr_tables
from ftsc.check import check_loaded
from ftsc.cli import main
from ftsc.config import load_settings, project_root
from ftsc.fmt import format_schedule
from ftsc.frontend import load_text
from ftsc.model.graph import ModelGraph
from ftsc.source import SourceFile
from tests.conftest import REPO


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts in its own empty folder: no `[tool.ftsc]` or cache of the checkout applies."""
    monkeypatch.chdir(tmp_path)


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 60,
         stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "ftsc", *args], cwd=cwd, env=full_env, text=True,
                          stdout=stdout, stderr=subprocess.PIPE, timeout=timeout, check=False)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# 1. Parser tables: never a pickle from the shared temporary folder
# --------------------------------------------------------------------------------------------

class _Plant:
    """Unpickling this creates the file named by `marker` (stands in for arbitrary code)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


_PRIME = """
import sys
from lark import Lark
from ftsc.parse import _COMMENTS, grammar_text
# The options ftsc passed with cache=True before this fix: lark names its pickle after them.
Lark(grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True,
     lexer_callbacks={"COMMENT": _COMMENTS}, strict=False, cache=True)
"""


@pytest.mark.slow
def test_planted_pickle_in_shared_tmp_is_not_loaded(tmp_path: Path) -> None:
    """Reproducer: a pickle planted where lark's `cache=True` looks runs code; ftsc never reads it."""
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    env = {**os.environ, "TMPDIR": str(shared), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", _PRIME], env=env, check=True, timeout=120)
    caches = sorted(shared.glob(".lark_cache*"))
    assert caches, "lark wrote no cache file to plant over"
    marker = tmp_path / "pwned"

    def plant() -> None:  # the attacker's file: any first line, then the pickle lark unpickles first
        for cache in caches:
            cache.write_bytes(b"0\n" + pickle.dumps(_Plant(str(marker))))

    plant()
    # The plant is live: lark's own cache loader runs it (and then rewrites the file: plant again).
    subprocess.run([sys.executable, "-c", _PRIME], env=env, check=True, timeout=120)
    assert marker.exists()
    marker.unlink()
    plant()
    sched = _write(tmp_path / "s.ftsc", "phase 0 { thaw a.b }\n")
    result = _run(["check", str(sched)], tmp_path, env={"TMPDIR": str(shared)})
    assert result.returncode == 0, result.stderr
    assert not marker.exists()


def _corpus() -> list[str]:
    texts = [p.read_text(encoding="utf-8") for p in sorted((REPO / "examples").glob("*.ftsc"))]
    texts += ["phase 0 { thaw a.b, /c/ # x\n lr = 1 }", "phase 0 {", "phase 0 { thaw }", 'phase 0 { thaw "',
              "schedule { reinit optimizer torch.optim.SGD(lr = 0.1) { a = 1 } }", "fsdp2 { shard x(a = [1, {b = 2}]) }",
              "phase 1 \"n\" { thaw glob \"a.*\" until epoch 3 or plateau(patience = 2) }", "}{", "phase 0 { lr = }"]
    return texts


def test_shipped_tables_parse_like_a_fresh_build() -> None:
    """The shipped tables are for this grammar and Lark, and parse (and fail) exactly like a
    parser built from the grammar now (oracle: Lark's own build, not the shipped file)."""
    from lark import Lark
    from lark.exceptions import UnexpectedInput

    from ftsc.parse import _COMMENTS, grammar_text

    grammar = grammar_text()
    shipped = ftsc.lalr_tables._from_json(ftsc.lalr_tables.SHIPPED.read_text(encoding="utf-8"), grammar,
                                          {"COMMENT": _COMMENTS})
    assert shipped is not None, "ftsc/_parser_tables.json is stale: run `python -m ftsc.lalr_tables`"
    fresh = Lark(grammar, lexer_callbacks={"COMMENT": _COMMENTS}, **ftsc.lalr_tables.OPTIONS)

    def outcome(p: Lark, text: str) -> object:
        _COMMENTS.tokens = []
        try:
            tree = p.parse(text)
        except UnexpectedInput as err:
            return ("error", type(err).__name__, getattr(err, "pos_in_stream", None))
        return (tree, [(str(t), t.start_pos) for t in _COMMENTS.tokens])

    for text in _corpus():
        assert outcome(shipped, text) == outcome(fresh, text), text


@pytest.mark.slow
def test_wheel_ships_tables_for_its_grammar(tmp_path: Path) -> None:
    """A built wheel carries the JSON tables, made for the grammar it ships (so an installed ftsc
    uses them and never builds or caches tables)."""
    import hashlib
    import json
    import zipfile

    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                           str(REPO)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        grammar = z.read("ftsc/_grammar/ftsc.lark")
        tables = json.loads(z.read("ftsc/_parser_tables.json"))
    assert tables["grammar_sha256"] == hashlib.sha256(grammar).hexdigest()


def test_stale_tables_fall_back_to_an_owner_only_json_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables for another grammar are not used; the per-user cache folder is created 0700 and
    holds JSON (data), which a second load reads back."""
    from ftsc.parse import _COMMENTS, grammar_text

    monkeypatch.setattr(ftsc.lalr_tables, "SHIPPED", tmp_path / "missing.json")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    p = ftsc.lalr_tables.load_parser(grammar_text(), {"COMMENT": _COMMENTS})
    assert p.parse("phase 0 { thaw a }").data == "start"
    folder = tmp_path / "cache" / "ftsc"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (cached,) = folder.glob("lalr-*.json")
    assert cached.read_text(encoding="utf-8").startswith("{")
    calls: list[str] = []
    monkeypatch.setattr(ftsc.lalr_tables, "tables_json", lambda g: calls.append(g) or "")
    ftsc.lalr_tables.load_parser(grammar_text(), {"COMMENT": _COMMENTS})
    assert calls == []  # read from the cache, not rebuilt


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_cache_folder_must_be_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group/world-writable cache folder is tightened to 0700; a symlinked one is not used."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "ftsc").mkdir(mode=0o777)
    os.chmod(tmp_path / "ftsc", 0o777)
    assert ftsc.lalr_tables.user_cache_dir() == tmp_path / "ftsc"
    assert stat.S_IMODE((tmp_path / "ftsc").stat().st_mode) == 0o700
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(other))
    (other / "ftsc").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    assert ftsc.lalr_tables.user_cache_dir() is None


# --------------------------------------------------------------------------------------------
# 2. Configuration stops at the project root
# --------------------------------------------------------------------------------------------

_EVIL = "import pathlib\npathlib.Path({marker!r}).write_text('imported')\nimport torch\nM = torch.nn.Linear\n"


@pytest.mark.torch
@pytest.mark.parametrize("project_marker", [".git", None])
def test_parent_pyproject_model_is_not_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                project_marker: str | None) -> None:
    """Reproducer: `[tool.ftsc] model` in a parent folder's pyproject.toml imported its code.

    With `.git` in the project folder, discovery stops there; without it, the parent *is* the
    project, and its model is imported (the control that shows the plant is live)."""
    marker = tmp_path / "imported"
    _write(tmp_path / "evil_model.py", _EVIL.format(marker=str(marker)))
    _write(tmp_path / "pyproject.toml", '[tool.ftsc]\nmodel = "evil_model.py:M"\n')
    proj = tmp_path / "proj"
    _write(proj / "s.ftsc", "phase 0 { thaw weight }\n")
    if project_marker:
        (proj / project_marker).mkdir()
    monkeypatch.chdir(proj)
    monkeypatch.syspath_prepend(str(tmp_path))
    main(["check", "s.ftsc"])
    assert marker.exists() is (project_marker is None)


def test_project_root_and_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The first folder with `.git` (folder or file) or `[tool.ftsc]` is the root; a pyproject
    without the table does not stop the search; `--isolated` ignores the configuration."""
    _write(tmp_path / "pyproject.toml", '[tool.ftsc]\nstrict = true\n')
    _write(tmp_path / "a" / "pyproject.toml", '[project]\nname = "x"\n')
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert project_root(deep) == tmp_path.resolve()
    _write(tmp_path / "a" / "b" / ".git", "gitdir: elsewhere\n")  # a worktree's .git is a file
    assert project_root(deep) == (tmp_path / "a" / "b").resolve()
    assert load_settings(deep).strict is False
    assert load_settings(tmp_path / "a").strict is True
    assert load_settings(tmp_path / "a", isolated=True).strict is False
    # The CLI: a warning fails under the configuration's `strict`, not with --isolated.
    _write(tmp_path / "a" / "w.ftsc", "phase 0 { thaw a }\nphase 1 { until epoch 3 }\n")
    monkeypatch.chdir(tmp_path / "a")
    assert main(["check", "w.ftsc"]) == 1
    assert main(["check", "--isolated", "w.ftsc"]) == 0
    capsys.readouterr()


def test_project_root_survives_unsearchable_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder the system refuses to search (EACCES; root cannot reproduce it, so simulated) is
    treated as holding nothing, not as an internal error."""
    real_exists = Path.exists

    def refusing(self: Path, *args: object, **kwargs: object) -> bool:
        if "locked" in self.parts:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_exists(self)

    (tmp_path / "locked" / "in").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    monkeypatch.setattr(Path, "exists", refusing)
    assert project_root(tmp_path / "locked" / "in") == tmp_path.resolve()


def test_config_model_only_for_the_projects_own_schedules(tmp_path: Path) -> None:
    """A configuration's model and manifests apply to schedules inside its project folder only."""
    _write(tmp_path / "proj" / "pyproject.toml", '[tool.ftsc]\nmodel = "pkg.mod:M"\n')
    (tmp_path / "proj" / ".git").mkdir()
    s = load_settings(tmp_path / "proj")
    assert s.model_for(str(tmp_path / "proj" / "x.ftsc"))[0] == "pkg.mod:M"
    assert s.model_for(str(tmp_path / "elsewhere" / "x.ftsc")) == (None, None, {})


# --------------------------------------------------------------------------------------------
# 3. Atomic writes, convert -o, fmt keeps BOM / line endings / suppressions
# --------------------------------------------------------------------------------------------

def _enospc(*_: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_failed_write_leaves_the_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Reproducer: `fmt` on a full disk left a truncated file. A write failing after part of the
    data (simulated at fsync) leaves the original whole and no temporary file behind."""
    original = "phase 0 {thaw a.b,/c/}\n" + "".join(f"phase {i} {{ thaw p{i} }}\n" for i in range(1, 500))
    path = _write(tmp_path / "big.ftsc", original)
    monkeypatch.setattr(ftsc.atomic.os, "fsync", _enospc)
    assert main(["fmt", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ftsc: error: cannot write") and "unchanged" in err
    assert path.read_text(encoding="utf-8") == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.ftsc"]
    out = tmp_path / "out.json"
    _write(out, "previous\n")
    assert main(["convert", str(path), "--to", "fts-yaml", "-o", str(out)]) == 2
    assert out.read_text(encoding="utf-8") == "previous\n"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_writes_keep_permissions_and_symlinks(tmp_path: Path) -> None:
    target = _write(tmp_path / "real.ftsc", "phase 0 {thaw a}\n")
    os.chmod(target, 0o640)
    link = tmp_path / "link.ftsc"
    link.symlink_to(target)
    assert main(["fmt", str(link)]) == 0
    assert link.is_symlink() and target.read_text(encoding="utf-8") == "phase 0 {\n    thaw a\n}\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="only root can give a file away")
def test_writes_keep_the_owner_where_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path / "theirs.ftsc", "phase 0 {thaw a}\n")
    os.chown(path, 1234, 4321)
    ftsc.atomic.atomic_write_text(path, "phase 0 {\n    thaw a\n}\n")
    assert (path.stat().st_uid, path.stat().st_gid) == (1234, 4321)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_writes_to_special_files_go_through(tmp_path: Path) -> None:
    """`-o` naming a FIFO or device writes into it; renaming over it would replace the node
    (as root, `-o /dev/null` would have replaced the device with a regular file)."""
    import threading

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    ftsc.atomic.atomic_write_bytes(fifo, b"through\n")
    reader.join(timeout=30)
    assert got == [b"through\n"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.slow
def test_output_to_dev_stdout_keeps_the_shells_file(tmp_path: Path) -> None:
    """`convert -o /dev/stdout > out.yaml`: /dev/stdout leads to out.yaml itself; it is written
    like stdout, not replaced by a renamed temporary file."""
    sched = _write(tmp_path / "s.ftsc", "phase 0 { thaw a }\n")
    out = tmp_path / "out.yaml"
    with open(out, "w") as f:
        f.write("before\n")
        f.flush()
        inode = os.fstat(f.fileno()).st_ino
        result = _run(["convert", str(sched), "--to", "fts-yaml", "-o", "/dev/stdout"], tmp_path, stdout=f.fileno())
    assert result.returncode == 0, result.stderr
    assert out.stat().st_ino == inode
    assert out.read_text(encoding="utf-8") == "before\n0:\n  params:\n  - a\n"


@pytest.mark.parametrize("spelling", ["same", "dot", "symlink"])
def test_convert_refuses_to_overwrite_its_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Reproducer: `convert a.ftsc --to fts-yaml -o a.ftsc` replaced the DSL (and its comments)."""
    text = "# keep me\nphase 0 { thaw a.b }\n"
    path = _write(tmp_path / "a.ftsc", text)
    monkeypatch.chdir(tmp_path)
    out = {"same": "a.ftsc", "dot": "./sub/../a.ftsc", "symlink": "alias.ftsc"}[spelling]
    (tmp_path / "sub").mkdir()
    if spelling == "symlink":
        (tmp_path / "alias.ftsc").symlink_to(path)
    assert main(["convert", "a.ftsc", "--to", "fts-yaml", "-o", out]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == text


def test_fmt_keeps_bom_and_line_endings(tmp_path: Path) -> None:
    """Reproducer: `fmt` dropped a BOM and rewrote CRLF as LF."""
    path = tmp_path / "w.ftsc"
    path.write_bytes(b"\xef\xbb\xbfphase 0 {thaw a.b,/c/ # head\r\n}\r\n")
    assert main(["fmt", str(path)]) == 0
    assert path.read_bytes() == b"\xef\xbb\xbfphase 0 {\r\n    thaw a.b\r\n    thaw /c/  # head\r\n}\r\n"
    assert main(["fmt", "--check", str(path)]) == 0  # and it is stable
    plain = _write(tmp_path / "p.ftsc", "phase 0 {thaw a}\n")
    assert main(["fmt", str(plain)]) == 0
    assert plain.read_bytes() == b"phase 0 {\n    thaw a\n}\n"


def _graph() -> ModelGraph:
    names = {f"enc.{i}.{w}": (4, 4) for i in range(3) for w in ("weight", "bias")}
    names |= {"head.weight": (4, 4), "head.bias": (4,)}
    return ModelGraph.from_names(names)


def _findings(text: str, graph: ModelGraph | None) -> Counter[tuple[str, str, str]]:
    diags = check_loaded(load_text(SourceFile("s.ftsc", text)), graph)
    return Counter((d.code, d.severity.value, d.message) for d in diags)


def _fmt(text: str) -> str:
    loaded = load_text(SourceFile("s.ftsc", text))
    assert loaded.schedule is not None
    return format_schedule(loaded.schedule, loaded.comments, loaded.source)


def test_fmt_keeps_a_suppression_on_the_selector_it_governs() -> None:
    """Reproducer: splitting `thaw a, b  # ftsc: ignore[...]` moved the suppression to `b`, so
    the finding on `a` came back (exit status 1) and the suppression was reported unused."""
    text = "phase 0 { thaw enc.0.weight }\nphase 1 { thaw enc.0.weight, head.weight  # ftsc: ignore[FTS203]\n}\n"
    assert "FTS203" in {code for code, _, _ in _findings(text.replace("# ftsc", "# no"), _graph())}
    formatted = _fmt(text)
    assert "thaw enc.0.weight, head.weight  # ftsc: ignore[FTS203]" in formatted
    assert _findings(formatted, _graph()) == _findings(text, _graph())
    assert _fmt(formatted) == formatted


_SELECTORS = ["enc.0.weight", "enc.0.bias", "enc.1.weight", "head.weight", "head.bias", "nothing.here",
              '"enc.2.bias"', "/enc\\.[0-9]\\.weight/", 'fts "enc.1"', 'glob "head.*"', "/head\\..*/", 'fts "enc"']


@st.composite
def _program(draw: st.DrawFn) -> str:
    """A schedule as statements (phases, reinits, sharding, comments), with random line breaks
    between (and inside) them."""
    stmts: list[str] = []
    if draw(st.booleans()):
        stmts += ["schedule {", f"max_depth = {draw(st.integers(-1, 3))}", "}"]
    indices = draw(st.lists(st.integers(0, 4), min_size=1, max_size=4))
    for index in indices:
        stmts.append(f"phase {index} {{")
        sels = draw(st.lists(st.sampled_from(_SELECTORS), max_size=3))
        if sels:
            sep = draw(st.sampled_from([", ", ",\n"]))
            stmts.append("thaw " + sep.join(sels))
        if draw(st.booleans()):
            stmts.append(f"lr = {draw(st.sampled_from(['0.1', '1e-3', '2.5']))}")
        if draw(st.booleans()):
            stmts.append(f"until epoch {draw(st.integers(0, 3))}")
        if draw(st.integers(0, 3)) == 0:
            stmts += ["reinit lr_scheduler torch.optim.lr_scheduler.StepLR(step_size = 1)", "{",
                      "use_current_optimizer_pg_lrs = true", "}"]
        if draw(st.integers(0, 4)) == 0:
            stmts.append("# a note\n")
        stmts.append("}")
    if draw(st.integers(0, 2)) == 0:
        stmts += ["fsdp {", "use_orig_params = true", f"wrap {draw(st.sampled_from(['enc.0', 'head', 'nothing']))}", "}"]
    text = stmts[0]
    for s in stmts[1:]:
        text += draw(st.sampled_from([" ", "\n"])) + s
    return text + "\n"


@pytest.mark.fuzzing
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(program=_program(), data=st.data())
def test_fmt_preserves_findings_under_suppressions(program: str, data: st.DataObject) -> None:
    """Property: with suppressions on any lines, `check` finds the same before and after `fmt`."""
    graph = _graph()
    loaded = load_text(SourceFile("s.ftsc", program))
    if loaded.schedule is None or any(d.severity.value == "error" and d.code.startswith("FTS1")
                                      for d in loaded.diagnostics):
        return
    diags = check_loaded(loaded, graph)
    lines = program.split("\n")
    by_line: dict[int, list[str]] = {}
    for d in diags:
        start = d.start()
        if start is not None and d.file is loaded.source:
            by_line.setdefault(start.line, []).append(d.code)
    chosen = data.draw(st.sets(st.sampled_from(sorted(by_line)))) if by_line else set()
    for line in sorted(chosen):
        codes = sorted(set(by_line[line]))
        pick = data.draw(st.lists(st.sampled_from(codes), min_size=1, unique=True))
        lines[line - 1] += "  # ftsc: ignore[" + ", ".join(pick) + "]"
    text = "\n".join(lines)
    formatted = _fmt(text)
    assert _findings(formatted, graph) == _findings(text, graph), (text, formatted)
    assert _fmt(formatted) == formatted


# --------------------------------------------------------------------------------------------
# 5. Only regular files, within a size limit
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="POSIX devices")
@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory", "too-large", "socket"])
def test_only_regular_files_are_read(tmp_path: Path, kind: str) -> None:
    """Reproducer: `ftsc check /dev/zero` read until memory ran out; a FIFO blocked forever."""
    import socket

    path = tmp_path / "x.ftsc"
    sock = None
    if kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "socket":
        path = tmp_path / "s.sock"
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
    else:
        with open(path, "wb") as f:
            f.truncate(17 << 20)  # sparse: 17 MiB over the 16 MiB limit
    try:
        result = _run(["check", str(path)], tmp_path, timeout=60)
    finally:
        if sock is not None:
            sock.close()
    assert result.returncode == 2
    assert result.stderr.startswith("ftsc: error:") and result.stderr.count("\n") == 1, result.stderr
    expected = {"directory": "is a directory", "too-large": "too large", "socket": ""}.get(kind, "not a regular file")
    assert expected in result.stderr  # a socket cannot even be opened (ENXIO): the system's words


# --------------------------------------------------------------------------------------------
# 6. Referenced files: inside the project only, else named and never quoted
# --------------------------------------------------------------------------------------------

_CONFIG = """\
trainer:
  callbacks:
  - class_path: finetuning_scheduler.FinetuningScheduler
    init_args:
      ft_schedule: {path}
"""


@pytest.mark.parametrize("path", ["/proc/self/environ", "../../../../../../../../etc/passwd", "link.yaml"])
def test_referenced_files_outside_the_project_are_named_not_quoted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], path: str) -> None:
    """Reproducer: `ft_schedule: /proc/self/environ` printed environment variables; `../../etc/passwd`
    printed its first line. Property: nothing of a file outside the project reaches the output."""
    if path.startswith("/proc") and not Path(path).exists():
        pytest.skip("no procfs")
    secret = "ftsc-test-secret-31337"
    monkeypatch.setenv("FTSC_TEST_TOKEN", secret)
    outside = _write(tmp_path / "outside" / "s.yaml", f"0:\n  params: [{secret}]\n  bogus: {secret}\n")
    proj = tmp_path / "proj"
    (proj / ".git").mkdir(parents=True)
    (proj / "link.yaml").symlink_to(outside)
    _write(proj / "config.yaml", _CONFIG.format(path=path))
    monkeypatch.chdir(proj)
    for fmt in ("text", "json", "sarif", "github"):
        status = main(["check", "--format", fmt, "config.yaml"])
        out, err = capsys.readouterr()
        assert secret not in out + err and "root:" not in out + err
        assert status == 0
        assert "FTS105" in out and "not read" in out
    # The control: the same schedule inside the project is read and checked.
    _write(proj / "inside.yaml", outside.read_text(encoding="utf-8"))
    _write(proj / "config.yaml", _CONFIG.format(path="inside.yaml"))
    main(["check", "config.yaml"])
    assert "FTS103" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# 7. Wrong input: coded diagnostics or `ftsc: error:`, never an internal error
# --------------------------------------------------------------------------------------------

_TAGGED = ["!!bool abc", "!!int ''", "!!timestamp abc", "!!float x", "!!python/object/apply:os.system ['echo hi']",
           "!!python/name:os.system", "!!python/object/new:os.system {a: 1}", "!foo bar", "!!str {a: 1}",
           "!!map [1]", "!!seq {a: 1}", "!!set [a]", "!!omap [1]", "!!pairs 3", "!!merge a", "!!binary [1]"]


@pytest.mark.parametrize("value", _TAGGED)
@pytest.mark.parametrize("where", ["lr", "params"])
def test_yaml_tags_fts_refuses_are_fts001(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str,
                                          where: str) -> None:
    """Reproducer: `lr: !!bool abc` & co. were internal errors; `params: !!python/object/apply:...`
    was read as a string. FTS's safe loader refuses each of these (oracle: PyYAML's SafeLoader)."""
    import yaml

    text = f"0:\n  params: [a]\n  lr: {value}\n" if where == "lr" else f"0:\n  params: {value}\n"
    with pytest.raises((yaml.YAMLError, ValueError, KeyError, IndexError, AttributeError)):
        yaml.safe_load(text)  # FinetuningScheduler would not load this schedule either
    path = _write(tmp_path / "s.yaml", text)
    assert main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "error[FTS001]" in out and "internal error" not in out + err


def test_tags_the_safe_loader_accepts_still_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Standard tags on the right kind of node are values, as for FTS."""
    path = _write(tmp_path / "s.yaml", "0:\n  params: !!seq [!!str a]\n  lr: !!float 1e-3\n"
                                        "  max_transition_epoch: !!int 3\n")
    assert main(["check", str(path)]) == 0, capsys.readouterr().out


def test_long_schedule_name_is_fts105(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Reproducer: `ft_schedule:` with a 300-character name was FTS901."""
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "c.yaml", _CONFIG.format(path="a" * 300 + ".yaml"))
    assert main(["check", "c.yaml"]) == 0
    out, err = capsys.readouterr()
    assert "FTS105" in out and "cannot be opened" in out and "FTS901" not in out + err


_MANIFEST = {"format": "ftsc-manifest", "version": 1, "modules": [{"name": "", "class": "Net"}, {"name": "fc",
             "class": "Net"}], "parameters": [{"name": "fc.weight", "shape": [2, 2]}]}


@pytest.mark.parametrize("calls", [[{}], [{"kind": "fsdp_wrap"}], [{"kind": "fsdp_wrap", "module": 3}],
                                   [{"kind": "fully_shard", "modules": "fc"}], [{"kind": "fully_shard", "modules": []}],
                                   [{"kind": "fully_shard", "modules": [None]}], [{"kind": "fsdp_wrap", "module": "x"}],
                                   [{"kind": "wrap", "module": "fc"}], [{"kind": ["fsdp_wrap"]}]])
def test_malformed_manifest_calls_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   calls: list[object]) -> None:
    import json

    manifest = _write(tmp_path / "m.json", json.dumps({**_MANIFEST, "calls": calls}))
    sched = _write(tmp_path / "s.ftsc", "phase 0 { thaw fc.weight }\nfsdp2 { shard fc }\n")
    assert main(["check", str(sched), "--manifest", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ftsc: error:") and "calls[0]" in err and "internal" not in err


_HOSTILE_MODELS = textwrap.dedent("""\
    import torch
    from torch import nn

    class RaisingParameters(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
        def named_parameters(self, *args, **kwargs):
            raise RuntimeError("named_parameters exploded")

    class NoSuperInit(nn.Module):
        def __init__(self):
            self.width = 2

    class Lazy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.LazyLinear(4)

    class ExitingModules(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
        def named_modules(self, *args, **kwargs):
            raise SystemExit(3)

    class IntNames(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
        def named_parameters(self, *args, **kwargs):
            yield (3, self.fc.weight)

    class OrphanParameter(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
        def named_parameters(self, *args, **kwargs):
            yield ("ghost.weight", self.fc.weight)
    """)


@pytest.mark.torch
@pytest.mark.parametrize(("name", "expected"), [("RaisingParameters", "named_parameters exploded"),
                                                ("NoSuperInit", "super().__init__()"), ("Lazy", "LazyLinear"),
                                                ("ExitingModules", "SystemExit"),
                                                ("IntNames", "`name` must be a string"),
                                                ("OrphanParameter", "has no module 'ghost'")])
def test_unbuildable_models_are_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str], name: str, expected: str) -> None:
    monkeypatch.chdir(tmp_path)  # any structure cache lands here, not in the checkout
    models = _write(tmp_path / "hostile_models.py", _HOSTILE_MODELS)
    sched = _write(tmp_path / "s.ftsc", "phase 0 { thaw fc.weight }\n")
    assert main(["check", str(sched), "--model", f"{models}:{name}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ftsc: error:") and expected in err and "internal error" not in err


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["rule", "--all"], ["check", "{sched}"], ["check", "--format", "json", "{sched}"]])
def test_stdout_on_a_full_device(tmp_path: Path, args: list[str]) -> None:
    """Reproducer: output to a full device was an internal error."""
    sched = _write(tmp_path / "s.ftsc", "phase 1 { thaw a }\n")
    with open("/dev/full", "w") as full:
        result = _run([a.format(sched=sched) for a in args], tmp_path, stdout=full.fileno())
    assert result.returncode == 2
    assert result.stderr == "ftsc: error: no space left on device (writing the output)\n"


# --------------------------------------------------------------------------------------------
# 8. SECURITY.md
# --------------------------------------------------------------------------------------------

def test_security_md_names_what_runs() -> None:
    text = (REPO / "SECURITY.md").read_text(encoding="utf-8")
    for needle in ("--model", "[tool.ftsc]", "--isolated", ".git", "pickle", "ft_schedule", "class_path"):
        assert needle in text, needle


def test_isolated_explain_ignores_the_configured_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`explain --isolated` reads no `[tool.ftsc]`: the manifest the configuration names is not used."""
    example = Path(__file__).resolve().parent.parent / "examples" / "explain"
    (tmp_path / ".git").mkdir()
    _write(tmp_path / "m.json", (example / "manifest.json").read_text())
    _write(tmp_path / "s.ftsc", (example / "schedule.ftsc").read_text())
    _write(tmp_path / "pyproject.toml", '[tool.ftsc]\nmanifest = "m.json"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "s.ftsc", "--format", "json"]) == 0
    units = json.loads(capsys.readouterr().out)["units"]
    assert units
    assert main(["explain", "s.ftsc", "--isolated", "--format", "json"]) == 2
    assert "model" in capsys.readouterr().err
