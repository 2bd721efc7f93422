"""The issue-13 fuzz campaign, run by hand (not collected by pytest): YAML tags, manifests with
wrong types, hostile file kinds, with the generators of `tests/test_fuzz_safety.py`.

    python tests/fuzz_campaign_safety.py --inputs 100000 --seed 1

Every input must give coded diagnostics (exit 0/1) or one `ftsc: error:` line (exit 2), never
an internal error. Prints the count per kind and the first failures; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_fuzz_safety import (
    HOSTILE,
    MANIFEST_SCHEDULES,
    Outcome,
    check_manifest_doc,
    check_text_input,
    judge,
    manifest_doc,
    pyproject_text,
    run_cli,
    run_hostile,
    yaml_config,
    yaml_schedule,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    failures: list[Outcome] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / ".git").mkdir()
        os.chdir(folder)
        kinds = sorted(HOSTILE)
        for i in range(args.inputs):
            roll = rng.random()
            if roll < 0.42:
                kind, outcome = "yaml-schedule", check_text_input(f"#{i}", text := yaml_schedule(rng), "s.yaml")
            elif roll < 0.62:
                kind, outcome = "yaml-config", check_text_input(f"#{i}", text := yaml_config(rng), "c.yaml")
            elif roll < 0.94:
                doc = manifest_doc(rng)
                kind, outcome = "manifest", check_manifest_doc(f"#{i} {doc!r:.300}", doc)
                text = ""
            elif roll < 0.97:  # the same generators through the command line, every renderer, and explain
                kind = "cli-yaml"
                text = yaml_schedule(rng) if rng.random() < 0.6 else yaml_config(rng)
                (folder / "in.yaml").write_text(text, encoding="utf-8")
                fmt = rng.choice(["text", "json", "sarif", "github", "concise"])
                argv = ["check", "--format", fmt, "in.yaml"]
                if rng.random() < 0.2:
                    (folder / "m.json").write_text(json.dumps(manifest_doc(rng)), encoding="utf-8")
                    (folder / "s.ftsc").write_text(MANIFEST_SCHEDULES[0], encoding="utf-8")
                    argv = ["explain", "s.ftsc", "--manifest", "m.json", "--lightning-config", "in.yaml"]
                outcome = judge(f"#{i} {' '.join(argv)}", *run_cli(argv))
            elif roll < 0.985:  # [tool.ftsc] with wrong types and odd paths
                kind = "pyproject"
                text = pyproject_text(rng)
                sub = folder / "proj"
                sub.mkdir(exist_ok=True)
                (sub / ".git").mkdir(exist_ok=True)
                (sub / "pyproject.toml").write_text(text, encoding="utf-8")
                (sub / "s.ftsc").write_text(MANIFEST_SCHEDULES[0], encoding="utf-8")
                os.chdir(sub)
                try:
                    outcome = judge(f"#{i}", *run_cli(rng.choice([["check"], ["check", "s.ftsc"]])))
                finally:
                    os.chdir(folder)
            else:
                hostile = kinds[i % len(kinds)]
                results = run_hostile(hostile, folder, rng)
                counts["hostile-file-run"] += len(results)
                failures += [o for o in results if o.problem]
                continue
            counts[kind] += 1
            if outcome.problem:
                failures.append(Outcome(f"{kind} {outcome.label}\n{text[:400]}", outcome.problem))
            if (i + 1) % 10_000 == 0:
                print(f"{i + 1} inputs, {len(failures)} failures, {time.perf_counter() - start:.0f}s", flush=True)
    total = sum(counts.values())
    print(f"\n{total} runs in {time.perf_counter() - start:.0f}s (seed {args.seed}):")
    for kind, n in sorted(counts.items()):
        print(f"  {kind:18s} {n}")
    print(f"failures: {len(failures)}")
    for o in failures[:10]:
        print(f"--- {o.label}\n{o.problem}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
