"""A run's latent space over a corpus, cached: embeddings, the map (UMAP) and the ways to colour it, clusters against
emotions, clusters in words, two clusterings compared, out of distribution, new clips located, exports of every table."""
from core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "exploration": ["Exploration", "ExploreError", "analyze_exploration", "explore", "find_utterance", "project", "utterance_table"],
    "analysis": ["DependenceReport", "analyze"],
    "locator": ["LocateResult", "Locator"],
    "export": ["export_exploration"],
    "projection": ["LatentProjector"],
    "colourings": ["COLOURINGS", "Colouring", "colouring", "colourings_of"],
})
