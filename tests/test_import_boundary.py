"""torch, lightning and transformers stay behind the model-loading and runtime paths.

Every module of the package outside `ftsc.lightning` (the runtime, which imports torch and
lightning at its top) must import with those packages unimportable, and must not import them:
`ftsc.model.build`, `ftsc.model.hf_config` and `ftsc.explain.activations` & co. import torch only
inside the functions that build a model. Checked in a fresh interpreter with the packages blocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "lightning", "pytorch_lightning", "transformers")
PROBE = """
import importlib, json, pkgutil, sys
import ftsc
names = sorted(m.name for m in pkgutil.walk_packages(ftsc.__path__, "ftsc."))
failed = []
for name in names:
    if name == "ftsc.__main__" or name == "ftsc.lightning" or name.startswith("ftsc.lightning."):
        continue
    try:
        importlib.import_module(name)
    except Exception as err:
        failed.append(f"{name}: {type(err).__name__}: {err}")
heavy = sorted(m for m in sys.argv[1:] if m in sys.modules)
print(json.dumps({"checked": len(names), "failed": failed, "heavy": heavy}))
"""


def test_no_module_outside_the_runtime_imports_torch_lightning_or_transformers(tmp_path: Path) -> None:
    for name in HEAVY:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked in this test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    proc = subprocess.run([sys.executable, "-c", PROBE, *HEAVY], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["checked"] > 80, result
    assert result["failed"] == [] and result["heavy"] == [], result
