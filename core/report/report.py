"""A shareable report of one run (`python -m core report`): config and corpus, training curves, test CCC with
intervals beside the published numbers, the SSL ablation, cluster-emotion dependence, other corpora, and the run
against the other stored runs over its corpus (`core.report.representations`).

It reads what the run stores and computes only bootstrap intervals and (optionally, cached) the latent
space; `core.report.document` renders it, `core.report.figures` draws it. A section whose data is absent
says so in one line instead.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pandas as pd

from core.audio.decode import AudioLoadingError
from core.data.manifest import is_labelled, known_speakers
from core.evaluate.cross_corpus import EvaluationError, run_test_predictions, test_estimates
from core.evaluate.evaluation import estimate_text, speaker_spreads, split_estimates
from core.evaluate.uncertainty import MIN_RESAMPLED_SPEAKERS, MIN_SPEAKER_UTTERANCES, RESAMPLES
from core.explore.exploration import ExploreError, analyze_exploration, corpus_to_explore, explore
from core.model.official import PUBLISHED_TEST_CCC
from core.report.document import (FIGURES, Code, Heading, Image, Paragraph, ReportDocument, Section, Table, missing,
                                  render_html, render_markdown)
from core.report.figures import (LOSSES, cluster_size_figure, dependence_figure, dev_ccc_table, estimate_figure,
                                 training_figure)
from core.report.representations import TITLE as REPRESENTATIONS, representations_section
from core.runtime.device import resolve_device
from core.runtime.distributed import World
from core.store.atomic import atomic_write_bytes
from core.store.evaluation_store import stored_evaluations
from core.store.run_store import Run, RunStore
from core.training.ablation import ablation_partner, paired_difference

REPORT_HTML, REPORT_MD = "report.html", "report.md"
TITLES = ("Run and corpus", "Training curves", "Test CCC", "SSL ablation: with vs without unlabelled data",
          "Cluster-emotion dependence", "Other corpora", REPRESENTATIONS, "How this report was made")
PUBLISHED_NOTE = ("published, on MSP-Podcast (a different corpus): not comparable unless this run is trained on "
                  "MSP-Podcast")
PUBLISHED_MODEL = "DeepEmoCluster (Lin et al. 2021), MSP-Podcast v1.6 test set"
N_SHUFFLES = 20  # shuffled-cluster baselines of the dependence statistics (`core.explore.exploration.analyze_exploration`)


def write_report(run: Run, out: Path, *, cache_root: Path, analysis: bool = True, device: str = "auto",
                 progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Write `out/report.html` (one self-contained page), `out/report.md` and `out/figures/*.png`.

    Args:
        out: the report's folder (created if absent; other files in it are left alone).
        cache_root: feature-store root, for the cluster-emotion analysis's embedding pass.
        analysis: embed the run's corpus (cached in the run's `analysis/` folder) for the cluster-emotion
            section and the other runs over the same corpus; False leaves both out (seconds for the demo corpus,
            minutes for large ones).
        device: "auto", "cpu" or "cuda", for the predictions and embeddings not yet stored.
        progress: optional callback(stage, done, total) of the analysis's feature extraction and embedding.

    Returns:
        The path of report.html.

    Raises:
        NotADirectoryError: `out` is a file.
    """
    document = build_report(run, cache_root=cache_root, analysis=analysis, device=device, progress=progress)
    return save_report(document, Path(out))


def build_report(run: Run, *, cache_root: Path, analysis: bool = True, device: str = "auto",
                 runs: list[Run] | None = None, progress: Callable[[str, int, int], None] | None = None
                 ) -> ReportDocument:
    """The report of `run` as a document (`write_report` without the files; the same arguments).

    Args:
        runs: where to look for the ablation partner and the other runs over the same corpus (default: every
            run of `run`'s store).
    """
    runs = RunStore(run.dir.parent).list() if runs is None else runs
    sections = (_run_section(run), _training_section(run), _test_section(run, device),
                _ablation_section(run, runs, device),
                _analysis_section(run, cache_root, device, progress) if analysis
                else Section(TITLES[4], (missing("left out (--no-analysis)"),)),
                _evaluations_section(run),
                representations_section(run, runs, cache_root=cache_root, device=device, n_shuffles=N_SHUFFLES,
                                        progress=progress) if analysis
                else Section(REPRESENTATIONS, (missing("left out (--no-analysis)"),)), _footer(run, analysis))
    return ReportDocument(f"DeepEmoCluster run report: {run.run_id}", sections)


