"""The settings of a run: one frozen dataclass per stage composed into `RunConfig` (`sections`), the presets
(`presets`) and overrides from the command line or TOML (`overrides`). Standard library only, so the names are
imported here with the package."""
from core.config.overrides import apply_overrides, toml_overrides
from core.config.presets import PRESETS, PUBLISHED_CLUSTERS, default, demo, paper, preset, tiny
from core.config.sections import (AVD, AudioConfig, ChunkConfig, ClusterConfig, FeatureConfig, LabelConfig,
                                  ModelConfig, RunConfig, TrainConfig, UmapConfig, config_hash)

__all__ = ["AVD", "PRESETS", "PUBLISHED_CLUSTERS", "AudioConfig", "ChunkConfig", "ClusterConfig", "FeatureConfig",
           "LabelConfig", "ModelConfig", "RunConfig", "TrainConfig", "UmapConfig", "apply_overrides", "config_hash",
           "default", "demo", "paper", "preset", "tiny", "toml_overrides"]
