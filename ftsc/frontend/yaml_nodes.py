"""Safe YAML loading that keeps positions.

Input: YAML text. Output: `YNode` trees (Python values with spans), built from PyYAML's
composed nodes with the safe constructor: duplicate keys are reported (FTS104), alias bombs
and cyclic anchors are cut off, `!!set` becomes a list. Tags are read as FinetuningScheduler's
safe loader reads them: standard tags only (`!!python/...`, `!custom` and tags on the wrong kind
of node are FTS001), and a value its tag cannot read (`!!bool abc`, `!!int ''`) is FTS001.
Never constructs Python objects other than plain values. Never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ftsc.diagnostics import Diagnostic, make
from ftsc.source import SourceFile, Span

MAX_NODES = 200_000
MAX_DEPTH = 200


@dataclass(slots=True)
class YNode:
    """A YAML value with its span. Mappings are dicts key -> YNode (keys keep their own nodes)."""

    value: Any
    span: Span
    key_nodes: dict[Any, YNode] = field(default_factory=dict)

    def py(self) -> Any:
        """Plain Python value."""
        if isinstance(self.value, dict):
            return {k: v.py() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.py() for v in self.value]
        return self.value

    def get(self, key: Any) -> YNode | None:
        """The child node for `key` (mappings only)."""
        return self.value.get(key) if isinstance(self.value, dict) else None


class _Budget(Exception):
    pass


_STD = "tag:yaml.org,2002:"
_SEQ, _MAP, _SET, _OMAP, _PAIRS = (_STD + t for t in ("seq", "map", "set", "omap", "pairs"))


_KNOWN = frozenset(_STD + t for t in ("str", "int", "float", "bool", "null", "binary", "timestamp", "seq",
                                      "map", "set", "omap", "pairs"))


def shown_tag(tag: str) -> str:
    """A tag as written: `!!bool` for the standard ones."""
    return "!!" + tag[len(_STD):] if tag.startswith(_STD) else tag


@dataclass(slots=True)
class _Walker:
    source: SourceFile
    diagnostics: list[Diagnostic]
    constructor: yaml.constructor.SafeConstructor
    count: int = 0

    def span(self, node: yaml.Node) -> Span:
        start = node.start_mark.index if node.start_mark else 0
        end = node.end_mark.index if node.end_mark else start
        return Span(start, max(start, end), self.source)

    def bad_tag(self, node: yaml.Node, span: Span, detail: str) -> YNode:
        """FTS001 for a tag FinetuningScheduler's loader refuses; the value reads as null."""
        tag = shown_tag(node.tag)
        self.diagnostics.append(make(
            "FTS001", self.source, span, detail=f"invalid YAML: {detail}", label=f"`{tag}`",
            help="FinetuningScheduler loads schedules with a safe YAML loader: use plain values "
                 "without tags"))
        return YNode(None, span)

    def misplaced(self, node: yaml.Node, span: Span, what: str) -> YNode:
        if node.tag not in _KNOWN:
            return self.bad_tag(node, span, f"unknown tag `{shown_tag(node.tag)}`")
        return self.bad_tag(node, span, f"tag `{shown_tag(node.tag)}` cannot be used on {what}")

    def scalar(self, node: yaml.ScalarNode, span: Span) -> YNode:
        try:
            return YNode(self.constructor.construct_object(node, deep=True), span)
        except yaml.constructor.ConstructorError as err:
            if "could not determine a constructor" in str(err.problem):
                return self.bad_tag(node, span, f"unknown tag `{shown_tag(node.tag)}`")
            return self.bad_tag(node, span, f"`{shown_tag(node.tag)}` cannot read this value ({err.problem})")
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError):
            shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
            return self.bad_tag(node, span, f"`{shown}` is not a valid `{shown_tag(node.tag)}` value")

    def walk(self, node: yaml.Node, depth: int, active: frozenset[int]) -> YNode:
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            raise _Budget
        if id(node) in active:
            raise _Budget
        span = self.span(node)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, span)
        inner = active | {id(node)}
        if isinstance(node, yaml.SequenceNode):
            if node.tag in (_OMAP, _PAIRS):
                pairs = self.pairs(node, span, depth, inner)
                return YNode(pairs, span) if pairs is not None else YNode(None, span)
            if node.tag != _SEQ:
                return self.misplaced(node, span, "a list")
            return YNode([self.walk(n, depth + 1, inner) for n in node.value], span)
        assert isinstance(node, yaml.MappingNode)
        if node.tag not in (_MAP, _SET):
            return self.misplaced(node, span, "a mapping")
        is_set = node.tag == _SET
        self.constructor.flatten_mapping(node)
        out: dict[Any, YNode] = {}
        keys: dict[Any, YNode] = {}
        for key_node, value_node in node.value:
            key = self.walk(key_node, depth + 1, inner)
            try:
                hash(key.value)
            except TypeError:
                self.diagnostics.append(make("FTS001", self.source, key.span,
                                             detail="a mapping key must be a plain value", label="complex key"))
                continue
            if key.value in out:
                self.diagnostics.append(make("FTS104", self.source, key.span, key=key.value,
                                             label="duplicate", help="FinetuningScheduler rejects "
                                             "duplicate keys at any level; keep one"))
                continue
            out[key.value] = self.walk(value_node, depth + 1, inner)
            keys[key.value] = key
        if is_set:
            return YNode([keys[k] for k in out], span)
        return YNode(out, span, keys)

    def pairs(self, node: yaml.SequenceNode, span: Span, depth: int, inner: frozenset[int]) -> list[YNode] | None:
        """`!!omap` / `!!pairs`: a list of one-entry mappings, read as that list."""
        for item in node.value:
            if not isinstance(item, yaml.MappingNode) or len(item.value) != 1:
                self.bad_tag(node, span, f"`{shown_tag(node.tag)}` needs a list of one-entry mappings")
                return None
        return [self.walk(n, depth + 1, inner) for n in node.value]