def save_report(document: ReportDocument, out: Path) -> Path:
    """Write a document's files, in an order that never leaves a report that looks complete after a crash:
    the old pages go first, then the figures, then report.md (its figures are all in place by then), and
    report.html last; every file atomically. Returns the path of report.html."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"the report's folder {out} is a file")
    for name in (REPORT_HTML, REPORT_MD):
        (out / name).unlink(missing_ok=True)
    for image in document.images():
        atomic_write_bytes(out / FIGURES / f"{image.name}.png", image.png)
    atomic_write_bytes(out / REPORT_MD, render_markdown(document).encode("utf-8"))
    atomic_write_bytes(out / REPORT_HTML, render_html(document).encode("utf-8"))
    return out / REPORT_HTML


# --- 1. the run and its corpus -------------------------------------------------------------------

def _run_section(run: Run) -> Section:
    info = run.info
    kind = {"trained": "trained by this project", "official": "official: the published models, imported",
            "baseline": f"baseline: {info.representation} features, standardised, clustered and regressed",
            "embeddings": "embeddings: vectors imported from another model, standardised, clustered and regressed"
            }.get(info.kind, info.kind)
    blocks: list = [Paragraph(f"Run `{run.run_id}` ({kind}), name `{info.name}`, created {info.created}.")]
    if info.attribution:
        blocks.append(Paragraph(info.attribution))
    if overlap := info.split_overlap:  # a leak between splits that training was told to allow
        blocks.append(Paragraph(f"Trained although its splits leak (allowed on request): {overlap}. Test CCC may be "
                                "optimistic.", "note"))
    blocks += [Heading("Config"), Code("\n".join(_config_lines(run.config.to_dict()))), Heading("Corpus")]
    blocks += _corpus_blocks(run)
    return Section(TITLES[0], tuple(blocks))


def _config_lines(config: dict, prefix: str = "") -> list[str]:
    """Nested config dict -> "train.epochs = 2" lines, as `--set` takes them."""
    lines = []
    for key, value in config.items():
        if isinstance(value, dict):
            lines += _config_lines(value, f"{prefix}{key}.")
        else:
            lines.append(f"{prefix}{key} = {json.dumps(value)}")
    return lines


def _corpus_blocks(run: Run) -> list:
    corpus, sizes = run.corpus(), run.info.corpus_size
    labels = run.config.labels
    scale = Paragraph(f"Labels on the scale {labels.minimum:g} to {labels.maximum:g}.")
    if corpus is None:
        if not sizes:
            return [missing("an imported model has no corpus of its own"), scale]
        return [Table(pd.DataFrame({"utterances": sizes}).rename_axis("split")), scale]
    return [Table(_corpus_table(corpus, sizes, run.config.model.attributes),
                  "Utterances, known speakers and observed label range (minimum to maximum) per split"), scale]


def _corpus_table(corpus: pd.DataFrame, sizes: dict[str, int], attributes: tuple[str, ...]) -> pd.DataFrame:
    splits = list(sizes) or list(corpus["split"].unique())
    by_split = corpus.groupby("split", sort=False)
    table = pd.DataFrame(index=pd.Index(splits, name="split"))
    table["utterances"] = [sizes.get(s, int(by_split.size().get(s, 0))) for s in splits]
    table["labelled"] = is_labelled(corpus).groupby(corpus["split"]).sum().reindex(splits).fillna(0).astype(int)
    if "speaker" in corpus:
        speakers = known_speakers(corpus["speaker"])
        if speakers.notna().any():
            table["speakers"] = speakers.groupby(corpus["split"]).nunique().reindex(splits).fillna(0).astype(int)
    for attribute in attributes:
        values = corpus[attribute].groupby(corpus["split"])
        low, high = values.min().reindex(splits), values.max().reindex(splits)
        table[f"{attribute} range"] = ["—" if pd.isna(a) else f"{a:.2f} to {b:.2f}" for a, b in zip(low, high)]
    return table


# --- 2. training ---------------------------------------------------------------------------------

def _training_section(run: Run) -> Section:
    history = run.history()
    if history.empty:
        why = ("the run stored no training history" if run.info.trained else "an imported model carries no training "
               "history" if run.info.kind == "official" else f"a {run.info.kind} run is fitted, not trained")
        return Section(TITLES[1], (missing(why),))
    best = _best_epoch(run, history)
    kept = f"; the kept checkpoint (best development CCC) is epoch {best + 1}" if best is not None else ""
    sizes = cluster_size_figure(history)
    return Section(TITLES[1], (
        Paragraph(f"{len(history)} epochs{kept}. Epochs are counted from 1; the dashed line marks the kept one."),
        Image("training", training_figure(history, best),
              "Losses, development CCC per attribute and NMI of the pseudo-labels with the previous epoch"),
        Image("cluster_sizes", sizes, "Cluster sizes per epoch, sorted: one bright column alone is a collapse onto "
              "one cluster") if sizes else missing("no epoch recorded its cluster sizes"),
        Table(_epoch_table(history, best), "Per epoch")))


def _best_epoch(run: Run, history: pd.DataFrame) -> int | None:
    """The kept checkpoint's epoch (0-based): as `metrics.json` records it, else the last improvement."""
    metrics = run.metrics()
    if metrics is not None and metrics.best_epoch >= 0:
        return metrics.best_epoch
    improved = history.loc[history["best"].astype(bool), "epoch"] if "best" in history else pd.Series(dtype=int)
    return int(improved.iloc[-1]) if len(improved) else None


def _epoch_table(history: pd.DataFrame, best: int | None) -> pd.DataFrame:
    table = pd.DataFrame(index=pd.Index(history["epoch"].to_numpy() + 1, name="epoch"))
    for column, label in LOSSES.items():
        if column in history:
            table[label] = history[column].to_numpy(float)
    dev = dev_ccc_table(history)
    for attribute in dev.columns:
        table[f"dev CCC {attribute}"] = dev[attribute].to_numpy(float)
    table["NMI with previous"] = history["nmi_previous"].to_numpy(float)
    if "precision" in history:  # "—" for epochs of a run resumed across versions, from before it was recorded
        table["precision"] = history["precision"].fillna("—").to_numpy()
    table["kept"] = ["yes" if e == best else "" for e in history["epoch"]]
    return table


# --- 3. test CCC ---------------------------------------------------------------------------------

def _test_section(run: Run, device: str) -> Section:
    published = run.info.published_test_ccc or PUBLISHED_TEST_CCC
    order = list(run.config.model.attributes)  # the published numbers in the run's attribute order
    published = {a: published[a] for a in sorted(published, key=lambda a: order.index(a) if a in order else len(order))}
    published_blocks = [Paragraph(f"The paper's test CCC below is {PUBLISHED_NOTE}.", "note"),
                        Table(pd.DataFrame([published], index=pd.Index([PUBLISHED_MODEL], name="model")),
                              "Published test CCC")]
    try:
        predictions = run_test_predictions(run, device)
    except (EvaluationError, AudioLoadingError) as err:
        return Section(TITLES[2], (missing(str(err)), *published_blocks))
    attributes = run.config.model.attributes
    table = split_estimates(predictions, attributes)
    if table.empty:
        return Section(TITLES[2], (missing("the test predictions hold none of the run's attributes"), *published_blocks))
    return Section(TITLES[2], (
        Paragraph(f"This run's test splits: CCC with 95 % bootstrap intervals ({_resamples()} resamples of utterances; "
                  f"also of whole speakers where at least {MIN_RESAMPLED_SPEAKERS} are known: fewer give too narrow "
                  "an interval)."),
        Table(estimate_text(table)),
        Image("test_ccc", estimate_figure(table, published=published, title="Test CCC, 95 % intervals"),
              f"Test CCC with 95 % intervals; hollow diamonds: {PUBLISHED_NOTE}"),
        *published_blocks, Heading("CCC per speaker"), *_speaker_blocks(predictions, attributes)))


def _speaker_blocks(predictions: pd.DataFrame, attributes: tuple[str, ...]) -> list:
    """Median, IQR and the worst speakers' CCC per split and attribute (`core.evaluate.evaluation.speaker_spreads`)."""
    if "speaker" not in predictions or known_speakers(predictions["speaker"]).isna().all():
        return [missing("the test utterances name no speakers")]
    spreads = speaker_spreads(predictions, attributes)
    if spreads.empty:
        return [missing(f"no speaker has {MIN_SPEAKER_UTTERANCES} or more labelled test utterances")]
    table = pd.DataFrame({"speakers": spreads["speakers"], "median CCC": spreads["median"],
                          "IQR": [f"[{q1:.3f}, {q3:.3f}]" for q1, q3 in zip(spreads["q1"], spreads["q3"])],
                          "worst speakers": spreads["worst"]}, index=spreads.index)
    return [Table(table,
                  f"Each speaker's own CCC (speakers with at least {MIN_SPEAKER_UTTERANCES} labelled test utterances)")]


# --- 4. the SSL ablation ---------------------------------------------------------------------------

def _ablation_section(run: Run, runs: list[Run], device: str) -> Section:
    if not run.info.trained:
        return Section(TITLES[3], (missing("an imported model has no ablation partner" if run.info.kind == "official"
                                           else f"a {run.info.kind} run has no unlabelled stage to leave out"),))
    partner = ablation_partner(run, runs)
    if partner is None:
        other = str(not run.config.train.use_unlabelled).lower()
        return Section(TITLES[3], (missing(f"no stored run of the same config and corpus with train.use_unlabelled={other} "
                                           "(`python -m core ablation` trains both)"),))
    with_run, without_run = (run, partner) if run.config.train.use_unlabelled else (partner, run)
    try:
        both = pd.concat({label: test_estimates(r, device) for label, r in (("with unlabelled", with_run),
                                                                           ("labelled only", without_run))}, names=["run"])
        difference = paired_difference(with_run, without_run, device=device)
    except (EvaluationError, AudioLoadingError) as err:
        return Section(TITLES[3], (missing(str(err)),))
    blocks = [Paragraph(f"With unlabelled data: `{with_run.run_id}`; labelled only: `{without_run.run_id}` "
                        "(the same config and corpus otherwise)."),
              Table(estimate_text(both), "Test CCC of both runs, 95 % intervals")]
    if difference.empty:
        return Section(TITLES[3], (*blocks, missing("the two runs share no test utterance")))
    return Section(TITLES[3], (
        *blocks,
        Paragraph("What the unlabelled data bought: test CCC with minus without, with a paired bootstrap interval "
                  "(both runs judged on the same resamples); an interval above 0 is a gain."),
        Table(estimate_text(difference), "Paired difference of test CCC (with - without)"),
        Image("ablation", estimate_figure(difference, value="difference", title="With minus without unlabelled data"),
              "Paired difference of test CCC with 95 % intervals")))


# --- 5. cluster-emotion dependence -----------------------------------------------------------------

