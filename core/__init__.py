"""DeepEmoCluster Explorer core: audio, features, network, corpora, stores and inference.

The public names are re-exported here; each lives in the module named in `_EXPORTS`. They are imported on
first use (PEP 562), not with the package: `import core.run_store` must not cost torch and scikit-learn's
import (~3 s on two cores), so that the app's map page, which reads only cached results, starts without them.
"""
import importlib

_EXPORTS = {
    "core.atomic": ["CorruptFileError"],
    "core.audio": ["AUDIO_EXTENSIONS", "AudioLoadingError", "load_audio", "peak_normalise"],
    "core.bundle": ["ModelBundle", "Normalisation"],
    "core.config": ["AVD", "AudioConfig", "ChunkConfig", "FeatureConfig", "LabelConfig", "ModelConfig", "RunConfig",
                    "apply_overrides", "config_hash"],
    "core.dataset": ["FeatureSet"],
    "core.extraction": ["CorpusAudioError", "extract_features"],
    "core.feature_store": ["FeatureStore"],
    "core.features": ["chunk_starts", "cut_chunks", "mel_spectrogram", "mel_spectrograms", "normalise", "pad_short"],
    "core.inference": ["PredictionResult", "Predictor"],
    "core.manifest": ["ManifestError", "load_corpus", "load_folder", "load_manifest", "load_msp_podcast",
                      "validate_manifest"],
    "core.model": ["EmotionCNN", "ModelOutput"],
    "core.official": ["import_official"],
    "core.paths": ["default_cache_dir", "default_data_dir", "default_runs_dir"],
    "core.run_info": ["RunInfo"],
    "core.run_store": ["Run", "RunNotFoundError", "RunStore"],
    "core.runtime": ["keep_freed_memory"],
    "core.synthetic": ["make_corpus", "make_demo_corpus"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value  # found in the module's namespace from now on, without this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
