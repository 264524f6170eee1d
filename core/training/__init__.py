"""The DeepCluster loop of SPEC 2.4 (`train`), the epoch a run keeps and what each epoch records (`keeping`),
what it checks before it starts, the data it trains on, the space each epoch clustered (the live map), and
ablations of the unlabelled stage."""
from core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "train": ["TrainProgress", "TrainResult"],
    "keeping": ["EpochStats"],
    "checks": ["TrainingConfigError"],
    "ablation": ["run_ablation"],
})
