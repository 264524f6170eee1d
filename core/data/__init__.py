"""Corpora and what the network is fed from them: manifests (CSV, MSP-Podcast, a folder of clips), split
hygiene, the demo corpus, feature extraction into the store, chunk sets and the loader that gathers batches."""
from core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "manifest": ["ManifestError", "corpus_fingerprint", "validate_manifest"],
    "corpus_formats": ["load_corpus", "load_folder", "load_manifest", "load_msp_podcast"],
    "split_hygiene": ["find_split_overlap"],
    "synthetic": ["make_corpus", "make_demo_corpus"],
    "extraction": ["CorpusAudioError", "extract_features"],
    "dataset": ["ChunkSet", "Normaliser", "make_chunk_set"],
})
