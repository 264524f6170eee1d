"""Labelled chunk sets through a network: utterance predictions, their CCC (SPEC 2.5), and the
per-utterance test predictions a run stores, from which every interval is computed without retraining."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.data.dataset import ChunkSet, Normaliser, utterance_mean
from core.evaluate.uncertainty import RESAMPLES, estimate_table, speaker_spread
from core.model.bundle import Normalisation
from core.model.forward import embed_chunks
from core.model.metrics import attribute_ccc
from core.model.network import EmotionCNN
from core.runtime.distributed import World
from core.store.evaluation_store import ESTIMATE_COLUMNS

def predict_utterances(model: EmotionCNN, chunk_set: ChunkSet, normaliser: Normaliser,
                       world: World | None = None) -> np.ndarray:
    """(N, A) z-normalised utterance predictions: each utterance's chunk mean (SPEC 2.2), eval mode."""
    out = embed_chunks(model, chunk_set, normaliser, world, outputs=("attributes",))
    return utterance_mean(out.attributes, chunk_set.n_chunks)


def evaluate(model: EmotionCNN, chunk_set: ChunkSet, normaliser: Normaliser, attributes: tuple[str, ...],
             world: World | None = None) -> dict[str, float]:
    """Utterance-level CCC per attribute (`core.model.metrics.attribute_ccc`): each utterance's chunk mean vs its label."""
    return attribute_ccc(chunk_set.targets, predict_utterances(model, chunk_set, normaliser, world), attributes)


def prediction_table(split: str, chunk_set: ChunkSet, z: np.ndarray, normalisation: Normalisation,
                     attributes: tuple[str, ...], speakers: pd.Series | None = None) -> pd.DataFrame:
    """One split's utterances, labels and predictions on the label scale.

    Args:
        z: (N, A) z-normalised predictions of `chunk_set`'s utterances (`predict_utterances`).
        speakers: speaker per utterance id, where the corpus has them.

    Returns:
        index file; columns split, speaker (where given), then `<a>` (label, NaN = missing) and
        `<a>_predicted` per attribute.
    """
    table = pd.DataFrame({"split": split}, index=pd.Index(chunk_set.files, name="file"))
    if speakers is not None:
        table["speaker"] = speakers.reindex(table.index).to_numpy(object)
    for j, attribute in enumerate(attributes):
        table[attribute] = normalisation.denormalise(attribute, chunk_set.targets[:, j])
        table[f"{attribute}_predicted"] = normalisation.denormalise(attribute, z[:, j])
    return table


def split_estimates(predictions: pd.DataFrame, attributes: list[str] | tuple[str, ...], *,
                    resamples: int = RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """`core.evaluate.uncertainty.estimate_table` of each split of a predictions table (`prediction_table` rows).

    Returns:
        index (split, attribute); columns ccc, low, high, n, reason, speaker_low, speaker_high, speakers.
    """
    present = [a for a in attributes if a in predictions and f"{a}_predicted" in predictions]
    parts = {split: estimate_table(rows, present, resamples=resamples, seed=seed)
             for split, rows in predictions.groupby("split", sort=False)}
    if not parts:
        return pd.DataFrame(columns=ESTIMATE_COLUMNS, index=pd.MultiIndex.from_arrays([[], []], names=["split", "attribute"]))
    return pd.concat(parts, names=["split"])


def interval_records(estimates: pd.DataFrame | None) -> dict[str, dict[str, dict]]:
    """`split_estimates` as `RunMetrics.test_intervals` stores them: split -> attribute -> its columns
    (None where NaN: JSON has no NaN)."""
    records: dict[str, dict[str, dict]] = {}
    for (split, attribute), row in ([] if estimates is None else estimates.iterrows()):
        records.setdefault(split, {})[attribute] = {k: (None if pd.isna(v) else v) for k, v in row.items()}
    return records


def estimate_text(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A table of estimates (`split_estimates`, or `core.training.ablation.paired_difference`) as people read it:
    "0.612 [0.571, 0.650]" (or "undefined: <reason>"), n, the known speakers and the speaker-clustered
    interval where there are enough of them (`core.evaluate.uncertainty.MIN_RESAMPLED_SPEAKERS`)."""
    value = "difference" if "difference" in table else "ccc"

    def interval(low, high) -> str:
        return "—" if pd.isna(low) else f"[{low:.{digits}f}, {high:.{digits}f}]"
    out = pd.DataFrame(index=table.index)
    out[f"{'CCC difference' if value == 'difference' else 'CCC'} [95 % CI]"] = [
        f"undefined: {row.reason}" if isinstance(row.reason, str) and row.reason else
        f"{getattr(row, value):.{digits}f} {interval(row.low, row.high)}" for row in table.itertuples()]
    out["n"] = table["n"].astype(int)
    if "speakers" in table and (table["speakers"].fillna(0) > 0).any():
        out["speakers"] = table["speakers"].fillna(0).astype(int)
    if "speaker_low" in table and table["speaker_low"].notna().any():  # from MIN_RESAMPLED_SPEAKERS on
        out["95 % CI, speakers resampled"] = [interval(lo, hi) for lo, hi in zip(table["speaker_low"], table["speaker_high"])]
    return out


def speaker_spreads(predictions: pd.DataFrame, attributes: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """`core.evaluate.uncertainty.speaker_spread` of each split and attribute of a predictions table (`prediction_table`
    rows), where some speaker has a CCC of their own.

    Returns:
        index (split, attribute); columns speakers, median, q1, q3 (the interquartile range) and worst ("spk21
        (0.434), ..."); empty when the table names no speakers or none has enough test utterances.
    """
    rows = {}
    for split, part in (predictions.groupby("split", sort=False) if "speaker" in predictions else ()):
        for attribute in (a for a in attributes if a in part and f"{a}_predicted" in part):
            spread = speaker_spread(part[attribute].to_numpy(float), part[f"{attribute}_predicted"].to_numpy(float),
                                    part["speaker"])
            ccc = spread.per_speaker["ccc"]
            if ccc.notna().any():
                rows[(split, attribute)] = {"speakers": spread.n_speakers, "median": spread.median, "q1": spread.q1,
                                            "q3": spread.q3, "worst": ", ".join(f"{s} ({ccc[s]:.3f})" for s in spread.worst)}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["speakers", "median", "q1", "q3", "worst"])
    table.index = pd.MultiIndex.from_tuples(list(rows), names=["split", "attribute"])
    return table
