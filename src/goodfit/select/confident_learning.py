"""Confident learning: which given labels are likely wrong (Northcutt, Jiang & Chuang 2021,
"Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 70).

Inputs: the given (noisy) labels ``ỹ`` and *out-of-fold* predicted probabilities
``p̂(ỹ = j; x)`` (each sample scored by a model that did not train on it). Seed 000 lists
"data clearing and denoising (exclude ... misclassified data, look at the anomalies ...)".

1. Per-class thresholds, the paper's eq. (2): ``t_j`` = the mean self-confidence of the samples
   labelled ``j``, ``t_j = (1 / |X_{ỹ=j}|) Σ_{x ∈ X_{ỹ=j}} p̂(ỹ = j; x)``.
2. The confident joint, eq. (1): sample ``x`` with given label ``i`` is counted in
   ``C[i][j]`` where ``j = argmax_{l : p̂(l; x) ≥ t_l} p̂(l; x)`` — the most likely class among
   those it is confidently predicted as; a sample above no threshold is not counted.
3. The label issues are the samples off the diagonal of ``C`` (the paper's ``C_{ỹ,y*}``
   method), ranked by self-confidence ``p̂(ỹ = i; x)``, lowest (most suspect) first; the
   suggested label is that ``j``.

The calibrated joint ``Q̂_{ỹ,y*}`` (eq. 3: each row of ``C`` rescaled to the class's count,
then the whole normalized to sum 1) estimates the noise rates ``p(ỹ = i, y* = j)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["ConfidentLearning", "confident_learning"]


@dataclasses.dataclass
class ConfidentLearning:
    """The result of :func:`confident_learning`.

    ``thresholds`` (K,), ``confident_joint`` (K, K, rows = given label, columns = suggested),
    ``joint`` (the calibrated ``Q̂``), ``issues`` (sample indices, most suspect first),
    ``suggested`` (per sample: ``j`` of step 2, or -1 above no threshold),
    ``self_confidence`` (per sample: ``p̂(ỹ; x)``).
    """

    thresholds: np.ndarray
    confident_joint: np.ndarray
    joint: np.ndarray
    issues: np.ndarray
    suggested: np.ndarray
    self_confidence: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (lists)."""
        return {
            "thresholds": self.thresholds.tolist(),
            "confident_joint": self.confident_joint.tolist(),
            "joint": self.joint.tolist(),
            "estimated_noise_rate": float(1.0 - np.trace(self.joint)),
            "n_issues": len(self.issues),
        }


def confident_learning(labels: Any, pred_probs: Any) -> ConfidentLearning:
    """Thresholds, confident joint and ranked label issues of ``labels`` (N,) given out-of-fold
    ``pred_probs`` (N, K); see the module docstring for the rule and its source."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(pred_probs, dtype=np.float64)
    if p.ndim != 2 or y.shape != (len(p),):
        raise ValueError(f"labels (N,) and pred_probs (N, K) expected, got {y.shape}, {p.shape}")
    n, k = p.shape
    if y.min(initial=0) < 0 or y.max(initial=0) >= k:
        raise ValueError(f"labels must be in [0, {k}), got values in [{y.min()}, {y.max()}]")
    self_conf = p[np.arange(n), y]
    counts = np.bincount(y, minlength=k)
    thresholds = np.bincount(y, weights=self_conf, minlength=k) / np.maximum(counts, 1)
    thresholds = np.where(counts > 0, thresholds, np.inf)  # an empty class is never confident
    above = p >= thresholds[None, :]
    masked = np.where(above, p, -np.inf)
    suggested = np.where(above.any(axis=1), masked.argmax(axis=1), -1)
    joint_counts = np.zeros((k, k), dtype=np.int64)
    counted = suggested >= 0
    np.add.at(joint_counts, (y[counted], suggested[counted]), 1)
    flagged = np.flatnonzero(counted & (suggested != y))
    issues = flagged[np.argsort(self_conf[flagged], kind="stable")]
    rows = joint_counts.sum(axis=1, keepdims=True)
    calibrated = np.where(rows > 0, joint_counts / np.maximum(rows, 1), 0.0) * counts[:, None]
    total = calibrated.sum()
    joint = calibrated / total if total > 0 else calibrated
    return ConfidentLearning(thresholds, joint_counts, joint, issues, suggested, self_conf)
