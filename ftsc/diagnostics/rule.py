"""`Rule`: the fixed facts of one diagnostic code.

Each rule module under `ftsc/analyze/rules/` defines its `RULE` beside its check;
`ftsc.diagnostics.registry` collects them. Never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftsc.diagnostics import Severity


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """A diagnostic code's fixed facts: its name, severity, message template and documentation.

    `doc` is what `ftsc rule CODE` prints; its `## Example` must trigger the rule and its
    `## Use instead` must not (tests/test_rules_and_grammar.py checks both).
    """

    code: str
    name: str
    severity: Severity
    summary: str
    message: str
    doc: str
    needs_model: bool = False
    aliases: tuple[str, ...] = ()


__all__ = ["Rule", "Severity"]
