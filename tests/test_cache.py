"""The `--model` structure cache (ftsc.model.cache): hits without torch, misses on every key input.

The oracle for "hit or miss" is torch itself: every run after the first goes with a `torch`
package that raises ImportError first on PYTHONPATH. A hit answers (exit 0, same output as a
fresh build); a miss has to build, and fails with "--model needs torch" (exit 2). Then an
unblocked run rebuilds, and its output shows the change.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from ftsc.model import cache as model_cache

REPO = Path(__file__).resolve().parent.parent

NET = textwrap.dedent('''\
    import json
    from pathlib import Path

    import torch
    from helpers import WIDTH


    class Net(torch.nn.Module):
        def __init__(self, depth: int = 2) -> None:
            super().__init__()
            extra = json.loads(Path(__file__).with_name("shape.json").read_text())["extra"]
            try:
                extra += json.loads(Path(__file__).with_name("extra.json").read_text())["extra"]
            except FileNotFoundError:
                pass
            self.layers = torch.nn.ModuleList(torch.nn.Linear(WIDTH, WIDTH + extra) for _ in range(depth))
''')

SCHEDULE = "phase 0 {\n    thaw layers.0.weight\n}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git project with a model file, a helper module it imports and a JSON file it reads."""
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "net.py").write_text(NET)
    (root / "helpers.py").write_text("WIDTH = 4\n")
    (root / "shape.json").write_text('{"extra": 0}\n')
    (root / "s.ftsc").write_text(SCHEDULE)
    # Bytecode up to date before the first build: imports then read no source, so the module files
    # must come from `sys.modules`, not from the `open` audit hook.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root)], check=True)
    blocker = tmp_path / "block" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    return root


def ftsc(root: Path, *args: str, blocked: bool = False, path: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`python -m ftsc ARGS` in `root`; `blocked` puts the raising torch first on PYTHONPATH."""
    entries = [str(root.parent / "block")] if blocked else []
    entries += [*path, str(REPO)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(entries), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "ftsc", *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def manifest(root: Path, *extra: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return ftsc(root, "manifest", "--model", "net.py:Net", *extra, **kw)  # type: ignore[arg-type]


def shapes(proc: subprocess.CompletedProcess[str]) -> list[list[int]]:
    assert proc.returncode == 0, proc.stderr
    return [p["shape"] for p in json.loads(proc.stdout)["parameters"]]


def assert_miss(proc: subprocess.CompletedProcess[str]) -> None:
    """With torch blocked, a miss must build and so fails for want of torch."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "--model needs torch" in proc.stderr, proc.stderr


def test_hit_needs_no_torch_and_equals_a_fresh_build(project: Path) -> None:
    first = manifest(project)
    assert shapes(first) == [[4, 4], [4], [4, 4], [4]]
    hit = manifest(project, blocked=True)
    assert hit.returncode == 0, hit.stderr
    fresh = manifest(project, "--no-cache")
    assert hit.stdout == first.stdout == fresh.stdout
    # --no-cache really skips the cache: blocked, it has to build.
    assert_miss(manifest(project, "--no-cache", blocked=True))
    folder = project / ".ftsc_cache"
    assert (folder / ".gitignore").read_text().splitlines()[-1] == "*"
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=project,
                            capture_output=True, text=True, check=True).stdout
    assert ".ftsc_cache" not in status and "net.py" in status
    entries = list((folder / "models").iterdir())
    assert len(entries) == 1
    entry = model_cache.read_entry(entries[0])
    assert entry is not None
    recorded = {Path(p).name for p in entry.files}
    assert {"net.py", "helpers.py", "shape.json"} <= recorded, recorded
    assert not any("site-packages" in p for p in entry.files)
    assert {"torch"} <= set(entry.dists)
    assert set(entry.modules) == {"helpers", "net"}, entry.modules  # the project's modules, nothing installed


def _edit_model(root: Path) -> tuple[str, ...]:
    (root / "net.py").write_text(NET.replace("for _ in range(depth))", "for _ in range(depth))\n"
                                             "        self.head = torch.nn.Linear(WIDTH, 1)"))
    return ()


def _edit_helper(root: Path) -> tuple[str, ...]:
    (root / "helpers.py").write_text("WIDTH = 6\n")
    return ()


def _edit_data(root: Path) -> tuple[str, ...]:
    (root / "shape.json").write_text('{"extra": 1}\n')
    return ()


def _optional_file_appears(root: Path) -> tuple[str, ...]:
    """The model reads `extra.json` when it exists; at the first build it did not."""
    (root / "extra.json").write_text('{"extra": 2}\n')
    return ()


def _kwargs(root: Path) -> tuple[str, ...]:
    return ("--model-kwargs", '{"depth": 3}')


