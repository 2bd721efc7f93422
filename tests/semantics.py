"""Meaning of a schedule, for "same meaning" comparisons across formats.

Two schedules mean the same if, over a set of candidate parameter names, every phase resolves
to the same parameters and has the same lr, transitions and reinit directives.
"""

from __future__ import annotations

import re
from typing import Any

from ftsc import ir
from ftsc.analyze.resolve import resolve


def candidate_names(*schedules: ir.Schedule) -> list[str]:
    """Names that probe the patterns: their literal text, index variants and suffixes."""
    names: set[str] = set()
    for schedule in schedules:
        for phase in schedule.phases:
            for sel in phase.selectors:
                literal = re.sub(r"[^A-Za-z0-9_.]", "", sel.pattern).strip(".")
                for base in {literal, re.sub(r"\.\.+", ".", literal)}:
                    names.add(base)
                    for suffix in ("weight", "bias", "x.weight", "dense.weight"):
                        names.add(f"{base}.{suffix}")
    for layer in range(13):
        for part in ("output", "attention", "intermediate", "attention.self"):
            names.add(f"model.deberta.encoder.layer.{layer}.{part}.dense.weight")
    for layer in range(5):
        for part in ("feed_forward.w1", "ffn_norm", "attention.wq", "attention_norm", "attention.wo"):
            names.add(f"model.layers.{layer}.{part}.weight")
    return sorted(names)


def meaning(schedule: ir.Schedule, names: list[str]) -> list[dict[str, Any]]:
    """Per phase: resolved parameters, lr, transitions, reinits."""
    out = []
    for phase in sorted(schedule.phases, key=lambda p: p.index):
        params = sorted({n for s in phase.selectors for n in resolve(s, names)})
        until = phase.until
        criteria = sorted((c.kind.value, c.value) for c in until) if until is not None else [("plateau", None)]
        out.append({
            "index": phase.index,
            "params": params,
            "lr": phase.lr,
            "until": criteria,
            "reinits": [ir.dump(r) for r in phase.reinits],
        })
    return out
