"""The network and what runs it: the CNN (SPEC 2.3), a run's bundle of networks and normalisation, the one forward
path, the losses of a batch, K-means pseudo-labels, chunk masks, CCC, inference on new audio, and the authors'
published checkpoints imported as runs."""
from core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "network": ["EmotionCNN", "ModelOutput"],
    "bundle": ["ModelBundle", "Normalisation", "load_bundle"],
    "clustering": ["PseudoLabeler"],
    "metrics": ["ccc", "ccc_loss"],
    "inference": ["PredictionResult", "Predictor"],
    "official": ["OfficialImportError", "import_official"],
})
