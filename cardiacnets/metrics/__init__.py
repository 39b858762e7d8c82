"""Statistics of the CardiacNets paper (Ding et al., section "Quantitative assessment and statistical analysis").

The paper reports AUC, accuracy, sensitivity, specificity, PPV and NPV with Wilson score intervals, Pearson r with
bootstrap intervals, DeLong tests between AUCs, z-tests for the other metrics, and one-vs-rest evaluation of the
3-class cardiomyopathy subtype task. This module implements those, the paired tests a fair comparison of two models on
the same subjects needs (DeLong for correlated AUCs, McNemar for sensitivity/specificity, Steiger and a paired bootstrap
for correlations), threshold selection on a validation split and calibration.

Conventions shared by every function:

- ``y_true`` for binary tasks is a 1-D array of 0/1 (or booleans), 1 = disease present. ``y_score`` is a 1-D array of
  the same length; higher means more likely positive. A subject is called positive when ``y_score >= threshold``.
- Multiclass labels are integers in ``[0, C)``; multiclass scores are ``(n, C)``.
- Regression targets and predictions are ``(n,)`` or ``(n, k)`` (k targets, e.g. the 82 phenotypes), one row per
  subject.
- ``confidence`` is the two-sided coverage of every interval (0.95 by default).
- Randomness only comes from ``rng``: a :class:`numpy.random.Generator`, an integer seed, or ``None`` (seed 0, so that
  reports are reproducible by default).
- Invalid input (NaN, length mismatch, one-class labels where a metric is undefined, labels that are not 0/1) raises
  :class:`~cardiacnets.errors.InputError` with a message naming the problem.
- Results are small frozen dataclasses whose ``as_dict()`` is JSON-ready (``{"value", "ci"}``; NaN becomes ``None``).

The statistics live in one module per family, all re-exported here (``from cardiacnets.metrics import auroc``):
:mod:`~cardiacnets.metrics.discrimination` (proportions, binary reports, AUROC, DeLong tests),
:mod:`~cardiacnets.metrics.thresholds` (operating points), :mod:`~cardiacnets.metrics.correlation` (Pearson r, its
intervals and comparisons), :mod:`~cardiacnets.metrics.calibration` (reliability curve, ECE, Brier),
:mod:`~cardiacnets.metrics.agreement` (McNemar, two-proportion z-test) and :mod:`~cardiacnets.metrics.multiclass`
(confusion matrices, one-vs-rest AUROC). :mod:`~cardiacnets.metrics.screening` scores fine-tuning predictions with
them and is imported on its own.

Only numpy and scipy are used here: the package is imported by the torch-free screening install.
"""

from __future__ import annotations

from cardiacnets.metrics._common import ComparisonResult, Estimate, Proportion
from cardiacnets.metrics.agreement import (
    MCNEMAR_EXACT_BELOW as MCNEMAR_EXACT_BELOW,  # a module constant, not in __all__, as before the split
)
from cardiacnets.metrics.agreement import (
    compare_sensitivity_specificity,
    mcnemar_test,
    two_proportion_ztest,
)
from cardiacnets.metrics.calibration import (
    ReliabilityCurve,
    brier_score,
    expected_calibration_error,
    reliability_curve,
)
from cardiacnets.metrics.correlation import (
    MultiTargetCorrelation,
    dependent_correlation_z,
    independent_correlations_test,
    mean_pearson_r,
    paired_bootstrap_correlation_difference,
    pearson_ci,
    pearson_r,
    steiger_test,
)
from cardiacnets.metrics.discrimination import (
    BinaryCounts,
    BinaryReport,
    auroc,
    auroc_ci,
    binary_counts,
    binary_report,
    delong_covariance,
    delong_test,
    delong_test_unpaired,
    proportion,
    summarise_binary,
    wilson_interval,
)
from cardiacnets.metrics.multiclass import (
    MulticlassReport,
    confusion_matrix,
    multiclass_report,
    normalise_rows,
    one_vs_rest_auroc,
)
from cardiacnets.metrics.thresholds import (
    select_thresholds,
    threshold_for_sensitivity,
    threshold_for_specificity,
    youden_threshold,
)

__all__ = [
    "BinaryCounts",
    "BinaryReport",
    "ComparisonResult",
    "Estimate",
    "MulticlassReport",
    "MultiTargetCorrelation",
    "Proportion",
    "ReliabilityCurve",
    "auroc",
    "auroc_ci",
    "binary_counts",
    "binary_report",
    "brier_score",
    "compare_sensitivity_specificity",
    "confusion_matrix",
    "delong_covariance",
    "delong_test",
    "delong_test_unpaired",
    "dependent_correlation_z",
    "expected_calibration_error",
    "independent_correlations_test",
    "mcnemar_test",
    "mean_pearson_r",
    "multiclass_report",
    "normalise_rows",
    "one_vs_rest_auroc",
    "paired_bootstrap_correlation_difference",
    "pearson_ci",
    "pearson_r",
    "proportion",
    "reliability_curve",
    "select_thresholds",
    "steiger_test",
    "summarise_binary",
    "threshold_for_sensitivity",
    "threshold_for_specificity",
    "two_proportion_ztest",
    "wilson_interval",
    "youden_threshold",
]
