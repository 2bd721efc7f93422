"""The issue-12 matching fuzz campaign, run by hand (not collected by pytest).

    python tests/fuzz_campaign_matching.py --inputs 100000 --seed 1

Each input is one fuzzed pattern (random regex syntax, the suite's hostile patterns, mutated
corpus patterns) matched against one fuzzed name list (hostile names: runs of thousands of one
character; FQN-like names; short random names). Every input goes through `NameIndex.match`
(`re.match` and `re.fullmatch` semantics) and `exponential_backtracking`; inputs whose names are
all short are also compared with Python's `re` (the oracle). Every `--cli-every`th input is
also written as an FTS YAML schedule and checked with `ftsc check --manifest` in-process.

Counts: hangs (ftsc's part of an input over `--hang-s` seconds, caught by SIGALRM; a
faulthandler watchdog exits the process if even that fails; Python's `re` as the oracle has its
own alarm and an oracle that runs out of time, or raises CPython's own SystemError "The span of
capturing group is wrong" (possessive repeats of groups, Python 3.11-3.13), is counted apart, not
compared), crashes (any exception other than `re.error` or
`UnsupportedPattern`; an FTS901 or a traceback from the CLI), mismatches with Python's `re`.
Prints the counts and the time; exits 1 if any is non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import json
import random
import re
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftsc.backtracking import exponential_backtracking
from ftsc.matching import UnsupportedPattern
from ftsc.model.graph import ModelGraph
from ftsc.model.names import NameIndex

HOSTILE_PATTERNS = ["(a+)+$", "(a|aa)+$", "(.*a){25}", "(a*)*b", r"(\w+\.?)+$", "(?=a)(a|aa)+$", "((a+)+)+!",
                    "(.*.*)*=", r"(\d+)+x", "(a{1,2})+$", "(x+x+)+y", "(?:a|b|ab)*c", r"^(([a-z])+.)+[A-Z]([a-z])+$",
                    "(a|a?)+$", r"(\.|[^.])*!", "(?:a+)++$", "(?>a|aa)+$", "(?<=a)(a+)+$", "a{1500}(a|aa)*$"]
CORPUS = ["model.classifier.*", "model.layers.1.*", "model.layers.1", r"model\.layers\.\d+\..*",
          "model.deberta.encoder.layer.{0,11}.(output|attention|intermediate).*", "h.2.attn.*",
          "model.layers.[0-2].(feed_forward|ffn_norm|attention.w.*|attention_norm).*", r"^(?!.*bias).*weight$"]
ATOMS = ["a", "b", "A", ".", r"\.", "1", "_", r"\n", "[ab]", "[^a]", "[a-c]", r"\d", r"\w", r"\s", r"\W", "é",
         "^", "$", r"\A", r"\Z", r"\b", r"\B", "x", "layers", r"\x41", "(?i:a)"]
QUANT = ["*", "+", "?", "{2}", "{1,3}", "{0,2}", "{2,}", "*?", "+?", "*+", "++", "{25}", "{0,1000}", "{3}+", "{2,}+"]


def random_regex(rng: random.Random, depth: int = 0) -> str:
    r = rng.random()
    if depth > 3 or r < 0.3:
        return rng.choice(ATOMS)
    if r < 0.5:
        return "".join(random_regex(rng, depth + 1) for _ in range(rng.randint(2, 4)))
    if r < 0.62:
        return "(?:" + "|".join(random_regex(rng, depth + 1) for _ in range(rng.randint(2, 3))) + ")"
    if r < 0.85:
        return f"({random_regex(rng, depth + 1)}){rng.choice(QUANT)}"
    return rng.choice(["(?={})", "(?!{})", "(?>{})", "(?<=a){}", "(?<!\\w){}"]).format(random_regex(rng, depth + 1))


def mutate(rng: random.Random, pattern: str) -> str:
    chars = list(pattern)
    for _ in range(rng.randint(1, 3)):
        i = rng.randint(0, len(chars))
        op = rng.randrange(3)
        if op == 0 and chars:
            del chars[min(i, len(chars) - 1)]
        elif op == 1:
            chars.insert(i, rng.choice(["+", "*", "(", ")", "|", ".", "\\", "{3}", "a", "[", "]", "?"]))
        else:
            chars.insert(i, rng.choice(HOSTILE_PATTERNS))
    return "".join(chars)


def random_pattern(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.choice(HOSTILE_PATTERNS)
    if kind == 1:
        return mutate(rng, rng.choice(CORPUS + HOSTILE_PATTERNS))
    flags = rng.choice(["", "", "(?i)", "(?s)", "(?m)", "(?a)"])
    return flags + random_regex(rng)


def random_names(rng: random.Random) -> tuple[list[str], bool]:
    """A name list, and whether all names are short enough for Python's `re` as an oracle."""
    kind = rng.randrange(3)
    if kind == 0:  # hostile: runs of one character
        ch = rng.choice("a1._x")
        n = rng.choice([100, 1000, 5000, 20000])
        names = [ch * n, ch * n + rng.choice("b!\n"), "a" * (n // 2) + "." + "a" * (n // 2), "model.layers.1.weight"]
        return names, False
    if kind == 1:  # FQN-like
        names = [f"model.layers.{i}.{s}" for i in range(rng.randint(1, 13)) for s in ("weight", "bias", "attn.w")]
        return names + ["model.classifier.weight", "h.2.attn.c_attn.weight", "h.2.attn_ln.weight"], True
    alphabet = "aAb1._\né xſ"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10))) for _ in range(rng.randint(1, 8))], True


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang


