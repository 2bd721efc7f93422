"""The model stage: a model's structure as a `ModelGraph`, from a live target or a manifest.

Input: `--model TARGET` (built on the meta device; needs torch) or `--manifest FILE` (JSON,
no torch). Output: a `ModelGraph`. Both paths go through the same `Manifest`, so a manifest
and the live model it was written from give identical analysis. Importing this package
never imports torch; only `ftsc.model.build` does, when a target must be built.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
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
                  kwargs: Mapping[str, Any] | None = None, *, cache: Path | None = None) -> Manifest:
    """The manifest of `--model` (built on meta) or of `--manifest`.

    Args:
        model: the `--model` target.
        manifest: the `--manifest` path.
        kwargs: `--model-kwargs`.
        cache: the structure cache folder for `--model` (`ftsc.model.cache`); None builds every time.

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
    if cache is not None:
        from ftsc.model.cache import cached_manifest
        from ftsc.model.manifest import from_json

        cached, _ = cached_manifest(cache, model, dict(kwargs or {}), lambda: _build(model, kwargs).to_json(),
                                    from_json)
        return cached
    return _build(model, kwargs)


def _build(model: str, kwargs: Mapping[str, Any] | None) -> Manifest:
    from ftsc.model.build import ModelLoadError, manifest_for

    try:
        return manifest_for(model, kwargs)
    except ModelLoadError as err:
        raise ModelError(str(err)) from None


def load_graph(model: str | None = None, manifest: str | None = None,
               kwargs: Mapping[str, Any] | None = None, *, cache: Path | None = None) -> ModelGraph:
    """A `ModelGraph` for `--model` (through the structure cache when `cache` is a folder) or `--manifest`."""
    return ModelGraph(load_manifest(model, manifest, kwargs, cache=cache))


__all__ = ["Manifest", "ModelError", "ModelGraph", "load_graph", "load_manifest", "parse_kwargs"]
