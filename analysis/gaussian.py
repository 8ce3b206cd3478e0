"""Gaussian fits of embedding sets and the two distances the paper reports between them.

The reference analysis fits a Gaussian to each group's turn-t embeddings and reports the Frechet
distance and KL(student || expert). Both are closed forms on (mean, covariance):

    Frechet^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)
    KL        = 1/2 [tr(S2^-1 S1) + (mu2 - mu1)^T S2^-1 (mu2 - mu1) - d + ln det S2 - ln det S1]

(the "Frechet distance" of FID is the squared 2-Wasserstein distance above; we follow that usage).
Matrix square roots use symmetric eigendecompositions (``numpy.linalg.eigh``), with eigenvalues
clipped at zero, which is exact for the symmetric PSD matrices involved and needs no scipy. With
fewer samples than dimensions a covariance is singular: the Frechet distance is still defined, the
KL is not, so fits take a ``ridge`` added to the diagonal. :func:`pca_project` reduces the
dimension first where the analysis asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Gaussian:
    mean: np.ndarray
    cov: np.ndarray


def fit_gaussian(x: np.ndarray, weights: np.ndarray | None = None, ridge: float = 0.0) -> Gaussian:
    """Mean and covariance of the rows of ``x`` (n, d), rows counted ``weights`` times (frequency weights).

    The covariance uses the unbiased ``sum(w) - 1`` denominator; ``ridge`` is added to its diagonal.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"fit_gaussian: expected an (n, d) array, got shape {x.shape}")
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
    total = w.sum()
    if total < 2:
        raise ValueError(f"fit_gaussian: needs a total weight of at least 2 samples, got {total:g}")
    mean = w @ x / total
    centred = x - mean
    cov = (centred * w[:, None]).T @ centred / (total - 1)
    return Gaussian(mean, cov + ridge * np.eye(x.shape[1]))


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (tiny negative eigenvalues clipped)."""
    symmetric = (matrix + matrix.T) / 2
    values, vectors = np.linalg.eigh(symmetric)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(a: Gaussian, b: Gaussian) -> float:
    """Squared 2-Wasserstein (FID-style Frechet) distance between two Gaussians."""
    root_a = sqrtm_psd(a.cov)
    inner = root_a @ b.cov @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    diff = a.mean - b.mean
    return float(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2 * trace_root)


def gaussian_kl(p: Gaussian, q: Gaussian) -> float:
    """KL(p || q) in nats; ``q``'s and ``p``'s covariances must be positive definite."""
    logdet = {}
    for name, g in (("p", p), ("q", q)):
        sign, logdet[name] = np.linalg.slogdet(g.cov)
        if sign <= 0:
            raise ValueError(f"gaussian_kl: the covariance of {name} is singular; fit it with a ridge > 0")
    d = len(p.mean)
    diff = q.mean - p.mean
    solved = np.linalg.solve(q.cov, np.column_stack([p.cov, diff]))
    return float(0.5 * (np.trace(solved[:, :d]) + diff @ solved[:, d] - d + logdet["q"] - logdet["p"]))


def pca_project(x: np.ndarray, k: int) -> np.ndarray:
    """The rows of ``x`` (n, d) in the coordinates of their own top-``k`` principal components, (n, k).

    Centred on the rows' mean; components come from the SVD of the centred rows, signs fixed so each
    component's largest-magnitude loading is positive (the result does not depend on the LAPACK build).
    With fewer than ``k`` components available (``k > min(n, d)``) the missing coordinates are zero:
    the output always has ``k`` columns, and a ridge keeps the fitted covariances regular.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"pca_project: expected an (n, d) array, got shape {x.shape}")
    if k < 1:
        raise ValueError(f"pca: must be >= 1 component, got {k}")
    centred = x - x.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    components = components[:k]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    projected = centred @ (components * signs[:, None]).T
    return np.pad(projected, ((0, 0), (0, k - projected.shape[1])))