def _python(pattern: str, names: list[str], full: bool) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rx = re.compile(pattern)
    return [n for n in names if (rx.fullmatch(n) if full else rx.match(n))]


def _cli_check(pattern: str, names: list[str], tmp: Path) -> str | None:
    import ftsc.cli

    manifest = tmp / "m.json"
    manifest.write_text(ModelGraph.from_names({n: (2,) for n in names if n and "\n" not in n}).manifest.dumps())
    sched = tmp / "s_ft_schedule.yaml"
    sched.write_text("0:\n  params:\n  - " + json.dumps(pattern) + "\n")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = ftsc.cli.main(["check", str(sched), "--manifest", str(manifest)])
    text = out.getvalue() + err.getvalue()
    if status not in (0, 1, 2) or "FTS901" in text or "Traceback" in text:
        return f"exit {status}: {text[:300]}"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hang-s", type=float, default=10.0)
    ap.add_argument("--oracle-s", type=float, default=0.5, help="time allowed to Python's re (the oracle)")
    ap.add_argument("--cli-every", type=int, default=50)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    signal.signal(signal.SIGALRM, _alarm)
    counts = {"inputs": 0, "hangs": 0, "crashes": 0, "mismatches": 0, "invalid": 0, "compared": 0, "cli": 0,
              "fts106": 0, "hostile_name_inputs": 0,
              "oracle_timeouts": 0, "oracle_errors": 0}
    failures: list[str] = []
    slowest = (0.0, "")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for i in range(args.inputs):
            pattern = random_pattern(rng)
            names, short = random_names(rng)
            counts["inputs"] += 1
            counts["hostile_name_inputs"] += not short
            t0 = time.perf_counter()
            ftsc_t = 0.0
            faulthandler.dump_traceback_later(args.hang_s * 6, exit=True)
            signal.setitimer(signal.ITIMER_REAL, args.hang_s)
            try:
                index = NameIndex(names)
                got = index.match(pattern), index.match(pattern, full=True)
                counts["fts106"] += exponential_backtracking(pattern)
                ftsc_t = time.perf_counter() - t0
                signal.setitimer(signal.ITIMER_REAL, 0)
                if short:  # the oracle may itself backtrack for ever: it gets its own alarm, not counted
                    signal.setitimer(signal.ITIMER_REAL, args.oracle_s)
                    try:
                        want = _python(pattern, names, False), _python(pattern, names, True)
                    except Hang:
                        counts["oracle_timeouts"] += 1
                    except SystemError:  # CPython's own "span of capturing group is wrong" (3.11-3.13)
                        counts["oracle_errors"] += 1
                    else:
                        counts["compared"] += 1
                        if got != want:
                            counts["mismatches"] += 1
                            failures.append(f"mismatch: {pattern!r} on {names!r}")
                    signal.setitimer(signal.ITIMER_REAL, args.hang_s)
                if i % args.cli_every == 0:
                    counts["cli"] += 1
                    problem = _cli_check(pattern, names, tmp)
                    if problem:
                        counts["crashes"] += 1
                        failures.append(f"cli: {pattern!r}: {problem}")
            except Hang:
                counts["hangs"] += 1
                failures.append(f"hang: {pattern!r} on names of lengths {[len(n) for n in names]}")
            except (re.error, UnsupportedPattern, OverflowError, RecursionError) as err:
                counts["invalid"] += 1
                if isinstance(err, RecursionError):
                    failures.append(f"recursion: {pattern!r}")
                    counts["crashes"] += 1
            except Exception as err:  # noqa: BLE001 - the campaign counts every crash
                counts["crashes"] += 1
                failures.append(f"crash: {pattern!r}: {type(err).__name__}: {err}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                faulthandler.cancel_dump_traceback_later()
            if ftsc_t > slowest[0]:
                slowest = (ftsc_t, pattern)
            if (i + 1) % 10_000 == 0:
                print(f"{i + 1} inputs, {len(failures)} failures, {time.perf_counter() - start:.0f}s", flush=True)
    elapsed = time.perf_counter() - start
    print(f"\nseed {args.seed}: {json.dumps(counts)}")
    print(f"total {elapsed:.0f}s; slowest input (ftsc's matching and FTS106) {slowest[0]:.2f}s ({slowest[1]!r})")
    for f in failures[:20]:
        print(" ", f)
    return 1 if counts["hangs"] or counts["crashes"] or counts["mismatches"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
