"""Fuzzing for issue 13's inputs: YAML tags, manifests with wrong types, hostile file kinds.

Seeded generators (also used by `tests/fuzz_campaign_safety.py`, the ≥100k-input campaign run
by hand) and a small in-suite run of each (seconds). The property everywhere: wrong input gives
diagnostics with codes (exit 0/1) or one `ftsc: error:` line (exit 2), never an internal error
(FTS901), an exception or a hang.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftsc.check import check_loaded
from ftsc.cli import main
from ftsc.frontend import load_text
from ftsc.model.graph import ModelGraph
from ftsc.model.manifest import ManifestError, from_json
from ftsc.source import SourceFile

pytestmark = pytest.mark.fuzzing

# --------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------

TAGS = ["!!str", "!!int", "!!float", "!!bool", "!!null", "!!binary", "!!timestamp", "!!seq", "!!map", "!!set",
        "!!omap", "!!pairs", "!!merge", "!!value", "!!yaml", "!!python/object/apply:os.system",
        "!!python/name:os.getcwd", "!!python/object/new:dict", "!!python/tuple", "!!python/str", "!!python/bytes",
        "!!python/module:os", "!!python/object:collections.OrderedDict", "!foo", "!", "!<tag:x.org,1:y>",
        "!<tag:yaml.org,2002:int>", "!!int:x", "!<!>"]
SCALARS = ["", "''", '""', "abc", "0", "1", "-1", "0x_", "0x1F", "0o8", "0b102", "1_000", "1e999", "-.inf", ".nan",
           "1.5", "3e-4", "yes", "No", "on", "~", "null", "true", "2001-12-14", "2001-13-45", "2001-12-14t21:59:43.10-05:00",
           "12:30:00", "190:20:30", "aGVsbG8=", "%%%", "model.layers.0.weight", "model.*", "a" * 80, "'quoted: x'",
           '"esc\\u00e9"', "[", "?", "-", "&a", "*a", "!", "|"]
KEYS = ["0", "1", "2", "-1", "'1'", "params", "lr", "max_transition_epoch", "new_optimizer", "new_lr_scheduler",
        "optimizer_init", "lr_scheduler_init", "class_path", "init_args", "trainer", "callbacks", "strategy",
        "ft_schedule", "max_depth", "strategy_adapter_cfg", "fsdp_plan", "awp_overrides", "<<", "bogus"]


def _tag(rng: random.Random, p: float = 0.12) -> str:
    return rng.choice(TAGS) + " " if rng.random() < p else ""


def _flow(rng: random.Random, depth: int) -> str:
    """A flow-style YAML value, tags sprinkled in."""
    roll = rng.random()
    if depth > 2 or roll < 0.55:
        return _tag(rng) + rng.choice(SCALARS[:34])
    if roll < 0.8:
        return _tag(rng) + "[" + ", ".join(_flow(rng, depth + 1) for _ in range(rng.randint(0, 3))) + "]"
    items = ", ".join(f"{rng.choice(KEYS)}: {_flow(rng, depth + 1)}" for _ in range(rng.randint(0, 3)))
    return _tag(rng) + "{" + items + "}"


def yaml_schedule(rng: random.Random) -> str:
    """An FTS schedule with tags on keys, values and collections."""
    lines: list[str] = []
    for phase in range(rng.randint(1, 3)):
        lines.append(f"{_tag(rng, 0.15)}{rng.choice([str(phase), str(phase), repr(str(phase)), rng.choice(KEYS)])}:"
                     + (f" {_tag(rng, 0.5).strip()}" if rng.random() < 0.1 else ""))
        for key in rng.sample(["params", "lr", "max_transition_epoch", "new_optimizer", "bogus"], rng.randint(1, 4)):
            if key == "params" and rng.random() < 0.6:
                lines.append(f"  {key}: {_tag(rng, 0.2)}")
                lines.extend(f"  - {_tag(rng, 0.3)}{rng.choice(SCALARS)}" for _ in range(rng.randint(0, 3)))
            elif key == "new_optimizer" and rng.random() < 0.7:
                lines.append(f"  {key}:")
                lines.append(f"    optimizer_init: {_tag(rng, 0.2)}")
                lines.append(f"      class_path: {_tag(rng, 0.3)}{rng.choice(['torch.optim.SGD', 'os.system', ''])}")
                lines.append(f"      init_args: {_flow(rng, 1)}")
            else:
                lines.append(f"  {_tag(rng, 0.1)}{key}: {_flow(rng, 0)}")
    return "\n".join(lines) + "\n"


def yaml_config(rng: random.Random, schedule_ref: str | None = None) -> str:
    """A LightningCLI config whose callback and strategy carry tags."""
    ft = schedule_ref if schedule_ref is not None else _flow(rng, 0)
    strategy = rng.choice(["FSDPStrategy", "ModelParallelStrategy", "ddp"])
    return (f"trainer:\n  max_epochs: {_tag(rng, 0.3)}{rng.choice(SCALARS[:20])}\n  callbacks:\n"
            f"  - class_path: {_tag(rng, 0.2)}finetuning_scheduler.FinetuningScheduler\n"
            f"    init_args: {_tag(rng, 0.1)}\n      ft_schedule: {ft}\n      max_depth: {_flow(rng, 1)}\n"
            f"      strategy_adapter_cfg: {_flow(rng, 1)}\n"
            f"  strategy:\n    class_path: lightning.pytorch.strategies.{strategy}\n"
            f"    init_args: {_flow(rng, 1)}\n")


def _junk(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 2 or roll < 0.6:
        return rng.choice([None, True, False, 0, -1, 1, 2**70, 1.5, float("inf"), "", "x", "fc", "fc.weight", "Net",
                           "fsdp_wrap", "fully_shard", "float16", [], {}])
    if roll < 0.8:
        return [_junk(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["name", "class", "kind", "module", "modules", "shape", "dtype", "aliases", "x"]):
            _junk(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def manifest_doc(rng: random.Random) -> dict[str, object]:
    """A valid small manifest, then 0-3 mutations to wrong types, missing fields or bad calls."""
    layers = rng.randint(1, 3)
    modules: list[dict[str, object]] = [{"name": "", "class": "Net"}, {"name": "layers", "class": "ModuleList"}]
    params: list[dict[str, object]] = []
    for i in range(layers):
        modules.append({"name": f"layers.{i}", "class": "Block"})
        params += [{"name": f"layers.{i}.weight", "shape": [4, 4]}, {"name": f"layers.{i}.bias", "shape": [4]}]
    modules.append({"name": "head", "class": "Linear"})
    params.append({"name": "head.weight", "shape": [2, 4], "aliases": []})
    doc: dict[str, object] = {
        "format": "ftsc-manifest", "version": 1, "target": "m:Net",
        "classes": {"Net": ["torch.nn.modules.module.Module"], "Block": ["torch.nn.modules.module.Module"],
                    "ModuleList": ["torch.nn.modules.container.ModuleList", "torch.nn.modules.module.Module"],
                    "Linear": ["torch.nn.modules.linear.Linear", "torch.nn.modules.module.Module"]},
        "modules": modules, "parameters": params,
        "buffers": [{"name": "layers.0.running", "shape": [4], "persistent": True}],
        "calls": rng.choice([[], [{"kind": "fsdp_wrap", "module": "layers.0"}],
                             [{"kind": "fully_shard", "modules": ["layers.0"]}, {"kind": "fully_shard", "modules": [""]}]]),
    }
    for _ in range(rng.randint(0, 3)):
        roll = rng.random()
        if roll < 0.15:
            doc[rng.choice(list(doc))] = _junk(rng)
        elif roll < 0.25:
            doc.pop(rng.choice(list(doc)), None)
        else:
            key = rng.choice(["modules", "parameters", "buffers", "calls", "classes"])
            section = doc.get(key)
            if isinstance(section, list):
                if section and rng.random() < 0.7:
                    entry = rng.choice(section)
                    if isinstance(entry, dict):
                        entry[rng.choice(["name", "class", "kind", "module", "modules", "shape", "dtype", "aliases",
                                          "requires_grad", "persistent"])] = _junk(rng)
                    else:
                        section[section.index(entry)] = _junk(rng)
                else:
                    section.append(_junk(rng) if rng.random() < 0.5 else
                                   {"kind": rng.choice(["fsdp_wrap", "fully_shard", "x", 3]), "module": _junk(rng),
                                    "modules": _junk(rng)})
            elif isinstance(section, dict) and section:
                section[rng.choice(list(section))] = _junk(rng)
    return doc


MANIFEST_SCHEDULES = [
    "phase 0 { thaw head.weight } phase 1 { thaw /layers\\..*/ }\n",
    "phase 0 { thaw head.weight } phase 1 { thaw /layers\\..*/ }\nfsdp { wrap layers.0 }\n",
    "phase 0 { thaw head.weight } phase 1 { thaw /layers\\..*/ }\nfsdp2 { shard layers.0 shard head }\n",
    "phase 0 { thaw head.weight } phase 1 { thaw layers.0.weight }\nfsdp { auto_wrap_policy = [\"Block\"] }\n",
]


_TOML_VALUES = ['""', '"a\\u0000b"', '"/dev/zero"', '"s.ftsc"', '"m.json"', '"x.py:M"', '"pkg.mod:"', "1", "true",
                "1.5", "[]", '["s.ftsc"]', '["/dev/zero", 3]', "{}", '{a = "b"}', '{"*.ftsc" = 3}', '"' + "a" * 300 + '"',
                '"../../../etc/passwd"', '"FTS2"', '"json"', '"nope"']
_TOML_KEYS = ["select", "ignore", "strict", "format", "files", "model", "model_kwargs", "manifest", "manifests",
              "cache-dir", "bogus"]


def pyproject_text(rng: random.Random) -> str:
    """A `[tool.ftsc]` table with keys of the wrong types, odd paths, or not TOML at all."""
    if rng.random() < 0.1:
        return rng.choice(["[tool.ftsc", "[tool]\nftsc = 3\n", "[tool.ftsc]\nfiles = [\n", "\x00", "[tool.ftsc]\n= 1"])
    keys = rng.sample(_TOML_KEYS, rng.randint(0, 4))
    return "[tool.ftsc]\n" + "".join(f"{k} = {rng.choice(_TOML_VALUES)}\n" for k in keys if k != "model")


@dataclass(frozen=True)
class Outcome:
    """One run: what was run and whether it broke the property (with why)."""

    label: str
    problem: str | None


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """`ftsc ARGV` in-process, output captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def judge(label: str, status: int, out: str, err: str) -> Outcome:
    """The property: exit 0/1 with coded diagnostics, or exit 2 with one `ftsc: error:` line."""
    text = out + err
    if "FTS901" in text or "internal error" in text or "Traceback" in text:
        return Outcome(label, f"internal error: {text[-600:]}")
    if status not in (0, 1, 2):
        return Outcome(label, f"exit status {status}")
    if status == 2 and not (err.startswith("ftsc: error:") and err.count("\n") == 1):
        return Outcome(label, f"exit 2 without one `ftsc: error:` line: {err[-400:]!r}")
    return Outcome(label, None)


def check_text_input(label: str, text: str, path: str, graph: ModelGraph | None = None) -> Outcome:
    """Load and check `text` in-process (the fast path of the campaign)."""
    try:
        diags = check_loaded(load_text(SourceFile(path, text)), graph)
    except Exception as err:  # noqa: BLE001 - the property under test: nothing escapes
        return Outcome(label, f"{type(err).__name__}: {err}")
    bad = [d for d in diags if d.code == "FTS901"]
    return Outcome(label, f"FTS901: {bad[0].message}") if bad else Outcome(label, None)


def check_manifest_doc(label: str, doc: dict[str, object]) -> Outcome:
    """`from_json` accepts or raises ManifestError; an accepted manifest checks without FTS901."""
    try:
        manifest = from_json(json.loads(json.dumps(doc)))
    except ManifestError:
        return Outcome(label, None)
    except Exception as err:  # noqa: BLE001
        return Outcome(label, f"from_json: {type(err).__name__}: {err}")
    try:
        graph = ModelGraph(manifest)
    except Exception as err:  # noqa: BLE001
        return Outcome(label, f"ModelGraph: {type(err).__name__}: {err}")
    for text in MANIFEST_SCHEDULES:
        outcome = check_text_input(label, text, "s.ftsc", graph)
        if outcome.problem:
            return outcome
    return Outcome(label, None)


# Hostile file kinds: (name, maker) where maker(folder) -> path to pass on the command line.
def _fifo(folder: Path) -> str:
    path = folder / "fifo.ftsc"
    if not path.exists():
        os.mkfifo(path)
    return str(path)


def _socket(folder: Path) -> str:
    path = folder / "sock.yaml"
    if not path.exists():
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()  # the socket file stays; nobody listens
    return str(path)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _symlink(path: Path, target: str) -> str:
    if not path.is_symlink():
        path.symlink_to(target)
    return str(path)


def _sparse(folder: Path) -> str:
    path = folder / "huge.ftsc"
    with open(path, "wb") as f:
        f.truncate(17 << 20)
    return str(path)


HOSTILE: dict[str, Callable[[Path], str]] = {
    "dev-zero": lambda d: "/dev/zero",
    "dev-null": lambda d: "/dev/null",
    "dev-urandom": lambda d: "/dev/urandom",
    "proc-environ": lambda d: "/proc/self/environ",
    "proc-maps": lambda d: "/proc/self/maps",
    "fifo": _fifo,
    "socket": _socket,
    "directory": lambda d: str(d),
    "missing": lambda d: str(d / "missing.ftsc"),
    "name-too-long": lambda d: str(d / ("a" * 300 + ".ftsc")),
    "component-not-dir": lambda d: _write(d / "plain", b"x") + "/x.ftsc",
    "symlink-loop": lambda d: _symlink(d / "loop.ftsc", str(d / "loop.ftsc")),
    "dangling-symlink": lambda d: _symlink(d / "dangling.yaml", str(d / "nowhere")),
    "symlink-to-dev-zero": lambda d: _symlink(d / "zero.ftsc", "/dev/zero"),
    "sparse-17MiB": _sparse,
    "empty": lambda d: _write(d / "empty.yaml", b""),
    "binary": lambda d: _write(d / "bin.ftsc", bytes(range(256)) * 4),
    "latin-1": lambda d: _write(d / "latin.yaml", "0:\n  params: [caf\xe9]\n".encode("latin-1")),
    "utf-16": lambda d: _write(d / "u16.yaml", "0:\n  params: [a]\n".encode("utf-16")),
    "bom-crlf": lambda d: _write(d / "bom.ftsc", b"\xef\xbb\xbfphase 0 {\r\n thaw a\r\n}\r\n"),
    "nul-in-yaml": lambda d: _write(d / "nul.yaml", b"0:\n  params: [a\x00b]\n"),
}


