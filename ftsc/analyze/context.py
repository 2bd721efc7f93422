"""Read-only context every analysis pass receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftsc.frontend import InputKind
from ftsc.source import SourceFile


@dataclass(frozen=True, slots=True)
class AnalysisContext:
    """The file being checked, how it was written, and (later stages) the model graph."""

    source: SourceFile
    kind: InputKind
    graph: Any = None

    @property
    def fts_semantics(self) -> bool:
        """True for FTS YAML inputs, whose options come from the callback, not the file."""
        return self.kind is not InputKind.DSL
