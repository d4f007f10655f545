"""Reward-quality metrics, numpy only: rank and linear correlation, AUROC.

>>> value_order_correlation([5, 10, 40, 90])
1.0
>>> auroc([0.9, 0.8, 0.3, 0.1], [True, True, False, False])
1.0
"""
import math
from typing import Sequence

import numpy as np


def rank_average(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n with ties given the mean of their ranks (as Spearman's rho needs)."""
    data = np.asarray(values, dtype=np.float64)
    order = np.argsort(data, kind='mergesort')
    ranks = np.empty(len(data), dtype=np.float64)
    sorted_values = data[order]
    start = 0
    while start < len(data):
        end = start
        while end + 1 < len(data) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r; NaN when fewer than 2 points or either side is constant.

    >>> pearson([1, 2, 3], [2, 4, 6])
    1.0
    """
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f'pearson needs equal lengths, got {a.shape} and {b.shape}')
    # all values equal, not std 0: three 0.1s have a std of 1e-17 (their float mean is not 0.1)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(np.clip(np.corrcoef(a, b)[0, 1], -1.0, 1.0))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (Pearson's r of the tie-averaged ranks); NaN when undefined."""
    if len(x) != len(y):
        raise ValueError(f'spearman needs equal lengths, got {len(x)} and {len(y)}')
    return pearson(rank_average(x), rank_average(y))


def value_order_correlation(predicted: Sequence[float]) -> float:
    """VOC: Spearman's rho between predicted progress and time order (GVL, SOLE-R1).

    For an expert video progress should rise with time, so 1 is perfect and 0 is noise. A
    constant prediction has no order: 0, as noise (NaN left it out of a mean, which then
    rose: a model blind to an episode looked better for it). NaN for fewer than two values.

    >>> value_order_correlation([5.0, 5.0, 5.0])
    0.0
    """
    values = np.asarray(predicted, dtype=np.float64)
    if values.size >= 2 and np.all(values == values[0]):
        return 0.0
    return spearman(values, np.arange(values.size))


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` separating True from False labels.

    Mann-Whitney form, ties counted half. NaN when either class is empty.

    >>> auroc([1, 1, 1], [True, False, True])
    0.5
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape:
        raise ValueError(f'auroc needs equal lengths, got {s.shape} and {y.shape}')
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = rank_average(s)
    u = ranks[y].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def nanmean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN when there are none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan
