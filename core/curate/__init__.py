"""Curation: a person's corrections of a corpus (edited labels, unusable clips, tags), made from what the explorer
shows, kept as a log in the run store, and the corrected corpus written out to train on."""
from core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "edits": ["Curation", "CurationError", "corpus_log", "curation", "keep_label", "mark_unusable", "set_label", "tag", "undo"],
    "corrected": ["CorpusExport", "corrected_corpus", "export_corpus"],
})
