"""What a run is and what it scored: the `config.json` and `metrics.json` of a run (`core.store.run_store`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.config import RunConfig

SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """What a run is (its `config.json`): how it was made, from what, with which config."""
    # "trained" (by `core.training.train`), "official" (the published models, imported), "baseline" (acoustic
    # features) or "embeddings" (imported vectors): the last two by `core.training.representations`
    kind: str
    name: str
    config: RunConfig
    run_id: str = ""
    created: str = ""  # ISO 8601, UTC, stamped when the run is opened
    corpus_fingerprint: str | None = None  # trained runs: `core.data.manifest.corpus_fingerprint`
    corpus_size: dict[str, int] = field(default_factory=dict)  # split -> utterances
    source: dict[str, str] = field(default_factory=dict)  # imported: network -> checkpoint file name
    primary_network: str | None = None  # whose space the map uses by default (imported: arousal)
    attribution: str | None = None
    published_test_ccc: dict[str, float] = field(default_factory=dict)
    centroids: str | None = None  # how clusters are derived where the run stores no centroids
    split_overlap: str | None = None  # trained runs: the leaks between splits that were allowed (`core.data.split_hygiene`)
    representation: str | None = None  # baseline and embeddings runs: their vectors ("egemaps", "logmel-stats", ...)
    schema_version: int = SCHEMA_VERSION

    @property
    def trained(self) -> bool:
        return self.kind == "trained"

    @property
    def networks(self) -> list[str]:
        """The names of the run's networks, without loading them: an imported model's, one per attribute
        (`source`), or a trained run's one (`ModelConfig.network_name`); a representation run's one space."""
        if self.representation:
            return [self.representation]
        return list(self.source) if self.source else [self.config.model.network_name]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunInfo":
        """Keys this version does not know are ignored, so runs written by a later version still load."""
        known = {f.name for f in dataclasses.fields(cls)} - {"config"}
        return cls(config=RunConfig.from_dict(data["config"]), **{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class RunMetrics:
    """`metrics.json`: the best checkpoint's test CCC, with 95 % bootstrap intervals (`core.evaluate.uncertainty`)."""
    test_ccc: dict[str, dict[str, float]]  # split -> attribute -> CCC
    best_epoch: int
    # split -> attribute -> `core.evaluate.evaluation.interval_records`; empty in runs finished before intervals existed
    test_intervals: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
