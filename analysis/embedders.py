"""Embedders for the embedding metrics: a model-free lexical baseline and a loader for any callable.

The paper embeds turns with a neural text encoder; none can be fetched offline, so the analysis takes
the embedder as a callable (texts -> (n, d) array) named ``module:attribute`` on the command line.
:func:`hashed_bag_of_words` is a deterministic baseline that runs anywhere: it sees which words a
turn uses, not what it means, so its distances are a lower-resolution view of the paper's.
"""

from __future__ import annotations

import importlib
import re
import zlib
from collections.abc import Sequence

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