def _analysis_section(run: Run, cache_root: Path, device: str, progress) -> Section:
    try:
        exploration = explore(run, corpus_to_explore(run), cache_root=cache_root, progress=progress,
                              world=World(device=resolve_device(device)))
    except (ExploreError, AudioLoadingError) as err:
        return Section(TITLES[4], (missing(str(err)),))
    report, latent = analyze_exploration(exploration, n_shuffles=N_SHUFFLES), exploration.latent
    corpus = "its own corpus" if run.info.corpus_fingerprint else "the built-in demo corpus"
    blocks = [Paragraph(f"Network `{exploration.network}` over {corpus}: {len(latent.files)} utterances, "
                        f"{len(latent.centroids)} clusters (centroids: {latent.centroid_source}). Each statistic is "
                        f"set beside the same statistic for {N_SHUFFLES} shuffles of the cluster labels (same sizes): "
                        "what no dependence looks like at this sample size.")]
    if report.dependence.empty:
        return Section(TITLES[4], (*blocks, missing("too few utterances for a dependence test")))
    blocks += [Table(_dependence_table(report.dependence), "Dependence of the clusters on each attribute "
                     "(source: true labels, or the run's predictions)"),
               Image("dependence", dependence_figure(report.dependence),
                     "Epsilon² and mutual information: observed clusters vs shuffled clusters (mean ± std)")]
    if report.categorical:
        blocks.append(Paragraph("Categorical emotion vs cluster: " + ", ".join(
            f"{k} {v:.4g}" for k, v in report.categorical.items()) + "."))
    means = [c for c in report.per_cluster.columns if c.endswith("_mean")]
    blocks.append(Table(report.per_cluster[["size", "share", *means]], "Per cluster: size, share and mean attributes"))
    return Section(TITLES[4], tuple(blocks))


def _dependence_table(dependence: pd.DataFrame) -> pd.DataFrame:
    table = dependence[["n", "kruskal_h", "p_value", "epsilon2"]].copy()
    table["epsilon2 (shuffled)"] = [f"{m:.4f} ± {s:.4f}" for m, s in
                                    zip(dependence.shuffled_epsilon2_mean, dependence.shuffled_epsilon2_std)]
    table["mutual_info"] = dependence["mutual_info"]
    table["MI (shuffled)"] = [f"{m:.4f} ± {s:.4f}" for m, s in zip(dependence.shuffled_mi_mean, dependence.shuffled_mi_std)]
    return table


# --- 6. other corpora ------------------------------------------------------------------------------

def _evaluations_section(run: Run) -> Section:
    evaluations = stored_evaluations(run.dir)
    if not evaluations:
        return Section(TITLES[5], (missing("no stored cross-corpus evaluation "
                                           "(`python -m core evaluate RUN --corpus PATH` stores one)"),))
    blocks = []
    for evaluation in evaluations:
        scale = f"; labels mapped from {evaluation.label_range[0]:g} to {evaluation.label_range[1]:g}" \
            if evaluation.label_range else ""
        blocks += [Heading(", ".join(evaluation.corpora)),
                   Paragraph(", ".join(f"{name} (`{source}`)" for name, source in evaluation.corpora.items())
                             + f"; evaluated {evaluation.created}{scale}."),
                   *(Paragraph(note, "note") for note in evaluation.notes),
                   Table(estimate_text(evaluation.table), "CCC with 95 % intervals")]
    return Section(TITLES[5], tuple(blocks))


# --- 7. footer -------------------------------------------------------------------------------------

def _footer(run: Run, analysis: bool) -> Section:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    flags = "" if analysis else " --no-analysis"
    return Section(TITLES[-1], (
        Paragraph(f"Made with `python -m core report {run.run_id} --out DIR{flags}` on {now}."),
        Paragraph(f"95 % intervals: percentile bootstrap, {_resamples()} resamples (seed 0) of utterances; where the "
                  f"test split names at least {MIN_RESAMPLED_SPEAKERS} speakers, also of whole speakers (a clustered "
                  "bootstrap, honest when one speaker has many utterances). Paired differences apply the same resamples to both runs. CCC is computed per "
                  "utterance (the mean of its chunks' predictions) with population variances."),
    ))


def _resamples() -> str:
    return f"{RESAMPLES:,}".replace(",", " ")  # "1 000", as SPEC and the CLI write it
