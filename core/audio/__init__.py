"""Audio in: decoding (soundfile, soxr) to mono at the run's rate, the mel features and chunking of SPEC 2.1-2.2,
and files to features with bad files reported, not raised."""
from core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "decode": ["AUDIO_EXTENSIONS", "AudioLoadingError", "AudioStream", "cut_wav", "load_audio", "peak_normalise"],
    "features": ["chunk_starts", "cut_chunks", "mel_spectrogram", "mel_spectrograms", "normalise", "pad_short"],
    "frontend": ["ClipFeatures", "LoadResult", "load_features"],
})
