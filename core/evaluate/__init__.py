"""Test CCC with 95 % intervals (utterances and speakers resampled): a run's own test splits, or other corpora
read with the run's label scale; and runs compared over one corpus (clusters vs emotion, paired intervals)."""
from core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "evaluation": ["evaluate", "predict_utterances", "split_estimates"],
    "uncertainty": ["CccEstimate", "ccc_estimate"],
    "cross_corpus": ["EvaluationError", "evaluate_corpora"],
    "representations": ["ComparisonError", "RepresentationComparison", "compare_clusters", "compare_representations"],
})