CHANGES: dict[str, Callable[[Path], tuple[str, ...]]] = {
    "model file": _edit_model,
    "imported helper": _edit_helper,
    "file read while building": _edit_data,
    "file missing at the first build appears": _optional_file_appears,
    "kwargs": _kwargs,
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_each_key_input_misses(project: Path, change: str) -> None:
    before = shapes(manifest(project))
    assert manifest(project, blocked=True).returncode == 0
    extra = CHANGES[change](project)
    assert_miss(manifest(project, *extra, blocked=True))
    after = shapes(manifest(project, *extra))
    assert after != before
    assert shapes(manifest(project, *extra, blocked=True)) == after  # filled again: a hit


def _fake_dist(folder: Path, version: str) -> Path:
    """A distribution `fakedep` installed by hand: the package and its .dist-info."""
    (folder / "fakedep").mkdir(parents=True, exist_ok=True)
    (folder / "fakedep" / "__init__.py").write_text("SIZE = 3\n")
    info = folder / "fakedep-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakedep\nVersion: {version}\n\nA fake.\n")
    (info / "top_level.txt").write_text("fakedep\n")
    (info / "RECORD").write_text("fakedep/__init__.py,,\nfakedep-1.0.dist-info/METADATA,,\n")
    return folder


def test_package_version_misses(project: Path, tmp_path: Path) -> None:
    """A distribution the model imports changes version (its METADATA edited in place, so its
    folder's modification time stays): the entry is stale."""
    site = _fake_dist(tmp_path / "fake_site", "1.0")
    (project / "net.py").write_text(NET.replace("from helpers import WIDTH", "from helpers import WIDTH\nimport fakedep"))
    path = (str(site),)
    first = manifest(project, path=path)
    assert first.returncode == 0, first.stderr
    entry = model_cache.read_entry(next((project / ".ftsc_cache" / "models").iterdir()))
    assert entry is not None and entry.dists["fakedep"][0] == "1.0"
    assert manifest(project, path=path, blocked=True).returncode == 0
    metadata = site / "fakedep-1.0.dist-info" / "METADATA"
    mtime = os.stat(site).st_mtime_ns
    with open(metadata, "w") as f:  # in place: the folder's mtime does not change
        f.write("Metadata-Version: 2.1\nName: fakedep\nVersion: 2.0\n\nA fake.\n")
    assert os.stat(site).st_mtime_ns == mtime
    assert_miss(manifest(project, path=path, blocked=True))
    assert manifest(project, path=path).returncode == 0
    assert manifest(project, path=path, blocked=True).returncode == 0


def test_install_into_a_package_folder_misses(project: Path, tmp_path: Path) -> None:
    """Installing another distribution next to one the model imports changes that folder: stale."""
    site = _fake_dist(tmp_path / "fake_site", "1.0")
    (project / "net.py").write_text(NET.replace("from helpers import WIDTH", "from helpers import WIDTH\nimport fakedep"))
    path = (str(site),)
    assert manifest(project, path=path).returncode == 0
    assert manifest(project, path=path, blocked=True).returncode == 0
    (site / "other-1.0.dist-info").mkdir()
    assert_miss(manifest(project, path=path, blocked=True))


def test_shadowing_module_misses(project: Path, tmp_path: Path) -> None:
    """A helper imported from a later sys.path folder is shadowed by a new file in an earlier one."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (project / "helpers.py").rename(lib / "helpers.py")
    path = (str(lib),)
    assert shapes(manifest(project, path=path)) == [[4, 4], [4], [4, 4], [4]]
    assert manifest(project, path=path, blocked=True).returncode == 0
    (project / "helpers.py").write_text("WIDTH = 5\n")  # the model's folder comes first on sys.path
    assert_miss(manifest(project, path=path, blocked=True))
    assert shapes(manifest(project, path=path))[0] == [5, 5]


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "garbage", "valid checksum, bad manifest"])
def test_corrupt_entry_is_rebuilt(project: Path, damage: str) -> None:
    first = manifest(project)
    assert first.returncode == 0, first.stderr
    path = next((project / ".ftsc_cache" / "models").iterdir())
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped byte":
        i = data.index(b'"shape":[4,4]') + len(b'"shape":[')
        path.write_bytes(data[:i] + b"5" + data[i + 1:])
    elif damage == "garbage":
        path.write_bytes(b"\x00\xff not an entry")
    else:
        entry = model_cache.decode(data)
        bad = model_cache.Entry(key=entry.key, files=entry.files, modules=entry.modules, dists=entry.dists,
                                folders=entry.folders, manifest={"format": "ftsc-manifest", "version": 1})
        path.write_bytes(bad.encode())
    assert_miss(manifest(project, blocked=True))  # not trusted: it has to build
    again = manifest(project)
    assert again.returncode == 0 and again.stdout == first.stdout
    assert manifest(project, blocked=True).stdout == first.stdout


def test_concurrent_cold_runs_agree(project: Path) -> None:
    """Four runs at once on an empty cache (pre-commit runs hooks in parallel): all succeed with the
    output of a build without the cache; the entry left behind is whole; no temporary files remain."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen([sys.executable, "-m", "ftsc", "manifest", "--model", "net.py:Net"], cwd=project,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outs]
    fresh = manifest(project, "--no-cache").stdout
    assert {out for out, _ in outs} == {fresh}
    files = sorted((project / ".ftsc_cache" / "models").iterdir())
    assert len(files) == 1, files
    assert model_cache.read_entry(files[0]) is not None
    assert manifest(project, blocked=True).stdout == fresh


