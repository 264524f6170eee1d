"""Locate new clips in an explored latent space (`core.explore.exploration`): predictions, cluster, map position, nearest
corpus clips, chunk by chunk, and whether each lies out of the corpus's distribution (`core.explore.novelty`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import UmapConfig
from core.data.dataset import utterance_mean
from core.explore.exploration import Exploration, novelty
from core.explore.novelty import Novelty, nearest_corpus_distance
from core.explore.projection import LatentProjector
from core.model.clustering import nearest_centroid
from core.model.inference import Predictor
from core.represent.predictor import predictor_of
from core.store.latent import cluster_shares


@dataclass(frozen=True)
class LocateResult:
    table: pd.DataFrame  # index `file`: attributes, cluster, x, y(, z), neighbours, neighbour_distances,
                         # nearest_distance, out_of_distribution
    errors: dict[str, str]  # path -> why it could not be read
    novelty: Novelty | None = None  # the corpus reference the out-of-distribution flag compares with
    chunks: pd.DataFrame | None = None  # one row per (file, chunk): cluster, attributes, x, y(, z)


class Locator:
    """Place new clips in an explored latent space: predictions, cluster, map position, neighbours.

    Position: the distance-weighted mean of the k nearest corpus utterances' map coordinates in the
    map's embedding space (`core.explore.projection`): fast and always inside the map. Out of distribution: the
    distance to the nearest corpus utterance in the clustering space, against the corpus's own (`core.explore.novelty`).
    """

    def __init__(self, exploration: Exploration, coords: np.ndarray, cfg: UmapConfig = UmapConfig(),
                 predictor: Predictor | None = None):
        self.exploration, self.cfg = exploration, cfg
        self._predictor = predictor
        self.projector = LatentProjector.from_map(exploration.latent.embeddings[cfg.space], coords, cfg)

    @property
    def predictor(self) -> Predictor:
        """The run's networks, or a baseline's vectors (`core.represent.predictor`): made on the first clip located,
        so that the corpus's own neighbours and chunk positions need none (imported embeddings have none).

        Raises:
            ForeignCorpusError: the run holds imported embeddings, which cannot embed a new clip.
        """
        if self._predictor is None:
            self._predictor = predictor_of(self.exploration.run)
        return self._predictor

    def locate_files(self, paths: list[str | Path], n_neighbours: int = 5, *, refuse_silent: bool = False,
                     max_duration_s: float | None = None) -> LocateResult:
        """A table per clip (index `file`): attributes, cluster, map coordinates, nearest corpus clips.

        Args:
            refuse_silent, max_duration_s: see `Predictor.load` (the app refuses silent uploads).

        Returns:
            the table and {path: reason} for files that could not be read.
        """
        paths = [str(p) for p in paths]
        loaded = self.predictor.load(paths, refuse_silent=refuse_silent, max_duration_s=max_duration_s)
        clips, errors = loaded.clips, loaded.errors
        if not clips:
            return LocateResult(pd.DataFrame(), errors)
        ok = [clip.path for clip in clips]
        predicted = self.predictor.predict_chunks([c.features for c in clips])
        outputs, latent = predicted.outputs[self.exploration.network], self.exploration.latent
        c = predicted.chunks.shape[1]  # C chunks per clip (N, C, A)
        chunk_vectors = {"cluster": outputs.cluster_features, "latent": outputs.latent}[self.cfg.space]
        embedding = utterance_mean(chunk_vectors, c)  # as `build_latent_space` does for the corpus
        chunk_cluster = nearest_centroid(outputs.cluster_features, latent.centroids)
        share = cluster_shares(chunk_cluster, c, len(latent.centroids))
        coords = self.projector.transform(embedding)
        distances, neighbours = self.projector.neighbours(embedding, n_neighbours)
        files = latent.files
        table = pd.DataFrame(predicted.utterances, columns=self.predictor.attributes, index=pd.Index(ok, name="file"))
        table["cluster"] = share.argmax(1)
        for i, axis in enumerate("xyz"[: coords.shape[1]]):
            table[axis] = coords[:, i]
        table["neighbours"] = [[str(files[j]) for j in row] for row in neighbours]
        table["neighbour_distances"] = [row.round(4).tolist() for row in distances]
        chunk_table = self._chunk_table(clips, predicted.chunks, chunk_cluster, chunk_vectors, c)
        reference = novelty(self.exploration)
        cluster_space = embedding if self.cfg.space == "cluster" else utterance_mean(outputs.cluster_features, c)
        table["nearest_distance"], _ = nearest_corpus_distance(latent.embeddings["cluster"], cluster_space)
        table["out_of_distribution"] = reference.is_out(table["nearest_distance"].to_numpy())
        return LocateResult(table, errors, reference, chunk_table)

    def corpus_neighbours(self, file, k: int = 5) -> pd.Series:
        """The `k` corpus utterances nearest to corpus utterance `file` in the map's space, itself left out:
        distances indexed by file, nearest first."""
        latent = self.exploration.latent
        vector = latent.embeddings[self.cfg.space][[latent.files.get_loc(file)]]
        distances, neighbours = self.projector.neighbours(vector, k + 1)
        found = pd.Series(distances[0], index=latent.files[neighbours[0]], name="distance")
        return found.drop(file, errors="ignore").head(k)

    def chunk_positions(self, file) -> np.ndarray:
        """(C, n_components) map positions of a corpus utterance's chunks, placed as uploads are (k-NN in the
        map's space from the chunk embeddings)."""
        latent = self.exploration.latent
        return self.projector.transform(np.asarray(latent.chunk_embeddings[self.cfg.space][latent.chunk_rows(file)],
                                                   np.float32))

    def _chunk_table(self, clips: list, chunks: np.ndarray, chunk_cluster: np.ndarray, chunk_vectors: np.ndarray,
                     c: int) -> pd.DataFrame:
        """One row per (file, chunk) of located clips: start_s, end_s, cluster, predicted attributes and map
        position (from the chunks' vectors in the map's space)."""
        coords = self.projector.transform(chunk_vectors)
        index = pd.MultiIndex.from_product([[clip.path for clip in clips], range(c)], names=["file", "chunk"])
        table = pd.DataFrame(chunks.reshape(len(clips) * c, -1), columns=self.predictor.attributes, index=index)
        times = np.array([t for clip in clips for t in self.predictor.chunk_times(clip.n_samples)])
        table.insert(0, "start_s", times[:, 0])
        table.insert(1, "end_s", times[:, 1])
        table.insert(2, "cluster", chunk_cluster)
        for i, axis in enumerate("xyz"[: coords.shape[1]]):
            table[axis] = coords[:, i]
        return table
