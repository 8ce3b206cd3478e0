"""Embedders for the embedding metrics: a model-free lexical fallback, a loader for any callable, a cache.

The paper embeds turns with a neural text encoder; none can be fetched offline. The analysis embeds
with the student's own hidden states when given a model (:mod:`analysis.hidden_states`), with any
callable (texts -> (n, d) array) named ``module:attribute`` on the command line, and otherwise with
:func:`hashed_bag_of_words`: a deterministic fallback that runs anywhere; it sees which words a turn
uses, not what it means, so its distances are a lower-resolution view of the paper's.
"""

from __future__ import annotations

import importlib
import re
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from analysis.metrics import Embedder

_TOKEN = re.compile(r"\w+|[^\w\s]")


def hashed_bag_of_words(texts: Sequence[str], dim: int = 32) -> np.ndarray:
    """Unit-norm signed feature hashing of lower-cased word and punctuation tokens, (len(texts), dim).

    crc32 (not ``hash``) keeps buckets identical across processes; one hash bit picks the sign so
    colliding tokens tend to cancel rather than pile up.
    """
    out = np.zeros((len(texts), dim))
    for row, text in enumerate(texts):
        for token in _TOKEN.findall(text.lower()):
            code = zlib.crc32(token.encode())
            out[row, code % dim] += 1.0 if code & (1 << 31) else -1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def load_embedder(spec: str) -> Embedder:
    """The callable named ``module:attribute`` (e.g. ``analysis.embedders:hashed_bag_of_words``)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"embedder {spec!r}: expected 'module:attribute'")
    try:
        embedder = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"embedder {spec!r}: {exc}") from exc
    if not callable(embedder):
        raise ValueError(f"embedder {spec!r}: {attribute} is not callable")
    return embedder


class CachedEmbedder:
    """``embed`` with one vector kept per distinct text, so a text is embedded once per analysis.

    The Frechet and KL metrics of a view see the same texts at every turn; with a model as embedder
    the forward passes dominate the analysis, and the cache makes them happen once. ``info`` is what
    ``summary.json`` records about the embedder.
    """

    def __init__(self, embed: Embedder, info: dict[str, Any]) -> None:
        self.embed = embed
        self.info = info
        self._vectors: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            vectors = np.asarray(self.embed(missing), dtype=float)
            if vectors.ndim != 2 or len(vectors) != len(missing):
                raise ValueError(
                    f"embedder {self.info.get('name', self.embed)!r} returned shape {vectors.shape} "
                    f"for {len(missing)} texts (expected (texts, dim))"
                )
            self._vectors.update(zip(missing, vectors, strict=True))
        return np.stack([self._vectors[t] for t in texts])
