"""Start-up cost of the `.ftsc` parser's tables, side by side (issue 13, item 1).

Options, each in fresh interpreters, interleaved round-robin:

- `lark-pickle`: Lark's `cache=True` (a pickle under the shared temp folder; the old behaviour,
  unsafe: another user can plant the file), cache warm;
- `no-cache`: the tables built from the grammar in every process;
- `shipped-json`: the JSON tables shipped in the package (the default now);
- `user-cache-json`: the per-user 0700 cache folder (the fallback when the shipped tables do not
  match the grammar or Lark version), cache warm.

Prints the median time to construct the parser (imports excluded) and the median wall time of
the whole process (imports of lark and `ftsc.parse` included).

    python benchmarks/bench_parser_tables.py --runs 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_PRELUDE = """
import time
from pathlib import Path
from lark import Lark
import ftsc.lalr_tables
from ftsc.lalr_tables import OPTIONS
from ftsc.parse import _COMMENTS, grammar_text, parser
"""

# Each snippet runs after _PRELUDE (imports are not timed) and prints the construction time.
_CODE = {
    "lark-pickle": """
t = time.perf_counter()
Lark(grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True,
     lexer_callbacks={"COMMENT": _COMMENTS}, strict=False, cache=True)
print(time.perf_counter() - t)
""",
    "no-cache": """
t = time.perf_counter()
Lark(grammar_text(), lexer_callbacks={"COMMENT": _COMMENTS}, **OPTIONS)
print(time.perf_counter() - t)
""",
    "shipped-json": """
t = time.perf_counter()
parser()
print(time.perf_counter() - t)
""",
    "user-cache-json": """
ftsc.lalr_tables.SHIPPED = Path("/nonexistent/tables.json")
t = time.perf_counter()
parser()
print(time.perf_counter() - t)
""",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=15)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": tmp, "XDG_CACHE_HOME": tmp}
        inner: dict[str, list[float]] = {k: [] for k in _CODE}
        wall: dict[str, list[float]] = {k: [] for k in _CODE}
        codes = {k: _PRELUDE + v for k, v in _CODE.items()}
        for option, code in codes.items():  # warm every cache once
            subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        for _ in range(args.runs):
            for option, code in codes.items():
                t = time.perf_counter()
                out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
                wall[option].append(time.perf_counter() - t)
                inner[option].append(float(out.stdout.strip().splitlines()[-1]))
    base = statistics.median(wall["shipped-json"])
    print("| option | parser construction (median ms) | process wall (median ms) | wall vs shipped-json |")
    print("|---|---:|---:|---:|")
    for option in _CODE:
        w = statistics.median(wall[option])
        print(f"| {option} | {statistics.median(inner[option]) * 1000:.1f} | {w * 1000:.0f} | {w / base:.2f}x |")


if __name__ == "__main__":
    main()
