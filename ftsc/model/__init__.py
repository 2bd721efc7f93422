"""The model stage: a model's structure as a `ModelGraph`, from a live target or a manifest.

Input: `--model TARGET` (built on the meta device; needs torch) or `--manifest FILE` (JSON,
no torch). Output: a `ModelGraph`. Both paths go through the same `Manifest`, so a manifest
and the live model it was written from give identical analysis. Importing this package
never imports torch; only `ftsc.model.build` does, when a target must be built.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ftsc.model.graph import ModelGraph
from ftsc.model.manifest import Manifest, ManifestError, read


class ModelError(Exception):
    """The model could not be loaded (exit status 2)."""


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """`--model-kwargs` JSON as a dict.

    Raises:
        ModelError: when it is not a JSON object.
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelError(f"--model-kwargs is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ModelError("--model-kwargs must be a JSON object, e.g. '{\"hidden\": 64}'")
    return value


def load_manifest(model: str | None = None, manifest: str | None = None,
                  kwargs: Mapping[str, Any] | None = None) -> Manifest:
    """The manifest of `--model` (built on meta) or of `--manifest`.

    Raises:
        ModelError: bad arguments, unreadable manifest, or a model that cannot be built.
    """
    if model and manifest:
        raise ModelError("give either --model or --manifest, not both")
    if manifest:
        try:
            return read(manifest)
        except ManifestError as err:
            raise ModelError(str(err)) from None
    if not model:
        raise ModelError("no model: give --model TARGET or --manifest FILE")
    from ftsc.model.build import ModelLoadError, manifest_for

    try:
        return manifest_for(model, kwargs)
    except ModelLoadError as err:
        raise ModelError(str(err)) from None


def load_graph(model: str | None = None, manifest: str | None = None,
               kwargs: Mapping[str, Any] | None = None) -> ModelGraph:
    """A `ModelGraph` for `--model` or `--manifest`."""
    return ModelGraph(load_manifest(model, manifest, kwargs))


__all__ = ["Manifest", "ModelError", "ModelGraph", "load_graph", "load_manifest", "parse_kwargs"]
