"""Comparing a generated set of windows with a reference set.

* :func:`overlap_area` and :func:`kl_divergence`: per feature, between Gaussian kernel density estimates
  of the two sets' values, both evaluated on one shared grid (Yang & Lerch's published code evaluated the two
  densities on different grids, which makes its KL meaningless).
* :func:`classifier_two_sample_test`: cross-validated accuracy of a classifier telling the sets apart, with
  folds grouped by piece (windows of one piece never straddle train and test folds); 0.5 = indistinguishable.
* :func:`frechet_distance`: between Gaussians fitted to the two sets' standardised feature vectors; it still
  ranks models when every one of them is easy to tell apart.
* :func:`copy_rate`: share of generated windows that occur verbatim, up to transposition, in the training data.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..encoding import OFF


def _bandwidth(x: np.ndarray, span: float) -> float:
    """Silverman's rule, floored so that constant or discrete samples still give a usable density."""
    n = len(x)
    sd = x.std()
    iqr = np.subtract(*np.percentile(x, [75, 25])) / 1.34
    spread = min(sd, iqr) if iqr > 0 else sd
    return max(0.9 * spread * n ** (-0.2), 0.05 * span, 1e-3)


def _densities(a: np.ndarray, b: np.ndarray, points: int = 512) -> tuple[np.ndarray, np.ndarray, float]:
    """KDEs of ``a`` and ``b`` on one shared grid: ``(p, q, grid step)``, each summing to 1 over the grid."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    both = np.concatenate([a, b])
    span = float(both.max() - both.min()) or 1.0
    ha, hb = _bandwidth(a, span), _bandwidth(b, span)
    lo, hi = both.min() - 4 * max(ha, hb), both.max() + 4 * max(ha, hb)
    grid = np.linspace(lo, hi, points)
    step = grid[1] - grid[0]

    def kde(x, h):
        d = np.exp(-0.5 * ((grid[:, None] - x[None, :]) / h) ** 2).sum(1)
        return d / (d.sum() * step)

    return kde(a, ha), kde(b, hb), step


def overlap_area(a: np.ndarray, b: np.ndarray) -> float:
    """Area under the minimum of the two sets' densities: 1 for identical sets, 0 for far-apart ones."""
    p, q, step = _densities(a, b)
    return float(np.minimum(p, q).sum() * step)


def kl_divergence(reference: np.ndarray, generated: np.ndarray) -> float:
    """KL(reference || generated) in nats between the two densities on a shared grid (0 when identical)."""
    p, q, step = _densities(reference, generated)
    mask = p > 1e-12
    return float((p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))).sum() * step)


# Features are counts, semitones, beats and fractions: 0.01 of any of them is below a musical difference.
MIN_SPREAD = 0.01


def frechet_distance(generated: np.ndarray, reference: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the feature vectors, after standardising every
    feature by the reference set's mean and spread (so no feature dominates by its units).

    The spread is floored at :data:`MIN_SPREAD`: a feature that never varies in the reference (no
    repeated bar in 512 chorale windows) would otherwise turn one generated repetition into a distance
    of millions.
    """
    from scipy import linalg

    mu, sd = reference.mean(0), np.maximum(reference.std(0), MIN_SPREAD)
    g, r = (generated - mu) / sd, (reference - mu) / sd
    m1, m2 = g.mean(0), r.mean(0)
    c1, c2 = np.cov(g, rowvar=False), np.cov(r, rowvar=False)
    # a little ridge keeps constant features (a singular covariance) from breaking the matrix root
    eps = 1e-6 * np.eye(np.atleast_2d(c1).shape[0])
    c1, c2 = np.atleast_2d(c1) + eps, np.atleast_2d(c2) + eps
    covmean = linalg.sqrtm(c1 @ c2)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(max(0.0, ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean)))


def classifier_two_sample_test(
    generated: np.ndarray, gen_groups: np.ndarray, reference: np.ndarray, ref_groups: np.ndarray,
    *, folds: int = 5, seed: int = 0, max_per_set: int = 1500,
) -> float:
    """Cross-validated accuracy of a gradient-boosted classifier telling generated from reference windows.

    Both sets are subsampled to the same size, so 0.5 means indistinguishable and 1.0 perfectly separable.
    Folds are grouped by piece (``*_groups``): windows of one piece are never on both sides of a split.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedGroupKFold

    rng = np.random.default_rng(seed)
    n = min(len(generated), len(reference), max_per_set)
    gi = rng.choice(len(generated), n, replace=False)
    ri = rng.choice(len(reference), n, replace=False)
    x = np.concatenate([generated[gi], reference[ri]])
    y = np.concatenate([np.ones(n), np.zeros(n)])
    groups = np.concatenate([np.asarray(gen_groups)[gi] * 2 + 1, np.asarray(ref_groups)[ri] * 2])
    k = min(folds, len(np.unique(groups[y == 1])), len(np.unique(groups[y == 0])))
    if k < 2:
        raise ValueError("the two-sample test needs at least two pieces in each set")
    correct = 0
    for train, test in StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(x, y, groups):
        clf = HistGradientBoostingClassifier(max_iter=100, random_state=seed).fit(x[train], y[train])
        correct += int((clf.predict(x[test]) == y[test]).sum())
    return correct / len(y)


def _transposition_free_keys(rolls: np.ndarray) -> list[bytes]:
    """A 16-byte digest per window, the same for a window and its transpositions (b"" for silence)."""
    keys = []
    for r in rolls:
        cols = np.flatnonzero((r != OFF).any(0))
        if len(cols):
            crop = np.ascontiguousarray(r[:, cols[0] : cols[-1] + 1])
            keys.append(hashlib.blake2b(crop.tobytes() + bytes([cols[-1] - cols[0]]), digest_size=16).digest())
        else:
            keys.append(b"")
    return keys


def training_window_keys(piece_rolls: list[np.ndarray], window: int) -> set[bytes]:
    """Keys of every ``window``-step stretch of the training pieces, at every step offset."""
    keys: set[bytes] = set()
    for roll in piece_rolls:
        if len(roll) < window:
            continue
        stretches = np.lib.stride_tricks.sliding_window_view(roll, (window, roll.shape[1]))[:, 0]
        keys.update(k for k in _transposition_free_keys(stretches) if k)
    return keys


def copy_rate(windows: np.ndarray, training_keys: set[bytes]) -> float:
    """Share of the non-silent ``windows`` found verbatim (up to transposition) among ``training_keys``."""
    keys = [k for k in _transposition_free_keys(windows) if k]
    return float(np.mean([k in training_keys for k in keys])) if keys else 0.0
