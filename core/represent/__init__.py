"""Other representations as runs: utterance vectors from plain acoustics (eGeMAPS, log-mel statistics) or imported
from another model, standardised, clustered and regressed on the corpus's splits as a trained run is, so that
every page and command that reads a run's latent space reads theirs (the runs are made by `core.training.representations`)."""
from core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "vectors": ["FEATURE_SETS", "RepresentationError", "utterance_vectors"],
    "fitting": ["Representation", "fit_representation", "latent_space"],
    "embeddings_file": ["EmbeddingsFileError", "read_embeddings"],
    "space": ["KINDS", "load_representation", "representation_latent"],
})