def hostile_argvs(kind: str, path: str, folder: Path, rng: random.Random) -> Iterator[list[str]]:
    """Commands that read `path` directly, as a manifest, or through a config's `ft_schedule`."""
    config = folder / f"cfg-{rng.randrange(10**9)}.yaml"
    config.write_text(yaml_config(rng, schedule_ref=json.dumps(path)), encoding="utf-8")
    manifest = folder / "ok.json"
    if not manifest.exists():
        manifest.write_text(json.dumps(manifest_doc(random.Random(0))), encoding="utf-8")
    sched = folder / "ok.ftsc"
    if not sched.exists():
        sched.write_text(MANIFEST_SCHEDULES[0], encoding="utf-8")
    yield ["check", path]
    yield ["check", "--isolated", "--format", rng.choice(["json", "sarif", "github", "concise"]), path]
    yield ["check", str(config)]
    yield ["check", str(sched), "--manifest", path]
    yield ["check", str(sched), "--lightning-config", path]
    yield ["fmt", "--check", path] if path.endswith(".ftsc") else ["convert", path, "--to", "ftsc"]
    yield ["compile", str(sched), "--manifest", path]
    yield ["explain", str(sched), "--manifest", str(manifest), "--lightning-config", path]
    if kind != "fifo":  # writing into a FIFO waits for a reader, as `cat > fifo` does
        yield ["convert", str(sched), "--to", "fts-yaml", "-o", path]


def run_hostile(kind: str, folder: Path, rng: random.Random) -> list[Outcome]:
    path = HOSTILE[kind](folder)
    return [judge(f"{kind}: {' '.join(argv)[:120]}", *run_cli(argv)) for argv in hostile_argvs(kind, path, folder, rng)]


