"""DeepEmoCluster Explorer core: audio, features, network, corpora, stores and inference.

The public names are re-exported here; each lives in the module named in its docstring.
"""
from core.audio import AUDIO_EXTENSIONS, AudioLoadingError, load_audio, peak_normalise
from core.config import AVD, AudioConfig, ChunkConfig, FeatureConfig, LabelConfig, ModelConfig, RunConfig, apply_overrides, config_hash
from core.extraction import CorpusAudioError, extract_features
from core.features import chunk_starts, cut_chunks, mel_spectrogram, mel_spectrograms, normalise, pad_short
from core.inference import PredictionResult, Predictor
from core.manifest import ManifestError, load_corpus, load_folder, load_manifest, load_msp_podcast, validate_manifest
from core.model import EmotionCNN, ModelOutput
from core.official import import_official
from core.atomic import CorruptFileError
from core.bundle import ModelBundle, Normalisation
from core.dataset import FeatureSet
from core.feature_store import FeatureStore
from core.paths import default_cache_dir, default_data_dir, default_runs_dir
from core.run_store import Run, RunInfo, RunNotFoundError, RunStore
from core.runtime import keep_freed_memory
from core.synthetic import make_corpus, make_demo_corpus

__all__ = [
    "AUDIO_EXTENSIONS", "AVD", "AudioConfig", "AudioLoadingError", "ChunkConfig", "CorpusAudioError", "CorruptFileError",
    "EmotionCNN",
    "FeatureConfig", "FeatureSet", "FeatureStore", "LabelConfig", "ManifestError", "ModelBundle", "ModelConfig",
    "ModelOutput", "Normalisation", "PredictionResult", "Predictor", "Run", "RunConfig", "RunInfo", "RunNotFoundError", "RunStore",
    "apply_overrides", "default_cache_dir", "default_data_dir", "default_runs_dir", "chunk_starts", "config_hash", "cut_chunks", "extract_features", "import_official",
    "keep_freed_memory", "load_audio", "load_corpus", "load_folder", "load_manifest", "load_msp_podcast", "make_corpus",
    "make_demo_corpus", "mel_spectrogram", "mel_spectrograms", "normalise", "pad_short", "peak_normalise",
    "validate_manifest",
]
