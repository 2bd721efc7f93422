"""The rule registry: every diagnostic code, collected from the rule modules.

Input: the modules of `ftsc.analyze.rules`, each defining `RULE` (code, name, default severity,
message and docs) beside its check. Output: `RULES`, keyed by code, and `lookup()` that accepts a
code or a name. Never imports torch.
"""

from __future__ import annotations

import importlib
import pkgutil

from ftsc.diagnostics.rule import Rule

# Filled at the bottom of this module; defined first so that a rule module imported during the
# collection can already name it (the dict object never changes).
RULES: dict[str, Rule] = {}
_BY_NAME: dict[str, Rule] = {}


def lookup(code_or_name: str) -> Rule | None:
    """Find a rule by code (`FTS203`, case-insensitive) or kebab-case name."""
    key = code_or_name.strip()
    return RULES.get(key.upper()) or _BY_NAME.get(key.lower())


def expand_selection(items: list[str]) -> tuple[set[str], list[str]]:
    """Turn `--select`/`--ignore` items (codes, names or prefixes like `FTS2`) into codes.

    Returns:
        The selected codes and the items that matched nothing.
    """
    codes: set[str] = set()
    unknown: list[str] = []
    for item in items:
        rule = lookup(item)
        if rule is not None:
            codes.add(rule.code)
            continue
        prefix = item.strip().upper()
        matched = {code for code in RULES if prefix and code.startswith(prefix)}
        if matched:
            codes |= matched
        else:
            unknown.append(item)
    return codes, unknown


def _collect() -> None:
    import ftsc.analyze.rules as package

    found: list[Rule] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        rule = getattr(module, "RULE", None)
        if isinstance(rule, Rule):
            found.append(rule)
    for rule in sorted(found, key=lambda r: r.code):
        if rule.code in RULES:
            raise RuntimeError(f"diagnostic code {rule.code} is defined twice")
        RULES[rule.code] = rule
        _BY_NAME[rule.name] = rule
        for alias in rule.aliases:
            _BY_NAME[alias] = rule


_collect()