# --------------------------------------------------------------------------------------------
# In-suite runs (small; the campaign runs ≥100k)
# --------------------------------------------------------------------------------------------

@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder, so no `[tool.ftsc]` changes the results."""
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _assert_ok(outcomes: list[Outcome]) -> None:
    bad = [o for o in outcomes if o.problem]
    assert not bad, "\n".join(f"{o.label}: {o.problem}" for o in bad[:5])


@pytest.mark.parametrize("seed", range(4))
def test_tagged_yaml_schedules_and_configs(seed: int) -> None:
    rng = random.Random(seed)
    outcomes = [check_text_input(f"schedule seed={seed} #{i}", text := yaml_schedule(rng), "s.yaml")
                for i in range(60)]
    outcomes += [check_text_input(f"config seed={seed} #{i}", text := yaml_config(rng), "c.yaml")
                 for i in range(40)]
    _assert_ok(outcomes)
    del text


def test_tag_generator_reaches_fts001() -> None:
    """The generator is not vacuous: tagged inputs do produce FTS001 and also clean loads."""
    rng = random.Random(7)
    codes = [{d.code for d in check_loaded(load_text(SourceFile("s.yaml", yaml_schedule(rng))))} for _ in range(200)]
    assert sum("FTS001" in c for c in codes) > 20
    assert sum("FTS001" not in c for c in codes) > 20


@pytest.mark.parametrize("seed", range(4))
def test_mutated_manifests(seed: int) -> None:
    rng = random.Random(seed)
    _assert_ok([check_manifest_doc(f"manifest seed={seed} #{i}", manifest_doc(rng)) for i in range(75)])


def test_tagged_configs_through_explain(in_tmp: Path) -> None:
    """`explain --lightning-config` reads the config for facts too: tags there are no internal error."""
    rng = random.Random(5)
    sched = in_tmp / "s.ftsc"
    sched.write_text(MANIFEST_SCHEDULES[0], encoding="utf-8")
    (in_tmp / "m.json").write_text(json.dumps(manifest_doc(random.Random(0))), encoding="utf-8")
    outcomes = []
    for i in range(20):
        (in_tmp / "c.yaml").write_text(yaml_config(rng).replace("max_epochs", "precision"), encoding="utf-8")
        argv = ["explain", str(sched), "--manifest", "m.json", "--lightning-config", "c.yaml"]
        outcomes.append(judge(f"explain #{i}", *run_cli(argv)))
    _assert_ok(outcomes)


def test_hostile_pyproject_tables(in_tmp: Path) -> None:
    """Wrong types and odd paths in `[tool.ftsc]`: `ftsc: error:` or a normal check, nothing else."""
    rng = random.Random(3)
    (in_tmp / "s.ftsc").write_text(MANIFEST_SCHEDULES[0], encoding="utf-8")
    (in_tmp / "m.json").write_text(json.dumps(manifest_doc(random.Random(0))), encoding="utf-8")
    outcomes = []
    for i in range(40):
        (in_tmp / "pyproject.toml").write_text(text := pyproject_text(rng), encoding="utf-8")
        outcomes.append(judge(f"pyproject #{i}: {text!r}", *run_cli(rng.choice([["check"], ["check", "s.ftsc"]]))))
    _assert_ok(outcomes)


def test_mutated_manifests_on_the_command_line(in_tmp: Path) -> None:
    rng = random.Random(11)
    sched = in_tmp / "s.ftsc"
    sched.write_text(MANIFEST_SCHEDULES[2], encoding="utf-8")
    outcomes = []
    for i in range(25):
        (in_tmp / "m.json").write_text(json.dumps(manifest_doc(rng)), encoding="utf-8")
        outcomes.append(judge(f"manifest #{i}", *run_cli(["check", str(sched), "--manifest", "m.json"])))
    _assert_ok(outcomes)


@pytest.mark.skipif(not Path("/dev/zero").exists() or not hasattr(os, "mkfifo"), reason="POSIX file kinds")
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_file_kinds(kind: str, in_tmp: Path) -> None:
    if kind.startswith("proc") and not Path("/proc/self").exists():
        pytest.skip("no procfs")
    _assert_ok(run_hostile(kind, in_tmp, random.Random(kind)))
