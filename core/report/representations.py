"""The report's section "Against other representations": the run beside the other stored runs over its corpus
(acoustic baselines, imported embeddings, other trainings), by `core.evaluate.representations`. Blocks only: the
statistics live there, the rendering in `core.report.document`."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from core.audio.decode import AudioLoadingError
from core.evaluate.cross_corpus import EvaluationError, run_test_predictions
from core.evaluate.representations import categorical_table, compare_representations, summary_table
from core.evaluate.uncertainty import RESAMPLES
from core.explore.exploration import ExploreError, explore
from core.report.document import Paragraph, Section, Table, missing
from core.runtime.device import resolve_device
from core.runtime.distributed import World
from core.store.run_store import Run

TITLE = "Against other representations"


def representations_section(run: Run, runs: list[Run], *, cache_root: Path, device: str, n_shuffles: int,
                            progress: Callable[[str, int, int], None] | None = None) -> Section:
    """`run` first, then every other run of `runs` whose corpus has the same fingerprint, compared on their common
    utterances (each explored over its own corpus, cached); "not available" where there is none.

    Args:
        runs: the stored runs to look among (the report's store); cache_root, device, progress: as `explore`.
        n_shuffles: shuffled-cluster baselines, as in the report's cluster-emotion section.
    """
    fingerprint = run.info.corpus_fingerprint
    others = [r for r in runs if fingerprint and r.run_id != run.run_id and r.info.corpus_fingerprint == fingerprint]
    if not others:
        return Section(TITLE, (missing("no other stored run over the same corpus (the same corpus fingerprint): make "
                                       "a baseline of it, then `python -m core compare RUN RUN --out DIR`"),))
    world = World(device=resolve_device(device))
    try:
        explorations = {r.run_id: explore(r, r.corpus(), cache_root=cache_root, progress=progress, world=world)
                        for r in (run, *others)}
    except (ExploreError, AudioLoadingError) as err:
        return Section(TITLE, (missing(str(err)),))
    comparison = compare_representations(explorations, {r.run_id: _test_predictions(r, device) for r in (run, *others)},
                                         n_shuffles=n_shuffles, resamples=RESAMPLES)
    resamples = f"{RESAMPLES:,}".replace(",", " ")  # "1 000", as the rest of the report writes it
    blocks = [Paragraph(f"This run (`{run.run_id}`) beside {len(others)} other stored run(s) over the same corpus: "
                        + ", ".join(f"`{r.run_id}` ({r.info.kind})" for r in others) + f". On the "
                        f"{comparison.n_common} utterances they all hold, each run's clusters are tested against the "
                        f"labels as in the section above, beside {n_shuffles} shuffles of its clusters; a row "
                        "\"A − B\" is the difference of two runs, with a paired 95 % bootstrap interval "
                        f"({resamples} resamples of utterances, the same for both runs; basic intervals, which cancel "
                        "the upward bias of ε² and MI that grows with the number of clusters): an interval above 0 "
                        "means A's clusters depend more on the attribute than B's.")]
    summary = summary_table(comparison)
    if summary.empty:
        return Section(TITLE, (*blocks, missing("too few labelled utterances in common for a dependence test")))
    blocks.append(Table(summary, "Per attribute: ε² and binned mutual information beside shuffled clusters (mean ± "
                                 "std), and each run's test CCC; then the paired differences with their 95 % intervals"))
    if len(categorical := categorical_table(comparison)):
        blocks.append(Table(categorical, "Cramér's V of the clusters with the emotion categories, beside shuffled "
                                         "clusters (mean ± std)"))
    return Section(TITLE, tuple(blocks))


def _test_predictions(run: Run, device: str) -> pd.DataFrame | None:
    try:
        return run_test_predictions(run, device)
    except (EvaluationError, AudioLoadingError):  # an imported model: its test CCC rows say it has none
        return None
