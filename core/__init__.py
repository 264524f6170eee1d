"""DeepEmoCluster Explorer core: packages by concept, each importing only those below it (`tests/test_layers.py`).

    config, errors   settings of a run; the base class of errors a user can cause
    store            atomic writes, the feature store, the run store, and the data types they persist (no torch)
    runtime          where code runs: the device, torch.distributed ranks, process memory settings
    audio            decoding, mel features, files to features
    data             corpora (manifests, the demo corpus, split hygiene), extraction, chunk sets, the loader
    model            the network, its bundle, the forward path, losses, K-means, metrics, inference
    explore          a run's latent space over a corpus: map, clusters, dependence, new clips, exports
    evaluate         test CCC with intervals, on a run's own splits or other corpora
    training         the DeepCluster loop, its checks and data, ablations
    report           a shareable report of one run
    cli              the command line (`python -m core`)

The public names are re-exported here, imported on first use (PEP 562): `import core.store.run_store` must not
cost torch and scikit-learn's import (~3 s on two cores), so that the app's map page, which reads only cached
results, starts without them.
"""
from core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "store.atomic": ["CorruptFileError"],
    "audio.decode": ["AUDIO_EXTENSIONS", "AudioLoadingError", "load_audio", "peak_normalise"],
    "model.bundle": ["ModelBundle", "Normalisation", "load_bundle"],
    "config": ["AVD", "AudioConfig", "ChunkConfig", "FeatureConfig", "LabelConfig", "ModelConfig", "RunConfig",
               "apply_overrides", "config_hash"],
    "errors": ["UserError"],
    "store.feature_store": ["FeatureSet", "FeatureStore"],
    "data.extraction": ["CorpusAudioError", "extract_features"],
    "audio.features": ["chunk_starts", "cut_chunks", "mel_spectrogram", "mel_spectrograms", "normalise", "pad_short"],
    "model.inference": ["PredictionResult", "Predictor"],
    "data.manifest": ["ManifestError", "validate_manifest"],
    "data.corpus_formats": ["load_corpus", "load_folder", "load_manifest", "load_msp_podcast"],
    "model.network": ["EmotionCNN", "ModelOutput"],
    "model.official": ["import_official"],
    "store.paths": ["default_cache_dir", "default_data_dir", "default_runs_dir"],
    "store.run_info": ["RunInfo"],
    "store.run_store": ["Run", "RunNotFoundError", "RunStore"],
    "runtime.process": ["keep_freed_memory"],
    "data.synthetic": ["make_corpus", "make_demo_corpus"],
    "training.train": ["train"],
})