def load_yaml(source: SourceFile) -> tuple[YNode | None, list[Diagnostic]]:
    """Load one YAML document safely, with spans.

    Returns:
        The root node (None when the file is empty or cannot be loaded) and diagnostics.
    """
    diagnostics: list[Diagnostic] = []
    try:
        loader = yaml.SafeLoader(source.text)
    except yaml.reader.ReaderError as err:  # the reader rejects control characters up front
        diagnostics.append(make("FTS001", source, Span(err.position, min(err.position + 1, len(source.text))),
                                detail=f"invalid YAML: {err.reason}", label="here"))
        return None, diagnostics
    try:
        root = loader.get_single_node()
        if root is None:
            return None, diagnostics
        walker = _Walker(source, diagnostics, loader)
        return walker.walk(root, 0, frozenset()), diagnostics
    except _Budget:
        diagnostics.append(make("FTS001", source, Span(0, 0),
                                detail="YAML document is too large or too deeply nested after alias "
                                       f"expansion (limit {MAX_NODES} nodes, depth {MAX_DEPTH})",
                                help="anchors and aliases that expand exponentially are refused"))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        offset = mark.index if mark is not None else 0
        detail = f"invalid YAML: {err.problem or err.context or 'cannot parse'}"
        if err.context and err.problem:
            detail = f"invalid YAML: {err.problem} ({err.context})"
        diagnostics.append(make("FTS001", source, Span(offset, offset), detail=detail, label="here"))
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as err:
        diagnostics.append(make("FTS001", source, Span(0, 0), detail=f"invalid YAML: {err}"))
    except RecursionError:
        diagnostics.append(make("FTS001", source, Span(0, 0), detail="YAML document is nested too deeply"))
    finally:
        loader.dispose()
    return None, diagnostics
