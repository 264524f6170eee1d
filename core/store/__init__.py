"""Storage: atomic writes and checksums, default folders, the feature store, the run store, the analysis and
evaluation stores, a corpus's curation log, and the data types they persist. Knows data types, not compute: importing it imports no torch
and no module of another package but `core.config` and `core.errors`."""
from core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "atomic": ["CorruptFileError", "atomic_write_bytes", "atomic_write_json"],
    "paths": ["default_cache_dir", "default_data_dir", "default_demo_dir", "default_runs_dir"],
    "run_info": ["RunInfo", "RunMetrics"],
    "checkpoint": ["Checkpoint"],
    "run_store": ["ModelState", "Run", "RunLockedError", "RunNotFoundError", "RunStore", "RunWriter"],
    "feature_store": ["FeatureSet", "FeatureStore"],
    "latent": ["LatentSpace"],
    "analysis_store": ["Novelty"],
    "evaluation_store": ["Evaluation", "stored_evaluations"],
    "edits_store": ["CorpusEdits", "Edit"],
})
