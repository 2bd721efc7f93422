"""How the multi-process probes (scripts that run a real 2-process Lightning fit) report and leave."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn


def quiet_lightning() -> None:
    """Silence warnings and Lightning's INFO chatter: a probe's output is its JSON."""
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def finish(rank: int, result: Any, out: str | Path | None) -> NoReturn:
    """Rank 0 writes `result` as JSON to `out` (stdout without one); then every rank leaves at once.

    Interpreter teardown of the gloo process group and the launcher's threads aborts now and then
    ("terminate called without an active exception"), above all after an interrupted fit, so the
    probes skip it.
    """
    if rank == 0:
        text = json.dumps(result, indent=2)
        if out:
            Path(out).write_text(text, encoding="utf-8")
        else:
            print(text)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