READER = textwrap.dedent('''\
    import sys, time
    from pathlib import Path
    from ftsc.model import cache
    path, stop = Path(sys.argv[1]), Path(sys.argv[2])
    seen, corrupt, reads = set(), 0, 0
    while not stop.exists() or reads < 50:
        try:
            entry = cache.read_entry(path)
        except cache.CorruptEntry:
            corrupt += 1
            continue
        reads += 1
        if entry is not None:
            seen.add(len(entry.manifest["modules"]))
    print(corrupt, reads, sorted(seen))
''')

WRITER = textwrap.dedent('''\
    import sys
    from pathlib import Path
    from ftsc.model import cache
    path, stop = Path(sys.argv[1]), Path(sys.argv[2])
    for i in range(300):
        n = 1 + (i % 2) * 20000  # a small and a large entry, alternately
        doc = {"format": "ftsc-manifest", "version": 1, "modules": [{"name": f"m{j}", "class": "C"} for j in range(n)]}
        entry = cache.Entry(key={"i": i}, files={}, modules={}, dists={}, folders={}, manifest=doc)
        cache.write_entry(path, entry)
    stop.write_text("done")
''')


def test_readers_never_see_a_half_written_entry(tmp_path: Path) -> None:
    """Two readers poll an entry that a writer replaces 300 times (small and ~1 MB bodies): every
    read is a whole entry (a non-atomic write shows up as checksum failures here)."""
    path = tmp_path / "cache" / "models" / "e.json"
    stop = tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    (tmp_path / "reader.py").write_text(READER)
    (tmp_path / "writer.py").write_text(WRITER)
    readers = [subprocess.Popen([sys.executable, str(tmp_path / "reader.py"), str(path), str(stop)], env=env,
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    writer = subprocess.run([sys.executable, str(tmp_path / "writer.py"), str(path), str(stop)], env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert writer.returncode == 0, writer.stderr
    for reader in readers:
        out, _ = reader.communicate(timeout=600)
        corrupt, reads, seen = out.split(" ", 2)
        assert int(corrupt) == 0, out
        assert int(reads) >= 50 and seen.strip() != "[]", out
    assert (path.parent.parent / ".gitignore").read_text().splitlines()[-1] == "*"
    assert not [p for p in path.parent.iterdir() if p.name != "e.json"]  # no temporary files left


def test_precommit_config_model_checks_a_changed_schedule_without_torch(project: Path) -> None:
    """`model = "..."` in [tool.ftsc]: after one run, a changed schedule is checked against the
    unchanged model with torch blocked (FTS202 needs the model's parameter names)."""
    (project / "pyproject.toml").write_text('[tool.ftsc]\nmodel = "net.py:Net"\nfiles = ["s.ftsc"]\n')
    hook = ("check", "--skip-unrecognized", "s.ftsc")  # the entry of .pre-commit-hooks.yaml, with the file
    first = ftsc(project, *hook)
    assert first.returncode == 0, first.stdout + first.stderr
    (project / "s.ftsc").write_text("phase 0 {\n    thaw layers.9.weight\n}\n")
    second = ftsc(project, *hook, "--format", "json", blocked=True)
    assert second.returncode == 1, second.stdout + second.stderr
    codes = [d["code"] for d in json.loads(second.stdout)["diagnostics"]]
    assert "FTS202" in codes, codes
    assert "torch" not in second.stderr


def test_cache_dir_setting_and_no_cache(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.ftsc]\ncache-dir = "build/ftsc-cache"\n')
    assert manifest(project, "--no-cache").returncode == 0
    assert not (project / "build").exists() and not (project / ".ftsc_cache").exists()
    assert manifest(project).returncode == 0
    assert not (project / ".ftsc_cache").exists()
    assert len(list((project / "build" / "ftsc-cache" / "models").iterdir())) == 1
    assert (project / "build" / "ftsc-cache" / ".gitignore").is_file()
    assert manifest(project, blocked=True).returncode == 0
    shutil.rmtree(project / "build")
    assert_miss(manifest(project, blocked=True))


def test_cache_folder_is_at_the_project_root(project: Path) -> None:
    sub = project / "sub"
    sub.mkdir()
    assert model_cache.default_folder(None, sub) == project.resolve() / ".ftsc_cache"
    assert model_cache.default_folder(str(project / "x"), sub) == project / "x"


def test_ftsc_and_manifest_format_versions_are_in_the_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A new ftsc or manifest format names another entry, so old entries are never read."""
    def entry() -> Path:
        return model_cache.entry_path(tmp_path, model_cache.static_key("net.py:Net", {"depth": 2}))

    base = entry()
    assert entry() == base
    monkeypatch.setattr(model_cache.manifest_format, "VERSION", model_cache.manifest_format.VERSION + 1)
    assert entry() != base
    monkeypatch.undo()
    monkeypatch.setattr(model_cache, "__version__", "999.0")
    assert entry() != base
    monkeypatch.undo()
    assert model_cache.entry_path(tmp_path, model_cache.static_key("net.py:Net", {"depth": 3})) != base
